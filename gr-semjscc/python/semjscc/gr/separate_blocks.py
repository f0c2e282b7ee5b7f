"""Separate source-channel coding over the same analog-payload OFDM PHY: the baseline the deep JSCC
is compared with, as two PDU message blocks that replace ``jscc_encoder`` / ``jscc_decoder``.

``separate_encoder``: image PDU -> codec (JPEG/WebP) at a quality -> frame -> scrambler -> 802.11n
LDPC at a rate (shortened to fit) -> bit interleaver -> Gray QAM: a c32vector of exactly
``n_symbols`` channel symbols (unit average power), the JSCC's channel-use budget (512 = k/n 1/6).
``separate_decoder``: equalised symbols from ``ofdm_rx`` -> blind per-subcarrier reliabilities from
the frame's ``snr_est_db`` -> max-log LLRs -> LDPC -> codec -> image PDU in the JSCC decoder's
format, so ``classifier`` and ``metrics_sink`` work unchanged. A frame that fails (LDPC syndrome,
codec error, bitstream too big for the budget) yields the *fallback image* with ``fallback: True``
in its metadata: counted, never dropped. Both ends are :class:`semjscc.separate.scheme.SeparateScheme`
configurations (``semjscc.separate.scheme`` documents the frame and the receiver).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from semjscc.data.imaging import to_uint8_nhwc
from semjscc.gr.batched import DEFAULT_MAX_BATCH, BatchedPduBlock, collect_images, triage_received
from semjscc.gr.params import as_float, as_int, one_of, payload_limit
from semjscc.gr.pdus import (
    c32_vector,
    check_image_format,
    finite_or,
    image_vector,
    make_pdu,
)
from semjscc.phy.frame import DEFAULT_MAX_PAYLOAD_LEN
from semjscc.separate.codecs import available_codecs, make_codec
from semjscc.separate.modem import MODULATIONS
from semjscc.separate.scheme import SeparateScheme, pack_frame, phy_encode
from semjscc.separate.wifi_ldpc_tables import RATES
from semjscc.util.errors import UsageError

SNR_MODES = ("estimate", "fixed")
EQUALIZERS = ("mmse", "zf", "none")


def make_scheme(codec: str, quality: int, modulation: str, rate: str, n_symbols: int, equalizer: str = "mmse",
                fallback: float = 0.5, max_iter: int = 20, max_payload_len: int = DEFAULT_MAX_PAYLOAD_LEN) -> SeparateScheme:
    """The :class:`SeparateScheme` both blocks share; ``quality`` < 0 picks, per image, the highest
    quality that fits (its index travels in the frame). Bad parameters raise UsageError."""
    if codec not in available_codecs():
        raise UsageError(f"codec must be one of {', '.join(available_codecs())}, got {codec!r}")
    if modulation not in MODULATIONS:
        raise UsageError(f"modulation must be one of {', '.join(MODULATIONS)}, got {modulation!r}")
    if rate not in RATES:
        raise UsageError(f"code rate must be one of {', '.join(RATES)}, got {rate!r}")
    if equalizer not in EQUALIZERS:
        raise UsageError(f"equalizer must be one of {', '.join(EQUALIZERS)}, got {equalizer!r}")
    max_payload_len = payload_limit("separate coding", max_payload_len)
    n_symbols = as_int("separate coding", "n_symbols", n_symbols, 1, max_payload_len,
                       hint=" (channel uses per image, at most max_payload_len, the OFDM TX/RX limit)")
    fallback = as_float("separate coding", "fallback", fallback, 0.0, 1.0, hint=" (the fallback image's grey level)")
    quality = as_int("separate coding", "quality", quality, hint=" (codec quality 0..100, or < 0: the highest that fits)")
    if quality > 100:
        raise UsageError(f"separate coding: quality must be 0..100 (or < 0: the highest that fits), got {quality}")
    max_iter = as_int("separate coding", "max_iter", max_iter, 1, hint=" (LDPC decoder iterations)")
    c = make_codec(codec)
    q = None if quality < 0 else quality
    try:
        return SeparateScheme(c, q, modulation, rate, int(n_symbols), equalizer=None if equalizer == "none" else equalizer,
                              fallback=np.full((3, 32, 32), float(fallback), np.float32), max_iter=int(max_iter))
    except ValueError as e:
        hint = "give more n_symbols, a denser modulation or a higher code rate"
        raise UsageError(f"separate coding: {e}; {hint}") from None


class separate_encoder(BatchedPduBlock):  # noqa: N801 (GNU Radio block naming)
    """Input ``in``: image PDUs (u8vector 32*32*3 HWC or f32vector 3*32*32 CHW). Output ``out``: the same
    metadata plus ``scheme`` and ``payload_bytes`` (0: the bitstream did not fit, "no image" is sent),
    with a c32vector of exactly ``n_symbols`` unit-average-power QAM symbols.

    ``codec`` jpeg/webp(/heif), ``quality`` (< 0: the highest that fits, per image), ``modulation``
    bpsk/qpsk/16qam/64qam, ``rate`` the 802.11n LDPC mother code rate ('1/2', '2/3', '3/4', '5/6')."""

    def __init__(self, codec: str = "jpeg", quality: int = 50, modulation: str = "qpsk", rate: str = "1/2",
                 n_symbols: int = 512, max_batch: int = DEFAULT_MAX_BATCH, max_payload_len: int = DEFAULT_MAX_PAYLOAD_LEN) -> None:
        super().__init__("semjscc_separate_encoder", as_int("separate_encoder", "max_batch", max_batch, 1))
        self.scheme = make_scheme(codec, quality, modulation, rate, n_symbols, max_payload_len=max_payload_len)
        self.n_symbols = int(n_symbols)
        self.stats: Counter[str] = Counter()

    def encode_images(self, images_chw: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """float (B, 3, 32, 32) in [0, 1] -> (complex64 (B, n_symbols), payload bytes per image, 0 = too big)."""
        s = self.scheme
        frames, sizes = [], []
        for im in to_uint8_nhwc(images_chw):
            payload, qi = s._payload(im)
            sizes.append(0 if payload is None else len(payload))
            frames.append(pack_frame(payload, s.layout, qi, s.quality_bits))
        return phy_encode(np.stack(frames), s.layout), sizes

    def process(self, items: list[tuple[Any, dict[str, Any], Any]]) -> list[Any]:
        metas, images = collect_images(self, items)
        if not images:
            return []
        sym, sizes = self.encode_images(np.stack(images))
        out = []
        for meta, s, n in zip(metas, sym, sizes, strict=True):
            self.stats["images"] += 1
            if n == 0:
                self.stats["too_big"] += 1
            out.append(make_pdu(meta, c32_vector(s), scheme=self.scheme.name, payload_bytes=n))
        return out


class separate_decoder(BatchedPduBlock):  # noqa: N801 (GNU Radio block naming)
    """Input ``in``: PDUs from ``ofdm_rx`` (meta {frame_number, snr_est_db, cfo_hz, header_ok}, c32vector).
    Output ``out``: the same metadata plus ``decoder_snr_db`` and ``fallback`` (bool; with
    ``fallback_reason`` ldpc/codec/too_big when True), the image as u8vector (32*32*3 HWC) or
    f32vector (3*32*32 CHW) per ``output`` -- the ``jscc_decoder``'s format.

    Codec, quality, modulation, rate and n_symbols must match the encoder's. ``equalizer``: the
    OFDM RX's ('mmse' or 'zf': blind per-subcarrier reliabilities; 'none': plain AWGN LLRs).
    ``snr_mode`` 'estimate' uses the frame's ``snr_est_db`` (``snr_db`` when missing), 'fixed'
    always ``snr_db``. Header failures pass through unchanged; a vector that is not ``n_symbols``
    long is published with ``corrupt: True`` and an empty vector (both as the JSCC decoder does).
    Counters: ``stats`` (images, fallback, ldpc, codec, too_big), ``corrupt``, ``header_failures``."""

    def __init__(self, codec: str = "jpeg", quality: int = 50, modulation: str = "qpsk", rate: str = "1/2",
                 n_symbols: int = 512, equalizer: str = "mmse", snr_mode: str = "estimate", snr_db: float = 10.0,
                 output: str = "u8", fallback: float = 0.5, max_iter: int = 20, max_batch: int = DEFAULT_MAX_BATCH,
                 max_payload_len: int = DEFAULT_MAX_PAYLOAD_LEN) -> None:
        name = "separate_decoder"
        snr_mode = one_of(name, "snr_mode", snr_mode, SNR_MODES)
        snr_db = as_float(name, "snr_db", snr_db)
        super().__init__("semjscc_separate_decoder", as_int(name, "max_batch", max_batch, 1))
        self.output = check_image_format(output)
        self.scheme = make_scheme(codec, quality, modulation, rate, n_symbols, equalizer, fallback, max_iter,
                                  max_payload_len)
        self.n_symbols = int(n_symbols)
        self.snr_mode, self.snr_db = snr_mode, snr_db

    @property
    def stats(self) -> Counter[str]:
        return self.scheme.stats  # this block's own scheme instance: its counts are the block's

    def set_snr_db(self, snr_db: float) -> None:
        self.snr_db = as_float("separate_decoder", "snr_db", snr_db)

    @property
    def fallbacks(self) -> int:
        return self.stats["fallback"]

    def process(self, items: list[tuple[Any, dict[str, Any], Any]]) -> list[Any]:
        out, rows, symbols = triage_received(self, items, self.n_symbols)
        snrs = [finite_or(items[i][1].get("snr_est_db"), self.snr_db) if self.snr_mode == "estimate" else self.snr_db
                for i in rows]
        if rows:
            images, reasons = self.scheme.decode_frames(np.stack(symbols), np.asarray(snrs))
            for i, img, snr, reason in zip(rows, images, snrs, reasons, strict=True):
                extra: dict[str, Any] = {"decoder_snr_db": snr, "fallback": reason is not None}
                if reason is not None:
                    extra["fallback_reason"] = reason
                out[i] = make_pdu(items[i][1], image_vector(img, self.output), **extra)
        return out


__all__ = ["make_scheme", "separate_decoder", "separate_encoder"]
