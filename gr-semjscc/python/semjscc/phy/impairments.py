"""Random per-burst channel impairments: what the soak (``semjscc bench soak``) and the
``burst_channel`` block draw for every frame, and the numpy code that applies them.

One draw: SNR (Es/N0 per subcarrier, :mod:`semjscc.phy.numerology`), carrier frequency offset, a
fractional timing offset (the sampling phase at the receiver) and a multipath profile of 1..8
complex taps with an exponential power delay profile. The fractional delay is a short windowed
sinc folded into the multipath taps, so one FIR applies both; the combined filter stays inside the
16-sample cyclic prefix and has unit energy, so the mean per-subcarrier SNR is the drawn one.

Time-varying channels: :class:`FadingTaps` gives every tap of a power delay profile its own Rayleigh
fading process with Clarke's (Jakes') Doppler spectrum, as a sum of sinusoids, continuous across
calls; :class:`FadingChannel` applies such a tapped delay line to a stream. With a maximum Doppler
(``BurstChannel(max_doppler=...)``) each burst also draws a normalised Doppler (Doppler frequency /
sample rate) and its taps fade within the burst; at 0 the draws are exactly the static ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from semjscc.phy.channel_model import check_cfo_hz, check_doppler
from semjscc.phy.numerology import DEFAULT_NUMEROLOGY, OFDMNumerology

MAX_CFO_HZ = 20_000.0  # +-20 kHz at 1 MS/s: well inside the receiver's search range (channel_model.CFO_SEARCH_HZ)
MAX_TAPS = 8  # multipath taps; plus the delay filter the FIR stays within the cyclic prefix
DELAY_TAPS = 8  # windowed-sinc fractional delay filter length
N_SINUSOIDS = 32  # per fading path: enough for Gaussian gains and a J0 autocorrelation over a frame


def fractional_delay_taps(delay: float, n: int = DELAY_TAPS) -> np.ndarray:
    """Hann-windowed sinc that delays by ``n // 2 - 1 + delay`` samples (``0 <= delay < 1``), unit DC gain."""
    if not 0.0 <= delay < 1.0:
        raise ValueError(f"fractional delay must lie in [0, 1), got {delay}")
    t = np.arange(n) - (n // 2 - 1) - delay
    h = np.sinc(t) * (0.5 + 0.5 * np.cos(np.pi * t / (n // 2 + 1)))
    return h / h.sum()


class FadingTaps:
    """Unit-power Rayleigh fading gains of ``n_paths`` independent paths with Clarke's Doppler spectrum.

    g_p(t) = M^-1/2 sum_m exp(j (2 pi f_D cos(a_pm) t + phi_pm)): M arrival angles evenly spaced round
    the circle (random offset per path), random phases. The autocorrelation is ~J0(2 pi f_D tau), the
    gain at any instant ~CN(0, 1); at f_D = 0 it is one constant Rayleigh draw. The sum is evaluated
    exactly every ``step`` samples and linearly interpolated in between (phase step <= 0.13 rad, an
    error near -54 dB), on a grid fixed in absolute time so the output does not depend on how a stream
    is cut."""

    def __init__(self, rng: np.random.Generator, n_paths: int, doppler: float, n_sinusoids: int = N_SINUSOIDS) -> None:
        self.doppler = check_doppler(doppler)
        m = np.arange(n_sinusoids)[None, :]
        alpha = 2 * np.pi * (m + rng.uniform(size=(n_paths, 1))) / n_sinusoids
        self.w = 2 * np.pi * self.doppler * np.cos(alpha)  # (paths, M) rad/sample
        self.phi = rng.uniform(0.0, 2 * np.pi, (n_paths, n_sinusoids))
        self.scale = 1.0 / np.sqrt(n_sinusoids)
        self.step = max(1, min(32, int(0.02 / self.doppler))) if self.doppler > 0 else 1
        self.t = 0  # samples produced so far

    def at(self, t: np.ndarray) -> np.ndarray:
        """Exact gains at absolute sample times ``t`` -> (len(t), paths) complex128."""
        ph = np.asarray(t, dtype=np.float64)[:, None, None] * self.w[None] + self.phi[None]
        return np.exp(1j * ph).sum(axis=-1) * self.scale

    def next(self, n: int) -> np.ndarray:
        """The next ``n`` samples' gains, (n, paths) complex64."""
        t0, self.t = self.t, self.t + n
        if self.doppler == 0.0:
            return np.broadcast_to(self.at(np.zeros(1)).astype(np.complex64), (n, self.w.shape[0])).copy()
        s = self.step
        g0 = t0 - t0 % s
        grid = np.arange(g0, t0 + n + s, s)
        g = self.at(grid)
        pos = (np.arange(t0, t0 + n) - g0) / s
        i = pos.astype(np.int64)
        frac = (pos - i)[:, None]
        return (g[i] * (1.0 - frac) + g[i + 1] * frac).astype(np.complex64)


class FadingChannel:
    """A tapped delay line whose taps fade independently (:class:`FadingTaps`), applied to a stream:
    y[n] = sum_l a_l g_l(n) x[n - l], with |a_l|^2 a power delay profile of unit sum (so the mean
    per-subcarrier SNR is the SNR asked for). Filter memory and fading state carry across calls;
    :meth:`redraw` starts an independent realisation (the next frame of i.i.d. fading statistics)."""

    def __init__(self, rng: np.random.Generator, taps: np.ndarray | list[complex], doppler: float,
                 n_sinusoids: int = N_SINUSOIDS) -> None:
        a = np.abs(np.asarray(taps, dtype=np.complex128))
        if not (a.size and np.all(np.isfinite(a)) and a.sum() > 0):
            raise ValueError("the power delay profile needs a tap with energy")
        self.rng, self.doppler, self.n_sinusoids = rng, check_doppler(doppler), n_sinusoids
        self.amp = (a / np.sqrt(np.sum(a ** 2))).astype(np.complex64)
        self._hist = np.zeros(len(a) - 1, dtype=np.complex64)
        self.redraw()

    def redraw(self) -> None:
        self.gains = FadingTaps(self.rng, len(self.amp), self.doppler, self.n_sinusoids)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Faded copy of ``x`` (complex64)."""
        x = np.asarray(x, dtype=np.complex64)
        xx = np.concatenate((self._hist, x))
        if len(self._hist):
            self._hist = xx[len(xx) - len(self._hist):]
        return tapped_delay_line(xx, self.gains.next(len(x)) * self.amp[None, :])


def tapped_delay_line(xx: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """y[i] = sum_l taps[i, l] xx[L - 1 + i - l]: ``xx`` holds L - 1 samples of history, then the n new
    ones; ``taps`` (n, L) are the time-varying tap gains."""
    n, n_taps = taps.shape
    y = np.zeros(n, dtype=np.complex64)
    for lag in range(n_taps):
        y += taps[:, lag] * xx[n_taps - 1 - lag:n_taps - 1 - lag + n]
    return y


@dataclass(frozen=True)
class Impairment:
    """One burst's channel. With ``doppler`` > 0 the taps fade through the burst around the power
    delay profile ``pdp`` (mean power per tap, unit sum); ``taps`` then hold their values at the start."""

    snr_db: float
    cfo_hz: float
    delay: float  # fractional timing offset in samples, [0, 1)
    taps: tuple[complex, ...]  # multipath, unit energy
    doppler: float = 0.0  # normalised Doppler (Doppler frequency / sample rate)
    pdp: tuple[float, ...] = ()

    def fir(self) -> np.ndarray:
        """Multipath and fractional delay as one complex FIR of unit energy."""
        h = np.convolve(np.asarray(self.taps, dtype=np.complex128), fractional_delay_taps(self.delay))
        return (h / np.sqrt(np.sum(np.abs(h) ** 2))).astype(np.complex64)


def draw_impairment(rng: np.random.Generator, snr_db: tuple[float, float] = (0.0, 20.0),
                    max_cfo_hz: float = MAX_CFO_HZ, max_taps: int = MAX_TAPS, max_doppler: float = 0.0) -> Impairment:
    """SNR uniform in ``snr_db``, CFO uniform in +-``max_cfo_hz``, delay uniform in [0, 1), 1..``max_taps``
    Rayleigh taps whose power decays exponentially (decay constant 0.5-3 samples), and with
    ``max_doppler`` > 0 a Doppler uniform in [0, max_doppler] (drawn last: the other draws are those
    of a static soak with the same seed)."""
    n_taps = int(rng.integers(1, max_taps + 1))
    power = np.exp(-np.arange(n_taps) / rng.uniform(0.5, 3.0))
    taps = np.sqrt(power / 2) * (rng.standard_normal(n_taps) + 1j * rng.standard_normal(n_taps))
    taps /= np.sqrt(np.sum(np.abs(taps) ** 2))
    imp = Impairment(snr_db=float(rng.uniform(*snr_db)), cfo_hz=float(rng.uniform(-max_cfo_hz, max_cfo_hz)),
                     delay=float(rng.uniform(0.0, 1.0)), taps=tuple(complex(t) for t in taps))
    if max_doppler > 0:
        imp = replace(imp, doppler=float(rng.uniform(0.0, max_doppler)),
                      pdp=tuple(float(p) for p in power / power.sum()))
    return imp


class BurstChannel:
    """Applies one :class:`Impairment` per burst to a sample stream, keeping filter memory, carrier
    phase and noise state across calls (streaming: blocks may end anywhere).

    :meth:`start_burst` switches to a new draw at the next sample; :meth:`apply` impairs samples.
    ``max_doppler`` > 0: every burst also draws a Doppler in [0, max_doppler] and its taps fade
    (:class:`FadingTaps`) around the drawn power delay profile, so the drawn SNR is the burst's mean."""

    def __init__(self, rng: np.random.Generator, snr_db: tuple[float, float] = (0.0, 20.0),
                 max_cfo_hz: float = MAX_CFO_HZ, max_taps: int = MAX_TAPS,
                 numerology: OFDMNumerology = DEFAULT_NUMEROLOGY, max_doppler: float = 0.0) -> None:
        if not snr_db[0] <= snr_db[1]:
            raise ValueError(f"SNR range must be (low, high) with low <= high, got {snr_db}")
        if max_cfo_hz < 0:
            raise ValueError(f"max CFO must be >= 0 (offsets are drawn in +-max), got {max_cfo_hz}")
        check_cfo_hz(max_cfo_hz, "max CFO")
        check_doppler(max_doppler, "max Doppler")
        if not 1 <= max_taps <= numerology.cp_len - DELAY_TAPS + 1:
            raise ValueError(f"max taps must lie in 1..{numerology.cp_len - DELAY_TAPS + 1} (cyclic prefix), got {max_taps}")
        self.rng, self.num = rng, numerology
        self.snr_range, self.max_cfo_hz, self.max_taps = (float(snr_db[0]), float(snr_db[1])), float(max_cfo_hz), max_taps
        self.max_doppler = float(max_doppler)
        self._hist = np.zeros(max_taps + DELAY_TAPS - 2, dtype=np.complex64)  # last inputs, for the FIR
        self._phase = 0.0
        self.current: Impairment | None = None
        self._fir = np.ones(1, dtype=np.complex64)
        self._fading: FadingTaps | None = None
        self._amp = np.ones(1, dtype=np.complex64)
        self._frac = np.ones(1, dtype=np.complex64)
        self._std = 0.0
        self._w = 0.0

    def start_burst(self) -> Impairment:
        imp = draw_impairment(self.rng, self.snr_range, self.max_cfo_hz, self.max_taps, self.max_doppler)
        self._fading = None
        if imp.doppler > 0:
            self._fading = FadingTaps(self.rng, len(imp.pdp), imp.doppler)
            self._amp = np.sqrt(np.asarray(imp.pdp)).astype(np.complex64)
            self._frac = fractional_delay_taps(imp.delay).astype(np.complex64)
            imp = replace(imp, taps=tuple(complex(t) for t in self._fading.at(np.zeros(1))[0] * self._amp))
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
            if self._fading is not None:  # fractional delay (static), then the fading tapped delay line
                xx = np.concatenate((self._hist, x))
                u = np.convolve(xx, self._frac, mode="valid").astype(np.complex64)
                n_taps = len(self._amp)
                y = tapped_delay_line(u[len(u) - n - n_taps + 1:], self._fading.next(n) * self._amp[None, :])
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
