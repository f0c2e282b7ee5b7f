"""Channel tracking through a frame: an LMMSE estimate of the channel on every OFDM symbol from every
known resource element (preamble, header once its CRC passed, pilots, mid-ambles), shared by the
numpy receiver (:mod:`semjscc.phy.rx`) and the torch OFDM channel (:mod:`semjscc.nn.channels`).

Model. On OFDM symbol t and used carrier k the channel is H(k, t) = sum_l F[k, l] h_l(t): ``taps``
delay-domain taps (the receiver's smoothing taps: the FFT window opens inside the cyclic prefix, so
the impulse response sits on a known stretch of delays) whose gains vary in time as
h_l(t) = sum_q B[t, q] c_{l,q}. The time basis B holds the leading eigenvectors of the Clarke (Jakes)
correlation J0(2 pi f_D dt) over the frame's symbol times, for a hypothesised normalised Doppler f_D;
at f_D = 0 it is the constant (a static channel, the preamble + header estimate refined by the
pilots). Prior: c_{l,q} ~ CN(0, p_l lambda_q), lambda_q the correlation's eigenvalues and p_l the tap
powers seen in the preamble + header fit (whose own estimation noise keeps every tap's prior above
zero). Time components beyond the constant go to the ``varying_taps`` strongest taps only: four
pilots per symbol cannot follow more, and it keeps the systems small.

Estimate. With observations o = A c + n (A: F, B and the known symbols; n: noise of variance s2) the
posterior mean is c = S M^-1 S A^H o / s2 with S = P^(1/2) and M = I + S A^H A S / s2. A^H A depends
only on the frame layout (which resource elements are known, |X|^2), so it is computed once per
layout and hypothesis; per frame it is one Cholesky factorisation of M per hypothesis
(:func:`hpd_inverse`).

Which Doppler. Hypotheses are scored by their marginal likelihood (evidence) log p(o), climbing
the ladder ``DOPPLERS`` from the static one while the evidence rises. This is an automatic choice
between "static" and "varying": a static channel keeps the static estimate (no noise added by spare
degrees of freedom) after two small fits, a fading one gets as many time components as its pilots
support.

Noise. The frame's noise variance is re-estimated from the chosen model's residuals on all known
resource elements, corrected for the degrees of freedom the fit used (tr of the hat matrix = dim -
tr M^-1), and the chosen fit is repeated once with it. The estimate's own uncertainty (posterior variance,
averaged over the carriers of each symbol) is returned too: the equaliser adds it to the noise, and
the payload SNR estimate counts it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_TINY = 1e-30
# Hypothesised normalised Dopplers (cycles per sample): static, then ~4x steps up to fast fading.
DOPPLERS = (0.0, 1e-4, 3e-4, 1e-3, 3e-3)
MAX_BASIS = 8  # time components per hypothesis at most (a frame of ~15 symbols needs 7 at 2e-3)
_MIN_EIG = 1e-4  # relative eigenvalue below which a time component is dropped


@dataclass
class TrackResult:
    """Per frame: channel ``h`` (K, T, U) on every symbol and used carrier, noise variance ``noise``
    (K,), posterior variance of the estimate per symbol averaged over carriers ``est_var`` (K, T),
    the chosen hypothesis ``model`` (K,) (index into the tracker's Dopplers) and degrees of freedom
    used ``dof`` (K,)."""

    h: np.ndarray
    noise: np.ndarray
    est_var: np.ndarray
    model: np.ndarray
    dof: np.ndarray


class ChannelTracker:
    """LMMSE channel estimates per OFDM symbol (see the module docstring).

    ``used``: signed used-carrier indices (the receiver's carrier axis); ``delays``: tap delays in
    samples relative to the FFT window start; ``fft_len``/``symbol_len`` the numerology's. Time
    components beyond the constant are given to the ``varying_taps`` strongest taps of each frame
    only: four pilots per symbol cannot follow more, and it keeps the systems small."""

    def __init__(self, used: np.ndarray, delays: np.ndarray, fft_len: int, symbol_len: int,
                 dopplers: tuple[float, ...] = DOPPLERS, max_basis: int = MAX_BASIS, varying_taps: int = 6) -> None:
        self.F = np.exp(-2j * np.pi * np.outer(np.asarray(used), np.asarray(delays)) / fft_len)  # (U, L)
        self.FF = (self.F.T @ self.F.conj()) / self.F.shape[0]  # mean over carriers of F[k, l] conj(F[k, m])
        self.symbol_len = symbol_len
        self.dopplers = tuple(float(d) for d in dopplers)
        self.max_basis = max_basis
        self.varying_taps = min(varying_taps, self.F.shape[1])
        self._cache: dict[tuple, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    @property
    def n_taps(self) -> int:
        return self.F.shape[1]

    def _models(self, weight: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per hypothesis: time basis B (T, Q), eigenvalues lam (Q,), Gram A^H A (Q, L, Q, L); cached by
        the layout ``weight`` (T, U) = |X|^2 on known resource elements, 0 elsewhere."""
        key = (weight.shape, weight.tobytes())
        if key in self._cache:
            return self._cache[key]
        T = weight.shape[0]
        F = self.F
        GF = np.einsum("ku,tk,kv->tuv", F.conj(), weight, F)  # (T, L, L)
        t = np.arange(T) * float(self.symbol_len)
        out = []
        for f in self.dopplers:
            if f == 0.0:
                B, lam = np.full((T, 1), 1 / np.sqrt(T)), np.array([float(T)])
            else:
                lam, vec = np.linalg.eigh(bessel_j0(2 * np.pi * f * np.abs(t[:, None] - t[None, :])))
                order = np.argsort(lam)[::-1][:self.max_basis]
                lam, B = lam[order], vec[:, order]
                keep = lam >= _MIN_EIG * lam[0]
                lam, B = lam[keep], B[:, keep]
            out.append((B, lam, np.einsum("tq,tp,tuv->qupv", B.conj(), B, GF)))
        if len(self._cache) > 64:  # layouts seen: a handful of payload lengths in practice
            self._cache.clear()
        self._cache[key] = out
        return out

    def track(self, z: np.ndarray, x: np.ndarray, weight: np.ndarray, tap_power: np.ndarray,
              noise: np.ndarray) -> TrackResult:
        """``z`` (K, T, U) received symbols (common phase already removed), ``x`` (K, T, U) the known
        symbols (anything where ``weight`` is 0), ``weight`` (T, U) = |x|^2 on known resource elements
        and 0 elsewhere, ``tap_power`` (K, L) prior tap powers, ``noise`` (K,) a first noise variance."""
        k_frames, T = z.shape[:2]
        known = weight > 0
        zx = np.where(known[None], z * np.conj(x), 0)
        r = zx @ self.F.conj()  # (K, T, L): per-symbol back projection onto the taps
        p = np.asarray(tap_power, dtype=np.float64) + _TINY
        s2 = np.maximum(np.asarray(noise, dtype=np.float64), _TINY)
        strong = np.argsort(p, axis=1)[:, ::-1][:, :self.varying_taps]  # (K, R) taps allowed to vary
        models = self._models(weight)
        # 1) up the Doppler ladder with the first noise estimate while the evidence keeps rising (a
        # static frame stops after one step: two small fits instead of one per hypothesis)
        choice = np.zeros(k_frames, dtype=np.int64)
        coef, best, dof, _ = self._fit(r, models[0], p, s2, strong)
        h = (models[0][0][None] @ coef) @ self.F.T
        active = np.arange(k_frames)
        for i in range(1, len(models)):
            if not len(active):
                break
            coef, score, d_, _ = self._fit(r[active], models[i], p[active], s2[active], strong[active])
            up = score > best[active]
            active, coef = active[up], coef[up]
            choice[active], best[active], dof[active] = i, score[up], d_[up]
            h[active] = (models[i][0][None] @ coef) @ self.F.T
        # 2) noise from the chosen fit's residuals (degrees of freedom corrected), then that fit again
        n_obs = int(known.sum())
        res = np.where(known[None], z - h * x, 0)
        s2 = np.maximum(np.sum(np.abs(res) ** 2, axis=(1, 2)) / np.maximum(n_obs - dof, 1.0), _TINY)
        est_var = np.zeros((k_frames, T))
        for i, m in enumerate(models):
            sel = np.flatnonzero(choice == i)
            if len(sel):
                coef, _, dof[sel], est_var[sel] = self._fit(r[sel], m, p[sel], s2[sel], strong[sel], final=True)
                h[sel] = (m[0][None] @ coef) @ self.F.T
        return TrackResult(h, s2, est_var, choice, dof)

    def _fit(self, r: np.ndarray, model: tuple[np.ndarray, np.ndarray, np.ndarray], p: np.ndarray, s2: np.ndarray,
             strong: np.ndarray, final: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One hypothesis for frames ``r`` (K, T, L) -> (coefficients (K, Q, L), log evidence (K,),
        degrees of freedom used (K,), and with ``final`` the posterior variance per symbol (K, T))."""
        B, lam, G = model
        k_frames, L, Q = r.shape[0], self.n_taps, len(lam)
        # unknowns: every tap's constant component, then components 1.. of the strongest taps
        q_idx = np.concatenate([np.zeros((k_frames, L), np.int64),
                                np.repeat(np.arange(1, Q), strong.shape[1])[None].repeat(k_frames, 0)], axis=1)
        l_idx = np.concatenate([np.arange(L)[None].repeat(k_frames, 0), np.tile(strong, (1, Q - 1))], axis=1)
        rows = np.arange(k_frames)[:, None]
        b = (B.conj().T[None] @ r)[rows, q_idx, l_idx]  # A^H o on the unknowns
        s = np.sqrt(lam[q_idx] * p[rows, l_idx])  # prior standard deviations (K, D)
        Gs = G[q_idx[:, :, None], l_idx[:, :, None], q_idx[:, None, :], l_idx[:, None, :]]
        M = s[:, :, None] * Gs * s[:, None, :] / s2[:, None, None]
        M[:, np.arange(M.shape[1]), np.arange(M.shape[1])] += 1.0
        c = s * b / s2[:, None]
        Minv, logdet = hpd_inverse(M)
        y = np.einsum("kij,kj->ki", Minv, c)
        coef = np.zeros((k_frames, Q, L), dtype=np.complex128)
        coef[rows, q_idx, l_idx] = s * y
        evidence = np.real(np.sum(c.conj() * y, axis=1)) - logdet
        dof = M.shape[1] - np.real(np.trace(Minv, axis1=1, axis2=2))  # tr of the hat matrix
        if not final:
            return coef, evidence, dof, np.zeros(0)
        cov = s[:, :, None] * Minv * s[:, None, :]  # posterior covariance of the unknowns
        # variance of H(k, t) averaged over carriers: sum_ij B[t,q_i] B[t,q_j] cov_ij FF[l_i, l_j]
        w = cov * self.FF[l_idx[:, :, None], l_idx[:, None, :]]
        Bq = B[:, q_idx].transpose(1, 0, 2)  # (K, T, D)
        var = np.real(np.sum(Bq * np.transpose(w @ Bq.conj().transpose(0, 2, 1), (0, 2, 1)), axis=2))
        return coef, evidence, dof, var


def hpd_inverse(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and log-determinant of a batch (K, D, D) of Hermitian positive definite matrices by a
    Cholesky factorisation vectorised over the batch in plain numpy. numpy.linalg's batched LAPACK
    calls on many small matrices stall for seconds when OpenBLAS threads compete with other processes
    (measured with two training jobs on the 2 cores: 10 s for what takes 0.3 s alone); D is at most
    a few dozen here, so a column loop costs little and never waits for a thread."""
    d = m.shape[1]
    low = np.zeros_like(m)
    for j in range(d):
        row = low[:, j, :j]
        piv = np.sqrt(np.maximum(m[:, j, j].real - (row.real ** 2 + row.imag ** 2).sum(axis=1), _TINY))
        low[:, j, j] = piv
        if j + 1 < d:
            low[:, j + 1:, j] = (m[:, j + 1:, j] - (low[:, j + 1:, :j] @ row.conj()[:, :, None])[..., 0]) / piv[:, None]
    inv_low = np.zeros_like(m)  # L^-1 by forward substitution
    for i in range(d):
        rhs = -(low[:, i:i + 1, :i] @ inv_low[:, :i, :i + 1])[:, 0]
        rhs[:, i] += 1.0
        inv_low[:, i, :i + 1] = rhs / low[:, i, i][:, None]
    logdet = 2 * np.sum(np.log(np.real(np.diagonal(low, axis1=1, axis2=2))), axis=1)
    return inv_low.conj().transpose(0, 2, 1) @ inv_low, logdet


def bessel_j0(x: np.ndarray) -> np.ndarray:
    """Bessel J0 (Clarke's autocorrelation) from its integral, (1/pi) int_0^pi cos(x sin th) d th: the
    midpoint rule is exact to rounding once it has more points than x has radians (a periodic,
    smooth integrand), so no scipy is needed."""
    x = np.asarray(x, dtype=np.float64)
    n = 32 + int(np.ceil(np.max(np.abs(x), initial=0.0)))
    th = (np.arange(n) + 0.5) * np.pi / n
    return np.mean(np.cos(x[..., None] * np.sin(th)), axis=-1)
