"""OFDM transmitter for analog JSCC payloads, built from gr-digital's own OFDM primitives.

    [PDU] -> pdu_framer ----------------------------------\
    [tagged stream] -> header_framer ----------------------> ofdm_carrier_allocator_cvc -> fft_vcc (inverse)
          -> ofdm_cyclic_prefixer -> burst_shaper_cc (zero padding) -> out

Everything after the framer is stock GNU Radio: the carrier allocator places any complex values
on the data carriers (it never maps bits), so it carries analog symbols unchanged and adds the
pilots and both sync words. The only custom pieces are the framers: GNU Radio's header
generators format bytes (12-bit counter, CRC-8, no FEC) and need a byte stream, while this PHY's
header (16-bit frame number, CRC-16, K=7 tail-biting code, see :mod:`semjscc.phy.frame`) must be
prepended to a stream of complex symbols. With ``midamble`` the framers also put a mid-amble's 48
known values after every ``midamble`` payload symbols' worth of data; the allocator treats them as
data and adds its pilots, which is exactly a mid-amble symbol. The output matches
:func:`semjscc.phy.tx.modulate_burst` sample for sample (unitary IFFT: the 1/sqrt(N) scale is the FFT block's window).

PDU input goes straight into ``pdu_framer`` rather than through gr-pdu's ``pdu_to_tagged_stream``:
that block turns one PDU into stream per scheduler wake-up, so PDUs that arrive together (a batch
from the JSCC encoder) drained at ~60 frames/s, one per scheduler timeout, while the framer here
writes every queued PDU that fits its output buffer in one call (over 10,000 frames/s).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import pmt
from gnuradio import digital, fft, gr

from semjscc.gr.params import as_int, midamble_interval, one_of, payload_limit
from semjscc.gr.pdus import c32_array, log, split_pdu
from semjscc.phy.frame import (
    DEFAULT_FRAME_FORMAT,
    DEFAULT_MAX_PAYLOAD_LEN,
    MAX_FRAME_NUMBER,
    FrameFormat,
    encode_header,
)
from semjscc.util.errors import UsageError

FRAME_NUMBER_KEY = "frame_number"
_WRAP = MAX_FRAME_NUMBER + 1


def min_output_buffer(block: gr.basic_block, items: int) -> None:
    """``set_min_output_buffer`` without GNU Radio's info line about it (six of them per flowgraph
    otherwise, in every ``run`` and ``demo``)."""
    level = block.log_level()
    block.set_log_level("warn")
    block.set_min_output_buffer(items)
    block.set_log_level(level)


class _Framer:
    """What both framers share: the frame number counter, the length limit and writing
    [header, payload with its mid-ambles] packets with their length tags."""

    def _setup_framing(self, block: str, len_tag_key: str, first_frame_number: int, max_payload_len: int,
                       fmt: FrameFormat) -> None:
        self.max_payload_len = payload_limit(block, max_payload_len)
        self._len_key = pmt.intern(len_tag_key)
        self._next = as_int(block, "first_frame_number", first_frame_number) % _WRAP
        self.fmt = fmt
        self._hdr_len = fmt.n_header * fmt.numerology.n_data
        self._max_out = self._hdr_len + self._framed_len(self.max_payload_len)
        self.frames_framed = 0
        self.frames_too_long = 0  # packets longer than max_payload_len, dropped (logged once)
        # Only run once there is room for a longest packet (whole packets are written); waking
        # per packet would cost a Python call per packet.
        self.set_min_noutput_items(self._max_out)  # type: ignore[attr-defined]

    def _framed_len(self, length: int) -> int:
        """Items after the header for a packet of ``length`` symbols: the data and its mid-ambles."""
        return length + self.fmt.n_midambles(length) * self.fmt.numerology.n_data

    def _with_midambles(self, data: np.ndarray) -> np.ndarray:
        """``data`` with a mid-amble's known values after every ``midamble`` symbols' worth (not at the end)."""
        n_mid = self.fmt.n_midambles(len(data))
        if not n_mid:
            return data
        chunk = self.fmt.midamble * self.fmt.numerology.n_data
        parts = []
        for i in range(n_mid):
            parts += [data[i * chunk:(i + 1) * chunk], self.fmt.numerology.midamble_values]
        parts.append(data[n_mid * chunk:])
        return np.concatenate(parts)

    def _frame_number(self, value: Any) -> int:
        """The frame number a packet carries: its own (modulo 2^16), else the next of the counter."""
        fn = int(value) % _WRAP if value is not None else self._next
        self._next = (fn + 1) % _WRAP
        return fn

    def _write(self, out: np.ndarray, payloads: list[np.ndarray], fns: list[int]) -> int:
        """Write [header, payload] per packet into ``out`` (room checked by the caller), tagging
        each packet's first item with its length; returns the items written."""
        if not payloads:
            return 0
        headers = encode_header(np.array(fns), np.array([len(p) for p in payloads]), self.fmt.pattern)
        w0, o = self.nitems_written(0), 0  # type: ignore[attr-defined]
        for payload, hdr in zip(payloads, headers, strict=True):
            n = self._hdr_len + self._framed_len(len(payload))
            self.add_item_tag(0, w0 + o, self._len_key, pmt.from_long(n))  # type: ignore[attr-defined]
            out[o:o + self._hdr_len] = hdr
            out[o + self._hdr_len:o + n] = self._with_midambles(payload)
            o += n
        self.frames_framed += len(payloads)
        return o

    def _too_long(self, length: int) -> None:
        self.frames_too_long += 1
        if self.frames_too_long == 1:
            log.error("OFDM TX: dropped a %d-symbol packet, longer than max_payload_len %d (later ones are dropped "
                      "too, counted in frames_too_long): set the OFDM TX max_payload_len to at least %d, or use a "
                      "model with fewer symbols", length, self.max_payload_len, length)


