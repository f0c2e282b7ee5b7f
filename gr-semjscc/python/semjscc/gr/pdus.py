"""PDU conventions shared by the SemJSCC message blocks.

A PDU is ``(metadata dict, uniform vector)``. Images travel as a u8vector of 32*32*3 pixels in
HWC order (what datasets store) or as an f32vector of 3*32*32 values in [0, 1], CHW order (what
the models take); every block accepts both. Channel symbols travel as c32vectors.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pmt

from semjscc.data.imaging import IMAGE_SHAPE
from semjscc.util.errors import UsageError

log = logging.getLogger("semjscc.gr")

IMAGE_SIZE = int(np.prod(IMAGE_SHAPE))  # 3072 values per 32x32 RGB image
IMAGE_HWC = (IMAGE_SHAPE[1], IMAGE_SHAPE[2], IMAGE_SHAPE[0])
IMAGE_FORMATS = ("u8", "f32")


def plain(value: Any) -> Any:
    """Python value that pmt.to_pmt accepts (numpy scalars and arrays are not)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


# --- metadata ---------------------------------------------------------------------------------------
# pmt.to_python / pmt.to_pmt of a whole metadata dict cost ~15-20 us each, and every block on the
# way used to do both per frame; a block reads one or two keys and adds one or two, so the dict
# stays a pmt and keys are read (PduMeta.get) and added (make_pdu's updates) one at a time.

_MISSING = pmt.intern("semjscc:missing")


def _scalar_from_pmt(v: Any) -> Any:
    """Python value of a pmt, the common scalar types first (pmt.to_python tries every type in turn)."""
    if pmt.is_bool(v):
        return pmt.to_bool(v)
    if pmt.is_integer(v):
        return pmt.to_long(v)
    if pmt.is_real(v):
        return pmt.to_double(v)
    return pmt.to_python(v)


