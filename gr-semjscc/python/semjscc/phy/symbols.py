"""Complex channel symbols and the models' layout for them, defined once.

The deep JSCC models (torch and ONNX, which has no complex type) carry k complex symbols as a real
array (..., k, 2) = (real, imaginary); the PHY, the GNU Radio blocks and separate coding use complex
arrays (..., k). Every conversion between the two goes through these functions.
"""

from __future__ import annotations

import numpy as np


def to_pairs(symbols: np.ndarray) -> np.ndarray:
    """Complex symbols (..., k) -> float32 (..., k, 2) = (real, imag)."""
    z = np.asarray(symbols)
    return np.stack([z.real, z.imag], axis=-1).astype(np.float32)


def from_pairs(pairs: np.ndarray) -> np.ndarray:
    """(..., k, 2) real pairs -> complex64 (..., k)."""
    a = np.asarray(pairs)
    return (a[..., 0] + 1j * a[..., 1]).astype(np.complex64)
