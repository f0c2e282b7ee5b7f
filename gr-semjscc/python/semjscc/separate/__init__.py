"""Separate source-channel coding baseline: real image codecs (JPEG, WebP, HEIF/HEVC) with shared
headers stripped, IEEE 802.11n LDPC codes, Gray QAM, under exactly the JSCC's channel-use budget.

``scheme.SeparateScheme`` is one configuration as a ``semjscc.evaluation.Scheme`` (end to end on
the real bits); ``envelope.run_separate_sweep`` evaluates every configuration that fits, per SNR,
and ``envelope.envelope`` picks the best; ``semjscc eval --separate`` runs it. Submodules are
imported explicitly, so importing this package loads no codec, numba or torch.
"""