class header_framer(gr.basic_block, _Framer):  # noqa: N801 (GNU Radio block naming)
    """Tagged stream of JSCC symbols -> tagged stream of [96 BPSK header symbols, payload].

    The frame number comes from a ``frame_number`` tag on a packet's first item (PDU metadata
    becomes such a tag in ``pdu_to_tagged_stream``) or else from an internal counter. All complete
    packets in the input buffer are framed in one vectorised pass."""

    def __init__(self, len_tag_key: str = "packet_len", first_frame_number: int = 0,
                 max_payload_len: int = DEFAULT_MAX_PAYLOAD_LEN, fmt: FrameFormat = DEFAULT_FRAME_FORMAT) -> None:
        max_payload_len = payload_limit("header_framer", max_payload_len)
        gr.basic_block.__init__(self, name="semjscc_header_framer", in_sig=[np.complex64], out_sig=[np.complex64])
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self._setup_framing("header_framer", len_tag_key, first_frame_number, max_payload_len, fmt)
        self._fn_key = pmt.intern(FRAME_NUMBER_KEY)
        min_output_buffer(self, 2 * self._max_out)

    def forecast(self, noutput_items: int, ninputs: int) -> list[int]:
        # Output is longer than input and only whole packets are written: ask for any input at all
        # (the default 1:1 forecast would stall waiting for more than one packet's worth).
        return [1] * ninputs

    def general_work(self, input_items: list[np.ndarray], output_items: list[np.ndarray]) -> int:
        inp, out = input_items[0], output_items[0]
        n_in, n_out = len(inp), len(out)
        r0 = self.nitems_read(0)
        # Only look at as much input as could fit the output (input buffers can hold thousands of
        # packets, and every tag returned costs Python time); one query, filtered here.
        span = min(n_in, n_out)
        len_tags, fn_tags = [], {}
        for t in self.get_tags_in_window(0, 0, span):
            if pmt.eq(t.key, self._len_key):
                len_tags.append(t)
            elif pmt.eq(t.key, self._fn_key):
                fn_tags[t.offset] = t.value
        if not len_tags:
            self.consume(0, span)  # not a tagged stream: nothing can be framed
            return 0
        pos = int(len_tags[0].offset - r0)  # items before the first tag belong to no packet
        payloads: list[np.ndarray] = []
        fns: list[int] = []
        used = 0
        for tag in len_tags:
            start, length = int(tag.offset - r0), int(pmt.to_long(tag.value))
            if start < pos:
                continue
            if length > self.max_payload_len:  # too long for the buffers: drop it, do not deadlock
                pos = min(start + length, n_in)  # an untagged remainder is dropped next call
                self._too_long(length)
                continue
            if start + length > n_in or used + self._hdr_len + self._framed_len(length) > n_out:
                break
            fn_pmt = fn_tags.get(tag.offset)
            payloads.append(inp[start:start + length])
            fns.append(self._frame_number(pmt.to_long(fn_pmt) if fn_pmt is not None and pmt.is_integer(fn_pmt)
                                          else None))
            used += self._hdr_len + self._framed_len(length)
            pos = start + length
        written = self._write(out, payloads, fns)
        self.consume(0, pos)
        return written


