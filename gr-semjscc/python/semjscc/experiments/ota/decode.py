"""Decoding what the radio captured, as the experiment runner and replay both do it: the numpy OFDM
receiver finds the frames of a cyclic batch (:mod:`semjscc.radio.capture`), the deep JSCC decoder
and the classifier turn them into predictions, and every frame sent gets an outcome (received,
lost or corrupt), summarised with the frame ledger of :mod:`semjscc.link.ledger`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semjscc.data.imaging import to_float_nchw, to_uint8_nhwc
from semjscc.data.metrics import capped_psnr_db
from semjscc.link.ledger import SUMMARY_KEYS, FrameLedger, SentFrame
from semjscc.link.snr import decoder_snr, encoder_snr
from semjscc.phy.frame import MAX_FRAME_NUMBER
from semjscc.phy.rx import ReceivedFrame
from semjscc.phy.symbols import from_pairs, to_pairs
from semjscc.radio.capture import frames_in_window


# --- decoding a capture --------------------------------------------------------------------------
@dataclass
class TxFrame:
    """A frame of a batch as the recording lists it."""

    frame: int  # running count in the experiment
    image_index: int
    label: int


@dataclass
class FrameResult:
    frame: int
    air_frame_number: int
    image_index: int
    label: int
    status: str  # received | lost | corrupt
    pred: int | None = None
    confidence: float | None = None
    psnr_db: float | None = None
    snr_est_db: float | None = None  # the payload's SNR estimate (what the decoder is told)
    channel_snr_db: float | None = None  # the channel's Es/N0 estimate (what a simulation's SNR means)
    cfo_hz: float | None = None
    decoder_snr_db: float | None = None
    sample_start: int | None = None  # in the capture
    sample_count: int | None = None


@dataclass
class CaptureResult:
    frames: list[FrameResult]  # one per sent frame, in sending order
    header_failures: list[ReceivedFrame] = field(default_factory=list)


class Models:
    """Encoder, decoder and classifier of an experiment; the SNR each model is given follows the rules
    of :mod:`semjscc.link.ledger`, as in the GNU Radio blocks."""

    def __init__(self, encoder: Any, decoder: Any, classifier: Any) -> None:
        self.encoder, self.decoder, self.classifier = encoder, decoder, classifier
        self.n_symbols = int(decoder.n_symbols)

    def decoder_snr(self, snr_est_db: float) -> float:
        return decoder_snr(self.decoder.card, snr_est_db, snr_est_db)

    def encode(self, images_u8: np.ndarray, design_snr_db: float) -> np.ndarray:
        return from_pairs(self.encoder.run(to_float_nchw(images_u8), encoder_snr(self.encoder.card, design_snr_db)))


def decode_capture(iq: np.ndarray, window: tuple[int, int], sent: Sequence[TxFrame], images_u8: np.ndarray,
                   models: Models) -> CaptureResult:
    """Per-frame outcome of one capture. ``sent[i]`` went out with air frame number
    ``sent[i].frame % 2**16``; ``images_u8[image_index]`` is what it carried."""
    found = frames_in_window(iq, window)
    by_air = {s.frame % (MAX_FRAME_NUMBER + 1): s for s in sent}
    results = {s.frame: FrameResult(s.frame, s.frame % (MAX_FRAME_NUMBER + 1), s.image_index, s.label, "lost")
               for s in sent}
    failures = [f for f in found if not f.header_ok]
    good: list[tuple[TxFrame, ReceivedFrame]] = []
    for f in found:
        s = by_air.get(f.frame_number) if f.header_ok else None
        if s is None or results[s.frame].status != "lost":
            continue  # a frame of another batch (cannot happen with one cyclic batch) or a duplicate
        r = results[s.frame]
        r.snr_est_db, r.cfo_hz, r.sample_start = f.snr_est_db, f.cfo_hz, f.start
        r.channel_snr_db = f.channel_snr_db
        r.sample_count = len(f.payload)
        if len(f.payload) != models.n_symbols:
            r.status = "corrupt"
            continue
        good.append((s, f))
    if good:
        y = np.stack([f.payload for _, f in good])
        snrs = np.array([models.decoder_snr(f.snr_est_db) for _, f in good], dtype=np.float32)
        x_hat = models.decoder.run(to_pairs(y), snrs)
        bad = _nonfinite_rows(models.decoder, len(good))  # NaN / inf images (zoo.session): corrupt frames
        rx_u8 = to_uint8_nhwc(np.nan_to_num(x_hat, nan=0.0, posinf=1.0, neginf=0.0))  # what the decoder block publishes
        rx_float = to_float_nchw(rx_u8)
        logits = models.classifier.run(rx_float).astype(np.float64)
        bad |= _nonfinite_rows(models.classifier, len(good))
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        ref = to_float_nchw(images_u8[[s.image_index for s, _ in good]])
        psnr = capped_psnr_db(ref, rx_float)
        for row, (s, _f) in enumerate(good):
            r = results[s.frame]
            if bad[row]:
                r.status = "corrupt"
                continue
            r.status = "received"
            r.pred = int(p[row].argmax())
            r.confidence = float(p[row].max())
            r.psnr_db = float(psnr[row])
            r.decoder_snr_db = float(snrs[row])
    return CaptureResult([results[s.frame] for s in sent], failures)


def _nonfinite_rows(model: Any, n: int) -> np.ndarray:
    """Rows of the model's last call that came out NaN or inf (ONNX sessions record them)."""
    rows = getattr(model, "last_nonfinite", None)
    return np.asarray(rows, dtype=bool).copy() if rows is not None and len(rows) == n else np.zeros(n, dtype=bool)


def summarize(frames: Sequence[FrameResult], header_failures: int) -> dict[str, Any]:
    """The :data:`semjscc.link.ledger.SUMMARY_KEYS` of these outcomes (the frame ledger's definitions)."""
    ledger = FrameLedger()
    for f in frames:
        ledger.send(SentFrame(f.frame, f.label))
        if f.status == "received":
            ledger.receive(f.frame, pred=f.pred, confidence=f.confidence, snr_est_db=f.snr_est_db, cfo_hz=f.cfo_hz,
                           psnr_db=f.psnr_db)
        else:
            ledger.lose(f.frame, "corrupt" if f.status == "corrupt" else "missing")
    ledger.header_failure(int(header_failures))
    s = ledger.summary()
    es_n0 = [f.channel_snr_db for f in frames if f.status == "received" and f.channel_snr_db is not None
             and math.isfinite(f.channel_snr_db)]
    return {**{k: s[k] for k in SUMMARY_KEYS}, "channel_snr_db": float(np.mean(es_n0)) if es_n0 else None}
