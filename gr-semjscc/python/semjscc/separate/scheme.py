"""Separate source-channel coding under the JSCC's channel-use budget: codec bytes -> frame ->
scrambler -> 802.11 LDPC (shortened to fit) -> bit interleaver -> Gray QAM, exactly ``n_cu``
complex symbols per image, the same count the JSCC sends at that k/n.

Budget accounting (``plan_frame``): ``n_cu * bits_per_symbol`` coded bits are available; they
are split into the fewest codewords of the chosen length that fit, each shortened (information
bits fixed to 0 and not sent) to the same transmitted length; the few coded bits left over
(< number of codewords) and unused symbols carry filler. Information bits per image are thus
``<= n_cu * bits_per_symbol * rate`` (shortening only lowers the effective rate). The frame
carries a length field (and, for per-image quality, a quality index), then the codec payload.

Receiver: max-log demapper, deinterleaver, LDPC decoding of each codeword. The image is
delivered only if every codeword that carries frame bits passes its syndrome check and the
codec decodes it; otherwise the receiver outputs the *fallback image* (the dataset mean) and
counts why. An image whose bitstream does not fit is sent as "no image" (length 0) and counted.

OFDM: the channel hands over MMSE- (or ZF-) equalised symbols and the SNR only, the same as
the JSCC decoder gets, so per-symbol reliabilities are estimated blindly, per image and
subcarrier (symbol i rides data subcarrier i mod 48): the equaliser's shrinkage a = g/(g+N0)
starts from the received power (E|y|^2 = a for unit-power MMSE output; g is capped at 10), then
two decision-directed least-squares passes estimate each subcarrier's complex gain (which also
removes the phase error of the channel's one-symbol LS estimate) and the residual gives the
noise variance (averaged over +-2 neighbouring subcarriers, floored by the a(1-a) model). On a
fixed multipath channel this matches an oracle that knows the true subcarrier gains.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from semjscc.data.imaging import to_float_nchw, to_uint8_nhwc
from semjscc.phy.numerology import DEFAULT_NUMEROLOGY
from semjscc.phy.symbols import from_pairs, noise_power, to_pairs
from semjscc.separate.codecs import Codec, CodecError
from semjscc.separate.ldpc import wifi_code
from semjscc.separate.modem import bits_per_symbol, demap, modulate, nearest_point
from semjscc.separate.wifi_ldpc_tables import LENGTHS

_SCRAMBLE_SEED = 0x5EB
_INTERLEAVE_SEED = 0x1EA
_G_CAP = 10.0


@dataclass(frozen=True)
class FrameLayout:
    """How one image's ``n_cu`` channel uses are filled."""

    n_cu: int
    modulation: str
    rate: str  # the mother code's rate
    n: int  # LDPC codeword length before shortening
    n_cw: int  # codewords per image
    shorten: int  # information bits removed from each codeword
    k_cw: int  # information bits per codeword after shortening

    @property
    def bits_per_symbol(self) -> int:
        return bits_per_symbol(self.modulation)

    @property
    def coded_capacity(self) -> int:
        return self.n_cu * self.bits_per_symbol

    @property
    def n_tx(self) -> int:
        """Transmitted bits per codeword."""
        return self.n - self.shorten

    @property
    def info_bits(self) -> int:
        """Information bits per image (the frame's size)."""
        return self.n_cw * self.k_cw

    @property
    def effective_rate(self) -> float:
        return self.info_bits / self.coded_capacity

    def label(self) -> str:
        return f"{self.modulation} r{self.rate} n{self.n}x{self.n_cw}"