class pdu_framer(gr.basic_block, _Framer):  # noqa: N801 (GNU Radio block naming)
    """PDUs of JSCC symbols (message port ``pdus``: metadata with an optional ``frame_number``, a
    c32vector) -> tagged stream of [96 BPSK header symbols, payload], as ``header_framer`` makes.

    Every PDU queued when the scheduler calls is framed, as many as fit the output buffer (see the
    module docstring). A PDU that is not a c32vector PDU is dropped and counted in
    ``frames_not_symbols`` (logged once); one longer than ``max_payload_len`` in ``frames_too_long``."""

    def __init__(self, len_tag_key: str = "packet_len", first_frame_number: int = 0,
                 max_payload_len: int = DEFAULT_MAX_PAYLOAD_LEN, fmt: FrameFormat = DEFAULT_FRAME_FORMAT) -> None:
        max_payload_len = payload_limit("pdu_framer", max_payload_len)
        gr.basic_block.__init__(self, name="semjscc_pdu_framer", in_sig=None, out_sig=[np.complex64])
        self._setup_framing("pdu_framer", len_tag_key, first_frame_number, max_payload_len, fmt)
        # room for a batch of packets per call (the encoder publishes a batch at once)
        min_output_buffer(self, 8 * self._max_out)
        self.message_port_register_in(pmt.intern("pdus"))
        self.set_msg_handler(pmt.intern("pdus"), self._queue_pdu)  # a handler: GNU Radio never prunes the queue
        self._queue: deque[tuple[np.ndarray, int | None]] = deque()
        self.frames_not_symbols = 0

    def _queue_pdu(self, msg: Any) -> None:
        # called by the scheduler thread that also calls general_work (see the module docstring)
        pdu = split_pdu(msg)
        if pdu is None or not pmt.is_c32vector(pdu[1]):
            self.frames_not_symbols += 1
            if self.frames_not_symbols == 1:
                log.error("OFDM TX: dropped a message that is not a PDU of complex symbols (later ones are dropped "
                          "too, counted in frames_not_symbols): connect a JSCC or separate encoder")
            return
        meta, vec = pdu
        length = pmt.length(vec)
        if length > self.max_payload_len:
            self._too_long(length)
            return
        fn = meta.get(FRAME_NUMBER_KEY)
        own = isinstance(fn, (int, np.integer)) and not isinstance(fn, bool)  # as header_framer: integers only
        self._queue.append((c32_array(vec), int(fn) if own else None))

    def general_work(self, input_items: list[np.ndarray], output_items: list[np.ndarray]) -> int:
        out = output_items[0]
        payloads: list[np.ndarray] = []
        fns: list[int] = []
        used = 0
        while self._queue and used + self._hdr_len + self._framed_len(len(self._queue[0][0])) <= len(out):
            payload, fn = self._queue.popleft()
            payloads.append(payload)
            fns.append(self._frame_number(fn))
            used += self._hdr_len + self._framed_len(len(payload))
        return self._write(out, payloads, fns)


