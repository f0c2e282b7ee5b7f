"""Offline evaluation: the SNR sweep (:mod:`.sweep`), torch or ONNX schemes for it (:mod:`.schemes`)
and separate coding's per-SNR envelope (:mod:`.separate`)."""
