"""``overload_gate``: what a live receiver does when it falls behind the radio.

A radio delivers samples at its sample rate whether the flowgraph keeps up or not. The receive
chain's costly stages are the models (JSCC decoder, classifier: milliseconds of CPU per frame);
the OFDM receiver in front of them is several times faster than real time.

``overload_gate`` sits between the OFDM receiver and the decoder. When more than ``max_backlog``
frames wait in front of the decoder and classifier, a frame is dropped whole, before any model
runs on it: it goes on as an empty PDU with ``dropped_overload: True`` (in order, through the
decoder and classifier, which pass it on untouched, so the metrics sink's in-order gap rule
stays valid) and the sink accounts it as ``dropped_overload``. The queues stay bounded, far
below GNU Radio's 8192-message limit, past which messages vanish silently.

What it measures of falling behind is :mod:`semjscc.gr.rx_monitor`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pmt
from gnuradio import gr

from semjscc.gr.params import as_int
from semjscc.gr.pdus import log, make_pdu, split_pdu
from semjscc.link.ledger import DROPPED_OVERLOAD

PORT_IN = pmt.intern("in")
PORT_OUT = pmt.intern("out")


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
