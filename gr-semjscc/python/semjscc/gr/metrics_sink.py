"""Metrics sink: accounts for every frame the image source sent, and measures what came back.

Inputs: ``sent`` (the image source's PDUs: running ``frame_number``, ``label``, the image) and
``received`` (classified PDUs from the receive chain: 16-bit ``frame_number`` from the air,
``header_ok``, ``snr_est_db``, ``cfo_hz``, ``pred``, ``confidence``, the decoded image).
Output ``ack``: ``{accounted, done}`` after every change, for the image source's window.

Accounting: each real frame sent is pending until it is either *received* (good header and a
decodable image) or *lost*: a later frame arrived first (the chain keeps order, so a gap means
loss), its image was corrupt, or nothing at all arrived for ``loss_timeout_s`` (the chain went
quiet) and it was sent longer ago than that. A 16-bit air frame number maps back to the running
count as the pending frame congruent to it modulo 2^16; anything else (a frame already given up
on, a duplicate) is counted as ``late_frames`` and changes nothing. So
``frames_sent == frames_received + frames_lost + frames_in_flight`` at every moment, and when the
run ends (``done``, or ``stop()``, which gives up on frames still in flight)
``frames_sent == frames_received + frames_lost``. Header CRC failures are counted as they are
reported; the frames they belonged to show up as lost.

Done: once the source has sent its last frame (``last`` in its metadata) and all frames up to it
are accounted for, the sink writes its JSON, sets :attr:`done_event` and says ``done`` on ``ack``;
the image source then finishes the flowgraph.
"""

from __future__ import annotations

import csv
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pmt
from gnuradio import gr

from semjscc.errors import UsageError
from semjscc.gr.params import as_float, as_int
from semjscc.gr.pdus import finite_or, image_u8_from_vector, log, split_pdu
from semjscc.metrics import psnr_db
from semjscc.phy.frame import MAX_FRAME_NUMBER

PORT_SENT = pmt.intern("sent")
PORT_RECEIVED = pmt.intern("received")
PORT_ACK = pmt.intern("ack")
_WRAP = MAX_FRAME_NUMBER + 1
PSNR_CAP_DB = 100.0  # identical images have infinite PSNR; JSON has no infinity
CSV_FIELDS = ("frame", "air_frame_number", "status", "label", "pred", "confidence", "psnr_db", "snr_est_db",
              "cfo_hz", "latency_s")