def _scalar_to_pmt(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return pmt.from_bool(bool(v))
    if isinstance(v, (int, np.integer)):
        return pmt.from_long(int(v))
    if isinstance(v, (float, np.floating)):
        return pmt.from_double(float(v))
    return pmt.to_pmt(plain(v))


class PduMeta(Mapping[str, Any]):
    """A PDU's metadata dict, left as a pmt: :meth:`get` converts one value; iterating (``dict(m)``,
    ``{**m}``) converts the whole dict once. ``pmt`` is the dict itself (never modified: pmt dicts
    are persistent, and the same message may go to several blocks)."""

    __slots__ = ("_py", "pmt")

    def __init__(self, d: Any) -> None:
        self.pmt = d
        self._py: dict[str, Any] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        if self._py is not None:
            return self._py.get(key, default)
        v = pmt.dict_ref(self.pmt, pmt.intern(key), _MISSING)
        return default if pmt.eq(v, _MISSING) else _scalar_from_pmt(v)

    def __getitem__(self, key: str) -> Any:
        v = self.get(key, _MISSING)
        if v is _MISSING:
            raise KeyError(key)
        return v

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and pmt.dict_has_key(self.pmt, pmt.intern(key))

    def _dict(self) -> dict[str, Any]:
        if self._py is None:
            d = pmt.to_python(self.pmt)
            self._py = {str(k): v for k, v in d.items()} if isinstance(d, dict) else {}
        return self._py

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __repr__(self) -> str:
        return f"PduMeta({self._dict()!r})"


def meta_pmt(meta: Mapping[str, Any], updates: Mapping[str, Any] | None = None) -> Any:
    """The pmt dict of ``meta`` plus ``updates`` (added key by key to a :class:`PduMeta`'s pmt)."""
    if isinstance(meta, PduMeta):
        d = meta.pmt
    else:
        d = pmt.make_dict()
        for k, v in meta.items():
            d = pmt.dict_add(d, pmt.intern(str(k)), _scalar_to_pmt(v))
    for k, v in (updates or {}).items():
        d = pmt.dict_add(d, pmt.intern(k), _scalar_to_pmt(v))
    return d


def make_pdu(meta: Mapping[str, Any], vector: Any, **updates: Any) -> Any:
    """A PDU of ``meta`` (a dict or the :class:`PduMeta` of a received PDU) with ``updates`` added."""
    return pmt.cons(meta_pmt(meta, updates), vector)


def split_pdu(msg: Any) -> tuple[Mapping[str, Any], Any] | None:
    """(metadata, vector pmt), or None when ``msg`` is not a PDU. The metadata is a
    :class:`PduMeta` (an empty dict when the PDU carries none)."""
    if not pmt.is_pair(msg):
        return None
    car, cdr = pmt.car(msg), pmt.cdr(msg)
    if not pmt.is_uniform_vector(cdr):
        return None
    return (PduMeta(car) if pmt.is_dict(car) else {}), cdr


# --- vectors ----------------------------------------------------------------------------------------
# pmt's Python bindings convert uniform vectors element by element (u8vector_elements of an image:
# ~50 us; init_u8vector from a list: ~30 us). pmt's own serialisation moves the whole buffer at
# once: a fixed header (type, big-endian length, padding) and the items, big-endian. The header
# layout is learnt from this pmt build and checked by a round trip at import; should it ever
# differ, the element-wise path is used.


class _Wire:
    """numpy <-> pmt uniform vector of one type through pmt.serialize_str / deserialize_str."""

    def __init__(self, init: Any, elements: Any, native: str, wire: str) -> None:
        self.init, self.elements = init, elements
        self.native, self.wire = np.dtype(native), np.dtype(wire)
        self.complex = self.native.kind == "c"
        self.part = np.dtype(f"<f{self.native.itemsize // 2}") if self.complex else self.native  # one wire item
        self.fast = False
        try:
            empty = pmt.serialize_str(init(0, []))
            self.head, self.pad, self.n_head = empty[:2], empty[6:], len(empty)
            probe = (np.arange(1, 7) * 37 % 251).astype(self.part).view(self.native)  # complex: 3 items
            slow = init(len(probe), probe.tolist())
            self.fast = empty[2:6] == bytes(4)  # the length field, big-endian
            self.fast = self.fast and pmt.equal(self._build(probe), slow) and np.array_equal(self._read(slow), probe)
        except Exception:  # any surprise from another pmt build: keep the element-wise path
            self.fast = False

    def _build(self, flat: np.ndarray) -> Any:
        return pmt.deserialize_str(self.head + len(flat).to_bytes(4, "big") + self.pad
                                   + flat.view(self.part).astype(self.wire).tobytes())

    def _read(self, vec: Any) -> np.ndarray | None:
        s = pmt.serialize_str(vec)
        if len(s) != self.n_head + pmt.length(vec) * self.native.itemsize or s[:2] != self.head:
            return None
        return np.frombuffer(s, self.wire, offset=self.n_head).astype(self.part).view(self.native)

    def vector(self, data: np.ndarray) -> Any:
        flat = np.ascontiguousarray(data, dtype=self.native).ravel()
        if self.fast:
            return self._build(flat)
        return self.init(len(flat), flat.tolist())  # tolist: much faster than passing the array

    def array(self, vec: Any) -> np.ndarray:
        """The items of a vector of this type (the caller checked the type) as a new array."""
        if self.fast:
            a = self._read(vec)
            if a is not None:
                return a
        return np.asarray(self.elements(vec), dtype=self.native)


_U8 = _Wire(pmt.init_u8vector, pmt.u8vector_elements, "u1", "u1")
_F32 = _Wire(pmt.init_f32vector, pmt.f32vector_elements, "<f4", ">f4")
_C32 = _Wire(pmt.init_c32vector, pmt.c32vector_elements, "<c8", ">f4")


def u8_vector(data: np.ndarray) -> Any:
    return _U8.vector(data)


def f32_vector(data: np.ndarray) -> Any:
    return _F32.vector(data)


def c32_vector(data: np.ndarray) -> Any:
    return _C32.vector(data)


def u8_array(vec: Any) -> np.ndarray:
    """uint8 items of a u8vector."""
    return _U8.array(vec)


def f32_array(vec: Any) -> np.ndarray:
    """float32 items of an f32vector."""
    return _F32.array(vec)


def c32_array(vec: Any) -> np.ndarray:
    """complex64 items of a c32vector."""
    return _C32.array(vec)


def empty_like_u8() -> Any:
    return pmt.init_u8vector(0, [])


def image_from_vector(vec: Any) -> np.ndarray | None:
    """float32 (3, 32, 32) in [0, 1] from a u8 (HWC) or f32 (CHW) image vector; None otherwise."""
    if pmt.is_u8vector(vec) and pmt.length(vec) == IMAGE_SIZE:
        hwc = u8_array(vec).reshape(IMAGE_HWC)
        return hwc.transpose(2, 0, 1).astype(np.float32) / 255.0
    if pmt.is_f32vector(vec) and pmt.length(vec) == IMAGE_SIZE:
        chw = f32_array(vec).reshape(IMAGE_SHAPE)
        return np.clip(np.nan_to_num(chw, nan=0.0), 0.0, 1.0)
    return None


def image_u8_from_vector(vec: Any) -> np.ndarray | None:
    """uint8 (32, 32, 3) HWC from an image vector (for display and metrics); None otherwise."""
    if pmt.is_u8vector(vec) and pmt.length(vec) == IMAGE_SIZE:
        return u8_array(vec).reshape(IMAGE_HWC)
    img = image_from_vector(vec)
    if img is None:
        return None
    return np.clip(np.rint(img.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


def image_vector(image_chw: np.ndarray, fmt: str) -> Any:
    """A (3, 32, 32) float image in [0, 1] as a PDU vector of format ``u8`` or ``f32``."""
    if fmt == "f32":
        return f32_vector(np.clip(image_chw, 0.0, 1.0))
    return u8_vector(np.clip(np.rint(image_chw.transpose(1, 2, 0) * 255.0), 0, 255))


def finite_or(value: Any, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


def drain(block: Any, port: Any, limit: int) -> list[Any]:
    """Up to ``limit`` messages queued on ``port``, oldest first.

    Called from a message handler (the block's scheduler thread, which owns the queue): taking
    what is waiting lets one ONNX Runtime call serve a whole batch of frames."""
    msgs: list[Any] = []
    while len(msgs) < limit:
        m = block.delete_head_nowait(port)
        if m is None:
            break
        msgs.append(m)
    return msgs


def check_image_format(fmt: str) -> str:
    if fmt not in IMAGE_FORMATS:
        raise UsageError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
    return fmt
