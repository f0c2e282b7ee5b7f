"""Streaming TX: bursts in, a continuous sample stream out, paced by the radio's sink.

    tagged bursts (in) -> pdu.tagged_stream_to_pdu -> burst_streamer -> continuous stream (out)

A DAC consumes samples at its sample rate whether or not the transmitter has any; gr-iio's sink
pushes whole buffers of ``buffer_size`` samples, and with a length tag key set it expects every
buffer to begin with a tag equal to its size (anything else: "Invalid packet size" and its thread
ends). Bursts from the OFDM TX arrive irregularly (whenever the encoder finishes a batch), so
feeding them straight to the sink either stalls it (length tags) or cuts bursts at buffer
boundaries and starves the DAC between them.

``burst_streamer`` is a GNU Radio *source* (no stream input): the scheduler calls it whenever the
sink has consumed room in its buffer, asking for exactly that many samples, and it writes queued
bursts back to back, whole, and zeros when none is queued. So it is never faster than the DAC (it
writes only what the scheduler asks for, which the sink frees at the DAC's rate), a burst once
started is continued in the next call with nothing in between, and no tag reaches the sink. At
the end of a run (its upstream says "done") every queued burst is written, then ``tail`` zeros
that push the last partly filled sink buffer onto the air, and the block finishes.

What it can see of underruns: a DAC never consumes more than was written, so if the samples
written fall behind the sample clock (``samp_rate`` x the wall time since the first call) by more
than ``late_tolerance`` samples, the sink must have run dry: counted as ``late_events`` (and
``late_samples``, the shortfall), then the reference is re-based. gr-iio prints its own ``U`` for
underruns in the driver; these counters are what the flowgraph itself measures and reports (the
``stats`` port, read by the metrics sink into its JSON).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np
import pmt
from gnuradio import gr, pdu

from semjscc.gr.params import as_float, as_int
from semjscc.gr.pdus import c32_array, log, meta_pmt, split_pdu
from semjscc.util.errors import UsageError

PORT_BURSTS = pmt.intern("bursts")
PORT_STATS = pmt.intern("stats")
PORT_SYSTEM = pmt.intern("system")
STATS_NAME = "tx_stream"
DEFAULT_BUFFER_SIZE = 16384  # the sink's buffer in the Pluto flowgraphs: 16 ms at 1 MS/s
DRAIN_STATS_S = 0.02  # the least time between stats published because the queue ran empty


class burst_streamer(gr.sync_block):  # noqa: N801 (GNU Radio block naming)
    """Message input ``bursts`` (PDUs of c32vector, one burst each), continuous complex output;
    ``stats`` message output (a dict, every ``stats_interval_s`` and at the end). See the module
    docstring."""

    def __init__(self, samp_rate: float = 1e6, tail: int = DEFAULT_BUFFER_SIZE,
                 late_tolerance: int = DEFAULT_BUFFER_SIZE, stats_interval_s: float = 0.5) -> None:
        name = "burst_streamer"
        self.samp_rate = as_float(name, "samp_rate", samp_rate, 0.0, lo_open=True, hint=" (the DAC's sample rate)")
        self.tail = as_int(name, "tail", tail, 0, hint=" (zeros after the last burst: at least the sink's buffer size)")
        self.late_tolerance = as_int(name, "late_tolerance", late_tolerance, 0,
                                     hint=" (samples the stream may fall behind the clock before it counts as late)")
        self.stats_interval_s = as_float(name, "stats_interval_s", stats_interval_s, 0.0, lo_open=True)
        gr.sync_block.__init__(self, name="semjscc_burst_streamer", in_sig=None, out_sig=[np.complex64])
        self.message_port_register_in(PORT_BURSTS)
        self.set_msg_handler(PORT_BURSTS, self._on_burst)
        self.message_port_register_out(PORT_STATS)
        # GNU Radio tells a block its message upstream finished with ("done" . 1) on "system"; a Python
        # block cannot read the C++ finished flag, so the handler is ours (it only records that).
        self.set_msg_handler(PORT_SYSTEM, self._on_system)
        self._queue: deque[np.ndarray] = deque()
        self._queued_samples = 0
        self._cur: np.ndarray | None = None
        self._pos = 0
        self._upstream_done = False
        self._tail_left = self.tail
        self._t_ref: float | None = None
        self._produced_at_ref = 0
        self._last_stats = 0.0
        self.counts = dict.fromkeys(("samples_out", "burst_samples", "idle_samples", "tail_samples", "bursts_in",
                                     "bursts_out", "not_bursts", "late_events", "late_samples", "max_queued_samples",
                                     "max_queued_bursts", "work_calls"), 0)

    # --- inputs ---------------------------------------------------------------------------------
    def _on_burst(self, msg: Any) -> None:
        p = split_pdu(msg)
        if p is None or not pmt.is_c32vector(p[1]):
            self.counts["not_bursts"] += 1
            if self.counts["not_bursts"] == 1:
                log.error("burst streamer: dropped a message that is not a PDU of complex samples (later ones are "
                          "dropped too, counted in not_bursts)")
            return
        burst = c32_array(p[1])
        if not len(burst):
            return
        self._queue.append(burst)
        self._queued_samples += len(burst)
        c = self.counts
        c["bursts_in"] += 1
        c["max_queued_samples"] = max(c["max_queued_samples"], self._queued_samples)
        c["max_queued_bursts"] = max(c["max_queued_bursts"], len(self._queue))

    def _on_system(self, msg: Any) -> None:
        if pmt.is_pair(msg) and pmt.eq(pmt.car(msg), pmt.intern("done")):
            self._upstream_done = True

    # --- the stream -------------------------------------------------------------------------------
    def work(self, input_items: list[np.ndarray], output_items: list[np.ndarray]) -> int:
        out = output_items[0]
        n = len(out)
        now = time.monotonic()
        c = self.counts
        c["work_calls"] += 1
        self._check_pace(now)
        had_bursts = self._cur is not None or bool(self._queue)
        o = 0
        while o < n:
            if self._cur is None:
                if not self._queue:
                    break
                self._cur, self._pos = self._queue.popleft(), 0
            take = min(n - o, len(self._cur) - self._pos)
            out[o:o + take] = self._cur[self._pos:self._pos + take]
            o += take
            self._pos += take
            self._queued_samples -= take
            if self._pos == len(self._cur):
                self._cur = None
                c["bursts_out"] += 1
        c["burst_samples"] += o
        if o < n:
            fill = n - o
            if self._upstream_done:  # the end: the tail of zeros, then done
                fill = min(fill, self._tail_left)
                self._tail_left -= fill
                c["tail_samples"] += fill
            else:
                c["idle_samples"] += fill
            out[o:o + fill] = 0
            o += fill
        c["samples_out"] += o
        finished = self._upstream_done and self._cur is None and not self._queue and self._tail_left == 0
        # also when the queue has just run empty (everything so far is on the air), so that the metrics
        # sink's JSON, written when the last frame is accounted for, has the counters up to then
        drained = had_bursts and self._cur is None and not self._queue and now - self._last_stats >= DRAIN_STATS_S
        if finished or drained or now - self._last_stats >= self.stats_interval_s:
            self._last_stats = now
            self._publish_stats(final=finished)
        if finished and o == 0:
            return -1  # WORK_DONE: everything, tail included, is written
        return o

    def _check_pace(self, now: float) -> None:
        """Count a late call: fewer samples written than the clock says the DAC has consumed."""
        if self._t_ref is None:
            self._t_ref, self._produced_at_ref = now, 0
            return
        written = self.counts["samples_out"] - self._produced_at_ref
        consumed_max = (now - self._t_ref) * self.samp_rate
        short = consumed_max - written
        if short > self.late_tolerance:
            self.counts["late_events"] += 1
            self.counts["late_samples"] += int(short)
            if self.counts["late_events"] == 1:
                log.warning("burst streamer: %.1f ms behind the %g S/s sample clock: the radio's sink has likely run "
                            "dry (counted in late_events)", 1e3 * short / self.samp_rate, self.samp_rate)
            self._t_ref, self._produced_at_ref = now, self.counts["samples_out"]

    # --- results ----------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """The counters: samples written (bursts, idle zeros, tail), bursts in and out, late calls
        (see the module docstring) and the deepest queue, in samples and seconds."""
        s: dict[str, Any] = dict(self.counts)
        s["max_queued_s"] = s["max_queued_samples"] / self.samp_rate
        s["queued_bursts"] = len(self._queue) + (self._cur is not None)
        s["samp_rate"] = self.samp_rate
        s["upstream_done"] = self._upstream_done
        return s

    def _publish_stats(self, final: bool = False) -> None:
        self.message_port_pub(PORT_STATS, meta_pmt({"name": STATS_NAME, "final": final, **self.stats()}))


class stream_tx(gr.hier_block2):  # noqa: N801 (GNU Radio block naming)
    """Complex tagged stream of bursts in (``len_tag_key`` tags give each burst's length, as the
    JSCC/OFDM TX writes them), continuous untagged stream out for a radio sink; message output
    ``stats``. ``samp_rate``: the radio's; ``tail``: zeros after the last burst (the sink's buffer
    size); ``late_tolerance``: see :class:`burst_streamer`."""

    def __init__(self, samp_rate: float = 1e6, len_tag_key: str = "packet_len", tail: int = DEFAULT_BUFFER_SIZE,
                 late_tolerance: int = DEFAULT_BUFFER_SIZE, stats_interval_s: float = 0.5) -> None:
        if not isinstance(len_tag_key, str) or not len_tag_key:
            raise UsageError(f"stream_tx: len_tag_key must name the bursts' length tag (packet_len), got {len_tag_key!r}")
        gr.hier_block2.__init__(self, "semjscc_stream_tx", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.message_port_register_hier_out("stats")
        self.streamer = burst_streamer(samp_rate, tail, late_tolerance, stats_interval_s)
        self.to_pdu = pdu.tagged_stream_to_pdu(gr.types.complex_t, len_tag_key)
        self.connect(self, self.to_pdu)
        self.msg_connect(self.to_pdu, "pdus", self.streamer, "bursts")
        self.connect(self.streamer, self)
        self.msg_connect(self.streamer, "stats", self, "stats")

    def stats(self) -> dict[str, Any]:
        return self.streamer.stats()
