"""Image source: one PDU per image, paced so that no message queue in the flowgraph overflows.

GNU Radio drops messages beyond a port's queue limit (8192), and an unpaced source would queue
a whole dataset in front of the encoder in milliseconds. Two pacing mechanisms, usable together:

* ``frames_per_second`` > 0: a fixed frame rate (for a GUI, or a radio's air time);
* ``max_in_flight`` > 0: a window of frames sent but not yet accounted for by the metrics sink,
  whose ``ack`` messages (``{accounted: n, done: bool}``) open it again. With ``adaptive_window``
  (the default) the window is sized from what the link delivers, the highest recent frame rate
  times the lowest recent latency, doubled (:class:`semjscc.link.pacing.AdaptiveWindow`), between 64
  frames and ``max_in_flight``: just enough to keep the slowest block busy, so frames do not queue
  in front of it; without, it is ``max_in_flight``, fixed. If no ack progress comes for
  ``ack_timeout_s`` one more frame is let through, so a lost ack cannot stall the source.

Stop mode (``loop`` False, or ``max_frames`` reached): the last real frame carries ``last: True``;
then ``flush_frames`` extra frames (``flush: True``) follow. They push the last real burst through
the transmitter (``burst_shaper_cc`` writes a burst's trailing zeros only when the next burst
arrives) and let the sink tell the last frames received from lost; they are not counted as sent.
The source then waits for the sink's ``done`` ack (or ``end_timeout_s`` without any ack) and
finishes: GNU Radio passes "done" on to every block downstream, so ``tb.run()`` returns.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pmt
from gnuradio import gr

from semjscc.data.cifar10 import SPLITS
from semjscc.data.sources import load_images, resolve_order
from semjscc.gr.params import as_float, as_int, one_of
from semjscc.gr.pdus import PduMeta, finite_or, log, make_pdu, u8_vector
from semjscc.link.pacing import MAX_WINDOW, AdaptiveWindow
from semjscc.util.errors import UsageError

PORT_OUT = pmt.intern("pdus")
PORT_ACK = pmt.intern("ack")
_DONE_MSG = pmt.cons(pmt.intern("done"), pmt.from_long(1))
DEFAULT_MAX_IN_FLIGHT = 1024  # the adaptive window's cap (see semjscc.link.pacing)


class image_source(gr.basic_block):  # noqa: N801 (GNU Radio block naming)
    """Message source: PDUs (meta {frame_number, label, image_index[, last | flush]}, u8vector
    32*32*3 HWC) on port ``pdus``; ``ack`` input from the metrics sink. ``frame_number`` is the
    running count from 0 (the OFDM TX sends it modulo 2^16)."""

    def __init__(self, source: str = "", split: str = "test", count: int = 0, start: int = 0,
                 shuffle_seed: int = -1, loop: bool = False, max_frames: int = 0, frames_per_second: float = 0.0,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT, ack_timeout_s: float = 5.0, flush_frames: int = 2,
                 end_timeout_s: float = 10.0, adaptive_window: bool = True, order: str = "") -> None:
        name = "image_source"
        count, start = as_int(name, "count", count, 0), as_int(name, "start", start, 0)
        shuffle_seed = as_int(name, "shuffle_seed", -1 if shuffle_seed is None else shuffle_seed)
        self.loop, self.max_frames = bool(loop), as_int(name, "max_frames", max_frames, 0)
        self.frames_per_second = as_float(name, "frames_per_second", frames_per_second, 0.0)
        self.max_in_flight = as_int(name, "max_in_flight", max_in_flight, 0, MAX_WINDOW,
                                    hint=" (the window; 0 = off, pace with frames_per_second)")
        self.ack_timeout_s = as_float(name, "ack_timeout_s", ack_timeout_s, 0.0, lo_open=True)
        self.flush_frames = as_int(name, "flush_frames", flush_frames, 0)
        self.end_timeout_s = as_float(name, "end_timeout_s", end_timeout_s, 0.0, lo_open=True)
        if not self.frames_per_second and not self.max_in_flight:
            raise UsageError("the image source needs pacing: frames_per_second > 0 or max_in_flight > 0 (with the "
                             "metrics sink's ack connected); unpaced, GNU Radio drops messages past 8192 queued")
        gr.basic_block.__init__(self, name="semjscc_image_source", in_sig=None, out_sig=None)
        # pictures of any size are centre-cropped and resized to 32x32 (semjscc.data.sources); a CIFAR-10
        # layout must hold 32x32 images (DataError otherwise)
        # order '' keeps the historical rule (a seed >= 0 shuffles); the Pluto flowgraphs ask for
        # 'stratified' so that a short run measures every class (semjscc.data.sources.IMAGE_ORDERS)
        self.order = resolve_order(order or None, None if shuffle_seed < 0 else shuffle_seed)
        self.images, self.labels = load_images(source or None, one_of(name, "split", split, SPLITS), count, start,
                                               None if shuffle_seed < 0 else shuffle_seed, self.order)
        n = len(self.labels)
        if self.max_frames:
            self.total: int | None = self.max_frames if self.loop else min(self.max_frames, n)
        else:
            self.total = None if self.loop else n
        self.message_port_register_out(PORT_OUT)
        self.message_port_register_in(PORT_ACK)
        self.set_msg_handler(PORT_ACK, self._on_ack)
        self._cond = threading.Condition()
        self._sent = 0  # real frames published
        self._acked = 0  # frames the sink has accounted for
        self._floor = 0  # frames presumed accounted after ack timeouts
        self.window = AdaptiveWindow(self.max_in_flight or 1, adaptive=bool(adaptive_window))
        self._last_ack = time.monotonic()
        self._done = False
        self._stop = False
        self.ack_timeouts = 0
        self._thread: threading.Thread | None = None

    # --- scheduler hooks ----------------------------------------------------------------------
    def start(self) -> bool:
        with self._cond:
            self._stop, self._done = False, False
            self._last_ack = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="semjscc_image_source", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> bool:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._thread = None
        return True

    @property
    def frames_sent(self) -> int:
        """Real frames published (flush frames excluded)."""
        return self._sent

    def window_stats(self) -> dict[str, Any]:
        """The window now, the delivery rate and latency it was sized from, and the ack timeouts."""
        with self._cond:
            s = self.window.stats(time.monotonic())
            return {"window": s.size if self.max_in_flight else None, "delivery_rate_fps": s.rate_fps,
                    "min_latency_s": s.min_latency_s, "frames_sent": self._sent, "frames_acked": self._acked,
                    "ack_timeouts": self.ack_timeouts, "drains": self.window.drains}

    # --- ack ------------------------------------------------------------------------------------
    def _on_ack(self, msg: object) -> None:
        body = pmt.car(msg) if pmt.is_pair(msg) and not pmt.is_dict(msg) else msg
        if not pmt.is_dict(body):
            return
        info = PduMeta(body)  # two keys read, not the whole dict converted (an ack per frame)
        now = time.monotonic()
        with self._cond:
            self._acked = max(self._acked, int(finite_or(info.get("accounted"), 0)))
            self._done = self._done or bool(info.get("done", False))
            self._last_ack = now
            self.window.on_ack(self._acked, now)
            self._cond.notify_all()

    # --- the sending thread -----------------------------------------------------------------------
    def _run(self) -> None:
        t0 = time.monotonic()
        n = len(self.labels)
        i = 0
        while self.total is None or i < self.total:
            if not self._wait_window() or not self._wait_until(t0 + i / self.frames_per_second
                                                                if self.frames_per_second else 0.0):
                return
            idx = i % n
            meta = {"frame_number": i, "label": int(self.labels[idx]), "image_index": idx}
            if self.total is not None and i == self.total - 1:
                meta["last"] = True
            with self._cond:
                self.window.on_send(time.monotonic())
            self.message_port_pub(PORT_OUT, make_pdu(meta, u8_vector(self.images[idx])))
            i += 1
            with self._cond:
                self._sent = i
        blank = u8_vector(np.zeros_like(self.images[0]))
        for j in range(self.flush_frames):
            meta = {"frame_number": i + j, "label": -1, "image_index": -1, "flush": True, "frames_sent": i}
            self.message_port_pub(PORT_OUT, make_pdu(meta, blank))
        with self._cond:
            # the sink says when every frame is accounted for; without a sink, give up once acks stop
            while not self._stop and not self._done and time.monotonic() - self._last_ack < self.end_timeout_s:
                self._cond.wait(0.1)
            if self._stop:
                return
        log.info("image source: %d frames sent, finishing the flowgraph", i)
        self._post(pmt.intern("system"), _DONE_MSG)  # finish; GNU Radio tells the neighbours

    def _wait_window(self) -> bool:
        if self.max_in_flight <= 0:
            return not self._stop
        with self._cond:
            progress = time.monotonic()
            seen = max(self._acked, self._floor)
            while not self._stop:
                acked = max(self._acked, self._floor)
                if acked != seen:
                    seen, progress = acked, time.monotonic()
                if self._sent - acked < self.window.size:
                    return True
                left = self.ack_timeout_s - (time.monotonic() - progress)
                if left <= 0:
                    self._floor = acked + 1  # presume the oldest frame lost: never stall for good
                    self.ack_timeouts += 1
                    log.warning("image source: no ack for %.1f s with %d frames in flight; sending on",
                                self.ack_timeout_s, self._sent - acked)
                    continue
                self._cond.wait(left)
        return False

    def _wait_until(self, when: float) -> bool:
        with self._cond:
            while not self._stop:
                left = when - time.monotonic()
                if left <= 0:
                    return True
                self._cond.wait(left)
        return False
