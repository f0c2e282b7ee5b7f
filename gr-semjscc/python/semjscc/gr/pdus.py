"""PDU conventions shared by the SemJSCC message blocks.

A PDU is ``(metadata dict, uniform vector)``. Images travel as a u8vector of 32*32*3 pixels in
HWC order (what datasets store) or as an f32vector of 3*32*32 values in [0, 1], CHW order (what
the models take); every block accepts both. Channel symbols travel as c32vectors.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pmt

from semjscc.errors import UsageError
from semjscc.imaging import IMAGE_SHAPE

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


def make_pdu(meta: dict[str, Any], vector: Any) -> Any:
    return pmt.cons(pmt.to_pmt(plain(meta)), vector)


def split_pdu(msg: Any) -> tuple[dict[str, Any], Any] | None:
    """(metadata as a dict, vector pmt), or None when ``msg`` is not a PDU."""
    if not pmt.is_pair(msg):
        return None
    car, cdr = pmt.car(msg), pmt.cdr(msg)
    if not pmt.is_uniform_vector(cdr):
        return None
    meta = pmt.to_python(car) if pmt.is_dict(car) else {}
    return (meta if isinstance(meta, dict) else {}), cdr


def u8_vector(data: np.ndarray) -> Any:
    flat = np.ascontiguousarray(data, dtype=np.uint8).ravel()
    return pmt.init_u8vector(len(flat), flat.tolist())  # tolist: the list path is the fast one


def f32_vector(data: np.ndarray) -> Any:
    flat = np.ascontiguousarray(data, dtype=np.float32).ravel()
    return pmt.init_f32vector(len(flat), flat.tolist())


def c32_vector(data: np.ndarray) -> Any:
    flat = np.ascontiguousarray(data, dtype=np.complex64).ravel()
    return pmt.init_c32vector(len(flat), flat.tolist())


def empty_like_u8() -> Any:
    return pmt.init_u8vector(0, [])


def image_from_vector(vec: Any) -> np.ndarray | None:
    """float32 (3, 32, 32) in [0, 1] from a u8 (HWC) or f32 (CHW) image vector; None otherwise."""
    if pmt.is_u8vector(vec) and pmt.length(vec) == IMAGE_SIZE:
        hwc = np.asarray(pmt.u8vector_elements(vec), dtype=np.uint8).reshape(IMAGE_HWC)
        return hwc.transpose(2, 0, 1).astype(np.float32) / 255.0
    if pmt.is_f32vector(vec) and pmt.length(vec) == IMAGE_SIZE:
        chw = np.asarray(pmt.f32vector_elements(vec), dtype=np.float32).reshape(IMAGE_SHAPE)
        return np.clip(np.nan_to_num(chw, nan=0.0), 0.0, 1.0)
    return None


def image_u8_from_vector(vec: Any) -> np.ndarray | None:
    """uint8 (32, 32, 3) HWC from an image vector (for display and metrics); None otherwise."""
    if pmt.is_u8vector(vec) and pmt.length(vec) == IMAGE_SIZE:
        return np.asarray(pmt.u8vector_elements(vec), dtype=np.uint8).reshape(IMAGE_HWC)
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


def drain(block: Any, port: Any, first: Any, limit: int) -> list[Any]:
    """``first`` plus up to ``limit - 1`` messages already queued on ``port``.

    Called from a message handler (the block's scheduler thread, which owns the queue): taking
    what is waiting lets one ONNX Runtime call serve a whole batch of frames."""
    msgs = [first]
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
