"""Which SNR a deep JSCC model is given: the encoder's design SNR and the decoder's estimate, clipped
to what the model was trained on (:func:`encoder_snr`, :func:`decoder_snr`). Used by the GNU Radio
blocks, the over-the-air decoder and the demo alike."""

from __future__ import annotations

import math
from typing import Any


def _training_range(card: Any) -> tuple[float, float]:
    snr = getattr(card, "snr_db", None)
    return (float(snr[0]), float(snr[-1])) if snr else (-math.inf, math.inf)


def encoder_snr(card: Any, design_snr_db: float) -> float:
    """The SNR input of an encoder: SNR-adaptive models (and cards that name no training SNR) get the
    SNR the transmitter designs for; fixed-SNR models always get their training SNR."""
    lo, _hi = _training_range(card)
    if getattr(card, "snr_adaptive", True) or not math.isfinite(lo):
        return float(design_snr_db)
    return lo


def decoder_snr(card: Any, snr_est_db: Any, fallback_db: float, mode: str = "estimate") -> float:
    """The SNR input of a decoder. SNR-adaptive models get the receiver's estimate (``mode``
    'estimate'; ``fallback_db`` when the estimate is missing or not finite) or ``fallback_db``
    (``mode`` 'fixed'), clipped to the training range: a model is never asked to extrapolate.
    Fixed-SNR models always get their training SNR."""
    lo, hi = _training_range(card)
    if not getattr(card, "snr_adaptive", True):
        return lo if math.isfinite(lo) else float(fallback_db)
    snr = float(fallback_db)
    if mode == "estimate":
        try:
            est = float(snr_est_db)
        except (TypeError, ValueError):
            est = math.nan
        snr = est if math.isfinite(est) else snr
    return float(min(max(snr, lo), hi))
