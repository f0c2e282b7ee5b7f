"""Block parameter checks: bad parameters fail when a block is built, as one ``UsageError`` /
``ModelError`` line naming the parameter and the fix, never later from a GNU Radio thread.

Two kinds of check:

* per parameter (:func:`as_int`, :func:`as_float`, :func:`one_of`, :func:`payload_limit`, ...):
  called by each block's constructor;
* per flowgraph (:func:`register_link`): a block's symbol count or payload limit is noted on the
  top block being built (the ``gr.top_block`` whose ``__init__`` constructs it, as in GRC's
  generated code and ``sim_loopback``), and when that top block starts, before any thread runs,
  the notes are checked together: an encoder whose frames are longer than every OFDM TX in the
  flowgraph carries (``max_payload_len``; the TX would drop them all), a decoder longer than every
  OFDM RX accepts (every header would be rejected), a decoder whose symbol count no encoder in the
  flowgraph sends (every frame would arrive "corrupt"). The check is added to the top block's
  class (its ``start``, which ``run`` calls too). Blocks built outside a top block's ``__init__``
  are not checked this way (the TX then logs an error on the first frame it drops).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

from semjscc.errors import ModelError, UsageError
from semjscc.phy.frame import MAX_PAYLOAD_LEN


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
    """A ``max_payload_len``: 1 .. 65535 complex symbols, the frame header's 16-bit length field."""
    return as_int(block, "max_payload_len", value, 1, MAX_PAYLOAD_LEN,
                  hint=" (complex symbols per frame; the frame header's length field is 16 bits)")


def _range(lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f" <= {hi:g}"
    return ""


# --- flowgraph-wide checks -------------------------------------------------------------------------

SENDER, RECEIVER, TX, RX = "sender", "receiver", "tx", "rx"
_NOTES = "_semjscc_link_notes"


@dataclass(frozen=True)
class _Note:
    role: str  # SENDER (symbols per frame sent), RECEIVER (expected), TX / RX (max_payload_len)
    n: int
    what: str  # "jscc_encoder (model models/jscc-semantic-kn6)"
    model: bool  # a deep JSCC model block: its errors are ModelErrors


def register_link(block: Any, role: str, n: int, what: str, model: bool = False) -> None:
    """Note ``block``'s symbol count / payload limit on the top block under construction (if any);
    the notes are checked when that top block starts (see the module docstring)."""
    tb = _top_block_under_construction(block)
    if tb is None:
        return
    notes = tb.__dict__.setdefault(_NOTES, [])
    notes.append(_Note(role, int(n), what, model))
    cls = type(tb)
    if not getattr(cls.start, "_semjscc_link_check", False):
        # the check goes on the class (once): an instance attribute would be lost with a temporary
        # top block (MyFlowgraph().run()) or tie the instance to itself
        original = cls.start

        def start(self: Any, *args: Any, **kwargs: Any) -> Any:
            check_link(self.__dict__.get(_NOTES, []))
            return original(self, *args, **kwargs)

        start._semjscc_link_check = True  # type: ignore[attr-defined]
        start.__doc__ = original.__doc__
        cls.start = start  # tb.run() calls self.start() too


def _top_block_under_construction(block: Any) -> Any:
    from gnuradio import gr

    f = sys._getframe(2)
    for _ in range(64):
        if f is None:
            return None
        if f.f_code.co_name == "__init__":
            owner = f.f_locals.get("self")
            if isinstance(owner, gr.top_block) and owner is not block:
                return owner
        f = f.f_back
    return None


def check_link(notes: list[_Note]) -> None:
    """Raise for the first inconsistency among a flowgraph's notes (see the module docstring)."""
    by = {role: [n for n in notes if n.role == role] for role in (SENDER, RECEIVER, TX, RX)}
    for ends, limits, verb, side, why in ((by[SENDER], by[TX], "sends", "OFDM TX carries", "it would drop every frame"),
                                          (by[RECEIVER], by[RX], "expects", "OFDM RX accepts",
                                           "it would reject every header")):
        if not limits:
            continue
        limit = max(n.n for n in limits)
        for e in ends:
            if e.n > limit:
                err = ModelError if e.model else UsageError
                raise err(f"{e.what} {verb} {e.n} symbols per frame but the flowgraph's {side} at most {limit} "
                          f"(its max_payload_len), so {why}: set the OFDM TX and RX max_payload_len to at least "
                          f"{e.n} (the frame header allows up to {MAX_PAYLOAD_LEN}), or use a model with fewer "
                          f"symbols (a smaller k/n)")
    sent = {n.n for n in by[SENDER]}
    for r in by[RECEIVER]:
        if sent and r.n not in sent:
            senders = "; ".join(f"{s.what}: {s.n}" for s in by[SENDER])
            err = ModelError if r.model else UsageError
            raise err(f"{r.what} expects {r.n} symbols per frame but the flowgraph's encoder sends a different "
                      f"number ({senders}), so every frame would arrive corrupt: decode with the encoder's model "
                      f"(same k/n, same symbol count)")
