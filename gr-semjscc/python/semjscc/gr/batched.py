"""Base of the SemJSCC PDU-in/PDU-out blocks that run a model: ports ``in`` and ``out``, batching.

The message handler takes the PDU it was given plus whatever is already queued on ``in`` and hands
them to :meth:`process` as one list, so one ONNX Runtime call serves every frame that is waiting
(a burst of frames from the receiver, a window of images from the source). Output order is input
order, and each output keeps its input's metadata. An unexpected exception in :meth:`process` is
logged and the batch dropped: a message handler that raises would take the whole flowgraph down.

Latency cap: when frames trickle in (a source paced by acks or a radio's sample clock sends them
one by one), a small batch pays a whole call's fixed cost for few frames. So the handler may wait,
at most ``max_wait_s`` after its first frame, for more -- only when it pays: when the frames the
measured arrival rate promises within the cap would save at least a tenth of a frame's CPU cost
(:class:`semjscc.link.pacing.BatchCosts` fits each call's cost as fixed + per frame), and only while
they keep coming (it stops once twice the mean gap passes without one, or at ``max_batch``).
Measured on the shipped models, the fixed cost is too small for waiting to pay (docs/results.md,
Throughput): batches form anyway, from the receiver's bursts and the source's window.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pmt
from gnuradio import gr

from semjscc.gr.pdus import c32_array, drain, empty_like_u8, image_from_vector, log, make_pdu, split_pdu
from semjscc.link.ledger import DROPPED_OVERLOAD
from semjscc.link.pacing import BatchCosts
from semjscc.util.blas import limit_blas_threads

PORT_IN = pmt.intern("in")
PORT_OUT = pmt.intern("out")
DEFAULT_MAX_BATCH = 64  # frames per model call at most: the GRC blocks' default too (their yml repeat it)
DEFAULT_MAX_WAIT_S = 0.005  # a frame at 1 MS/s takes 1.5 ms of air time: a few frames' worth
_RATE_SMOOTHING = 0.2  # weight of the newest arrival-rate sample


def ort_threads(threads: int) -> int | None:
    """ONNX Runtime intra-op threads from a block parameter: 0 (or less) means the runtime's default."""
    return int(threads) if threads and threads > 0 else None


class BatchedPduBlock(gr.basic_block):
    """Subclasses implement ``process(items) -> list of messages to publish``, where ``items`` holds
    ``(msg, meta dict, vector pmt)`` per input message (non-PDU messages are counted and dropped)."""

    def __init__(self, name: str, max_batch: int = DEFAULT_MAX_BATCH, max_wait_s: float = DEFAULT_MAX_WAIT_S) -> None:
        gr.basic_block.__init__(self, name=name, in_sig=None, out_sig=None)
        limit_blas_threads()  # see semjscc.util.blas
        self.max_batch = max(1, int(max_batch))
        self.max_wait_s = max(0.0, float(max_wait_s))
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
        self.busy_s = 0.0  # wall time in process(), the model calls included
        self.cpu_s = 0.0  # this block's thread's CPU time in process()
        self.waited_s = 0.0  # time spent waiting for a batch to fill (see the module docstring)
        self._rate = 0.0  # arrival rate, frames/s (smoothed)
        self._last_handle: float | None = None
        self.costs = BatchCosts()

    def _collect(self, first: Any) -> list[Any]:
        """``first``, what is queued behind it, and what arrives while waiting pays (module docstring)."""
        t0 = time.monotonic()
        msgs = [first, *drain(self, PORT_IN, self.max_batch - 1)]
        if self._last_handle is not None and t0 > self._last_handle:
            self._rate += _RATE_SMOOTHING * (len(msgs) / (t0 - self._last_handle) - self._rate)
        self._last_handle = t0
        expected = min(self.max_batch - len(msgs), self._rate * self.max_wait_s)
        if self.max_wait_s <= 0 or not self.costs.waiting_pays(len(msgs), expected):
            return msgs
        gap = 1.0 / self._rate
        deadline, last_arrival = t0 + self.max_wait_s, t0
        while len(msgs) < self.max_batch:
            now = time.monotonic()
            if now >= deadline or now - last_arrival > 2 * gap:
                break
            time.sleep(min(gap / 2, deadline - now))
            more = drain(self, PORT_IN, self.max_batch - len(msgs))
            if more:
                msgs += more
                last_arrival = time.monotonic()
        self.waited_s += time.monotonic() - t0
        return msgs

    def _handle(self, msg: Any) -> None:
        items = []
        for m in self._collect(msg):
            pdu = split_pdu(m)
            if pdu is None:
                self.dropped += 1
                continue
            items.append((m, pdu[0], pdu[1]))
        if not items:
            return
        self.frames_in += len(items)
        self.batches += 1
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            out = self.process(items)
        except Exception as e:  # any failure: see the module docstring
            self.errors += 1
            log.error("%s: batch of %d dropped: %s: %s", self.name(), len(items), type(e).__name__, e)
            return
        finally:
            self.busy_s += time.perf_counter() - t0
            cpu = time.thread_time() - c0
            self.cpu_s += cpu
            self.costs.add(len(items), cpu)
        for o in out:
            self.message_port_pub(PORT_OUT, o)

    def process(self, items: list[tuple[Any, Mapping[str, Any], Any]]) -> list[Any]:
        raise NotImplementedError

    def batch_stats(self) -> dict[str, Any]:
        """Frames and calls so far, the mean batch, time per frame in process() (wall and CPU), and the
        recent calls' CPU cost fitted as fixed + per frame (None until batch sizes have varied)."""
        n = max(self.frames_in, 1)
        fit = self.costs.fit()
        return {"frames": self.frames_in, "batches": self.batches,
                "call_fixed_ms": None if fit is None else 1e3 * fit[0],
                "call_per_frame_ms": None if fit is None else 1e3 * fit[1],
                "mean_batch": self.frames_in / self.batches if self.batches else None,
                "busy_ms_per_frame": 1e3 * self.busy_s / n, "cpu_ms_per_frame": 1e3 * self.cpu_s / n,
                "waited_s": self.waited_s}


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
        if meta.get(DROPPED_OVERLOAD):  # dropped before the models (semjscc.gr.overload_gate): passed on in order
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
            out[i] = make_pdu(meta, empty_like_u8(), **flags)
            continue
        y = c32_array(vec)
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
