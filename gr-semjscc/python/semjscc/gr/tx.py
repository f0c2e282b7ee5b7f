"""OFDM transmitter for analog JSCC payloads, built from gr-digital's own OFDM primitives.

    [PDU] -> pdu_to_tagged_stream -> header_framer -> ofdm_carrier_allocator_cvc -> fft_vcc (inverse)
          -> ofdm_cyclic_prefixer -> burst_shaper_cc (zero padding) -> out

Everything after the framer is stock GNU Radio: the carrier allocator places any complex values
on the data carriers (it never maps bits), so it carries analog symbols unchanged and adds the
pilots and both sync words. The only custom piece is ``header_framer``: GNU Radio's header
generators format bytes (12-bit counter, CRC-8, no FEC) and need a byte stream, while this PHY's
header (16-bit frame number, CRC-16, K=7 tail-biting code, see :mod:`semjscc.phy.frame`) must be
prepended to a stream of complex symbols. With ``midamble`` the framer also puts a mid-amble's 48
known values after every ``midamble`` payload symbols' worth of data; the allocator treats them as
data and adds its pilots, which is exactly a mid-amble symbol. The output matches :func:`semjscc.phy.tx.modulate_burst`
sample for sample (unitary IFFT: the 1/sqrt(N) scale is the FFT block's window).
"""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import digital, fft, gr, pdu

from semjscc.errors import UsageError
from semjscc.gr.params import as_int, midamble_interval, one_of, payload_limit
from semjscc.gr.pdus import log
from semjscc.phy.frame import (
    DEFAULT_FRAME_FORMAT,
    DEFAULT_MAX_PAYLOAD_LEN,
    MAX_FRAME_NUMBER,
    FrameFormat,
    encode_header,
)

FRAME_NUMBER_KEY = "frame_number"


