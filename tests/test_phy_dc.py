"""semjscc.phy.dc: the running DC estimate the live receiver subtracts before synchronisation."""

from __future__ import annotations

import numpy as np
import pytest
from semjscc.phy.dc import DCTracker


def test_tracker_finds_the_offset_under_an_ofdm_like_signal_and_removes_it() -> None:
    rng = np.random.default_rng(0)
    dc = 0.01 * np.exp(1j * 0.7)
    t = DCTracker(span=1 << 16)
    for _ in range(8):
        x = (0.1 * (rng.standard_normal(16384) + 1j * rng.standard_normal(16384)) + dc).astype(np.complex64)
        y = t(x)
    assert abs(t.dc - dc) < 0.002  # the signal's own mean over 64 k samples: ~0.1 / 256
    assert y.dtype == np.complex64 and abs(np.mean(y)) < 0.003


def test_tracker_follows_a_change_within_its_span() -> None:
    t = DCTracker(span=4096)
    t(np.full(100_000, 0.5 + 0j, np.complex64))
    for _ in range(20):
        t(np.full(1024, -0.2j, np.complex64))
    assert abs(t.dc - (-0.2j)) < 0.01  # 20 k samples = 5 spans after the step


def test_tracker_ignores_garbage_samples() -> None:
    t = DCTracker()
    x = np.full(1000, 0.1 + 0.1j, np.complex64)
    x[3], x[7], x[11] = np.nan, np.inf, 1e20
    t(x)
    assert np.isfinite(t.dc) and abs(t.dc - (0.1 + 0.1j)) < 1e-6
    t(np.full(10, np.nan, np.complex64))  # nothing usable: the estimate stays
    assert abs(t.dc - (0.1 + 0.1j)) < 1e-6
    assert len(t(np.zeros(0, np.complex64))) == 0


def test_tracker_rejects_a_span_below_one() -> None:
    with pytest.raises(ValueError, match="span"):
        DCTracker(span=0)
