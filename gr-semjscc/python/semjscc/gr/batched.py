"""Base of the SemJSCC PDU-in/PDU-out blocks that run a model: ports ``in`` and ``out``, batching.

The message handler takes the PDU it was given plus whatever is already queued on ``in`` and hands
them to :meth:`process` as one list, so one ONNX Runtime call serves every frame that is waiting
(a burst of frames from the receiver, a window of images from the source). Output order is input
order. An unexpected exception in :meth:`process` is logged and the batch dropped: a message
handler that raises would take the whole flowgraph down.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pmt
from gnuradio import gr

from semjscc.gr.pdus import drain, empty_like_u8, image_from_vector, log, make_pdu, split_pdu

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
        self.corrupt = 0  # receive side: payload not decodable (see triage_received)
        self.length_mismatch = 0  # receive side: the header declared another payload length
        self.header_failures = 0

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


def triage_received(block: Any, items: list[tuple[Any, dict[str, Any], Any]],
                    n_symbols: int) -> tuple[list[Any], list[int], list[np.ndarray]]:
    """What every receive-side decoder does first with the PDUs from ``ofdm_rx``: header failures
    pass through as the receiver sent them (the sink counts them); a payload that is not
    ``n_symbols`` complex values goes on as ``corrupt`` with an empty vector -- and when the frame's
    header declared that other length (a transmitter with another model or k/n: no frame of this
    link will ever decode), also as ``length_mismatch``, logged once; the rest become finite
    complex64 arrays. Counts on ``block.header_failures`` / ``block.corrupt`` /
    ``block.length_mismatch``. Returns the output list (filled where already decided), the indices
    still to decode and their symbols."""
    out: list[Any] = [None] * len(items)
    rows: list[int] = []
    symbols: list[np.ndarray] = []
    for i, (msg, meta, vec) in enumerate(items):
        if not meta.get("header_ok", True):
            block.header_failures += 1
            out[i] = msg
            continue
        if not pmt.is_c32vector(vec) or pmt.length(vec) != n_symbols:
            block.corrupt += 1
            n = int(pmt.length(vec))
            flags: dict[str, Any] = {"corrupt": True, "payload_len": n}
            if pmt.is_c32vector(vec) and n:  # the header said n: the sender frames another size
                flags["length_mismatch"] = True
                if not block.length_mismatch:
                    log.error("%s: a frame carries %d symbols but this decoder's model takes %d: the transmitter uses "
                              "another model (k/n); use the same model at both ends (counted as length_mismatch, "
                              "logged once)", block.name(), n, n_symbols)
                block.length_mismatch += 1
            out[i] = make_pdu({**meta, **flags}, empty_like_u8())
            continue
        y = np.asarray(pmt.c32vector_elements(vec), dtype=np.complex64)
        rows.append(i)
        symbols.append(np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0))
    return out, rows, symbols


def collect_images(block: Any, items: list[tuple[Any, dict[str, Any], Any]]) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """The transmit-side encoders' first step: the metadata and image of every PDU that holds a
    32x32 RGB image; anything else counts on ``block.dropped`` (there is nothing to send)."""
    metas, images = [], []
    for _msg, meta, vec in items:
        img = image_from_vector(vec)
        if img is None:
            block.dropped += 1
            continue
        metas.append(meta)
        images.append(img)
    return metas, images
