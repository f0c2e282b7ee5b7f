"""How many frames a source may have in flight: a window sized from what the link delivers.

A fixed window W caps a link's throughput at W / latency (Little's law): 32 frames over the
~0.13 s the simulated link takes per frame held ``sim_loopback`` to ~230 frames/s, a third of the
PHY's rate, while a large fixed window only adds queueing delay in front of the slowest block
(every frame then waits behind W others). :class:`AdaptiveWindow` sizes the window as the link's
bandwidth-delay product, the way BBR sizes a TCP congestion window:

    window = gain * (highest delivery rate lately) * (lowest latency lately),

clamped to [``floor``, ``cap``]. While the window is what limits the link, the rate it delivers is
window / latency, so the window grows by ``gain`` every round trip until some block's speed (or a
radio's sample clock) limits the rate. From then on the extra frames queue in front of that block,
and the latency a frame sees includes the queue the window itself built: the minimum would follow
it up and the window would keep growing. So, as BBR does, the window drops to ``floor`` every
``probe_every_s`` until the frames in flight are down to it and one more round trip (at least
``probe_min_s``) has passed: the queues drain and the minimum sees the link's own latency again.
The floor (64 frames, ~0.1 s of air time at 1 MS/s) still covers what the link holds in flight, so
the slowest block (or a radio's clock) stays busy meanwhile. The cap also bounds every message
queue in the flowgraph (no queue ever holds more frames than are in flight). GNU Radio-free, so
the rules are tested without a flowgraph.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from semjscc.util.errors import UsageError

# GNU Radio discards messages queued beyond its max_messages preference (8192 by default) on a port
# without a handler; the window keeps every queue of the chain far below it.
MAX_WINDOW = 4096
DEFAULT_FLOOR = 64


@dataclass(frozen=True)
class WindowStats:
    size: int
    rate_fps: float | None  # highest delivery rate over the last filter span
    min_latency_s: float | None  # lowest send-to-ack latency over the last filter span


class _WindowedExtreme:
    """Running max (or min) of (time, value) samples over the last ``span_s`` seconds (monotone deque)."""

    def __init__(self, span_s: float, largest: bool) -> None:
        self.span_s, self.largest = span_s, largest
        self._q: deque[tuple[float, float]] = deque()

    def add(self, t: float, v: float) -> None:
        q = self._q
        while q and (q[-1][1] <= v if self.largest else q[-1][1] >= v):
            q.pop()
        q.append((t, v))

    def value(self, now: float) -> float | None:
        q = self._q
        while q and now - q[0][0] > self.span_s:
            q.popleft()
        return q[0][1] if q else None


class AdaptiveWindow:
    """Window of frames sent but not yet acknowledged (see the module docstring).

    Frames are numbered 0, 1, 2, ... in the order sent (:meth:`on_send`); an ack says how many are
    accounted for (:meth:`on_ack`, cumulative). ``adaptive`` False: the window is ``cap``, fixed.
    ``rate_span_s``: the delivery rate is measured over this much time; ``filter_span_s``: how long
    a highest rate or lowest latency is remembered (a link that slows down is followed after it)."""

    def __init__(self, cap: int, floor: int = DEFAULT_FLOOR, gain: float = 2.0, adaptive: bool = True,
                 rate_span_s: float = 0.25, filter_span_s: float = 5.0, probe_every_s: float = 4.0,
                 probe_min_s: float = 0.2, probe_max_s: float = 2.0) -> None:
        if not 1 <= cap <= MAX_WINDOW:
            raise UsageError(f"max_in_flight must lie in 1..{MAX_WINDOW} (every message queue of the chain holds up to "
                             f"that many frames), got {cap}")
        if not (gain >= 1 and math.isfinite(gain)):
            raise UsageError(f"the window gain must be >= 1, got {gain}")
        self.cap, self.floor, self.gain, self.adaptive = cap, max(1, min(floor, cap)), gain, adaptive
        self.rate_span_s = rate_span_s
        self._sent_at: deque[float] = deque()  # send time of each frame from _first on
        self._first = 0  # the oldest frame not yet acknowledged
        self._acks: deque[tuple[float, int]] = deque()  # (time, accounted) over the last rate span
        self._rate = _WindowedExtreme(filter_span_s, largest=True)
        self._latency = _WindowedExtreme(filter_span_s, largest=False)
        self.size = cap if not adaptive else self.floor
        self.probe_every_s, self.probe_min_s, self.probe_max_s = probe_every_s, probe_min_s, probe_max_s
        self._last_probe: float | None = None  # when the last drain ended (None: not started)
        self._probe: tuple[float, float | None] | None = None  # (started, when in flight reached the floor)
        self.drains = 0

    @property
    def in_flight(self) -> int:
        return len(self._sent_at)

    def on_send(self, now: float) -> None:
        if self._last_probe is None:
            self._last_probe = now
        self._sent_at.append(now)

    def on_ack(self, accounted: int, now: float) -> None:
        """``accounted`` frames (the first ones sent) are accounted for at ``now``."""
        n_new = min(accounted, self._first + len(self._sent_at)) - self._first
        if n_new <= 0:
            return
        for _ in range(n_new - 1):
            self._sent_at.popleft()
        # the newest frame this ack covers: its latency (the older ones waited behind it or were lost)
        self._latency.add(now, now - self._sent_at.popleft())
        self._first += n_new
        acks = self._acks
        acks.append((now, self._first))
        while len(acks) > 2 and now - acks[1][0] >= self.rate_span_s:
            acks.popleft()
        t0, n0 = acks[0]
        if now - t0 >= self.rate_span_s / 2:
            self._rate.add(now, (self._first - n0) / (now - t0))
        if self.adaptive:
            self._resize(now)

    def _resize(self, now: float) -> None:
        rate, latency = self._rate.value(now), self._latency.value(now)
        if self._probe is None and self._last_probe is not None and now - self._last_probe >= self.probe_every_s:
            self._probe = (now, None)
            self.drains += 1
        if self._probe is not None:
            started, drained = self._probe
            if drained is None and self.in_flight <= self.floor:
                self._probe = (started, drained := now)
            hold = max(self.probe_min_s, latency or 0.0)
            if (drained is None or now - drained < hold) and now - started < self.probe_max_s:
                self.size = self.floor
                return
            self._probe, self._last_probe = None, now
        if rate is None or latency is None:
            return
        self.size = max(self.floor, min(self.cap, math.ceil(self.gain * rate * latency)))

    def stats(self, now: float) -> WindowStats:
        return WindowStats(self.size, self._rate.value(now), self._latency.value(now))


class BatchCosts:
    """Whether waiting for more frames pays, from what a block's calls cost.

    Each call's CPU time is fitted as ``fixed + per_frame * n`` (least squares over the recent calls,
    older ones weighing less). Waiting while ``more`` frames arrive turns ``n`` frames into
    ``n + more`` for one fixed cost instead of two: it pays when that saves at least
    ``min_saving`` of what a frame costs now. A model's fixed cost (an ONNX Runtime call, the
    Python around it) is small next to a convnet's per-image cost, so this rarely holds for
    the shipped models; it does for a cheap per-frame step behind a costly call."""

    def __init__(self, decay: float = 0.95, min_saving: float = 0.1) -> None:
        self.decay, self.min_saving = decay, min_saving
        self._s = [0.0] * 5  # weighted sums of 1, n, n^2, t, n t

    def add(self, n: int, seconds: float) -> None:
        s, d = self._s, self.decay
        for i, v in enumerate((1.0, n, n * n, seconds, n * seconds)):
            s[i] = s[i] * d + v

    def fit(self) -> tuple[float, float] | None:
        """(fixed, per_frame) seconds, or None until the calls have had different sizes."""
        s1, sn, snn, st, snt = self._s
        det = s1 * snn - sn * sn
        if s1 < 3 or det <= 0.25 * s1 * s1:  # batch sizes must vary (variance >= 1/4) to tell the two apart
            return None
        fixed = (st * snn - sn * snt) / det
        per_frame = (s1 * snt - sn * st) / det
        return max(fixed, 0.0), max(per_frame, 0.0)

    def waiting_pays(self, n: int, more: float) -> bool:
        """Would ``more`` frames (expected while waiting) on top of ``n`` save enough per frame?"""
        fit = self.fit()
        if fit is None or more < 1 or n < 1:
            return False
        fixed, per_frame = fit
        saving = fixed / n - fixed / (n + more)
        return saving >= self.min_saving * (fixed / n + per_frame)
