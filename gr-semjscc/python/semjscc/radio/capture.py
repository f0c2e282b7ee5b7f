"""Getting a known waveform through a radio and finding its frames again: cyclic batches.

A batch of bursts is transmitted as a *cyclic* buffer of period P (the robust way to get a known
waveform through a Pluto: no timing between TX and RX needed) and a capture of
``P + 2 * burst + GUARD`` samples is taken. Exactly one copy of every burst *starts* inside the
analysis window ``[burst, burst + P)`` and ends inside the capture, so counting the frames the
receiver finds there counts each sent frame once: received, or lost. Calibration, the
over-the-air runner and replay all use it (replay on the recorded capture, which is why its
numbers are identical).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from semjscc.phy.frame import DEFAULT_FRAME_FORMAT, MAX_FRAME_NUMBER, FrameFormat
from semjscc.phy.numerology import DEFAULT_NUMEROLOGY
from semjscc.phy.rx import ReceivedFrame, receive
from semjscc.phy.tx import modulate_stream

TX_RMS_DBFS = -15.0  # OFDM RMS inside a burst; PAPR ~10-12 dB leaves the peaks below full scale
GUARD = 256


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


def spectral_offset(iq: np.ndarray, sample_rate: float, oversample: int = 4) -> tuple[float, float]:
    """Where a capture's OFDM band sits, however far from the LO (the receiver searches only
    +-MAX_CFO_SUBCARRIERS): the circular shift that best aligns the averaged power spectrum with the
    numerology's occupied band. Returns (offset in Hz, in-band power over the out-of-band floor in dB;
    near 0 dB means no signal stands above the noise and the offset means nothing)."""
    num = DEFAULT_NUMEROLOGY
    nfft = num.fft_len * oversample
    x = np.asarray(iq, dtype=np.complex64)
    n = len(x) // nfft
    if n == 0:
        return 0.0, 0.0
    spec = (np.abs(np.fft.fft(x[: n * nfft].reshape(n, nfft), axis=1)) ** 2).mean(axis=0)
    spec[0] = np.median(spec)  # the DC bin holds a radio's LO leakage, not the signal
    edge = max(abs(k) for k in (*num.data_carriers, *num.pilot_carriers)) * oversample
    mask = np.zeros(nfft)
    mask[np.r_[0: edge + 1, nfft - edge: nfft]] = 1.0
    # circular cross-correlation of spectrum and mask: score[s] = sum_k spec[k] * mask[k - s]
    score = np.real(np.fft.ifft(np.fft.fft(spec) * np.conj(np.fft.fft(mask))))
    shift = int(np.argmax(score))
    inside = np.roll(mask, shift) > 0
    floor = float(np.median(spec[~inside])) if (~inside).any() else 0.0
    band = float(spec[inside].mean())
    excess_db = 10 * np.log10(band / floor) if floor > 0 and band > 0 else 0.0
    signed = shift if shift < nfft // 2 else shift - nfft
    return float(signed * sample_rate / nfft), float(excess_db)


def random_payloads(n_frames: int, n_symbols: int, seed: int) -> list[np.ndarray]:
    """Unit-power complex Gaussian payloads (calibration traffic: the receiver's SNR estimate uses only
    the preamble and the header, so the content does not matter)."""
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n_frames, n_symbols)) + 1j * rng.standard_normal((n_frames, n_symbols))) / math.sqrt(2)
    return list(z.astype(np.complex64))
