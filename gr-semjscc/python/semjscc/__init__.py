"""gr-semjscc: semantic-aware deep joint source-channel coding for images.

Sub-packages hold one concern each: ``data`` (datasets), ``phy`` (OFDM numerology and
frame format, shared by the torch channel and the GNU Radio blocks), ``nn`` (torch models,
channels, losses, training), ``runtime`` (ONNX Runtime inference) and ``gr`` (GNU Radio
blocks). torch is only imported by ``nn`` so the runtime works without it.
"""

__version__ = "0.1.0"
