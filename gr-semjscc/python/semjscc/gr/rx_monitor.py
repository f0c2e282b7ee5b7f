"""``rx_monitor``: what a live receiver measures of falling behind the radio.

A radio delivers samples at its sample rate whether the flowgraph keeps up or not.
``rx_monitor`` passes the radio's samples through and compares their count with the sample
clock (``samp_rate`` x wall time since the first samples): a radio source that was not read in
time overflows in its driver and delivers fewer samples than the clock says, so a shortfall of
more than ``tolerance`` samples is counted as an overflow (``overflow_events``,
``overflow_samples``), then the reference is re-based. gr-iio prints ``O`` too; this is what the
flowgraph measures and writes to the metrics JSON (``stats`` port). Its ``done`` input, connected
to the image source, ends the receive side when the source finishes (a radio source never does),
but not before the radio has streamed ``MIN_STREAM_S``: gr-iio 3.10's Pluto Source starts a thread
that checks once a second whether the stream has started, and a stream that starts and stops between
two checks leaves it waiting forever, so the flowgraph's process never exits (its destructor joins
that thread; the Pluto flowgraphs also stop the top block once it has finished, which ends the
thread's main loop).

What the receiver does when it falls behind (frames dropped whole before the models) is
:mod:`semjscc.gr.overload_gate`'s.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pmt
from gnuradio import gr

from semjscc.gr.params import as_float, as_int
from semjscc.gr.pdus import log, meta_pmt

PORT_STATS = pmt.intern("stats")
PORT_DONE = pmt.intern("done")
PORT_SYSTEM = pmt.intern("system")
MIN_STREAM_S = 2.5  # > gr-iio's 1 s overflow-check period, twice over


class rx_monitor(gr.sync_block):  # noqa: N801 (GNU Radio block naming)
    """Complex pass-through after a radio source, measuring overflows against the sample clock (see
    the module docstring); message input ``done`` (optional: the image source's PDUs, whose end
    finishes this block and so the receive side), message output ``stats``."""

    def __init__(self, samp_rate: float = 1e6, tolerance: int = 65536, stats_interval_s: float = 0.5) -> None:
        name = "rx_monitor"
        self.samp_rate = as_float(name, "samp_rate", samp_rate, 0.0, lo_open=True, hint=" (the radio's sample rate)")
        self.tolerance = as_int(name, "tolerance", tolerance, 0,
                                hint=" (samples the stream may fall short of the clock before it counts as an overflow)")
        self.stats_interval_s = as_float(name, "stats_interval_s", stats_interval_s, 0.0, lo_open=True)
        gr.sync_block.__init__(self, name="semjscc_rx_monitor", in_sig=[np.complex64], out_sig=[np.complex64])
        self.message_port_register_in(PORT_DONE)
        self.set_msg_handler(PORT_DONE, self._on_source_pdu)
        self.set_msg_handler(PORT_SYSTEM, self._on_system)
        self.message_port_register_out(PORT_STATS)
        self._source_done = False
        self._t_ref: float | None = None
        self._at_ref = 0
        self._t_first: float | None = None
        self._last_stats = 0.0
        self.counts = dict.fromkeys(("samples_in", "overflow_events", "overflow_samples"), 0)

    def _on_source_pdu(self, _msg: Any) -> None:
        """The image source's frames: only their end matters (the "system" handler below). A handler
        must be a named method: GNU Radio's Python gateway looks handlers up by name."""

    def _on_system(self, msg: Any) -> None:
        if pmt.is_pair(msg) and pmt.eq(pmt.car(msg), pmt.intern("done")):
            self._source_done = True

    def work(self, input_items: list[np.ndarray], output_items: list[np.ndarray]) -> int:
        if self._source_done and self._t_first is not None and time.monotonic() - self._t_first >= MIN_STREAM_S:
            self._publish_stats(final=True)
            return -1  # the run is over: finishing here finishes the radio source upstream
        x = input_items[0]
        n = len(x)
        output_items[0][:n] = x
        now = time.monotonic()
        if self._t_ref is None:
            self._t_ref = self._t_first = now
            self._at_ref = 0
        # samples that should have arrived by now, beyond the first buffer (which started the clock)
        short = (now - self._t_ref) * self.samp_rate - (self.counts["samples_in"] - self._at_ref)
        if short > self.tolerance:
            self.counts["overflow_events"] += 1
            self.counts["overflow_samples"] += int(short)
            if self.counts["overflow_events"] == 1:
                log.warning("receiver: %.1f ms of samples missing against the %g S/s sample clock: the radio "
                            "overflowed (the flowgraph fell behind; counted in overflow_events)",
                            1e3 * short / self.samp_rate, self.samp_rate)
            self._t_ref, self._at_ref = now, self.counts["samples_in"]
        self.counts["samples_in"] += n
        if now - self._last_stats >= self.stats_interval_s:
            self._last_stats = now
            self._publish_stats()
        return n

    def stats(self) -> dict[str, Any]:
        """Samples in, overflows (events, samples missing), and the clock time measured over."""
        s: dict[str, Any] = dict(self.counts)
        s["measured_s"] = time.monotonic() - self._t_first if self._t_first is not None else 0.0
        s["samp_rate"] = self.samp_rate
        return s

    def _publish_stats(self, final: bool = False) -> None:
        self.message_port_pub(PORT_STATS, meta_pmt({"name": "rx_monitor", "final": final, **self.stats()}))
