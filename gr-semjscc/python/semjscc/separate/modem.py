"""Gray-mapped BPSK, QPSK, 16-QAM and 64-QAM with unit average symbol energy, and a max-log
LLR demapper.

Square QAM is two Gray-coded PAMs: of a symbol's ``m`` bits the first ``m/2`` pick the in-phase
level, the rest the quadrature level (BPSK: one bit on the in-phase axis). Unit average power
matches the project's SNR convention (Es/N0 per complex channel use, ``semjscc.phy.numerology``).

LLR sign convention everywhere in this package: positive means bit 0 is more likely.
"""

from __future__ import annotations

import math

import numpy as np

MODULATIONS: dict[str, int] = {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6}


def bits_per_symbol(modulation: str) -> int:
    try:
        return MODULATIONS[modulation]
    except KeyError:
        raise ValueError(f"unknown modulation {modulation!r}: choose one of {', '.join(MODULATIONS)}") from None


def _pam(bits_per_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(levels indexed by the integer value of the bit label, labels as a (L, bits) 0/1 array).

    Binary-reflected Gray: the label ``g`` sits at position ``gray^-1(g)``, so neighbouring levels
    differ in one bit. Label 0 is the most positive level (so a positive LLR means bit 0)."""
    n_levels = 1 << bits_per_dim
    pos = np.empty(n_levels, dtype=np.int64)
    for g in range(n_levels):
        b, x = g, g
        while x:
            x >>= 1
            b ^= x
        pos[g] = b
    levels = (n_levels - 1 - 2 * pos).astype(np.float64)
    labels = (np.arange(n_levels)[:, None] >> np.arange(bits_per_dim - 1, -1, -1)[None, :]) & 1
    return levels, labels


def _scale(modulation: str) -> float:
    m = bits_per_symbol(modulation)
    if m == 1:
        return 1.0
    return math.sqrt(3.0 / (2.0 * ((1 << m) - 1)))  # square M-QAM with odd-integer levels has E = 2(M-1)/3


def constellation(modulation: str) -> np.ndarray:
    """All points, indexed by the symbol's bit label read as an integer (first bit most significant)."""
    m = bits_per_symbol(modulation)
    labels = (np.arange(1 << m)[:, None] >> np.arange(m - 1, -1, -1)[None, :]) & 1
    return modulate(labels.reshape(1, -1).astype(np.uint8), modulation)[0]


def modulate(bits: np.ndarray, modulation: str) -> np.ndarray:
    """bits (B, N*m) of 0/1 -> complex64 symbols (B, N)."""
    m = bits_per_symbol(modulation)
    b = np.asarray(bits, dtype=np.int64)
    if b.shape[-1] % m:
        raise ValueError(f"{b.shape[-1]} bits is not a whole number of {modulation} symbols")
    b = b.reshape(*b.shape[:-1], -1, m)
    if m == 1:
        return (1.0 - 2.0 * b[..., 0]).astype(np.complex64)
    half = m // 2
    levels, _ = _pam(half)
    weights = 1 << np.arange(half - 1, -1, -1)
    i_lab = (b[..., :half] * weights).sum(-1)
    q_lab = (b[..., half:] * weights).sum(-1)
    s = _scale(modulation)
    return (s * (levels[i_lab] + 1j * levels[q_lab])).astype(np.complex64)


def _pam_llr(y: np.ndarray, gain: np.ndarray | float, noise_var: np.ndarray | float, bits_per_dim: int,
             scale: float) -> np.ndarray:
    levels, labels = _pam(bits_per_dim)
    pts = np.asarray(gain, dtype=np.float32)[..., None] * (scale * levels).astype(np.float32)
    d2 = (y[..., None] - pts) ** 2  # (..., L)
    out = np.empty((*y.shape, bits_per_dim), dtype=np.float32)
    big = np.float32(np.inf)
    for j in range(bits_per_dim):
        one = labels[:, j].astype(bool)
        d1 = np.where(one, d2, big).min(-1)
        d0 = np.where(one, big, d2).min(-1)
        out[..., j] = d1 - d0
    return out / np.asarray(noise_var, dtype=np.float32)[..., None]


def demap(y: np.ndarray, modulation: str, noise_var: np.ndarray | float,
          gain: np.ndarray | float = 1.0) -> np.ndarray:
    """Max-log LLRs (B, N*m) float32 for received symbols ``y`` (B, N) = ``gain`` * x + noise.

    ``noise_var`` is E|noise|^2 per complex symbol and ``gain`` a real per-symbol amplitude (an
    MMSE equaliser's shrinkage), both broadcastable to ``y``. Max-log: per dimension,
    LLR = (min over points with bit 1 of (y - a x)^2 - min over bit 0) / noise_var."""
    m = bits_per_symbol(modulation)
    y = np.asarray(y)
    g = np.broadcast_to(np.asarray(gain, dtype=np.float32), y.shape)
    v = np.broadcast_to(np.asarray(noise_var, dtype=np.float32), y.shape)
    re = y.real.astype(np.float32)
    if m == 1:
        return (4.0 * g * re / v)[..., None].reshape(*y.shape[:-1], -1).astype(np.float32)
    half = m // 2
    s = _scale(modulation)
    li = _pam_llr(re, g, v, half, s)
    lq = _pam_llr(y.imag.astype(np.float32), g, v, half, s)
    return np.concatenate([li, lq], axis=-1).reshape(*y.shape[:-1], -1)


def hard_bits(llr: np.ndarray) -> np.ndarray:
    return (llr < 0).astype(np.uint8)


def nearest_point(y: np.ndarray, modulation: str) -> np.ndarray:
    """Hard decision: the constellation point nearest to each of ``y`` (complex64)."""
    m = bits_per_symbol(modulation)
    if m == 1:
        return np.where(y.real >= 0, 1.0, -1.0).astype(np.complex64)
    top = (1 << (m // 2)) - 1  # largest odd level
    s = _scale(modulation)

    def level(v: np.ndarray) -> np.ndarray:
        return np.clip(2.0 * np.floor(v / (2.0 * s)) + 1.0, -top, top)

    return (s * (level(y.real) + 1j * level(y.imag))).astype(np.complex64)
