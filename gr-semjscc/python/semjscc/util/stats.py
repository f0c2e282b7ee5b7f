"""Confidence intervals for the accuracies every result table reports (numpy only).

* one accuracy: the Wilson score interval of k correct out of n (good at any k, unlike k/n +- 1.96 SE);
* a difference between two schemes on the *same* images (semantic - MSE): Newcombe's paired score
  interval, which uses the correlation of the schemes' errors and so resolves a 1-pp difference on
  10,000 images (the normal interval of the per-image differences for non-binary values);
* a relative gain (scheme / baseline - 1, the paper's "+66 %"): a paired percentile bootstrap.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of the proportion ``correct / n``; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_rate(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """:func:`wilson` of an accuracy ``p`` already measured over ``n`` images (a summary's rate)."""
    return wilson(round(p * n), n, z)


def paired_difference(a: np.ndarray, b: np.ndarray, z: float = Z95) -> tuple[float, float, float]:
    """Mean of ``a - b`` over the same images and its 95 % interval: (difference, low, high), as
    proportions. For per-image 0/1 correctness (every use here) Newcombe's hybrid score interval for
    paired proportions (1998, method 10): Wilson intervals of both accuracies combined through the
    pairs' correlation. Unlike the normal interval of the differences it never collapses to zero width
    when the two schemes agree on every image of a small set, and it stays inside [-1, 1]; for
    thousands of images the two agree. Other values: the normal interval of the differences."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = a - b
    n = d.size
    if n == 0:
        return 0.0, -1.0, 1.0
    m = float(d.mean())
    binary = bool(np.all((a == 0) | (a == 1)) and np.all((b == 0) | (b == 1)))
    if not binary:
        se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else 1.0
        return m, m - z * se, m + z * se
    both = int(np.sum((a == 1) & (b == 1)))
    only_a = int(np.sum((a == 1) & (b == 0)))
    only_b = int(np.sum((a == 0) & (b == 1)))
    neither = n - both - only_a - only_b
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = wilson(both + only_a, n, z)
    l2, u2 = wilson(both + only_b, n, z)
    den = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(den) if den > 0 else 0.0
    lo = m - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    hi = m + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return m, lo, hi


def relative_gain(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """``mean(a) / mean(b) - 1`` with a 95 % paired percentile-bootstrap interval: (gain, low, high);
    nan when the baseline ``b`` is never right."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if b.sum() == 0 or a.size == 0:
        return math.nan, math.nan, math.nan
    gain = a.mean() / b.mean() - 1.0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, (n_boot, a.size))
    sa, sb = a[idx].mean(1), b[idx].mean(1)
    ok = sb > 0
    boot = sa[ok] / sb[ok] - 1.0
    lo, hi = np.percentile(boot, [2.5, 97.5]) if boot.size else (math.nan, math.nan)
    return float(gain), float(lo), float(hi)


def fmt_pct(p: float, lo: float, hi: float, digits: int = 1) -> str:
    """``61.2 % [60.3, 62.2]`` from proportions."""
    return f"{100 * p:.{digits}f} [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"
