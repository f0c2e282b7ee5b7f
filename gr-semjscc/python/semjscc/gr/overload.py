"""What a live receiver does when it falls behind the radio, and what it measures of it.

A radio delivers samples at its sample rate whether the flowgraph keeps up or not. The receive
chain's costly stages are the models (JSCC decoder, classifier: milliseconds of CPU per frame);
the OFDM receiver in front of them is several times faster than real time. Two blocks:

* ``overload_gate`` sits between the OFDM receiver and the decoder. When more than ``max_backlog``
  frames wait in front of the decoder and classifier, a frame is dropped whole, before any model
  runs on it: it goes on as an empty PDU with ``dropped_overload: True`` (in order, through the
  decoder and classifier, which pass it on untouched, so the metrics sink's in-order gap rule
  stays valid) and the sink accounts it as ``dropped_overload``. The queues stay bounded, far
  below GNU Radio's 8192-message limit, past which messages vanish silently.
* ``rx_monitor`` passes the radio's samples through and compares their count with the sample
  clock (``samp_rate`` x wall time since the first samples): a radio source that was not read in
  time overflows in its driver and delivers fewer samples than the clock says, so a shortfall of
  more than ``tolerance`` samples is counted as an overflow (``overflow_events``,
  ``overflow_samples``), then the reference is re-based. gr-iio prints ``O`` too; this is what the
  flowgraph measures and writes to the metrics JSON (``stats`` port). Its ``done`` input, connected
  to the image source, ends the receive side when the source finishes (a radio source never does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pmt
from gnuradio import gr

from semjscc.gr.params import as_float, as_int
from semjscc.gr.pdus import log, make_pdu, meta_pmt, split_pdu

PORT_IN = pmt.intern("in")
PORT_OUT = pmt.intern("out")
PORT_STATS = pmt.intern("stats")
PORT_DONE = pmt.intern("done")
PORT_SYSTEM = pmt.intern("system")
DROPPED_OVERLOAD = "dropped_overload"  # the metadata flag, the ledger's cause and the summary key


class overload_gate(gr.basic_block):  # noqa: N801 (GNU Radio block naming)
    """Message ``in`` (the OFDM receiver's PDUs) -> ``out`` (to the decoder): frames pass unless the
    ``backlog()`` callable (frames queued in front of the models) is at least ``max_backlog``;
    0 = never drop."""

    def __init__(self, backlog: Callable[[], int], max_backlog: int = 0) -> None:
        self.max_backlog = as_int("overload_gate", "max_backlog", max_backlog, 0,
                                  hint=" (frames waiting for the decoder before new ones are dropped; 0 = never)")
        gr.basic_block.__init__(self, name="semjscc_overload_gate", in_sig=None, out_sig=None)
        self.message_port_register_in(PORT_IN)
        self.message_port_register_out(PORT_OUT)
        self.set_msg_handler(PORT_IN, self._handle)
        self._backlog = backlog
        self.passed = 0
        self.dropped = 0
        self.max_seen_backlog = 0

    def _handle(self, msg: Any) -> None:
        p = split_pdu(msg)
        is_frame = p is not None and bool(p[0].get("header_ok", True))
        if not is_frame or not self.max_backlog:  # header failures cost the models nothing: always on
            self.passed += is_frame
            self.message_port_pub(PORT_OUT, msg)
            return
        backlog = self._backlog()
        self.max_seen_backlog = max(self.max_seen_backlog, backlog)
        if backlog < self.max_backlog:
            self.passed += 1
            self.message_port_pub(PORT_OUT, msg)
            return
        self.dropped += 1
        if self.dropped == 1:
            log.warning("receiver: %d frames wait for the decoder, more than max_backlog %d: dropping frames whole "
                        "until it catches up (counted as dropped_overload)", backlog, self.max_backlog)
        self.message_port_pub(PORT_OUT, make_pdu(p[0], pmt.init_c32vector(0, []), **{DROPPED_OVERLOAD: True}))

    def stats(self) -> dict[str, int]:
        return {"frames_passed": self.passed, DROPPED_OVERLOAD: self.dropped, "max_backlog": self.max_backlog,
                "max_backlog_seen": self.max_seen_backlog}


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
        if self._source_done:
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
