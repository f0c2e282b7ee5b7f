"""Frame format of the analog-payload OFDM PHY, defined once for the numpy reference and the GNU Radio blocks.

One burst (every OFDM symbol = cyclic prefix + FFT window, ``numerology.symbol_len`` samples)::

    [sync_word1][sync_word2][header 0][header 1][payload 0] ... [payload P-1]

* ``sync_word1`` / ``sync_word2``: the numerology's preamble (timing + fractional CFO; integer CFO +
  channel estimate). No pilots on them.
* Header: 48 information bits, MSB first::

      bits  0..15  frame number (uint16, wraps)
      bits 16..17  pilot pattern (0: pilots only, as every frame before mid-ambles existed; 1, 2, 3:
                   a mid-amble every 8, 4, 2 payload symbols, ``MIDAMBLE_INTERVALS``)
      bits 18..31  payload length in complex symbols (0 .. 16383)
      bits 32..47  CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over the 4 bytes above

  (Bits 16..31 were one 16-bit length. Every frame of pattern 0 with a length below 16384 -- all
  any block here sends or accepts, 8192 by default -- reads the same as before, so old recordings
  still decode.)

  encoded with the K=7 rate-1/2 convolutional code (generators 133, 171 octal, the 802.11 code) in
  *tail-biting* mode (encoder starts in the state its last 6 bits leave it in, so no tail bits),
  giving 96 coded bits = exactly 2 OFDM symbols x 48 data carriers of BPSK (bit 0 -> +1). A block
  interleaver spreads neighbouring coded bits 6 positions (about 7 carriers) apart for frequency
  diversity under multipath. Header symbols carry the pilots like payload symbols.
  Why this code: at Es/N0 = 0 dB per subcarrier (where the analog JSCC payload is still useful)
  uncoded BPSK has a bit error rate of 8 %, so a 48-bit header would almost never pass its CRC;
  rate-1/2 repetition only buys 3 dB (about 2 % BER, header error rate ~ 65 %). The K=7 code with
  soft Viterbi decoding has ~5 dB of coding gain there: measured header error rate 0.5 % at 0 dB
  (AWGN, known channel), for the same 2 OFDM symbols of overhead; with the receiver's own sync and
  channel estimates ~95 % of bursts are received at 0 dB and all of them from ~2 dB.
  Tail-biting keeps it at exactly 96 coded bits.
* Payload: ``ceil(n / 48)`` OFDM symbols, the n complex JSCC symbols in order on the data carriers
  (carrier order = ``numerology.data_carriers``, ascending), pilots on the pilot carriers, the last
  symbol zero-padded. No mapping or quantisation: the samples are the encoder's analog values.
* Mid-ambles (pilot pattern 1..3, ``FrameFormat(midamble=...)``): after every ``midamble`` payload
  symbols, but never after the last, one fully known symbol: sync_word2's values on the data
  carriers and the usual pilots. Time-varying channels: the receiver then sees the whole band every
  few symbols instead of four pilots (:mod:`semjscc.phy.tracking`); it costs one symbol in
  ``midamble + 1`` (about 9 % at 8, 20 % at 4 for the shipped 512-symbol frames). Inside the GNU
  Radio TX the header framer inserts those 48 known values like data, so the stock carrier
  allocator places them and its pilots, the same samples as :mod:`semjscc.phy.tx`.

Bursts are separated by zero padding (``pad_before``/``pad_after`` samples) so that the receiver
sees a clean Schmidl & Cox plateau for each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from semjscc.phy.numerology import DEFAULT_NUMEROLOGY, OFDMNumerology

HEADER_INFO_BITS = 48  # 16 frame number + 2 pilot pattern + 14 length + 16 CRC
HEADER_CODED_BITS = 2 * HEADER_INFO_BITS  # rate 1/2, tail-biting
MAX_FRAME_NUMBER = 0xFFFF
PATTERN_SHIFT = 14  # the pilot pattern code sits above the 14 length bits of the 16-bit field
MAX_PAYLOAD_LEN = (1 << PATTERN_SHIFT) - 1
# Pilot pattern code (header) -> payload symbols between mid-ambles; 0 = no mid-amble.
MIDAMBLE_INTERVALS = (0, 8, 4, 2)
# What an OFDM TX/RX block carries unless told otherwise: buffers are sized for it (the header allows more).
DEFAULT_MAX_PAYLOAD_LEN = 8192

_CRC_POLY, _CRC_INIT = 0x1021, 0xFFFF
_G = (0o133, 0o171)  # K=7 generators; bit i of a generator taps the input delayed by i steps
_K = 7
_N_STATES = 1 << (_K - 1)


# --- CRC-16/CCITT-FALSE ----------------------------------------------------------------------
def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (check value of b"123456789" is 0x29B1)."""
    crc = _CRC_INIT
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ _CRC_POLY) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def _crc_affine() -> tuple[np.ndarray, np.ndarray]:
    """A CRC is affine over GF(2): crc(bits) = A @ bits + c. Lets a whole batch of headers be
    checked with one matrix product instead of a Python loop per frame."""
    def crc_of_bits(bits: np.ndarray) -> np.ndarray:
        data = np.packbits(bits.astype(np.uint8)).tobytes()
        return _int_to_bits(crc16(data), 16)

    c = crc_of_bits(np.zeros(32, np.uint8))
    A = np.stack([crc_of_bits(np.eye(32, dtype=np.uint8)[i]) ^ c for i in range(32)], axis=1)
    return A.astype(np.int64), c.astype(np.int64)