def plan_frame(n_cu: int, modulation: str, rate: str, lengths: tuple[int, ...] = LENGTHS) -> FrameLayout | None:
    """The layout with the most information bits (ties: the longer, stronger code), or None if
    not even one shortened codeword fits."""
    capacity = n_cu * bits_per_symbol(modulation)
    best: FrameLayout | None = None
    for n in sorted(lengths):
        code = wifi_code(n, rate)
        n_cw = -(-capacity // n)
        n_tx = capacity // n_cw
        shorten = n - n_tx
        k_cw = code.k - shorten
        if k_cw <= 0:
            continue
        lay = FrameLayout(n_cu, modulation, rate, n, n_cw, shorten, k_cw)
        if best is None or lay.info_bits >= best.info_bits:
            best = lay
    return best


# --- bit-level frame ------------------------------------------------------------------------

def length_field_bits(layout: FrameLayout, quality_bits: int = 0) -> int:
    """Bits for the payload length in bytes: enough for the largest payload the frame holds."""
    max_bytes = max(1, (layout.info_bits - quality_bits) // 8)
    return int(max_bytes).bit_length()


def _scrambler(n_bits: int) -> np.ndarray:
    """Fixed pseudo-random whitening sequence (known to both ends): keeps QAM symbols at unit
    average power and the LDPC input balanced whatever the codec emits."""
    return np.random.default_rng(_SCRAMBLE_SEED).integers(0, 2, n_bits, dtype=np.uint8)


def _interleaver(n_bits: int) -> np.ndarray:
    """Fixed bit permutation: spreads each codeword over all symbols, bit positions and OFDM
    subcarriers (bit-interleaved coded modulation)."""
    return np.random.default_rng(_INTERLEAVE_SEED).permutation(n_bits)


def _to_bits(value: int, width: int) -> np.ndarray:
    return ((value >> np.arange(width - 1, -1, -1)) & 1).astype(np.uint8)


def _from_bits(bits: np.ndarray) -> int:
    return int(np.dot(bits.astype(np.int64), 1 << np.arange(len(bits) - 1, -1, -1)))


def pack_frame(payload: bytes | None, layout: FrameLayout, quality_index: int = 0,
               quality_bits: int = 0) -> np.ndarray:
    """Frame bits (info_bits,) before scrambling: [length | quality index | payload | zeros].
    ``payload`` None (or not fitting) gives length 0: "no image, use the fallback"."""
    lb = length_field_bits(layout, quality_bits)
    frame = np.zeros(layout.info_bits, dtype=np.uint8)
    if payload is None or not fits(len(payload), layout, quality_bits) or len(payload) == 0:
        return frame
    frame[:lb] = _to_bits(len(payload), lb)
    frame[lb : lb + quality_bits] = _to_bits(quality_index, quality_bits)
    body = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))
    frame[lb + quality_bits : lb + quality_bits + body.size] = body
    return frame


def frame_bits_needed(n_bytes: np.ndarray | int, layout: FrameLayout, quality_bits: int = 0) -> np.ndarray:
    return length_field_bits(layout, quality_bits) + quality_bits + 8 * np.asarray(n_bytes)


def fits(n_bytes: np.ndarray | int, layout: FrameLayout, quality_bits: int = 0) -> np.ndarray:
    n_bytes = np.asarray(n_bytes)
    return (n_bytes > 0) & (frame_bits_needed(n_bytes, layout, quality_bits) <= layout.info_bits)


def unpack_frame(frame: np.ndarray, layout: FrameLayout, quality_bits: int = 0) -> tuple[int, int, bytes]:
    """(payload length, quality index, payload bytes); length 0 means "no image"."""
    lb = length_field_bits(layout, quality_bits)
    n = _from_bits(frame[:lb])
    qi = _from_bits(frame[lb : lb + quality_bits]) if quality_bits else 0
    start = lb + quality_bits
    if n == 0 or start + 8 * n > frame.size:
        return (0 if n == 0 else -1), qi, b""
    return n, qi, np.packbits(frame[start : start + 8 * n]).tobytes()


