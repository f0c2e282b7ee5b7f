"""Image codecs for the separate source-channel coding baseline, with every byte that is the
same for all 32x32 images at a given quality moved out of the bitstream: sender and receiver
agree on the codec, quality and image size (that is the configuration), so those bytes carry
no information and sending them would only waste channel uses.

* ``JPEGCodec`` (Pillow/libjpeg, baseline, standard Huffman tables, 4:2:0): a 32x32 JPEG is
  ~623 bytes of headers (SOI, JFIF APP0, 2 DQT, SOF0, 4 DHT, SOS), identical for every image at
  one quality, plus the entropy-coded scan (28 bytes on average at quality 1, ~250 at 70).
  Only the scan is sent; the receiver re-attaches the quality's header and EOI: 625 bytes saved.
  ``optimize=False`` on purpose: per-image optimised Huffman tables would have to be sent.
* ``WebPCodec`` (Pillow/libwebp, lossy VP8, method 6): the 12-byte RIFF/WEBP header, the 8-byte
  'VP8 ' chunk header and the VP8 key-frame start code and dimensions (7 bytes) are rebuilt at
  the receiver from the payload length: 27 bytes saved; the 3-byte frame tag is sent.
* ``HEIFCodec`` (pillow-heif: libheif with x265 HEVC, decoded by libde265; BPG-like, when
  installed): the ISOBMFF boxes (ftyp, meta with the hvcC parameter sets, ...: ~417 bytes),
  the 4-byte NAL length and the 2-byte NAL header of the single slice are rebuilt; only the slice
  payload is sent. The item location (iloc) and mdat sizes are patched from the payload length.

Every ``encode`` checks that what it strips equals the shared template, so a libjpeg/libwebp/
libheif upgrade that changed headers per image fails loudly instead of corrupting results.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from PIL import Image


class CodecError(RuntimeError):
    """A bitstream the codec cannot use (malformed, truncated or failing to decode)."""


def _probe_image(size: int = 32) -> np.ndarray:
    """A fixed smooth test picture used to build the shared header templates."""
    y, x = np.mgrid[0:size, 0:size]
    img = np.stack([x * 255 // (size - 1), y * 255 // (size - 1), (x + y) * 255 // (2 * size - 2)], -1)
    return img.astype(np.uint8)


def _open_rgb(data: bytes, size: int) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            out = np.asarray(im.convert("RGB"))
    except Exception as e:  # any decoder failure is a codec error for the caller
        raise CodecError(f"decode failed: {e}") from e
    if out.shape != (size, size, 3):
        raise CodecError(f"decoded shape {out.shape}, expected {(size, size, 3)}")
    return out


@dataclass
class Codec:
    """Base: ``encode(img uint8 HWC, quality) -> payload bytes``; ``decode(payload, quality) -> uint8 HWC``."""

    name: str = "codec"
    qualities: tuple[int, ...] = ()
    size: int = 32

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        raise NotImplementedError

    def decode(self, payload: bytes, quality: int) -> np.ndarray:
        raise NotImplementedError

    def header_bytes_saved(self, quality: int) -> int:
        raise NotImplementedError


# --- JPEG ---------------------------------------------------------------------------------

def _jpeg_split(data: bytes) -> tuple[bytes, bytes]:
    """(everything up to and including the SOS segment, entropy-coded scan without EOI)."""
    if data[:2] != b"\xff\xd8":
        raise CodecError("not a JPEG")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise CodecError("bad JPEG marker")
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:  # start of scan: header ends after this segment
            start = i + 2 + length
            if data[-2:] != b"\xff\xd9":
                raise CodecError("JPEG without EOI")
            return data[:start], data[start:-2]
        i += 2 + length
    raise CodecError("JPEG without a scan")


@dataclass
class JPEGCodec(Codec):
    name: str = "jpeg"
    # No 72-78: the shared CIFAR-10 archive is libjpeg quality-75 4:2:0 JPEG, so re-encoding near
    # q75 reproduces its pixels almost exactly (q75: bit-exact for most images), an artefact of
    # the dataset, not codec quality.
    qualities: tuple[int, ...] = (1, 3, 5, 8, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90)
    subsampling: int = 2  # 4:2:0, libjpeg's default below quality 90 (fixed so the header is too)
    _headers: dict[int, bytes] = field(default_factory=dict, repr=False)

    def _save(self, image: np.ndarray, quality: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=int(quality), optimize=False, progressive=False,
                                    subsampling=self.subsampling)
        return buf.getvalue()

    def header(self, quality: int) -> bytes:
        if quality not in self._headers:
            self._headers[quality] = _jpeg_split(self._save(_probe_image(self.size), quality))[0]
        return self._headers[quality]

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        head, scan = _jpeg_split(self._save(image, quality))
        if head != self.header(quality):
            raise CodecError("JPEG header differs from the shared template")
        return scan

    def decode(self, payload: bytes, quality: int) -> np.ndarray:
        return _open_rgb(self.header(quality) + bytes(payload) + b"\xff\xd9", self.size)

    def header_bytes_saved(self, quality: int) -> int:
        return len(self.header(quality)) + 2


# --- WebP ---------------------------------------------------------------------------------

_VP8_START = b"\x9d\x01\x2a"


@dataclass
class WebPCodec(Codec):
    name: str = "webp"
    qualities: tuple[int, ...] = (0, 5, 10, 20, 30, 40, 50, 60, 75, 90)
    method: int = 6  # slowest, best compression

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "WEBP", quality=int(quality), method=self.method)
        data = buf.getvalue()
        if data[:4] != b"RIFF" or data[8:16] != b"WEBPVP8 ":
            raise CodecError("not a simple lossy WebP")
        n = int.from_bytes(data[16:20], "little")
        vp8 = data[20 : 20 + n]
        dims = self.size.to_bytes(2, "little") * 2
        if vp8[3:6] != _VP8_START or vp8[6:10] != dims:
            raise CodecError("unexpected VP8 frame header")
        return vp8[:3] + vp8[10:]

    def decode(self, payload: bytes, quality: int) -> np.ndarray:
        payload = bytes(payload)
        if len(payload) < 3:
            raise CodecError("WebP payload too short")
        vp8 = payload[:3] + _VP8_START + self.size.to_bytes(2, "little") * 2 + payload[3:]
        chunk = b"VP8 " + len(vp8).to_bytes(4, "little") + vp8 + (b"\x00" if len(vp8) % 2 else b"")
        data = b"RIFF" + (4 + len(chunk)).to_bytes(4, "little") + b"WEBP" + chunk
        return _open_rgb(data, self.size)

    def header_bytes_saved(self, quality: int) -> int:
        return 12 + 8 + 7


# --- HEIF (HEVC) --------------------------------------------------------------------------

def heif_available() -> bool:
    """pillow-heif importable with an HEVC encoder and decoder."""
    try:
        import pillow_heif
    except ImportError:
        return False
    info = pillow_heif.libheif_info()
    return bool(info.get("HEIF")) and "libde265" in info.get("decoders", {})


def _boxes(data: bytes, start: int, end: int) -> list[tuple[str, int, int]]:
    """(type, offset, size) of the ISOBMFF boxes in data[start:end] (32-bit sizes only)."""
    out, i = [], start
    while i + 8 <= end:
        size = int.from_bytes(data[i : i + 4], "big")
        if size < 8 or i + size > end:
            raise CodecError("bad ISOBMFF box")
        out.append((data[i + 4 : i + 8].decode("latin-1"), i, size))
        i += size
    return out


def _iloc_length_field(data: bytes, iloc_off: int) -> tuple[int, int]:
    """(offset, width) of the only extent-length field in an iloc box with one item, one extent."""
    ver = data[iloc_off + 8]
    p = iloc_off + 12
    offset_size, length_size = data[p] >> 4, data[p] & 15
    base_size, index_size = data[p + 1] >> 4, (data[p + 1] & 15) if ver in (1, 2) else 0
    p += 2
    count_w = 4 if ver == 2 else 2
    count = int.from_bytes(data[p : p + count_w], "big")
    p += count_w
    if count != 1:
        raise CodecError(f"iloc with {count} items")
    p += count_w  # item_ID
    if ver in (1, 2):
        p += 2  # construction_method
    p += 2 + base_size  # data_reference_index, base_offset
    if int.from_bytes(data[p : p + 2], "big") != 1:
        raise CodecError("iloc item with several extents")
    p += 2 + index_size + offset_size
    return p, length_size


@dataclass
class HEIFCodec(Codec):
    name: str = "heif"
    qualities: tuple[int, ...] = (0, 10, 20, 30, 40, 50, 60, 70, 80)
    _templates: dict[int, tuple[bytes, bytes]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not heif_available():
            raise CodecError("pillow-heif with an HEVC encoder/decoder is not installed")
        import pillow_heif

        pillow_heif.register_heif_opener()

    def _split(self, data: bytes) -> tuple[bytes, bytes, bytes]:
        """(container prefix with length fields zeroed, NAL header, slice payload)."""
        top = _boxes(data, 0, len(data))
        if [t for t, _, _ in top] != ["ftyp", "meta", "mdat"]:
            raise CodecError(f"unexpected HEIF layout {[t for t, _, _ in top]}")
        _, meta_off, meta_size = top[1]
        iloc = [b for b in _boxes(data, meta_off + 12, meta_off + meta_size) if b[0] == "iloc"]
        if len(iloc) != 1:
            raise CodecError("HEIF without a single iloc")
        f_off, f_w = _iloc_length_field(data, iloc[0][1])
        _, mdat_off, _ = top[2]
        body = data[mdat_off + 8 :]
        nal_len = int.from_bytes(body[:4], "big")
        if nal_len != len(body) - 4:
            raise CodecError("HEIF image is not a single NAL unit")
        prefix = bytearray(data[: mdat_off + 8])
        prefix[f_off : f_off + f_w] = bytes(f_w)
        prefix[mdat_off : mdat_off + 4] = bytes(4)
        return bytes(prefix), body[4:6], body[6:]

    def _save(self, image: np.ndarray, quality: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "HEIF", quality=int(quality))
        return buf.getvalue()

    def template(self, quality: int) -> tuple[bytes, bytes]:
        if quality not in self._templates:
            prefix, nal_head, _ = self._split(self._save(_probe_image(self.size), quality))
            self._templates[quality] = (prefix, nal_head)
        return self._templates[quality]

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        prefix, nal_head, payload = self._split(self._save(image, quality))
        if (prefix, nal_head) != self.template(quality):
            raise CodecError("HEIF container differs from the shared template")
        return payload

    def decode(self, payload: bytes, quality: int) -> np.ndarray:
        prefix, nal_head = self.template(quality)
        body = (len(payload) + 2).to_bytes(4, "big") + nal_head + bytes(payload)
        data = bytearray(prefix + body)
        mdat_off = len(prefix) - 8
        data[mdat_off : mdat_off + 4] = (8 + len(body)).to_bytes(4, "big")
        meta_off = int.from_bytes(prefix[:4], "big")
        meta_size = int.from_bytes(prefix[meta_off : meta_off + 4], "big")
        iloc = next(b for b in _boxes(bytes(prefix), meta_off + 12, meta_off + meta_size) if b[0] == "iloc")
        f_off, f_w = _iloc_length_field(bytes(prefix), iloc[1])
        data[f_off : f_off + f_w] = len(body).to_bytes(f_w, "big")
        return _open_rgb(bytes(data), self.size)

    def header_bytes_saved(self, quality: int) -> int:
        return len(self.template(quality)[0]) + 6


CODECS = ("jpeg", "webp", "heif")


@cache
def available_codecs() -> tuple[str, ...]:
    return tuple(c for c in CODECS if c != "heif" or heif_available())


def make_codec(name: str, qualities: Sequence[int] | None = None) -> Codec:
    cls = {"jpeg": JPEGCodec, "webp": WebPCodec, "heif": HEIFCodec}.get(name)
    if cls is None:
        raise ValueError(f"unknown codec {name!r}: choose one of {', '.join(CODECS)}")
    codec = cls()
    if qualities is not None:
        codec.qualities = tuple(int(q) for q in qualities)
    return codec
