"""The frame ledger: every frame sent is received, lost or corrupt, the summary keys every run reports
(:class:`FrameLedger`, :class:`StreamLedger`, :data:`SUMMARY_KEYS`), and the classifier's accuracy on
the images before transmission (:func:`clean_accuracy`). No GNU Radio and no torch here: the metrics
sink, the over-the-air runner, the demo and the evaluation are thin adapters over it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from semjscc.data.imaging import to_float_nchw
from semjscc.data.metrics import capped_psnr_db
from semjscc.data.sources import labelled
from semjscc.phy.frame import MAX_FRAME_NUMBER

# --- the frame ledger --------------------------------------------------------------------------------

# The keys every run reports (semjscc run's JSON, the over-the-air summary and its points):
# accuracy over received labelled frames; accuracy_sent counts lost and corrupt frames as wrong,
# what the application at the receiver actually got; means are over received frames.
SUMMARY_KEYS = ("frames_sent", "frames_received", "frames_lost", "header_crc_failures", "corrupt", "fallbacks",
                "accuracy", "accuracy_sent", "psnr_db", "snr_est_db", "cfo_est_hz")
# The headline of a run, a subset of SUMMARY_KEYS: what `semjscc ota` prints when it ends.
RUN_KEYS = ("frames_sent", "frames_received", "frames_lost", "header_crc_failures", "accuracy", "psnr_db",
            "snr_est_db")
# "overload": a live receiver that fell behind the radio dropped the frame whole before its
# decoder (semjscc.gr.overload_gate); reported as dropped_overload, a kind of loss like corrupt
LOSS_CAUSES = ("gap", "timeout", "stopped", "corrupt", "missing", "overload")
# the overload gate's metadata flag on a dropped frame, its status in the frames CSV and the summary key
DROPPED_OVERLOAD = "dropped_overload"


@dataclass
class SentFrame:
    """What the ledger keeps of a frame until it is accounted for."""

    frame: int  # running count
    label: int  # -1 when unknown
    image: np.ndarray | None = None  # uint8 HWC as sent (for PSNR), None when not kept
    t_sent: float = 0.0


@dataclass
class Outcome:
    """One accounted frame: ``status`` received | lost | corrupt | dropped_overload."""

    sent: SentFrame
    status: str
    why: str = ""  # lost: one of LOSS_CAUSES
    pred: int | None = None
    confidence: float | None = None
    psnr_db: float | None = None
    snr_est_db: float | None = None
    cfo_hz: float | None = None
    latency_s: float | None = None
    image: np.ndarray | None = None  # uint8 HWC as received


class FrameLedger:
    """Accounts for every frame sent: ``frames_sent == received + lost (+ in flight)`` always.

    Low-level API: :meth:`send`, then exactly one of :meth:`receive`, :meth:`lose` (``corrupt`` is
    a kind of loss with its own counter) per frame. :meth:`give_up` loses what is still pending.
    ``on_outcome`` is called with every :class:`Outcome` (a CSV row, a kept sample)."""

    def __init__(self, on_outcome: Callable[[Outcome], None] | None = None) -> None:
        self.on_outcome = on_outcome
        self.pending: dict[int, SentFrame] = {}
        self.counts: dict[str, int] = dict.fromkeys(
            ("frames_sent", "frames_received", "frames_lost", "header_crc_failures", "corrupt", "fallbacks",
             "labelled", "correct", "labelled_sent", *(f"lost_by_{c}" for c in LOSS_CAUSES)), 0)
        self.sums: dict[str, float] = dict.fromkeys(("psnr", "snr", "cfo", "latency"), 0.0)
        self.n_sums: dict[str, int] = dict.fromkeys(("psnr", "snr", "cfo", "latency"), 0)

    def send(self, frame: SentFrame) -> None:
        self.pending[frame.frame] = frame
        self.counts["frames_sent"] += 1

    def header_failure(self, n: int = 1) -> None:
        """A burst whose header failed: counted; its frame shows up as lost."""
        self.counts["header_crc_failures"] += n

    def receive(self, frame: int, *, image: np.ndarray | None = None, pred: int | None = None,
                confidence: float | None = None, snr_est_db: float | None = None, cfo_hz: float | None = None,
                now: float | None = None, fallback: bool = False, psnr_db: float | None = None) -> Outcome:
        """Frame ``frame`` arrived and was decoded (``image`` uint8 HWC); PSNR against what was sent,
        unless given."""
        sent = self.pending.pop(frame)
        c = self.counts
        c["frames_received"] += 1
        c["fallbacks"] += int(bool(fallback))
        if psnr_db is None and sent.image is not None and image is not None:
            psnr_db = capped_psnr_db(sent.image, image)
        latency = now - sent.t_sent if now is not None and sent.t_sent else None
        for key, v in (("psnr", psnr_db), ("snr", snr_est_db), ("cfo", cfo_hz), ("latency", latency)):
            if v is not None and math.isfinite(v):
                self.sums[key] += float(v)
                self.n_sums[key] += 1
        if sent.label >= 0:
            c["labelled_sent"] += 1
            if pred is not None:
                c["labelled"] += 1
                c["correct"] += int(int(pred) == sent.label)
        out = Outcome(sent, "received", pred=None if pred is None else int(pred), confidence=confidence,
                      psnr_db=psnr_db, snr_est_db=snr_est_db, cfo_hz=cfo_hz, latency_s=latency, image=image)
        self._emit(out)
        return out

    def lose(self, frame: int, why: str, *, snr_est_db: float | None = None, cfo_hz: float | None = None) -> Outcome:
        """Frame ``frame`` will never be decoded: ``why`` one of :data:`LOSS_CAUSES` ('corrupt': it
        arrived but its payload could not be decoded)."""
        if why not in LOSS_CAUSES:
            raise ValueError(f"why must be one of {LOSS_CAUSES}, got {why!r}")
        sent = self.pending.pop(frame)
        c = self.counts
        c["frames_lost"] += 1
        c[f"lost_by_{why}"] += 1
        if why == "corrupt":
            c["corrupt"] += 1
        if sent.label >= 0:
            c["labelled_sent"] += 1
        status = {"corrupt": "corrupt", "overload": DROPPED_OVERLOAD}.get(why, "lost")
        out = Outcome(sent, status, why=why, snr_est_db=snr_est_db, cfo_hz=cfo_hz)
        self._emit(out)
        return out

    def give_up(self, why: str = "stopped") -> int:
        """Lose every frame still pending (end of a run); returns how many."""
        frames = sorted(self.pending)
        for r in frames:
            self.lose(r, why)
        return len(frames)

    def _emit(self, out: Outcome) -> None:
        if self.on_outcome is not None:
            self.on_outcome(out)

    @property
    def accounted(self) -> int:
        return self.counts["frames_received"] + self.counts["frames_lost"]

    def summary(self) -> dict[str, Any]:
        """The :data:`SUMMARY_KEYS` so far, plus ``frames_in_flight`` and the losses by cause."""
        c = self.counts

        def mean(key: str) -> float | None:
            return self.sums[key] / self.n_sums[key] if self.n_sums[key] else None

        out = {k: c[k] for k in ("frames_sent", "frames_received", "frames_lost", "header_crc_failures", "corrupt",
                                 "fallbacks")}
        out.update({
            "accuracy": c["correct"] / c["labelled"] if c["labelled"] else None,
            "accuracy_sent": c["correct"] / c["labelled_sent"] if c["labelled_sent"] else None,
            "psnr_db": mean("psnr"), "snr_est_db": mean("snr"), "cfo_est_hz": mean("cfo"),
            "latency_s": mean("latency"), "frames_in_flight": len(self.pending),
        })
        out.update({"lost_by_gap": c["lost_by_gap"], "lost_by_timeout": c["lost_by_timeout"],
                    "lost_by_missing": c["lost_by_missing"], "lost_at_stop": c["lost_by_stopped"],
                    DROPPED_OVERLOAD: c["lost_by_overload"]})
        return out


def clean_accuracy(classify: Callable[[np.ndarray], np.ndarray], images_u8: np.ndarray, labels: np.ndarray,
                   batch: int = 500) -> float | None:
    """The classifier's accuracy on the images before transmission (the ceiling of any link), over
    the labelled ones; None when none is labelled. ``classify``: float NCHW images -> logits."""
    known = np.flatnonzero(labelled(labels))
    if not len(known):
        return None
    correct = 0
    for s in range(0, len(known), batch):
        idx = known[s : s + batch]
        correct += int((np.asarray(classify(to_float_nchw(images_u8[idx]))).argmax(axis=1) == labels[idx]).sum())
    return correct / len(known)


class StreamLedger(FrameLedger):
    """The ledger of a running link whose frames arrive in order with 16-bit air frame numbers (what
    the metrics sink keeps; GNU Radio-free).

    Each real frame sent is pending until it is either *received* (good header and a decodable
    image), *corrupt*, or *lost*: a later frame arrived first (the chain keeps order, so a gap means
    loss), or the chain went quiet (:meth:`expire`), or the run ended (:meth:`give_up`). An air frame
    number maps back to the running count as the pending frame congruent to it modulo 2^16; anything
    else (a frame already given up on, a duplicate) counts as ``late_frames`` and changes nothing.
    Flush frames (``flush`` in the sent metadata: they push the last burst through the transmitter)
    are tracked but never counted as sent. ``done``: the source's last frame is sent and every frame
    up to it is accounted for."""

    def __init__(self, on_outcome: Callable[[Outcome], None] | None = None) -> None:
        super().__init__(on_outcome)
        self.flush: dict[int, float] = {}  # flush frames in flight -> time sent
        self.next = 0  # one past the highest running frame number seen sent
        self.end: int | None = None  # one past the source's last real frame, once known
        self.late_frames = 0
        self.length_mismatch = 0
        self.flush_received = 0  # flush frames that arrived (the receiver counts them among its good headers)
        # frames are sent in order, so ``pending`` (insertion-ordered) starts with its oldest frame
        # and the per-frame look-ups below need not scan it (a window holds thousands of frames);
        # a source that numbers out of order turns this off and the scans come back
        self._ordered = True

    def on_sent(self, meta: Mapping[str, Any], image: np.ndarray | None, now: float) -> None:
        """A PDU the source sent: its metadata (``frame_number``, ``label``, ``last`` / ``flush``)."""
        r = _int_or(meta.get("frame_number"), self.next)
        self._ordered = self._ordered and r >= self.next
        self.next = max(self.next, r + 1)
        if meta.get("flush"):
            self.flush[r] = now
            if self.end is None and "frames_sent" in meta:
                self.end = _int_or(meta["frames_sent"], r)
            return
        self.send(SentFrame(r, _int_or(meta.get("label"), -1), image, now))
        if meta.get("last"):
            self.end = r + 1

    def on_received(self, meta: Mapping[str, Any], image: np.ndarray | None, now: float) -> None:
        """A PDU from the receive chain: a header failure, a corrupt frame or a decoded image."""
        if not meta.get("header_ok", True):
            self.header_failure()  # its frame shows up as lost
            return
        r = self.running(_int_or(meta.get("frame_number"), -1))
        is_flush = r in self.flush
        if not is_flush and r not in self.pending:
            self.late_frames += 1  # given up on already, a duplicate, or no frame of ours
            return
        for older in self._older(r):
            self.lose(older, "gap")
        for older in [f for f in self.flush if f <= r]:
            del self.flush[older]
        if is_flush:
            self.flush_received += 1
            return
        snr, cfo = _float_or_none(meta.get("snr_est_db")), _float_or_none(meta.get("cfo_hz"))
        if meta.get(DROPPED_OVERLOAD):  # its header arrived; the receiver had no time to decode it
            self.lose(r, "overload", snr_est_db=snr, cfo_hz=cfo)
            return
        if meta.get("corrupt") or image is None:
            self.length_mismatch += int(bool(meta.get("length_mismatch")))
            self.lose(r, "corrupt", snr_est_db=snr, cfo_hz=cfo)
            return
        pred = meta.get("pred")
        self.receive(r, image=image, pred=None if pred is None else _int_or(pred, -1),
                     confidence=_float_or_none(meta.get("confidence")), snr_est_db=snr, cfo_hz=cfo, now=now,
                     fallback=bool(meta.get("fallback")))

    def _older(self, r: int) -> list[int]:
        """Pending frames sent before ``r``."""
        if not self._ordered:
            return [p for p in self.pending if p < r]
        out = []
        for p in self.pending:
            if p >= r:
                break
            out.append(p)
        return out

    def _oldest_pending(self) -> int | None:
        if not self.pending:
            return None
        return next(iter(self.pending)) if self._ordered else min(self.pending)

    def running(self, air: int) -> int:
        """The in-flight running frame number congruent to a 16-bit air frame number (-1: none)."""
        if air < 0:
            return -1
        live = [r for r in (self._oldest_pending(), min(self.flush, default=None)) if r is not None]
        ref = min(live) if live else self.next
        return ref + (air - ref) % (MAX_FRAME_NUMBER + 1)

    def expire(self, now: float, timeout_s: float) -> int:
        """The chain went quiet: frames sent more than ``timeout_s`` ago are not coming (lost); returns
        how many were given up on."""
        old = [r for r, p in self.pending.items() if now - p.t_sent > timeout_s]
        for r in old:
            self.lose(r, "timeout")
        for f in [f for f, t in self.flush.items() if now - t > timeout_s]:
            del self.flush[f]
        return len(old)

    def give_up(self, why: str = "stopped") -> int:
        self.flush.clear()
        return super().give_up(why)

    @property
    def in_flight(self) -> bool:
        return bool(self.pending or self.flush)

    @property
    def done(self) -> bool:
        oldest = self._oldest_pending()
        return self.end is not None and self.next >= self.end and (oldest is None or oldest >= self.end)

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "late_frames": self.late_frames, "length_mismatch": self.length_mismatch,
                "flush_frames_received": self.flush_received}


def _int_or(value: Any, default: int) -> int:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return int(v) if math.isfinite(v) else default


def _float_or_none(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