def _output_path(block: str, name: str, value: Any, example: str) -> Path | None:
    """A file the sink will write ('' = none), refused now if it could never be written: the
    results of a whole run would be lost at the end."""
    if not value:
        return None
    p = Path(value)
    if p.is_dir():
        raise UsageError(f"{block}: {name} {p} is a directory; give a file name such as {p / example}")
    parent = next((a for a in p.parents if a.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UsageError(f"{block}: {name} {p} cannot be created because {parent} is a file, not a directory; "
                         f"choose another path")
    return p


@dataclass
class _Pending:
    image: np.ndarray | None  # uint8 HWC as sent
    label: int
    t_sent: float


class metrics_sink(gr.basic_block):  # noqa: N801 (GNU Radio block naming)
    """Frame accounting, accuracy, PSNR and SNR of a SemJSCC link (see the module docstring).

    ``json_path``: summary JSON written when done, on ``stop()`` and every ``write_interval_s`` if
    > 0 ('' = none). ``csv_path``: one row per accounted frame ('' = none). ``n_samples``: how many
    (sent, received) image pairs to keep for :meth:`samples`. ``run_info``: a dict stored in the
    JSON as ``params`` (the flowgraph's parameters)."""

    def __init__(self, json_path: str = "", csv_path: str = "", write_interval_s: float = 0.0,
                 loss_timeout_s: float = 2.0, n_samples: int = 16, run_info: dict[str, Any] | None = None) -> None:
        name = "metrics_sink"
        self.json_path = _output_path(name, "json_path", json_path, "metrics.json")
        self.csv_path = _output_path(name, "csv_path", csv_path, "frames.csv")
        self.write_interval_s = as_float(name, "write_interval_s", write_interval_s, 0.0)
        self.loss_timeout_s = as_float(name, "loss_timeout_s", loss_timeout_s, 0.0, lo_open=True)
        self.n_samples = as_int(name, "n_samples", n_samples, 0)
        if run_info is not None and not isinstance(run_info, dict):
            raise UsageError(f"{name}: run_info must be a dict of the flowgraph's parameters, got {type(run_info).__name__}")
        self.run_info = dict(run_info or {})
        gr.basic_block.__init__(self, name="semjscc_metrics_sink", in_sig=None, out_sig=None)
        for port, handler in ((PORT_SENT, self._on_sent), (PORT_RECEIVED, self._on_received)):
            self.message_port_register_in(port)
            self.set_msg_handler(port, handler)
        self.message_port_register_out(PORT_ACK)
        self.done_event = threading.Event()
        self._lock = threading.RLock()
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self._csv_file: TextIO | None = None
        self._csv: Any = None
        self._reset()

    def _reset(self) -> None:
        self._pending: dict[int, _Pending] = {}  # running frame number -> what was sent (ascending)
        self._flush: dict[int, float] = {}  # flush frames in flight -> time sent
        self._next = 0  # one past the highest running frame number seen on ``sent``
        self._end: int | None = None  # running number one past the source's last real frame
        self._t0: float | None = None
        self._t_end: float | None = None
        self._last_rx = time.monotonic()
        self._samples: list[dict[str, Any]] = []
        self._finalized = False
        self.c = dict.fromkeys(("frames_sent", "frames_received", "frames_lost", "header_crc_failures", "corrupt",
                                "late_frames", "lost_by_gap", "lost_by_timeout", "lost_at_stop", "labelled", "correct",
                                "labelled_sent", "fallbacks"), 0)
        self._sums = {"psnr": 0.0, "snr": 0.0, "cfo": 0.0, "latency": 0.0}

    # --- scheduler hooks ----------------------------------------------------------------------
    def start(self) -> bool:
        with self._lock:
            self._last_rx = time.monotonic()
            if self.csv_path is not None and self._csv_file is None:
                self.csv_path.parent.mkdir(parents=True, exist_ok=True)
                self._csv_file = open(self.csv_path, "w", newline="")  # noqa: SIM115 (closed in stop)
                self._csv = csv.DictWriter(self._csv_file, fieldnames=CSV_FIELDS)
                self._csv.writeheader()
        self._stop_evt.clear()
        self._thread = threading.Thread(target=self._watchdog, name="semjscc_metrics_sink", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> bool:
        self._stop_evt.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._thread = None
        self.finalize()
        return True

    def finalize(self) -> dict[str, Any]:
        """End of the run: frames still in flight count as lost; the JSON and CSV are completed."""
        with self._lock:
            if not self._finalized:
                for r in list(self._pending):
                    self._lose(r, "stopped")
                self._flush.clear()
                self._finalized = True
                if self._t_end is None:
                    self._t_end = time.monotonic()
            self.write_json()
            if self._csv_file is not None:
                self._csv_file.close()
                self._csv_file, self._csv = None, None
            return self.summary()

    # --- inputs ---------------------------------------------------------------------------------
    def _on_sent(self, msg: Any) -> None:
        pdu = split_pdu(msg)
        if pdu is None:
            return
        meta, vec = pdu
        now = time.monotonic()
        with self._lock:
            if self._t0 is None:
                self._t0 = now
            r = int(finite_or(meta.get("frame_number"), self._next))
            self._next = max(self._next, r + 1)
            if meta.get("flush"):
                self._flush[r] = now
                if self._end is None and "frames_sent" in meta:
                    self._end = int(meta["frames_sent"])
            else:
                label = int(finite_or(meta.get("label"), -1))
                self._pending[r] = _Pending(image_u8_from_vector(vec), label, now)
                self.c["frames_sent"] += 1
                if meta.get("last"):
                    self._end = r + 1
            self._after_change()

    def _on_received(self, msg: Any) -> None:
        pdu = split_pdu(msg)
        if pdu is None:
            return
        meta, vec = pdu
        now = time.monotonic()
        with self._lock:
            self._last_rx = now
            if not meta.get("header_ok", True):
                self.c["header_crc_failures"] += 1  # its frame shows up as lost
                return
            r = self._running(int(finite_or(meta.get("frame_number"), -1)))
            is_flush = r in self._flush
            if not is_flush and r not in self._pending:
                self.c["late_frames"] += 1  # given up on already, a duplicate, or no frame of ours
                return
            for older in [p for p in self._pending if p < r]:
                self._lose(older, "gap")
            for older in [f for f in self._flush if f <= r]:
                del self._flush[older]
            if is_flush:
                self._after_change()
                return
            self._account(r, meta, vec, now)
            self._after_change()

    def _running(self, air: int) -> int:
        """The in-flight running frame number congruent to a 16-bit air frame number."""
        if air < 0:
            return -1
        live = [*self._pending, *self._flush]
        ref = min(live) if live else self._next
        return ref + (air - ref) % _WRAP

    def _account(self, r: int, meta: dict[str, Any], vec: Any, now: float) -> None:
        sent = self._pending.pop(r)
        rx = image_u8_from_vector(vec) if not meta.get("corrupt") else None
        if rx is None:
            self.c["corrupt"] += 1
            self._lost_counters("corrupt", sent)
            self._record(r, sent, "corrupt", meta, None)
            return
        self.c["frames_received"] += 1
        # separate coding hands on a fallback image when LDPC or the codec fails: received, but counted
        self.c["fallbacks"] += int(bool(meta.get("fallback")))
        psnr = _psnr(sent.image, rx)
        self._sums["psnr"] += 0.0 if math.isnan(psnr) else psnr
        snr, cfo = finite_or(meta.get("snr_est_db"), math.nan), finite_or(meta.get("cfo_hz"), math.nan)
        self._sums["snr"] += 0.0 if math.isnan(snr) else snr
        self._sums["cfo"] += 0.0 if math.isnan(cfo) else cfo
        self._sums["latency"] += now - sent.t_sent
        pred = meta.get("pred")
        if sent.label >= 0:
            self.c["labelled_sent"] += 1
            if pred is not None:
                self.c["labelled"] += 1
                self.c["correct"] += int(int(pred) == sent.label)
        self._record(r, sent, "received", meta, rx, {"psnr_db": psnr})

    def _lose(self, r: int, why: str) -> None:
        sent = self._pending.pop(r)
        self._lost_counters(why, sent)
        self._record(r, sent, "lost", {}, None, {"why": why})

    def _lost_counters(self, why: str, sent: _Pending) -> None:
        self.c["frames_lost"] += 1
        if why in ("gap", "timeout"):
            self.c[f"lost_by_{why}"] += 1
        elif why == "stopped":
            self.c["lost_at_stop"] += 1
        if sent.label >= 0:
            self.c["labelled_sent"] += 1

    def _record(self, r: int, sent: _Pending, status: str, meta: dict[str, Any], rx: np.ndarray | None,
                extra: dict[str, Any] | None = None) -> None:
        extra = extra or {}
        if len(self._samples) < self.n_samples:
            self._samples.append({"frame": r, "sent": sent.image, "received": rx, "label": sent.label,
                                  "pred": meta.get("pred"), "confidence": meta.get("confidence"), "status": status})
        if self._csv is not None:
            self._csv.writerow({
                "frame": r, "air_frame_number": r % _WRAP, "status": status if status != "lost" else f"lost:{extra['why']}",
                "label": sent.label, "pred": meta.get("pred", ""), "confidence": _fmt(meta.get("confidence")),
                "psnr_db": _fmt(extra.get("psnr_db")), "snr_est_db": _fmt(meta.get("snr_est_db")),
                "cfo_hz": _fmt(meta.get("cfo_hz")), "latency_s": _fmt(time.monotonic() - sent.t_sent),
            })

    def _after_change(self) -> None:
        accounted = self.c["frames_received"] + self.c["frames_lost"]
        done = (self._end is not None and not self.done_event.is_set() and self._next >= self._end
                and not any(r < self._end for r in self._pending))
        if done:
            self._t_end = time.monotonic()
            self.done_event.set()
            self.write_json()
            if self._csv_file is not None:
                self._csv_file.flush()
            log.info("metrics sink: all %d frames accounted for", self.c["frames_sent"])
        self.message_port_pub(PORT_ACK, pmt.to_pmt({"accounted": accounted, "done": self.done_event.is_set()}))

    # --- timeouts and periodic writes --------------------------------------------------------------
    def _watchdog(self) -> None:
        last_write = time.monotonic()
        while not self._stop_evt.wait(0.05):
            now = time.monotonic()
            with self._lock:
                if now - self._last_rx > self.loss_timeout_s and (self._pending or self._flush):
                    # the chain has gone quiet: what was sent long enough ago is not coming
                    old = [r for r, p in self._pending.items() if now - p.t_sent > self.loss_timeout_s]
                    for r in old:
                        self._lose(r, "timeout")
                    for f in [f for f, t in self._flush.items() if now - t > self.loss_timeout_s]:
                        del self._flush[f]
                    if old:
                        self._after_change()
                if self.write_interval_s > 0 and now - last_write >= self.write_interval_s:
                    last_write = now
                    self.write_json()
                    if self._csv_file is not None:
                        self._csv_file.flush()

    # --- results ------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Counters and means so far (see the module docstring for the accounting)."""
        with self._lock:
            c, s = self.c, self._sums
            n_rx = c["frames_received"]
            t_end = self._t_end if self._t_end is not None else time.monotonic()
            elapsed = t_end - self._t0 if self._t0 is not None else 0.0
            return {
                "frames_sent": c["frames_sent"], "frames_received": n_rx, "frames_lost": c["frames_lost"],
                "frames_in_flight": len(self._pending), "header_crc_failures": c["header_crc_failures"],
                "corrupt": c["corrupt"], "fallbacks": c["fallbacks"], "late_frames": c["late_frames"],
                "lost_by_gap": c["lost_by_gap"],
                "lost_by_timeout": c["lost_by_timeout"], "lost_at_stop": c["lost_at_stop"],
                "accuracy": c["correct"] / c["labelled"] if c["labelled"] else None,
                # lost frames count as wrong: what the application at the receiver actually got
                "accuracy_sent": c["correct"] / c["labelled_sent"] if c["labelled_sent"] else None,
                "psnr_db": s["psnr"] / n_rx if n_rx else None,
                "snr_est_db": s["snr"] / n_rx if n_rx else None,
                "cfo_est_hz": s["cfo"] / n_rx if n_rx else None,
                "latency_s": s["latency"] / n_rx if n_rx else None,
                "elapsed_s": elapsed, "frames_per_s": (n_rx + c["frames_lost"]) / elapsed if elapsed > 0 else None,
                "done": self.done_event.is_set(),
            }

    def samples(self) -> list[dict[str, Any]]:
        """The first ``n_samples`` accounted frames: sent/received uint8 HWC images (received None
        when lost), label, pred, confidence, status."""
        with self._lock:
            return [dict(s) for s in self._samples]

    def write_json(self, path: str | Path | None = None, extra: dict[str, Any] | None = None) -> Path | None:
        """Write the summary (plus ``extra`` keys and ``params``) to ``path`` or ``json_path``."""
        target = Path(path) if path is not None else self.json_path
        if target is None:
            return None
        doc = {**self.summary(), **(extra or {})}
        if self.run_info:
            doc["params"] = self.run_info
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        tmp.replace(target)
        return target


def _psnr(sent: np.ndarray | None, received: np.ndarray) -> float:
    if sent is None:
        return math.nan
    p = float(psnr_db(sent[None].astype(np.float32) / 255.0, received[None].astype(np.float32) / 255.0)[0])
    return min(p, PSNR_CAP_DB)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "" if math.isnan(f) else f"{f:.4g}"
