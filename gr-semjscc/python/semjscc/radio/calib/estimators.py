"""Calibration estimators: pure numpy functions on captured IQ (full scale 1.0).

* tone frequency (-> carrier offset -> oscillator ppm),
* DC offset, IQ gain/phase imbalance and image rejection, blind (second-order statistics of any
  circular signal: a tone, noise, OFDM),
* power and noise floor in dBFS, SNR from the OFDM receiver's per-frame estimates.

IQ imbalance model (I branch as reference, as :func:`semjscc.radio.sim.impair_iq` applies it):
``Q' = g (Q cos(phi) + I sin(phi))``. For a circular signal E[I^2] = E[Q^2] and E[IQ] = 0, so
``g = sqrt(E[Q'^2] / E[I^2])`` and ``sin(phi) = E[I Q'] / sqrt(E[I^2] E[Q'^2])``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_TINY = 1e-30


def tone(n: int, freq_hz: float, sample_rate: float, amplitude: float = 0.5) -> np.ndarray:
    """A complex exponential at ``freq_hz`` (peak ``amplitude`` of full scale)."""
    return (amplitude * np.exp(2j * np.pi * freq_hz / sample_rate * np.arange(n))).astype(np.complex64)


def power_dbfs(x: np.ndarray) -> float:
    """Mean power in dB relative to a full-scale complex sinusoid."""
    return 10 * math.log10(float(np.mean(np.abs(np.asarray(x, dtype=np.complex128)) ** 2)) + _TINY)


def peak_fraction(x: np.ndarray) -> float:
    """Largest |I| or |Q| as a fraction of full scale (>= ~0.99: the ADC clipped)."""
    y = np.asarray(x)
    return float(max(np.max(np.abs(y.real)), np.max(np.abs(y.imag)))) if len(y) else 0.0


def dc_offset(x: np.ndarray) -> complex:
    return complex(np.mean(np.asarray(x, dtype=np.complex128)))


def noise_floor_dbfs(x: np.ndarray) -> float:
    """Power of a signal-free capture after removing its DC offset."""
    y = np.asarray(x, dtype=np.complex128)
    return power_dbfs(y - y.mean())


def estimate_tone_frequency(x: np.ndarray, sample_rate: float, block: int = 256) -> float:
    """Frequency (Hz) of the strongest tone in ``x``.

    Coarse: the FFT peak (4x zero-padded; DC removed first so an LO leak cannot win). Fine: the
    signal mixed down by it is summed over blocks of ``block`` samples (this also averages out an IQ
    image and noise), and a straight line is fitted to the unwrapped block phases, weighted by block
    magnitude: a tone's phase advances 2 pi f / fs per sample."""
    y = np.asarray(x, dtype=np.complex128)
    y = y - y.mean()
    n = len(y)
    nfft = 1 << math.ceil(math.log2(4 * n))
    spec = np.abs(np.fft.fft(y * np.hanning(n), nfft))
    k = int(np.argmax(spec))
    coarse = (k if k < nfft // 2 else k - nfft) * sample_rate / nfft
    z = y * np.exp(-2j * np.pi * coarse / sample_rate * np.arange(n))
    nb = n // block
    if nb < 3:
        return coarse + float(np.angle(np.sum(z[1:] * np.conj(z[:-1])))) * sample_rate / (2 * np.pi)
    blocks = z[:nb * block].reshape(nb, block).sum(axis=1)
    ph = np.unwrap(np.angle(blocks))
    w = np.abs(blocks)
    t = (np.arange(nb) + 0.5) * block
    tm = np.sum(w * t) / np.sum(w)
    slope = np.sum(w * (t - tm) * ph) / np.sum(w * (t - tm) ** 2)
    return coarse + float(slope) * sample_rate / (2 * np.pi)


def frequency_error_ppm(offset_hz: float, center_hz: float) -> float:
    return offset_hz / center_hz * 1e6


@dataclass(frozen=True)
class IQImbalance:
    gain: float  # Q/I amplitude ratio
    phase_rad: float

    @property
    def gain_db(self) -> float:
        return 20 * math.log10(self.gain)

    @property
    def phase_deg(self) -> float:
        return math.degrees(self.phase_rad)

    @property
    def image_rejection_db(self) -> float:
        return image_rejection_db(self.gain, self.phase_rad)


def iq_imbalance(x: np.ndarray) -> IQImbalance:
    """Blind gain/phase imbalance of a circular signal (DC removed here)."""
    y = np.asarray(x, dtype=np.complex128)
    y = y - y.mean()
    i, q = y.real, y.imag
    pi, pq, c = float(np.mean(i * i)), float(np.mean(q * q)), float(np.mean(i * q))
    gain = math.sqrt(pq / (pi + _TINY))
    s = float(np.clip(c / math.sqrt(pi * pq + _TINY), -1.0, 1.0))
    return IQImbalance(gain, math.asin(s))


def image_rejection_db(gain: float, phase_rad: float) -> float:
    """Wanted-to-image power ratio of the imbalance: r = mu x + nu x*, mu = (1 + g e^{j phi}) / 2,
    nu = (1 - g e^{-j phi}) / 2."""
    num = 1 + gain * gain + 2 * gain * math.cos(phase_rad)
    den = 1 + gain * gain - 2 * gain * math.cos(phase_rad)
    return 10 * math.log10(num / max(den, _TINY))


def correct_iq(x: np.ndarray, imbalance: IQImbalance, dc: complex = 0j) -> np.ndarray:
    """Undo DC offset and IQ imbalance: Q = (Q'/g - I sin(phi)) / cos(phi)."""
    y = np.asarray(x, dtype=np.complex128) - dc
    i, q = y.real, y.imag
    q0 = (q / imbalance.gain - i * math.sin(imbalance.phase_rad)) / math.cos(imbalance.phase_rad)
    return (i + 1j * q0).astype(np.complex64)


def frames_snr_db(snrs: Sequence[float]) -> float | None:
    """The SNR of a capture from the OFDM receiver's per-frame estimates (Es/N0 per subcarrier, the
    project's convention): their median, robust to a frame hit by a transient; None without frames."""
    v = np.asarray([s for s in snrs if math.isfinite(s)], dtype=np.float64)
    return float(np.median(v)) if len(v) else None