def _int_to_bits(value: int, n: int) -> np.ndarray:
    return np.array([(value >> (n - 1 - i)) & 1 for i in range(n)], dtype=np.uint8)


_CRC_A, _CRC_C = _crc_affine()
_WEIGHTS16 = 1 << np.arange(15, -1, -1)


def header_bits(frame_number: int | np.ndarray, payload_len: int | np.ndarray,
                pattern: int | np.ndarray = 0) -> np.ndarray:
    """Header information bits, shape (..., 48) uint8, for one or a batch of frames."""
    fn = np.asarray(frame_number, dtype=np.int64)
    ln = np.asarray(payload_len, dtype=np.int64)
    pat = np.asarray(pattern, dtype=np.int64)
    if np.any((fn < 0) | (fn > MAX_FRAME_NUMBER)):
        raise ValueError("frame number must be 0..65535")
    if np.any((ln < 0) | (ln > MAX_PAYLOAD_LEN)):
        raise ValueError(f"payload length must be 0..{MAX_PAYLOAD_LEN} complex symbols")
    if np.any((pat < 0) | (pat >= len(MIDAMBLE_INTERVALS))):
        raise ValueError(f"pilot pattern must be 0..{len(MIDAMBLE_INTERVALS) - 1}")
    fn, ln = np.broadcast_arrays(fn, ln | (pat << PATTERN_SHIFT))
    shifts = np.arange(15, -1, -1)
    body = np.concatenate([(fn[..., None] >> shifts) & 1, (ln[..., None] >> shifts) & 1], axis=-1)
    crc = (body @ _CRC_A.T + _CRC_C) % 2
    return np.concatenate([body, crc], axis=-1).astype(np.uint8)


