"""Block parameter checks: bad parameters fail when a block is built, as one ``UsageError`` line
naming the parameter and the fix, never later from a GNU Radio thread. Whether the two ends of a
link agree on the frame size is checked where they are built together (the ``jscc_tx`` /
``jscc_rx`` hier blocks size their OFDM TX/RX from the model), and in-band by every decoder: the
frame header carries the payload length, and a frame of another length is counted as a
``length_mismatch`` (see :func:`semjscc.gr.batched.triage_received`)."""

from __future__ import annotations

import math
from typing import Any

from semjscc.phy.frame import MAX_PAYLOAD_LEN, MIDAMBLE_INTERVALS
from semjscc.util.errors import UsageError


def as_int(block: str, name: str, value: Any, lo: int | None = None, hi: int | None = None, hint: str = "") -> int:
    """``value`` as an int within [lo, hi], else a UsageError naming ``block``'s parameter ``name``."""
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        v = int(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{block}: {name} must be an integer{_range(lo, hi)}, got {value!r}{hint}") from None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise UsageError(f"{block}: {name} must be an integer{_range(lo, hi)}, got {v}{hint}")
    return v


def as_float(block: str, name: str, value: Any, lo: float | None = None, hi: float | None = None,
             lo_open: bool = False, hint: str = "") -> float:
    """``value`` as a finite float within [lo, hi] (``lo_open``: (lo, hi]), else a UsageError."""
    try:
        if isinstance(value, bool):
            raise ValueError
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        v = math.nan
        shown = repr(value)
    else:
        shown = f"{v:g}"
    bad = not math.isfinite(v) or (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and v > hi)
    if bad:
        raise UsageError(f"{block}: {name} must be a finite number{_range(lo, hi, lo_open)}, got {shown}{hint}")
    return v


def one_of(block: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise UsageError(f"{block}: {name} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def payload_limit(block: str, value: Any) -> int:
    """A ``max_payload_len``: 1 .. 16383 complex symbols, the frame header's 14-bit length field."""
    return as_int(block, "max_payload_len", value, 1, MAX_PAYLOAD_LEN,
                  hint=" (complex symbols per frame; the frame header's length field is 14 bits)")


def midamble_interval(block: str, value: Any) -> int:
    """A mid-amble interval: payload symbols between mid-ambles, one of :data:`MIDAMBLE_INTERVALS` (0 = none)."""
    choices = ", ".join(map(str, MIDAMBLE_INTERVALS))
    hint = " (payload symbols between mid-ambles, 0 = none)"
    v = as_int(block, "midamble", value, 0, max(MIDAMBLE_INTERVALS), hint=hint)
    if v not in MIDAMBLE_INTERVALS:
        raise UsageError(f"{block}: midamble must be one of {choices}, got {v}{hint}")
    return v


def _range(lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f" <= {hi:g}"
    return ""
