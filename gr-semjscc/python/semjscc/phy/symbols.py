"""Complex channel symbols, defined once: how many an image gets, the models' layout for them, and the
AWGN that every simulation adds at the project's SNR convention. numpy only (no torch).

* The budget: a 3x32x32 image at bandwidth ratio k/n gets ``symbols_for_ratio(kn)`` complex symbols
  (n = 3072 real source values; the deep JSCC's 8x8 latent grid pairs C channels into 8*8*C/2).
* The layout: the deep JSCC models (torch and ONNX, which has no complex type) carry k complex symbols
  as a real array (..., k, 2) = (real, imaginary); the PHY, the GNU Radio blocks and separate coding
  use complex arrays (..., k). Every conversion between the two goes through these functions.
* The noise: symbols have unit mean power and the SNR is Es/N0, so complex noise has
  E|n|^2 = :func:`noise_power` = 10^(-snr/10) (:class:`semjscc.nn.channels.AWGN` is the same rule in
  torch; :meth:`semjscc.phy.numerology.OFDMNumerology.noise_std_for_snr` per OFDM sample).
"""

from __future__ import annotations

import math

import numpy as np

from semjscc.data.imaging import IMAGE_SHAPE

SOURCE_DIM = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]  # n = 3072 real values
LATENT_HW = 8  # the deep JSCC's two stride-2 stages: 32 -> 8


# The SNRs (Es/N0, dB) a run, an evaluation or a picture may ask for: beyond them every scheme here is
# all noise or noise-free, and 10^(snr/10) of an absurd value overflows.
SNR_LIMITS_DB = (-30.0, 60.0)


def check_snr_db(snr_db: float, what: str = "the SNR") -> float:
    """``snr_db`` if it is a finite number inside :data:`SNR_LIMITS_DB`, else a UsageError naming ``what``."""
    from semjscc.util.errors import UsageError

    v = float(snr_db)
    lo, hi = SNR_LIMITS_DB
    if not (math.isfinite(v) and lo <= v <= hi):
        raise UsageError(f"{what + ' ' if what else ''}{snr_db:g} dB is outside {lo:g} .. {hi:g} dB (Es/N0)")
    return v


def channels_for_ratio(kn: float) -> int:
    """Latent channels C giving bandwidth ratio k/n (k complex symbols, n real pixels)."""
    c = kn * SOURCE_DIM * 2 / (LATENT_HW * LATENT_HW)
    if abs(c - round(c)) > 1e-9 or round(c) < 2 or round(c) % 2:
        from fractions import Fraction

        shown = Fraction(kn).limit_denominator(10_000) if np.isfinite(kn) else kn
        raise ValueError(f"k/n = {shown} gives {c:.4g} latent channels where the deep JSCC needs an even whole "
                         f"number (8x8 grid, two real values per symbol): choose k/n = j/48, e.g. 1/24 (128 "
                         f"symbols per image), 1/12 (256) or 1/6 (512)")
    return round(c)


def symbols_for_ratio(kn: float) -> int:
    """Complex channel symbols (channel uses) per image at bandwidth ratio k/n: 512 at 1/6."""
    return channels_for_ratio(kn) * LATENT_HW * LATENT_HW // 2


def to_pairs(symbols: np.ndarray) -> np.ndarray:
    """Complex symbols (..., k) -> float32 (..., k, 2) = (real, imag)."""
    z = np.asarray(symbols)
    return np.stack([z.real, z.imag], axis=-1).astype(np.float32)


def from_pairs(pairs: np.ndarray) -> np.ndarray:
    """(..., k, 2) real pairs -> complex64 (..., k)."""
    a = np.asarray(pairs)
    return (a[..., 0] + 1j * a[..., 1]).astype(np.complex64)


def noise_power(snr_db: float | np.ndarray) -> np.ndarray:
    """E|n|^2 of the complex noise for unit-power symbols at ``snr_db`` (Es/N0): 10^(-snr/10), float64.
    Written 1 / 10^(snr/10), the arithmetic the PHY has always used, so GNU Radio's noise voltage and the
    evaluation's noise are bit for bit what they were."""
    return 1.0 / 10.0 ** (np.asarray(snr_db, dtype=np.float64) / 10.0)


def awgn(z: np.ndarray, snr_db: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Complex symbols (B, k) of unit mean power through AWGN, one SNR per row: complex128."""
    std = np.sqrt(noise_power(snr_db) / 2.0).reshape(-1, 1)  # per real dimension
    return z + std * (rng.standard_normal(z.shape) + 1j * rng.standard_normal(z.shape))


def awgn_pairs(z: np.ndarray, snr_db: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """JSCC symbols as (B, k, 2) real/imaginary pairs of unit mean power through AWGN at ``snr_db``
    (one SNR per image), in float32: what evaluation and the demo add without torch."""
    z = np.asarray(z, dtype=np.float32)
    std = np.sqrt(noise_power(np.ravel(snr_db))).astype(np.float32)
    std = std.reshape(-1, *([1] * (z.ndim - 1))) / np.float32(np.sqrt(2.0))  # per real dimension
    return z + std * rng.standard_normal(z.shape, dtype=np.float32)