class ofdm_tx(gr.hier_block2):  # noqa: N801 (GNU Radio block naming)
    """Analog-payload OFDM transmitter.

    ``input_type='pdu'``: message port ``pdus`` takes (metadata, c32vector) PDUs, metadata may hold
    ``frame_number``. ``input_type='stream'``: a complex tagged stream (``len_tag_key`` tags give
    packet lengths, optional ``frame_number`` tags). Output: complex baseband bursts, each padded
    with ``pad_before``/``pad_after`` zeros (per-subcarrier Es = 1 for unit-power symbols)."""

    def __init__(self, input_type: str = "pdu", len_tag_key: str = "packet_len", pad_before: int = 160,
                 pad_after: int = 160, first_frame_number: int = 0, max_payload_len: int = DEFAULT_MAX_PAYLOAD_LEN,
                 midamble: int = 0) -> None:
        input_type = one_of("ofdm_tx", "input_type", input_type, ("pdu", "stream"))
        midamble = midamble_interval("ofdm_tx", midamble)
        max_payload_len = payload_limit("ofdm_tx", max_payload_len)
        pad_before = as_int("ofdm_tx", "pad_before", pad_before, 0, hint=" (zero samples before each burst)")
        pad_after = as_int("ofdm_tx", "pad_after", pad_after, 0, hint=" (zero samples after each burst)")
        if not len_tag_key:
            raise UsageError("ofdm_tx: len_tag_key must be a tag name such as packet_len, got ''")
        in_sig = gr.io_signature(0, 0, 0) if input_type == "pdu" else gr.io_signature(1, 1, gr.sizeof_gr_complex)
        gr.hier_block2.__init__(self, "semjscc_ofdm_tx", in_sig, gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.fmt = FrameFormat(pad_before=pad_before, pad_after=pad_after, midamble=midamble)
        num = self.fmt.numerology
        max_syms = self.fmt.frame_symbols(max_payload_len)
        framer = pdu_framer if input_type == "pdu" else header_framer
        self.framer = framer(len_tag_key, first_frame_number, max_payload_len, self.fmt)
        self.allocator = digital.ofdm_carrier_allocator_cvc(
            num.fft_len, [list(num.data_carriers)], [list(num.pilot_carriers)], [list(num.pilot_values)],
            [list(num.sync_word1), list(num.sync_word2)], len_tag_key, False)  # sync words are in bin order
        # unshifted inverse FFT; the "window" multiplies the input by 1/sqrt(N): a unitary IFFT
        self.ifft = fft.fft_vcc(num.fft_len, False, [1.0 / np.sqrt(num.fft_len)] * num.fft_len, False, 1)
        self.prefixer = digital.ofdm_cyclic_prefixer(num.fft_len, num.symbol_len, 0, len_tag_key)
        self.shaper = digital.burst_shaper_cc([], pad_before, pad_after, False, len_tag_key)
        min_output_buffer(self.allocator, 2 * max_syms)
        min_output_buffer(self.ifft, 2 * max_syms)
        min_output_buffer(self.prefixer, 2 * max_syms * num.symbol_len)
        min_output_buffer(self.shaper, 2 * (max_syms * num.symbol_len + pad_before + pad_after))
        if input_type == "pdu":
            self.message_port_register_hier_in("pdus")
            self.msg_connect(self, "pdus", self.framer, "pdus")
        else:
            self.connect(self, self.framer)
        self.connect(self.framer, self.allocator, self.ifft, self.prefixer, self.shaper, self)
        self.max_payload_len = max_payload_len

    @property
    def frames_framed(self) -> int:
        return self.framer.frames_framed
