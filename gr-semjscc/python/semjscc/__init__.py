"""gr-semjscc: semantic-aware deep joint source-channel coding for images (the floor plan: docs/architecture.md).

Concept folders, each importing only those below it: ``util`` (errors, files, stopping), ``phy``
(OFDM numerology, frame, TX/RX, channel models, symbols and AWGN), ``data`` (datasets, images,
metrics), ``link`` (frame ledger, the SNR each model is told, pacing), ``zoo`` (model cards, finding
models, ONNX Runtime sessions), ``separate`` (the codec + LDPC + QAM baseline), ``nn`` (torch models
and training), ``radio`` (Pluto, simulated radio, calibration), ``gr`` (GNU Radio blocks), ``grc``
(GNU Radio Companion glue), ``experiments`` (eval, bench, ota) and ``cli``. torch is only imported
by ``nn`` and the experiments that compare against it, so the runtime works without it.
"""

__version__ = "0.1.0"
