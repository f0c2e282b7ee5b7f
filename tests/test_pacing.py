"""The image source's adaptive window (semjscc.link.pacing), on simulated links: no flowgraph."""

from __future__ import annotations

import pytest
from semjscc.link.pacing import MAX_WINDOW, AdaptiveWindow, BatchCosts
from semjscc.util.errors import UsageError


def _simulate(win: AdaptiveWindow, seconds: float, service_s: float, base_latency_s: float,
              dt: float = 0.001) -> list[tuple[float, int, int]]:
    """A link that serves one frame per ``service_s`` (its slowest block, or a radio's clock) after a
    fixed ``base_latency_s``; the source sends whenever the window allows. Returns (time, window,
    frames in flight) every 0.1 s."""
    sent: list[float] = []  # send times, in order
    served_until = 0.0
    done = 0  # frames accounted for
    trace = []
    t = 0.0
    while t < seconds:
        while len(sent) - done < win.size:  # the window is open: send
            win.on_send(t)
            sent.append(t)
        # frames queue in front of the slow block, then take base_latency_s more
        finished = done
        while finished < len(sent):
            start = max(sent[finished], served_until)
            if start + service_s + base_latency_s > t:
                break
            served_until = start + service_s
            finished += 1
        if finished > done:
            done = finished
            win.on_ack(done, t)
        if not trace or t - trace[-1][0] >= 0.1:
            trace.append((t, win.size, len(sent) - done))
        t += dt
    return trace


def test_fixed_window_is_the_cap() -> None:
    win = AdaptiveWindow(32, adaptive=False)
    _simulate(win, 1.0, service_s=0.001, base_latency_s=0.05)
    assert win.size == 32


def test_window_settles_near_twice_the_bandwidth_delay_product() -> None:
    """1000 frames/s through a 50 ms link: 50 frames in flight keep it busy; the window settles at
    about twice that and does not creep up to the cap (the periodic drain refreshes the minimum)."""
    win = AdaptiveWindow(1024, floor=16)
    trace = _simulate(win, 20.0, service_s=0.001, base_latency_s=0.05)
    late = [size for t, size, _ in trace if t > 5.0]
    assert sorted(late)[len(late) // 2] >= 90 and max(late) <= 250  # 2 x 50 frames, give or take the filters
    assert win.drains >= 3
    s = win.stats(20.0)
    assert s.rate_fps == pytest.approx(1000, rel=0.15) and 0.05 <= s.min_latency_s < 0.08


def test_window_grows_from_the_floor_while_it_limits_the_rate() -> None:
    win = AdaptiveWindow(4096, floor=8)
    trace = _simulate(win, 3.0, service_s=0.0002, base_latency_s=0.1)  # 5000 frames/s x 0.1 s = 500 in flight
    assert trace[0][1] == 8 and max(size for _, size, _ in trace) >= 500


def test_window_limits_are_checked() -> None:
    for cap in (0, MAX_WINDOW + 1):
        with pytest.raises(UsageError, match=f"max_in_flight must lie in 1..{MAX_WINDOW}"):
            AdaptiveWindow(cap)
    assert AdaptiveWindow(10, floor=64).size == 10  # the floor never exceeds the cap


def test_batch_costs_wait_only_when_the_fixed_cost_matters() -> None:
    rng = __import__("numpy").random.default_rng(0)

    def costs(fixed: float, per_frame: float) -> BatchCosts:
        c = BatchCosts()
        for n in rng.integers(1, 40, 60):
            c.add(int(n), fixed + per_frame * n + rng.normal(0, 1e-6))
        return c

    cheap_call = costs(fixed=30e-6, per_frame=150e-6)  # an ONNX Runtime convnet: the call costs little
    fit = cheap_call.fit()
    assert fit is not None and fit[0] == pytest.approx(30e-6, abs=5e-6) and fit[1] == pytest.approx(150e-6, rel=0.05)
    assert cheap_call.waiting_pays(1, 3)  # a lone frame: 4 frames per call save 22 us of its 180 (> 10 %)
    assert not cheap_call.waiting_pays(8, 4)  # a batch of 8 already: 1.3 us of 154 saved
    costly_call = costs(fixed=2e-3, per_frame=50e-6)
    assert costly_call.waiting_pays(1, 3) and costly_call.waiting_pays(20, 10)
    assert not costly_call.waiting_pays(1, 0.5)  # no frame expected within the cap
    same_size = BatchCosts()
    for _ in range(20):
        same_size.add(8, 1e-3)
    assert same_size.fit() is None and not same_size.waiting_pays(8, 8)  # fixed and per-frame cannot be told apart
