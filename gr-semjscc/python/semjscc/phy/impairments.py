"""Random per-burst channel impairments: what the soak (``semjscc bench soak``) and the
``burst_channel`` block draw for every frame, and the numpy code that applies them.

One draw: SNR (Es/N0 per subcarrier, :mod:`semjscc.phy.numerology`), carrier frequency offset, a
fractional timing offset (the sampling phase at the receiver) and a multipath profile of 1..8
complex taps with an exponential power delay profile. The fractional delay is a short windowed
sinc folded into the multipath taps, so one FIR applies both; the combined filter stays inside the
16-sample cyclic prefix and has unit energy, so the mean per-subcarrier SNR is the drawn one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semjscc.phy.channel_model import check_cfo_hz
from semjscc.phy.numerology import DEFAULT_NUMEROLOGY, OFDMNumerology

MAX_CFO_HZ = 20_000.0  # +-20 kHz at 1 MS/s: well inside the receiver's search range (channel_model.CFO_SEARCH_HZ)
MAX_TAPS = 8  # multipath taps; plus the delay filter the FIR stays within the cyclic prefix
DELAY_TAPS = 8  # windowed-sinc fractional delay filter length


def fractional_delay_taps(delay: float, n: int = DELAY_TAPS) -> np.ndarray:
    """Hann-windowed sinc that delays by ``n // 2 - 1 + delay`` samples (``0 <= delay < 1``), unit DC gain."""
    if not 0.0 <= delay < 1.0:
        raise ValueError(f"fractional delay must lie in [0, 1), got {delay}")
    t = np.arange(n) - (n // 2 - 1) - delay
    h = np.sinc(t) * (0.5 + 0.5 * np.cos(np.pi * t / (n // 2 + 1)))
    return h / h.sum()


@dataclass(frozen=True)
class Impairment:
    """One burst's channel."""

    snr_db: float
    cfo_hz: float
    delay: float  # fractional timing offset in samples, [0, 1)
    taps: tuple[complex, ...]  # multipath, unit energy

    def fir(self) -> np.ndarray:
        """Multipath and fractional delay as one complex FIR of unit energy."""
        h = np.convolve(np.asarray(self.taps, dtype=np.complex128), fractional_delay_taps(self.delay))
        return (h / np.sqrt(np.sum(np.abs(h) ** 2))).astype(np.complex64)


def draw_impairment(rng: np.random.Generator, snr_db: tuple[float, float] = (0.0, 20.0),
                    max_cfo_hz: float = MAX_CFO_HZ, max_taps: int = MAX_TAPS) -> Impairment:
    """SNR uniform in ``snr_db``, CFO uniform in +-``max_cfo_hz``, delay uniform in [0, 1), 1..``max_taps``
    Rayleigh taps whose power decays exponentially (decay constant 0.5-3 samples)."""
    n_taps = int(rng.integers(1, max_taps + 1))
    power = np.exp(-np.arange(n_taps) / rng.uniform(0.5, 3.0))
    taps = np.sqrt(power / 2) * (rng.standard_normal(n_taps) + 1j * rng.standard_normal(n_taps))
    taps /= np.sqrt(np.sum(np.abs(taps) ** 2))
    return Impairment(snr_db=float(rng.uniform(*snr_db)), cfo_hz=float(rng.uniform(-max_cfo_hz, max_cfo_hz)),
                      delay=float(rng.uniform(0.0, 1.0)), taps=tuple(complex(t) for t in taps))


class BurstChannel:
    """Applies one :class:`Impairment` per burst to a sample stream, keeping filter memory, carrier
    phase and noise state across calls (streaming: blocks may end anywhere).

    :meth:`start_burst` switches to a new draw at the next sample; :meth:`apply` impairs samples."""

    def __init__(self, rng: np.random.Generator, snr_db: tuple[float, float] = (0.0, 20.0),
                 max_cfo_hz: float = MAX_CFO_HZ, max_taps: int = MAX_TAPS,
                 numerology: OFDMNumerology = DEFAULT_NUMEROLOGY) -> None:
        if not snr_db[0] <= snr_db[1]:
            raise ValueError(f"SNR range must be (low, high) with low <= high, got {snr_db}")
        if max_cfo_hz < 0:
            raise ValueError(f"max CFO must be >= 0 (offsets are drawn in +-max), got {max_cfo_hz}")
        check_cfo_hz(max_cfo_hz, "max CFO")
        if not 1 <= max_taps <= numerology.cp_len - DELAY_TAPS + 1:
            raise ValueError(f"max taps must lie in 1..{numerology.cp_len - DELAY_TAPS + 1} (cyclic prefix), got {max_taps}")
        self.rng, self.num = rng, numerology
        self.snr_range, self.max_cfo_hz, self.max_taps = (float(snr_db[0]), float(snr_db[1])), float(max_cfo_hz), max_taps
        self._hist = np.zeros(max_taps + DELAY_TAPS - 2, dtype=np.complex64)  # last inputs, for the FIR
        self._phase = 0.0
        self.current: Impairment | None = None
        self._fir = np.ones(1, dtype=np.complex64)
        self._std = 0.0
        self._w = 0.0

    def start_burst(self) -> Impairment:
        imp = draw_impairment(self.rng, self.snr_range, self.max_cfo_hz, self.max_taps)
        self.current, self._fir = imp, imp.fir()
        self._std = self.num.noise_std_for_snr(imp.snr_db)
        self._w = 2 * np.pi * imp.cfo_hz / self.num.sample_rate
        return imp

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Impaired copy of ``x`` (complex64). Before the first burst the samples pass unchanged."""
        x = np.asarray(x, dtype=np.complex64)
        n = len(x)
        if n == 0:
            return x.copy()
        if self.current is None:
            y = x.copy()
        else:
            m = len(self._fir) - 1
            xx = np.concatenate((self._hist[len(self._hist) - m:], x)) if m else x
            y = np.convolve(xx, self._fir, mode="valid").astype(np.complex64)
            y *= np.exp(1j * (self._phase + self._w * np.arange(n))).astype(np.complex64)
            self._phase = float((self._phase + self._w * n) % (2 * np.pi))
            # (re, im) pairs drawn in stream order: the output does not depend on how the stream is cut
            y += ((self._std / np.sqrt(2)) * self.rng.standard_normal(2 * n).view(np.complex128)).astype(np.complex64)
        keep = len(self._hist)
        self._hist = np.concatenate((self._hist, x))[-keep:] if keep else self._hist
        return y
