"""Separate source-channel coding baseline: real image codecs (JPEG, WebP, HEIF/HEVC) with shared
headers stripped, IEEE 802.11n LDPC codes, Gray QAM, under exactly the JSCC's channel-use budget.

``scheme.SeparateScheme`` is one configuration as a ``semjscc.experiments.eval.sweep.Scheme`` (end to end on
the real bits); :mod:`semjscc.experiments.eval.separate` evaluates every configuration that fits, per SNR,
and picks the best (``semjscc eval --separate``). Submodules are imported explicitly, so importing this
package loads no codec, numba or torch; nothing here imports torch.
"""