class header_framer(gr.basic_block):  # noqa: N801 (GNU Radio block naming)
    """Tagged stream of JSCC symbols -> tagged stream of [96 BPSK header symbols, payload].

    The frame number comes from a ``frame_number`` tag on a packet's first item (PDU metadata
    becomes such a tag in ``pdu_to_tagged_stream``) or else from an internal counter. All complete
    packets in the input buffer are framed in one vectorised pass."""

    def __init__(self, len_tag_key: str = "packet_len", first_frame_number: int = 0,
                 max_payload_len: int = DEFAULT_MAX_PAYLOAD_LEN, fmt: FrameFormat = DEFAULT_FRAME_FORMAT) -> None:
        self.fmt = fmt
        max_payload_len = payload_limit("header_framer", max_payload_len)
        first_frame_number = as_int("header_framer", "first_frame_number", first_frame_number)
        gr.basic_block.__init__(self, name="semjscc_header_framer", in_sig=[np.complex64], out_sig=[np.complex64])
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self._len_key = pmt.intern(len_tag_key)
        self._fn_key = pmt.intern(FRAME_NUMBER_KEY)
        self._next = first_frame_number % (MAX_FRAME_NUMBER + 1)
        self._hdr_len = fmt.n_header * fmt.numerology.n_data
        self.max_payload_len = max_payload_len
        self._max_out = self._hdr_len + self._framed_len(max_payload_len)
        self.frames_framed = 0
        self.frames_too_long = 0  # packets longer than max_payload_len, dropped (logged once)
        self.set_min_output_buffer(2 * self._max_out)
        # Only run once there is room for a longest packet: downstream tagged-stream blocks free
        # one packet at a time, and waking per packet would cost a Python call per packet.
        self.set_min_noutput_items(self._max_out)

    def _framed_len(self, length: int) -> int:
        """Items after the header for a packet of ``length`` symbols: the data and its mid-ambles."""
        return length + self.fmt.n_midambles(length) * self.fmt.numerology.n_data

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
        packets: list[tuple[int, int, int]] = []  # (input position, length, frame number)
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
            if fn_pmt is not None and pmt.is_integer(fn_pmt):
                fn = pmt.to_long(fn_pmt) % (MAX_FRAME_NUMBER + 1)
            else:
                fn = self._next
            self._next = (fn + 1) % (MAX_FRAME_NUMBER + 1)
            packets.append((start, length, fn))
            used += self._hdr_len + self._framed_len(length)
            pos = start + length
        if packets:
            headers = encode_header(np.array([p[2] for p in packets]), np.array([p[1] for p in packets]),
                                    self.fmt.pattern)
            w0, o = self.nitems_written(0), 0
            for (start, length, _fn), hdr in zip(packets, headers, strict=True):
                n = self._framed_len(length)
                self.add_item_tag(0, w0 + o, self._len_key, pmt.from_long(self._hdr_len + n))
                out[o:o + self._hdr_len] = hdr
                out[o + self._hdr_len:o + self._hdr_len + n] = self._with_midambles(inp[start:start + length])
                o += self._hdr_len + n
            self.frames_framed += len(packets)
        self.consume(0, pos)
        return used

    def _with_midambles(self, data: np.ndarray) -> np.ndarray:
        """``data`` with a mid-amble's known values after every ``midamble`` symbols' worth (not at the end)."""
        every = self.fmt.midamble
        n_mid = self.fmt.n_midambles(len(data))
        if not n_mid:
            return data
        nd = self.fmt.numerology.n_data
        chunk = every * nd
        parts = []
        for i in range(n_mid):
            parts += [data[i * chunk:(i + 1) * chunk], self.fmt.numerology.midamble_values]
        parts.append(data[n_mid * chunk:])
        return np.concatenate(parts)

    def _too_long(self, length: int) -> None:
        self.frames_too_long += 1
        if self.frames_too_long == 1:
            log.error("OFDM TX: dropped a %d-symbol packet, longer than max_payload_len %d (later ones are dropped "
                      "too, counted in frames_too_long): set the OFDM TX max_payload_len to at least %d, or use a "
                      "model with fewer symbols", length, self.max_payload_len, length)


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
        self.framer = header_framer(len_tag_key, first_frame_number, max_payload_len, self.fmt)
        self.allocator = digital.ofdm_carrier_allocator_cvc(
            num.fft_len, [list(num.data_carriers)], [list(num.pilot_carriers)], [list(num.pilot_values)],
            [list(num.sync_word1), list(num.sync_word2)], len_tag_key, False)  # sync words are in bin order
        # unshifted inverse FFT; the "window" multiplies the input by 1/sqrt(N): a unitary IFFT
        self.ifft = fft.fft_vcc(num.fft_len, False, [1.0 / np.sqrt(num.fft_len)] * num.fft_len, False, 1)
        self.prefixer = digital.ofdm_cyclic_prefixer(num.fft_len, num.symbol_len, 0, len_tag_key)
        self.shaper = digital.burst_shaper_cc([], pad_before, pad_after, False, len_tag_key)
        self.allocator.set_min_output_buffer(2 * max_syms)
        self.ifft.set_min_output_buffer(2 * max_syms)
        self.prefixer.set_min_output_buffer(2 * max_syms * num.symbol_len)
        self.shaper.set_min_output_buffer(2 * (max_syms * num.symbol_len + pad_before + pad_after))
        if input_type == "pdu":
            self.message_port_register_hier_in("pdus")
            self.to_stream = pdu.pdu_to_tagged_stream(gr.types.complex_t, len_tag_key)
            self.to_stream.set_min_output_buffer(2 * max_payload_len)
            self.msg_connect(self, "pdus", self.to_stream, "pdus")
            self.connect(self.to_stream, self.framer)
        else:
            self.to_stream = None
            self.connect(self, self.framer)
        self.connect(self.framer, self.allocator, self.ifft, self.prefixer, self.shaper, self)
        self.max_payload_len = max_payload_len

    @property
    def frames_framed(self) -> int:
        return self.framer.frames_framed
