"""Base of the SemJSCC PDU-in/PDU-out blocks that run a model: ports ``in`` and ``out``, batching.

The message handler takes the PDU it was given plus whatever is already queued on ``in`` and hands
them to :meth:`process` as one list, so one ONNX Runtime call serves every frame that is waiting
(a burst of frames from the receiver, a window of images from the source). Output order is input
order. An unexpected exception in :meth:`process` is logged and the batch dropped: a message
handler that raises would take the whole flowgraph down.
"""

from __future__ import annotations

from typing import Any

import pmt
from gnuradio import gr

from semjscc.gr.pdus import drain, log, split_pdu

PORT_IN = pmt.intern("in")
PORT_OUT = pmt.intern("out")


def ort_threads(threads: int) -> int | None:
    """ONNX Runtime intra-op threads from a block parameter: 0 (or less) means the runtime's default."""
    return int(threads) if threads and threads > 0 else None


class BatchedPduBlock(gr.basic_block):
    """Subclasses implement ``process(items) -> list of messages to publish``, where ``items`` holds
    ``(msg, meta dict, vector pmt)`` per input message (non-PDU messages are counted and dropped)."""

    def __init__(self, name: str, max_batch: int = 64) -> None:
        gr.basic_block.__init__(self, name=name, in_sig=None, out_sig=None)
        self.max_batch = max(1, int(max_batch))
        self.message_port_register_in(PORT_IN)
        self.message_port_register_out(PORT_OUT)
        self.set_msg_handler(PORT_IN, self._handle)
        self.batches = 0
        self.frames_in = 0
        self.dropped = 0  # not a PDU, or (encoder/classifier) not an image
        self.errors = 0

    def _handle(self, msg: Any) -> None:
        items = []
        for m in drain(self, PORT_IN, msg, self.max_batch):
            pdu = split_pdu(m)
            if pdu is None:
                self.dropped += 1
                continue
            items.append((m, pdu[0], pdu[1]))
        if not items:
            return
        self.frames_in += len(items)
        self.batches += 1
        try:
            out = self.process(items)
        except Exception as e:  # any failure: see the module docstring
            self.errors += 1
            log.error("%s: batch of %d dropped: %s: %s", self.name(), len(items), type(e).__name__, e)
            return
        for o in out:
            self.message_port_pub(PORT_OUT, o)

    def process(self, items: list[tuple[Any, dict[str, Any], Any]]) -> list[Any]:
        raise NotImplementedError