def parse_header_bits(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(..., 48) bits -> (frame_number, payload_len, pilot pattern, crc_ok) arrays."""
    b = np.asarray(bits, dtype=np.int64) & 1
    if b.shape[-1] != HEADER_INFO_BITS:
        raise ValueError(f"a header has {HEADER_INFO_BITS} bits")
    fn = b[..., :16] @ _WEIGHTS16
    field = b[..., 16:32] @ _WEIGHTS16
    crc_ok = np.all((b[..., :32] @ _CRC_A.T + _CRC_C) % 2 == b[..., 32:], axis=-1)
    return fn, field & MAX_PAYLOAD_LEN, field >> PATTERN_SHIFT, crc_ok


# --- K=7 tail-biting convolutional code ------------------------------------------------------
def _parity(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    for s in (4, 2, 1):
        x ^= x >> s
    return x & 1


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Tail-biting rate-1/2 encoding of (..., n) bits -> (..., 2n), output order c0_0 c1_0 c0_1 ..."""
    u = np.asarray(bits, dtype=np.int64) & 1
    reg = np.zeros_like(u)
    for i in range(_K):  # register bit i = input delayed by i (circularly: tail-biting)
        reg |= np.roll(u, i, axis=-1) << i
    out = np.stack([_parity(reg & g) for g in _G], axis=-1)
    return out.reshape(*u.shape[:-1], 2 * u.shape[-1]).astype(np.uint8)


def _trellis() -> tuple[np.ndarray, np.ndarray]:
    """For each next state: its two predecessor states and the +-1 code symbols on those branches.

    State = the last 6 inputs (bit 0 newest); next = (2*state + u) & 63, so u = next & 1."""
    nxt = np.arange(_N_STATES)
    prev = np.stack([nxt >> 1, (nxt >> 1) | (_N_STATES >> 1)], axis=1)  # (64, 2)
    reg = (nxt & 1)[:, None] | (prev << 1)
    signs = np.stack([1 - 2 * _parity(reg & g) for g in _G], axis=-1).astype(np.float64)  # (64, 2, 2)
    return prev, signs


_PREV, _SIGNS = _trellis()
# index 0..3 of (+l0+l1, +l0-l1, -l0+l1, -l0-l1) for each (branch, next state), branch-major
_BM_CODE = ((_SIGNS[..., 0] < 0) * 2 + (_SIGNS[..., 1] < 0)).astype(np.int64).T.reshape(-1)


def viterbi_decode(llr: np.ndarray, wrap: int = 30) -> np.ndarray:
    """Soft-decision tail-biting Viterbi decoding of a batch.

    ``llr``: (K, 2n) soft values in code order, positive = bit 0. Returns (K, n) bits.
    Tail-biting is handled by the wrap-around method: decode the circular sequence extended by
    ``wrap`` steps on each side (about 5 constraint lengths, so the survivors have merged) and keep
    the middle; near-ML for short blocks at a fraction of the cost of trying all 64 start states."""
    llr = np.nan_to_num(np.asarray(llr, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    k, m = llr.shape
    n = m // 2
    steps = llr.reshape(k, n, 2)
    w = min(wrap, n)
    ext = np.concatenate([steps[:, n - w:], steps, steps[:, :w]], axis=1) if w else steps
    t_total = ext.shape[1]
    half = _N_STATES // 2
    # A branch metric is one of +-l0 +-l1: build the 4 per step and gather, laid out (T, branch, K, j, u)
    # so that each step reads contiguous memory. Butterflies: next states 2j and 2j+1 both come from
    # j (branch 0) or j+32 (branch 1), so add-compare-select is two broadcast adds on (K, 32, 2).
    e = np.ascontiguousarray(ext.transpose(1, 0, 2))
    combos = np.stack([e[..., 0] + e[..., 1], e[..., 0] - e[..., 1], e[..., 1] - e[..., 0], -e[..., 0] - e[..., 1]],
                      axis=-1)
    bm = np.take(combos, _BM_CODE, axis=2).reshape(t_total, k, 2, half, 2).transpose(0, 2, 1, 3, 4).copy()
    pm = np.zeros((k, _N_STATES), dtype=np.float32)
    decisions = np.empty((t_total, k, half, 2), dtype=bool)
    for t in range(t_total):
        lo = pm[:, :half, None] + bm[t, 0]
        hi = pm[:, half:, None] + bm[t, 1]
        np.greater(hi, lo, out=decisions[t])
        pm = np.maximum(lo, hi).reshape(k, _N_STATES)
        if t % 16 == 15:
            pm -= pm.max(axis=1, keepdims=True)  # keep float32 metrics well conditioned
    decisions = decisions.reshape(t_total, k, _N_STATES)
    rows = np.arange(k)
    state = pm.argmax(axis=1)
    out = np.empty((k, t_total), dtype=np.uint8)
    for t in range(t_total - 1, -1, -1):
        out[:, t] = state & 1
        state = (state >> 1) | (decisions[t, rows, state].astype(np.int64) << (_K - 2))
    return out[:, w:w + n]


# --- interleaver and header symbols ----------------------------------------------------------
def _interleaver(n: int = HEADER_CODED_BITS, columns: int = 16) -> np.ndarray:
    """perm[i] = slot of coded bit i (slots fill header symbol 0's data carriers, then symbol 1's)."""
    i = np.arange(n)
    return (i % columns) * (n // columns) + i // columns


HEADER_PERM = _interleaver()


def encode_header(frame_number: int | np.ndarray, payload_len: int | np.ndarray,
                  pattern: int | np.ndarray = 0) -> np.ndarray:
    """BPSK header symbols in slot order, shape (..., 96) complex (two OFDM symbols' data carriers)."""
    coded = (header_bits(frame_number, payload_len, pattern).astype(np.int64) @ _G_MATRIX.T) % 2  # = conv_encode
    slots = np.empty(coded.shape, dtype=np.complex64)
    slots[..., HEADER_PERM] = 1.0 - 2.0 * coded
    return slots


def _gf2_left_inverse(gen: np.ndarray) -> np.ndarray:
    """B with B @ gen = I (mod 2) for a full-column-rank (m, n) GF(2) matrix, by Gauss-Jordan on gen^T."""
    n, m = gen.shape[1], gen.shape[0]
    A = np.concatenate([gen.T.copy() % 2, np.eye(n, dtype=np.int64)], axis=1)  # (n, m + n)
    pivots = []
    row = 0
    for col in range(m):
        hit = np.flatnonzero(A[row:, col]) + row
        if not len(hit):
            continue
        A[[row, hit[0]]] = A[[hit[0], row]]
        others = np.flatnonzero(A[:, col])
        others = others[others != row]
        A[others] ^= A[row]
        pivots.append(col)
        row += 1
        if row == n:
            break
    if row < n:
        raise ValueError("matrix is not full column rank")
    # With E the row operations, E @ gen^T is the identity on the pivot columns: E = (gen[pivots]^T)^-1.
    # So B = E^T on the pivot columns, zero elsewhere, gives B @ gen = gen[pivots]^-1 @ gen[pivots] = I.
    B = np.zeros((n, m), dtype=np.int64)
    B[:, pivots] = A[:, m:].T
    return B


_G_MATRIX = conv_encode(np.eye(HEADER_INFO_BITS, dtype=np.uint8)).T.astype(np.int64)  # (96, 48)
_G_INVERSE = _gf2_left_inverse(_G_MATRIX)  # (48, 96)


def decode_header(slot_llr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Soft values in slot order (K, 96), positive = +1 -> (frame_number, payload_len, pilot pattern,
    crc_ok, bits).

    Fast path: when the hard decisions already form a codeword (virtually always above a few dB)
    the bits follow from a GF(2) left inverse of the generator matrix, a single matrix product for
    the batch; only the rest goes through the Viterbi decoder."""
    llr = np.atleast_2d(np.asarray(slot_llr, dtype=np.float32))[:, HEADER_PERM]
    hard = (llr < 0).astype(np.int64)
    bits = (hard @ _G_INVERSE.T) % 2
    clean = np.all((bits @ _G_MATRIX.T) % 2 == hard, axis=1)
    if not clean.all():
        bits[~clean] = viterbi_decode(llr[~clean])
    fn, ln, pat, ok = parse_header_bits(bits)
    return fn, ln, pat, ok, bits.astype(np.uint8)


# --- frame layout ----------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameFormat:
    """Burst layout on top of an :class:`OFDMNumerology` (see the module docstring)."""

    numerology: OFDMNumerology = field(default_factory=lambda: DEFAULT_NUMEROLOGY)
    pad_before: int = 160  # zero samples before / after each burst (TX side)
    pad_after: int = 160
    n_preamble: int = 2
    n_header: int = HEADER_CODED_BITS // 48
    midamble: int = 0  # payload symbols between mid-ambles (one of MIDAMBLE_INTERVALS; 0 = none)

    def __post_init__(self) -> None:
        if self.numerology.n_data * self.n_header != HEADER_CODED_BITS:
            raise ValueError("the header needs exactly 96 data carriers over its symbols")
        if self.pad_before < 0 or self.pad_after < 0:
            raise ValueError("padding must be >= 0")
        if self.midamble not in MIDAMBLE_INTERVALS:
            raise ValueError(f"midamble must be one of {', '.join(map(str, MIDAMBLE_INTERVALS))} payload symbols "
                             f"(0 = none), got {self.midamble!r}")

    @property
    def n_overhead(self) -> int:
        """OFDM symbols before the payload."""
        return self.n_preamble + self.n_header

    @property
    def pattern(self) -> int:
        """The pilot pattern code the header carries for this format's mid-amble."""
        return MIDAMBLE_INTERVALS.index(self.midamble)

    def n_payload_symbols(self, n_channel_uses: int) -> int:
        """Payload symbols carrying data (mid-ambles not counted)."""
        return self.numerology.payload_symbols(n_channel_uses)

    def n_midambles(self, n_channel_uses: int, midamble: int | None = None) -> int:
        """Mid-ambles in a frame of ``n_channel_uses`` (``midamble``: an interval other than the format's)."""
        every = self.midamble if midamble is None else midamble
        return (self.n_payload_symbols(n_channel_uses) - 1) // every if every and n_channel_uses else 0

    def midamble_rows(self, n_channel_uses: int, midamble: int | None = None) -> np.ndarray:
        """For each OFDM symbol after the header: True where it is a mid-amble."""
        every = self.midamble if midamble is None else midamble
        n = self.n_payload_symbols(n_channel_uses) + self.n_midambles(n_channel_uses, every)
        return (np.arange(n) % (every + 1) == every) if every else np.zeros(n, dtype=bool)

    def frame_symbols(self, n_channel_uses: int, midamble: int | None = None) -> int:
        """OFDM symbols of one burst: preamble, header, payload and mid-ambles."""
        return self.n_overhead + self.n_payload_symbols(n_channel_uses) + self.n_midambles(n_channel_uses, midamble)

    def frame_samples(self, n_channel_uses: int, midamble: int | None = None) -> int:
        """Samples of one burst without padding."""
        return self.frame_symbols(n_channel_uses, midamble) * self.numerology.symbol_len

    def burst_samples(self, n_channel_uses: int) -> int:
        return self.pad_before + self.frame_samples(n_channel_uses) + self.pad_after


DEFAULT_FRAME_FORMAT = FrameFormat()
