"""Image quality measures on float NCHW batches in [0, 1], numpy only (used by eval and the
GNU Radio metrics sink alike)."""

from __future__ import annotations

import numpy as np

PSNR_CAP_DB = 100.0  # identical images have infinite PSNR; JSON has no infinity, and means need a number


def psnr_db(reference: np.ndarray, test: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """PSNR per image (dB); identical images give +inf."""
    diff = reference.astype(np.float64) - test.astype(np.float64)
    mse = np.mean(diff * diff, axis=tuple(range(1, reference.ndim)))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(peak**2 / mse)


def capped_psnr_db(reference: np.ndarray, test: np.ndarray) -> float | np.ndarray:
    """PSNR capped at :data:`PSNR_CAP_DB`: of a float NCHW batch in [0, 1] (one value per image), or
    of one uint8 image (HWC, peak 255) as a float."""
    ref, tst = np.asarray(reference), np.asarray(test)
    if ref.dtype == np.uint8 and ref.ndim == 3 and tst.dtype == np.uint8 and tst.shape == ref.shape:
        # per frame in the metrics sink: the squared error summed exactly in integers (what the
        # float64 mean below computes too: every partial sum is an integer < 2^53), a few us
        d = ref.astype(np.int32).ravel() - tst.astype(np.int32).ravel()
        sse = int(np.dot(d, d))
        if sse == 0:
            return PSNR_CAP_DB
        return float(min(10.0 * np.log10(255.0**2 / (sse / d.size)), PSNR_CAP_DB))
    if ref.dtype == np.uint8 and ref.ndim == 3:
        return float(min(psnr_db(ref[None].astype(np.float32), tst[None].astype(np.float32), peak=255.0)[0],
                         PSNR_CAP_DB))
    return np.minimum(psnr_db(ref, tst), PSNR_CAP_DB)


def _gaussian_valid_matrix(n: int, size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """(n - size + 1, n) matrix applying a 1-D Gaussian window in 'valid' mode."""
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    g /= g.sum()
    m = np.zeros((n - size + 1, n))
    for i in range(n - size + 1):
        m[i, i : i + size] = g
    return m


def ssim(reference: np.ndarray, test: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """Mean SSIM per image (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03,
    'valid' windows, averaged over channels)."""
    x = reference.astype(np.float64)
    y = test.astype(np.float64)
    gh = _gaussian_valid_matrix(x.shape[-2])
    gw = _gaussian_valid_matrix(x.shape[-1])

    def blur(a: np.ndarray) -> np.ndarray:
        return np.einsum("ih,bchw,jw->bcij", gh, a, gw, optimize=True)

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(axis=(1, 2, 3))
