"""The link as calibration, the experiment runner and replay all use it: images -> deep JSCC symbols ->
OFDM bursts at a TX level -> (radio) -> capture -> numpy OFDM receiver -> decoder -> classifier.

Capture scheme: a batch of bursts is transmitted as a *cyclic* buffer of period P (the robust way to
get a known waveform through a Pluto: no timing between TX and RX needed) and a capture of
``P + 2 * burst + GUARD`` samples is taken. Exactly one copy of every burst *starts* inside the
analysis window ``[burst, burst + P)`` and ends inside the capture, so counting the frames the receiver
finds there counts each sent frame once: received, or lost. Replay runs this same function on the
recorded capture, which is why its numbers are identical.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semjscc.imaging import to_float_nchw, to_uint8_nhwc
from semjscc.metrics import psnr_db
from semjscc.phy.frame import DEFAULT_FRAME_FORMAT, MAX_FRAME_NUMBER, FrameFormat
from semjscc.phy.rx import ReceivedFrame, receive
from semjscc.phy.tx import modulate_stream

TX_RMS_DBFS = -15.0  # OFDM RMS inside a burst; PAPR ~10-12 dB leaves the peaks below full scale
GUARD = 256
PSNR_CAP_DB = 100.0  # as the metrics sink: identical images have infinite PSNR, JSON has no infinity


def tx_scale(tx_rms_dbfs: float = TX_RMS_DBFS, fmt: FrameFormat = DEFAULT_FRAME_FORMAT) -> float:
    """Amplitude factor putting a burst of unit-power symbols at ``tx_rms_dbfs``."""
    return math.sqrt(10 ** (tx_rms_dbfs / 10) / fmt.numerology.time_signal_power())


@dataclass
class CyclicBatch:
    waveform: np.ndarray  # one period, scaled for the radio
    air_numbers: np.ndarray  # 16-bit frame numbers, in order
    burst_len: int  # longest burst incl. padding

    @property
    def period(self) -> int:
        return len(self.waveform)

    @property
    def capture_len(self) -> int:
        return self.period + 2 * self.burst_len + GUARD

    @property
    def window(self) -> tuple[int, int]:
        return self.burst_len, self.burst_len + self.period


def build_batch(payloads: Sequence[np.ndarray], first_frame: int, scale: float,
                fmt: FrameFormat = DEFAULT_FRAME_FORMAT) -> CyclicBatch:
    """Bursts for ``payloads`` (complex symbols each), frame numbers counting from ``first_frame``."""
    wave, _ = modulate_stream(list(payloads), first_frame % (MAX_FRAME_NUMBER + 1), fmt)
    air = (first_frame + np.arange(len(payloads))) % (MAX_FRAME_NUMBER + 1)
    burst = max(fmt.burst_samples(len(p)) for p in payloads)
    return CyclicBatch((wave * scale).astype(np.complex64), air, burst)


def frames_in_window(iq: np.ndarray, window: tuple[int, int]) -> list[ReceivedFrame]:
    """Every frame (good header or not) the receiver finds starting inside ``window``.

    The capture's mean is removed first: a radio's residual DC offset (and TX LO leakage, which lands
    on DC in a loopback) is periodic at every lag, so it would raise the receiver's Schmidl & Cox
    metric everywhere; the OFDM signal has no DC carrier, so its own mean is ~0."""
    w0, w1 = window
    x = np.asarray(iq, dtype=np.complex64)
    x = x - x.mean(dtype=np.complex128).astype(np.complex64)
    return [f for f in receive(x) if w0 <= f.start < w1]


def random_payloads(n_frames: int, n_symbols: int, seed: int) -> list[np.ndarray]:
    """Unit-power complex Gaussian payloads (calibration traffic: the receiver's SNR estimate uses only
    the preamble and the header, so the content does not matter)."""
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n_frames, n_symbols)) + 1j * rng.standard_normal((n_frames, n_symbols))) / math.sqrt(2)
    return list(z.astype(np.complex64))


# --- decoding a capture --------------------------------------------------------------------------
@dataclass
class SentFrame:
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
    snr_est_db: float | None = None
    cfo_hz: float | None = None
    decoder_snr_db: float | None = None
    sample_start: int | None = None  # in the capture
    sample_count: int | None = None


@dataclass
class CaptureResult:
    frames: list[FrameResult]  # one per sent frame, in sending order
    header_failures: list[ReceivedFrame] = field(default_factory=list)


class Models:
    """Decoder, classifier and the decoder's SNR input rule (as the GNU Radio decoder block applies it:
    SNR-adaptive models get the receiver's estimate clipped to their training range, fixed-SNR models
    their training SNR)."""

    def __init__(self, encoder: Any, decoder: Any, classifier: Any) -> None:
        self.encoder, self.decoder, self.classifier = encoder, decoder, classifier
        card = decoder.card
        self.adaptive = bool(card.snr_adaptive)
        self.snr_range = (float(card.snr_db[0]), float(card.snr_db[-1])) if card.snr_db else (-np.inf, np.inf)
        self.n_symbols = int(decoder.n_symbols)

    def decoder_snr(self, snr_est_db: float) -> float:
        if not self.adaptive:
            return self.snr_range[0]
        return float(np.clip(snr_est_db, *self.snr_range))

    def encode(self, images_u8: np.ndarray, design_snr_db: float) -> np.ndarray:
        snr = design_snr_db if self.adaptive or not np.isfinite(self.snr_range[0]) else self.snr_range[0]
        z = self.encoder.run(to_float_nchw(images_u8), float(snr))
        return (z[..., 0] + 1j * z[..., 1]).astype(np.complex64)


def decode_capture(iq: np.ndarray, window: tuple[int, int], sent: Sequence[SentFrame], images_u8: np.ndarray,
                   models: Models) -> CaptureResult:
    """Per-frame outcome of one capture. ``sent[i]`` went out with air frame number
    ``sent[i].frame % 2**16``; ``images_u8[image_index]`` is what it carried."""
    found = frames_in_window(iq, window)
    by_air = {s.frame % (MAX_FRAME_NUMBER + 1): s for s in sent}
    results = {s.frame: FrameResult(s.frame, s.frame % (MAX_FRAME_NUMBER + 1), s.image_index, s.label, "lost")
               for s in sent}
    failures = [f for f in found if not f.header_ok]
    good: list[tuple[SentFrame, ReceivedFrame]] = []
    for f in found:
        s = by_air.get(f.frame_number) if f.header_ok else None
        if s is None or results[s.frame].status != "lost":
            continue  # a frame of another batch (cannot happen with one cyclic batch) or a duplicate
        r = results[s.frame]
        r.snr_est_db, r.cfo_hz, r.sample_start = f.snr_est_db, f.cfo_hz, f.start
        r.sample_count = len(f.payload)
        if len(f.payload) != models.n_symbols:
            r.status = "corrupt"
            continue
        good.append((s, f))
    if good:
        y = np.stack([f.payload for _, f in good])
        snrs = np.array([models.decoder_snr(f.snr_est_db) for _, f in good], dtype=np.float32)
        x_hat = models.decoder.run(np.stack([y.real, y.imag], axis=-1).astype(np.float32), snrs)
        rx_u8 = to_uint8_nhwc(x_hat)  # what the decoder block publishes (u8 images)
        rx_float = to_float_nchw(rx_u8)
        logits = models.classifier.run(rx_float).astype(np.float64)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        ref = to_float_nchw(images_u8[[s.image_index for s, _ in good]])
        psnr = np.minimum(psnr_db(ref, rx_float), PSNR_CAP_DB)
        for row, (s, _f) in enumerate(good):
            r = results[s.frame]
            r.status = "received"
            r.pred = int(p[row].argmax())
            r.confidence = float(p[row].max())
            r.psnr_db = float(psnr[row])
            r.decoder_snr_db = float(snrs[row])
    return CaptureResult([results[s.frame] for s in sent], failures)


def summarize(frames: Sequence[FrameResult], header_failures: int) -> dict[str, Any]:
    """The keys of ``semjscc run``'s JSON (metrics sink definitions): accuracy over received labelled
    frames, accuracy_sent counting lost ones as wrong, means over received frames."""
    rx = [f for f in frames if f.status == "received"]
    labelled = [f for f in rx if f.label >= 0]
    labelled_sent = [f for f in frames if f.label >= 0]
    correct = sum(1 for f in labelled if f.pred == f.label)

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    return {
        "frames_sent": len(frames),
        "frames_received": len(rx),
        "frames_lost": len(frames) - len(rx),
        "header_crc_failures": int(header_failures),
        "corrupt": sum(1 for f in frames if f.status == "corrupt"),
        "accuracy": correct / len(labelled) if labelled else None,
        "accuracy_sent": correct / len(labelled_sent) if labelled_sent else None,
        "psnr_db": mean([f.psnr_db for f in rx if f.psnr_db is not None]),
        "snr_est_db": mean([f.snr_est_db for f in rx if f.snr_est_db is not None]),
        "cfo_est_hz": mean([f.cfo_hz for f in rx if f.cfo_hz is not None]),
    }