def codewords_used(n_bytes: np.ndarray, layout: FrameLayout, quality_bits: int = 0) -> np.ndarray:
    """Codewords that carry frame bits (the receiver needs only those to decode)."""
    need = frame_bits_needed(np.maximum(n_bytes, 0), layout, quality_bits)
    return np.clip(-(-need // layout.k_cw), 1, layout.n_cw)


# --- PHY: frames <-> symbols ----------------------------------------------------------------

def phy_encode(frames: np.ndarray, layout: FrameLayout) -> np.ndarray:
    """frames (B, info_bits) -> complex64 symbols (B, n_cu)."""
    b = frames.shape[0]
    code = wifi_code(layout.n, layout.rate)
    scrambled = frames ^ _scrambler(layout.info_bits)
    cws = code.encode_shortened(scrambled.reshape(b * layout.n_cw, layout.k_cw), layout.shorten)
    coded = cws.reshape(b, layout.n_cw * layout.n_tx)
    cap = layout.coded_capacity
    filler = np.random.default_rng(_SCRAMBLE_SEED + 1).integers(0, 2, cap - coded.shape[1], dtype=np.uint8)
    stream = np.concatenate([coded, np.broadcast_to(filler, (b, filler.size))], axis=1)
    inter = np.empty_like(stream)
    inter[:, _interleaver(cap)] = stream
    return modulate(inter, layout.modulation)


def _smooth_carriers(per_carrier: np.ndarray, width: int = 5) -> np.ndarray:
    """Moving average over neighbouring subcarriers (B, n_data), renormalised at the band edges."""
    kernel = np.ones(width)
    num = np.stack([np.convolve(row, kernel, mode="same") for row in per_carrier])
    return num / np.convolve(np.ones(per_carrier.shape[1]), kernel, mode="same")


def _per_carrier_mean(values: np.ndarray, nd: int) -> np.ndarray:
    """(B, k) per-symbol values -> (B, nd) mean over the image's OFDM symbols on each subcarrier."""
    b, k = values.shape
    n_sym = -(-k // nd)
    grid = np.zeros((b, n_sym * nd), dtype=values.dtype)
    grid[:, :k] = values
    count = np.zeros(n_sym * nd)
    count[:k] = 1.0
    return grid.reshape(b, n_sym, nd).sum(1) / count.reshape(n_sym, nd).sum(0)


def equalizer_correction(y: np.ndarray, snr_db: np.ndarray, modulation: str, equalizer: str | None,
                         iterations: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(derotated y, real gain, noise variance), all (B, n_cu), for the demapper.

    None: AWGN, y as is, gain 1, variance 10^(-snr/10). 'mmse'/'zf': blind per-subcarrier
    estimates after the OFDM channel's equaliser (module docstring)."""
    n0 = noise_power(snr_db).reshape(-1, 1)
    if equalizer is None:
        return y, np.ones(y.shape, np.float32), np.broadcast_to(n0, y.shape).astype(np.float32)
    if equalizer not in ("mmse", "zf"):
        raise ValueError(f"unknown equalizer {equalizer!r}")
    nd = DEFAULT_NUMEROLOGY.n_data
    carrier = np.arange(y.shape[1]) % nd
    # start: the equaliser's real shrinkage from the received power (E|y|^2 = a for MMSE, 1 + N0/g for ZF)
    p = _smooth_carriers(_per_carrier_mean(np.abs(y.astype(np.complex128)) ** 2, nd))
    c = np.clip(p, 1e-6, _G_CAP / (_G_CAP + n0)) if equalizer == "mmse" else np.ones_like(p)
    c = c.astype(np.complex128)
    yc = y.astype(np.complex128)
    for _ in range(iterations):
        # decision-directed least squares per subcarrier: complex gain (the LS channel estimate's
        # phase error included), then the residual as the noise variance
        x_hat = nearest_point((yc / c[:, carrier]).astype(np.complex64), modulation).astype(np.complex128)
        num = _per_carrier_mean(yc * x_hat.conj(), nd)
        den = _per_carrier_mean(np.abs(x_hat) ** 2, nd)
        c = np.where(np.abs(num) > 1e-9, num / np.maximum(den, 1e-9), c)
    resid = _smooth_carriers(_per_carrier_mean(np.abs(yc - c[:, carrier] * x_hat) ** 2, nd))
    gain = np.abs(c)
    # the residual under-counts noise where decisions are wrong: never below the model's a(1-a)
    # (MMSE) or N0/g (ZF) floor, and never below the channel's own noise scaled by the gain
    floor = gain * (1.0 - np.clip(gain, 0.0, _G_CAP / (_G_CAP + n0))) if equalizer == "mmse" else n0 * gain**2 / _G_CAP
    var = np.maximum(resid, np.maximum(floor, 1e-9))
    derot = yc * np.exp(-1j * np.angle(c))[:, carrier]
    return derot.astype(np.complex64), gain[:, carrier].astype(np.float32), var[:, carrier].astype(np.float32)


def phy_decode(y: np.ndarray, snr_db: np.ndarray, layout: FrameLayout, equalizer: str | None = None,
               max_iter: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """received symbols (B, n_cu) -> (descrambled frames (B, info_bits), codeword ok (B, n_cw))."""
    b = y.shape[0]
    y, gain, var = equalizer_correction(y, snr_db, layout.modulation, equalizer)
    llr = demap(y, layout.modulation, var, gain)
    stream = llr[:, _interleaver(layout.coded_capacity)][:, : layout.n_cw * layout.n_tx]
    code = wifi_code(layout.n, layout.rate)
    info, ok = code.decode_shortened(stream.reshape(b * layout.n_cw, layout.n_tx), layout.shorten, max_iter=max_iter)
    frames = info.reshape(b, layout.info_bits) ^ _scrambler(layout.info_bits)
    return frames, ok.reshape(b, layout.n_cw)




# --- the scheme -------------------------------------------------------------------------------

FALLBACK_REASONS = ("too_big", "ldpc", "codec")


class SeparateScheme:
    """One (codec, quality, modulation, code rate) configuration as a ``semjscc.experiments.eval.sweep.Scheme``:
    ``encode(images, snr) -> (B, n_cu, 2)`` and ``decode(symbols, snr) -> images``, end to end
    on the real payload bits. ``quality`` None picks, per image, the highest quality whose
    bitstream fits (its index is sent in the frame). ``stats`` counts images and fallbacks by
    reason; fallbacks output ``fallback`` (a (3, 32, 32) image, default mid-grey: pass the dataset
    mean). Over the OFDM channel construct it with ``equalizer="mmse"`` (the channel's default) so
    the receiver estimates per-subcarrier reliabilities; then ``semjscc.experiments.eval.sweep.sweep`` runs it
    like any JSCC scheme."""

    def __init__(self, codec: Codec, quality: int | None, modulation: str, rate: str, n_cu: int,
                 equalizer: str | None = None, fallback: np.ndarray | None = None, max_iter: int = 20) -> None:
        layout = plan_frame(n_cu, modulation, rate)
        if layout is None:
            raise ValueError(f"{modulation} rate {rate} cannot fit one codeword in {n_cu} channel uses")
        self.codec, self.quality, self.layout = codec, quality, layout
        self.equalizer, self.max_iter = equalizer, max_iter
        self.fallback = np.full((3, 32, 32), 0.5, np.float32) if fallback is None else np.asarray(fallback, np.float32)
        self.quality_bits = 0 if quality is not None else max(1, (len(codec.qualities) - 1).bit_length())
        q = "auto" if quality is None else str(quality)
        self.name = f"{codec.name}-q{q}-{modulation}-r{rate}"
        self.stats: Counter[str] = Counter()

    def _payload(self, image: np.ndarray) -> tuple[bytes | None, int]:
        qs = self.codec.qualities if self.quality is None else (self.quality,)
        best: tuple[bytes | None, int] = (None, 0)
        for qi, q in enumerate(qs):
            try:
                p = self.codec.encode(image, q)
            except CodecError:
                continue
            if fits(len(p), self.layout, self.quality_bits):
                best = (p, qi)  # the highest listed quality that fits (sizes need not grow monotonically)
        return best

    def encode(self, images: np.ndarray, snr_db: np.ndarray) -> np.ndarray:
        u8 = to_uint8_nhwc(images)
        frames = []
        for im in u8:
            payload, qi = self._payload(im)
            frames.append(pack_frame(payload, self.layout, qi, self.quality_bits))
        return to_pairs(phy_encode(np.stack(frames), self.layout))

    def decode(self, symbols: np.ndarray, snr_db: np.ndarray) -> np.ndarray:
        return self.decode_frames(from_pairs(np.asarray(symbols)), np.asarray(snr_db))[0]

    def decode_frames(self, y: np.ndarray, snr_db: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
        """Complex symbols (B, n) -> images (B, 3, 32, 32) and, per image, why it fell back to
        ``fallback`` (ldpc, too_big, codec) or None; counted in ``stats``."""
        frames, cw_ok = phy_decode(np.asarray(y, np.complex64), np.asarray(snr_db, np.float64), self.layout,
                                   self.equalizer, self.max_iter)
        out = np.empty((len(y), 3, 32, 32), np.float32)
        reasons: list[str | None] = []
        for i in range(len(y)):
            self.stats["images"] += 1
            n, qi, payload = unpack_frame(frames[i], self.layout, self.quality_bits)
            used = int(codewords_used(np.array(max(n, 0)), self.layout, self.quality_bits))
            reason = None
            if not cw_ok[i, :used].all():
                reason = "ldpc"
            elif n == 0:
                reason = "too_big"
            elif n < 0:
                reason = "codec"  # a length the frame cannot hold: corrupted beyond the syndrome's notice
            else:
                try:
                    q = self.codec.qualities[qi] if self.quality is None else self.quality
                    out[i] = to_float_nchw(self.codec.decode(payload, q))[0]
                except (CodecError, IndexError, ValueError, OSError):
                    reason = "codec"
            if reason is not None:
                self.stats["fallback"] += 1
                self.stats[reason] += 1
                out[i] = self.fallback
            reasons.append(reason)
        return out, reasons

    @property
    def fallback_rate(self) -> float:
        return self.stats["fallback"] / max(1, self.stats["images"])
