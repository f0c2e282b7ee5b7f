"""semjscc.phy.dc: the running DC estimate the live receiver subtracts before synchronisation."""

from __future__ import annotations

import numpy as np
import pytest
from semjscc.phy.dc import DCTracker


def _signal(rng: np.random.Generator, n: int, dc: complex) -> np.ndarray:
    return (0.1 * (rng.standard_normal(n) + 1j * rng.standard_normal(n)) + dc).astype(np.complex64)


def test_tracker_finds_the_offset_under_an_ofdm_like_signal_and_removes_it() -> None:
    rng = np.random.default_rng(0)
    dc = 0.01 * np.exp(1j * 0.7)
    t = DCTracker(span=1 << 16)
    for _ in range(8):
        y = t(_signal(rng, 16384, dc))
    assert abs(t.dc - dc) < 0.002  # the signal's own mean over 64 k samples: ~0.1 / 256
    assert y.dtype == np.complex64 and abs(np.mean(y)) < 0.003


def test_output_does_not_depend_on_how_the_stream_was_cut() -> None:
    """The scheduler hands the receiver buffers of any size: the same samples give the same output, bit
    for bit (a sim run repeats exactly)."""
    rng = np.random.default_rng(1)
    x = _signal(rng, 200_000, 0.02 - 0.01j)
    whole = DCTracker()(x)
    t, parts, i = DCTracker(), [], 0
    for n in rng.integers(1, 40_000, 100):
        parts.append(t(x[i:i + n]))
        i += int(n)
        if i >= len(x):
            break
    parts.append(t(x[i:]))
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_tracker_follows_a_change_within_its_span() -> None:
    t = DCTracker(span=4096, block=1024)
    t(np.full(100_000, 0.5 + 0j, np.complex64))
    for _ in range(20):
        t(np.full(1024, -0.2j, np.complex64))
    assert abs(t.dc - (-0.2j)) < 0.01  # 20 blocks after the step, with a memory of 4


def test_tracker_ignores_garbage_samples() -> None:
    t = DCTracker(block=1000)
    x = np.full(1000, 0.1 + 0.1j, np.complex64)
    x[3], x[7], x[11] = np.nan, np.inf, 1e20
    t(x)
    assert np.isfinite(t.dc) and abs(t.dc - (0.1 + 0.1j)) < 1e-6
    t(np.full(1000, np.nan, np.complex64))  # nothing usable: the estimate stays
    assert abs(t.dc - (0.1 + 0.1j)) < 1e-6
    assert len(t(np.zeros(0, np.complex64))) == 0


def test_tracker_rejects_a_span_or_block_below_one() -> None:
    with pytest.raises(ValueError, match="span"):
        DCTracker(span=0)
    with pytest.raises(ValueError, match="block"):
        DCTracker(block=0)
