"""The link's own rules, shared by GNU Radio, the over-the-air runner and the demo: the frame ledger
(:mod:`.ledger`), the SNR each model is told (:mod:`.snr`) and the in-flight window (:mod:`.pacing`)."""
