"""OFDM receiver block for analog JSCC payloads: complex samples in, PDUs of equalised symbols out.

A Python sink wrapping the vectorised numpy receiver (:class:`semjscc.phy.rx.OFDMReceiver`) and
processing large buffers at once. Why not gr-digital's receive chain (ofdm_sync_sc_cfb ->
header_payload_demux -> ofdm_chanest_vcvc -> ofdm_frame_equalizer_vcvc -> ofdm_serializer)? It
assumes a constellation payload: ``ofdm_equalizer_simpledfe`` updates the channel from hard
decisions (meaningless for analog values) and ``ofdm_equalizer_static`` has no common-phase
tracking, so a residual CFO rotates the payload unchecked; the header parser only knows GNU
Radio's byte header formats (no FEC, 12-bit counter); and nothing there estimates SNR, which the
JSCC decoder needs. The numpy receiver does Schmidl & Cox, integer CFO, soft Viterbi header
decoding (and sequence-aided headers in fades), channel tracking through the frame from the
preamble, header, pilots and mid-ambles, ZF/MMSE and an estimate of the payload's SNR.

Output PDU: (dict(frame_number, snr_est_db, cfo_hz, header_ok), c32vector of equalised symbols).
A burst whose header failed is published with ``header_ok=False``, frame_number -1 and an empty
vector (unless ``emit_failed`` is False).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pmt
from gnuradio import gr

from semjscc.gr.params import as_float, as_int, one_of, payload_limit
from semjscc.gr.pdus import c32_vector, make_pdu
from semjscc.phy.channel_model import MAX_CFO_SUBCARRIERS
from semjscc.phy.dc import DCTracker
from semjscc.phy.frame import DEFAULT_FRAME_FORMAT, DEFAULT_MAX_PAYLOAD_LEN
from semjscc.phy.rx import FrameCounter, OFDMReceiver, ReceivedFrame
from semjscc.util.blas import limit_blas_threads
from semjscc.util.errors import UsageError

EQUALIZERS = ("mmse", "zf")
PHASE_TRACKING = ("linear", "symbol")


class ofdm_rx(gr.sync_block):  # noqa: N801 (GNU Radio block naming)
    """Analog-payload OFDM receiver (sink with a ``pdus`` message output).

    The input's running mean (the radio's DC offset, :mod:`semjscc.phy.dc`) is subtracted first unless
    ``remove_dc`` is False. Samples are buffered until ``chunk`` of them are waiting, then processed in one go; a helper
    thread flushes a partial buffer once no samples arrived for ``latency_s`` (bursty flowgraphs
    go quiet after the last burst, a radio never does), holding a burst whose end has not arrived;
    ``stop()`` decides on everything."""

    def __init__(self, equalizer: str = "mmse", phase_tracking: str = "linear", chunk: int = 65536,
                 latency_s: float = 0.05, emit_failed: bool = True, max_payload_len: int = DEFAULT_MAX_PAYLOAD_LEN,
                 max_cfo_subcarriers: float = MAX_CFO_SUBCARRIERS, remove_dc: bool = True) -> None:
        name = "ofdm_rx"
        equalizer = one_of(name, "equalizer", equalizer, EQUALIZERS)
        phase_tracking = one_of(name, "phase_tracking", phase_tracking, PHASE_TRACKING)
        chunk = as_int(name, "chunk", chunk, 1, hint=" (samples processed at once)")
        latency_s = as_float(name, "latency_s", latency_s, 0.0, hint=" (0 = flush only when the flowgraph stops)")
        max_payload_len = payload_limit(name, max_payload_len)
        half = DEFAULT_FRAME_FORMAT.numerology.fft_len / 2
        max_cfo_subcarriers = as_float(name, "max_cfo_subcarriers", max_cfo_subcarriers, 0.0, half, lo_open=True,
                                       hint=" (the CFO search range in subcarrier spacings)")
        gr.sync_block.__init__(self, name="semjscc_ofdm_rx", in_sig=[np.complex64], out_sig=None)
        limit_blas_threads()  # see semjscc.util.blas: numpy's spinning pool threads starve the flowgraph
        self.message_port_register_out(pmt.intern("pdus"))
        try:
            self.rx = OFDMReceiver(DEFAULT_FRAME_FORMAT, equalizer=equalizer, phase_tracking=phase_tracking,
                                   max_payload_len=max_payload_len, max_cfo_subcarriers=max_cfo_subcarriers)
        except ValueError as e:  # any other check of the numpy receiver: still one line
            raise UsageError(f"{name}: {e}") from None
        self.chunk, self.latency_s, self.emit_failed = chunk, latency_s, bool(emit_failed)
        # the radio's DC offset, removed before synchronisation (semjscc.phy.dc: after the CFO is corrected
        # it would sit on data carriers)
        self.dc = DCTracker() if remove_dc else None
        self.max_payload_len = max_payload_len
        self.counter = FrameCounter()
        self.frames_ok = 0
        self.frames_failed = 0
        self.samples_in = 0
        self.cpu_s = 0.0  # CPU time of the receiver's processing (whichever thread ran it)
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        self._last_arrival = time.monotonic()
        self._lock = threading.Lock()
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None

    # --- scheduler hooks ----------------------------------------------------------------------
    def start(self) -> bool:
        self._stop_evt.clear()
        if self.latency_s > 0:
            self._thread = threading.Thread(target=self._flusher, name="semjscc_ofdm_rx_flush", daemon=True)
            self._thread.start()
        return True

    def stop(self) -> bool:
        self._stop_evt.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self.flush()
        return True

    def work(self, input_items: list[np.ndarray], output_items: list[np.ndarray]) -> int:
        x = input_items[0]
        n = len(x)
        with self._lock:
            self._pending.append(x.copy())  # the scheduler reuses its buffer after we return
            self._n_pending += n
            self._last_arrival = time.monotonic()
            if self._n_pending >= self.chunk:
                self._process_pending()
        return n

    # --- processing -------------------------------------------------------------------------
    def flush(self) -> None:
        """Process everything buffered, including a burst that ends exactly at the last sample."""
        with self._lock:
            self._process_pending()
            self._flush_rx(hold_incomplete=False)

    def _flusher(self) -> None:
        flushed_at = None  # arrival time the last idle flush covered: flush once per pause
        while not self._stop_evt.wait(self.latency_s / 2):
            with self._lock:
                if (self.rx.buffered + self._n_pending and self._last_arrival != flushed_at
                        and time.monotonic() - self._last_arrival >= self.latency_s):
                    # idle stream: decide on complete bursts now rather than wait for samples that may
                    # never come; a burst still arriving (upstream paused mid-burst) is held
                    flushed_at = self._last_arrival
                    self._process_pending()
                    self._flush_rx(hold_incomplete=True)

    def _flush_rx(self, hold_incomplete: bool) -> None:
        c0 = time.thread_time()
        self._publish(self.rx.flush(hold_incomplete=hold_incomplete))
        self.cpu_s += time.thread_time() - c0

    def _process_pending(self) -> None:
        if not self._n_pending:
            return
        c0 = time.thread_time()
        x = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending, self._n_pending = [], 0
        self.samples_in += len(x)
        self._publish(self.rx.process(self.dc(x) if self.dc is not None else x))
        self.cpu_s += time.thread_time() - c0

    def _publish(self, frames: list[ReceivedFrame]) -> None:
        port = pmt.intern("pdus")
        for f in frames:
            if f.header_ok:
                self.frames_ok += 1
                self.counter.update(f.frame_number)
            else:
                self.frames_failed += 1
                if not self.emit_failed:
                    continue
            self.message_port_pub(port, make_pdu(f.metadata(), c32_vector(f.payload)))

    @property
    def frames_lost(self) -> int:
        return self.counter.lost
