"""Metrics sink: accounts for every frame the image source sent, and measures what came back.

Inputs: ``sent`` (the image source's PDUs: running ``frame_number``, ``label``, the image) and
``received`` (classified PDUs from the receive chain: 16-bit ``frame_number`` from the air,
``header_ok``, ``snr_est_db``, ``cfo_hz``, ``pred``, ``confidence``, the decoded image).
Output ``ack``: ``{accounted, done}`` whenever either changes, for the image source's window.

The accounting is :class:`semjscc.link.ledger.StreamLedger` (GNU Radio-free, defined once): so
``frames_sent == frames_received + frames_lost + frames_in_flight`` at every moment, and when the
run ends (``done``, or ``stop()``, which gives up on frames still in flight)
``frames_sent == frames_received + frames_lost``. This block adds what needs a flowgraph: the
ports, a watchdog thread that declares frames lost once the chain has gone quiet for the loss
timeout, the acks that pace the source, and the files (summary JSON, per-frame CSV).

The loss timeout starts at ``loss_timeout_s`` and adapts to the link, upwards only: it stays at
least ``LATENCY_MARGIN`` times the slowest latency (sent -> received) seen, counting frames that
arrive after the timeout had given up on them (a starved CPU, a slow first inference, a deep queue).
A fixed timeout counted every frame of a link slower than it as lost. A frame lost on the air is
still found by the gap a later frame leaves, so a longer timeout only delays the verdict on the
run's tail; it never exceeds ``max(loss_timeout_s, MAX_ADAPTED_TIMEOUT_S)``. Until the chain's
first output the timeout is at least ``STARTUP_GRACE_S``: the first frame also waits for the chain
to warm up (sessions' first inference, a radio's buffers), and the source keeps sending meanwhile,
so a short timeout there gave up on whole windows of frames at once. The summary reports the
timeout in force as ``loss_timeout_s``.

Done: once the source has sent its last frame (``last`` in its metadata) and all frames up to it
are accounted for, the sink writes its JSON, sets :attr:`done_event` and says ``done`` on ``ack``;
the image source then finishes the flowgraph.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pmt
from gnuradio import gr

from semjscc.gr.params import as_float, as_int
from semjscc.gr.pdus import image_u8_from_vector, log, meta_pmt, split_pdu
from semjscc.link.ledger import DROPPED_OVERLOAD, Outcome, StreamLedger
from semjscc.phy.frame import MAX_FRAME_NUMBER
from semjscc.util.errors import UsageError
from semjscc.util.files import write_json
from semjscc.util.stats import wilson_rate

PORT_SENT = pmt.intern("sent")
PORT_RECEIVED = pmt.intern("received")
PORT_ACK = pmt.intern("ack")
PORT_STATS = pmt.intern("stats")
_WRAP = MAX_FRAME_NUMBER + 1
LATENCY_MARGIN = 4.0  # loss timeout >= this x the slowest latency seen
MAX_ADAPTED_TIMEOUT_S = 120.0  # how far the adapted loss timeout may grow (unless set higher)
STARTUP_GRACE_S = 10.0  # the least loss timeout before the chain's first output (warm-up)
TIMED_OUT_MEMORY = 4096  # frames lost by timeout whose send time is kept, to measure late arrivals
LATENCY_WINDOW = 1 << 17  # received frames whose latency is kept for percentiles (~3 min at 658 frames/s)
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
    parent = next((a for a in p.absolute().parents if a.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UsageError(f"{block}: {name} {p} cannot be created because {parent} is a file, not a directory; "
                         f"choose another path")
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{block}: {name} {p} cannot be written: {parent} is not writable by this user; "
                         f"choose another path")
    return p


def console_line(s: dict[str, Any]) -> str:
    """A run's result in one line: frames, accuracy with its 95 % interval and n, PSNR, SNR estimate."""
    n, acc = int(s.get("frames_received") or 0), s.get("accuracy")
    accuracy = "-"
    if acc is not None and n:
        lo, hi = wilson_rate(acc, n)
        accuracy = f"{100 * acc:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] (95 %, n = {n})"
    def num(k: str) -> str:
        v = s.get(k)
        return "-" if v is None else f"{v:.2f}"
    return (f"semjscc metrics: {s['frames_sent']} frames sent, {s['frames_received']} received, {s['frames_lost']} lost; "
            f"accuracy {accuracy}; PSNR {num('psnr_db')} dB; estimated SNR {num('snr_est_db')} dB")


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
        # optional: the radio path's own counters (stream TX, RX guard), a dict with a "name" per
        # sender, kept as the latest of each and written under "radio_stats"
        self.message_port_register_in(PORT_STATS)
        self.set_msg_handler(PORT_STATS, self._on_stats)
        self.radio_stats: dict[str, dict[str, Any]] = {}
        self.done_event = threading.Event()
        self._lock = threading.RLock()
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self._csv_file: TextIO | None = None
        self._csv: Any = None
        self.csv_error: str | None = None  # why the per-frame CSV stopped (a full disk), in the JSON
        self._said_summary = False
        self._reset()

    def _reset(self) -> None:
        self.ledger = StreamLedger(self._record)
        self.timeout_s = self.loss_timeout_s  # the adapted loss timeout (module docstring)
        self._timed_out: OrderedDict[int, float] = OrderedDict()  # air number -> send time, newest last
        self._t0: float | None = None
        self._t_end: float | None = None
        self._last_rx = time.monotonic()
        self._any_rx = False  # the chain has said something (a frame, a header failure)
        self._samples: list[dict[str, Any]] = []
        # latencies of the last LATENCY_WINDOW received frames (sent -> accounted), for percentiles;
        # bounded: a radio link runs for days
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._finalized = False
        self._write_failed = False
        self._ack: tuple[int, bool] = (-1, False)

    # --- scheduler hooks ----------------------------------------------------------------------
    def start(self) -> bool:
        with self._lock:
            self._last_rx = time.monotonic()
            if self.csv_path is not None and self._csv_file is None and self.csv_error is None:
                self._csv_do(self._open_csv)
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
                self.ledger.give_up("stopped")
                self._finalized = True
                if self._t_end is None:
                    self._t_end = time.monotonic()
            if self._csv_file is not None:
                self._csv_do(self._csv_file.close)
                self._csv_file, self._csv = None, None
            self.write_json()  # after the CSV: a CSV that could not be written is said in the JSON
            summary = self.summary()
            if self.json_path is None and not self._said_summary and summary["frames_sent"]:
                # a flowgraph run by hand (python build/X.py) without a JSON file: the console gets the result
                self._said_summary = True
                print(console_line(summary), flush=True)
            return summary

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
            self.ledger.on_sent(meta, None if meta.get("flush") else image_u8_from_vector(vec), now)
            self._after_change()

    def _on_received(self, msg: Any) -> None:
        # A frame's "sent" PDU is always queued before its "received" one, but GNU Radio empties one
        # port's queue before the next: a sink that fell behind (a loaded machine) handled frames
        # received before it knew they were sent, and counted them late and then lost. So whatever
        # is queued on "sent" goes first.
        while (sent := self.delete_head_nowait(PORT_SENT)) is not None:
            self._on_sent(sent)
        pdu = split_pdu(msg)
        if pdu is None:
            return
        meta, vec = pdu
        now = time.monotonic()
        with self._lock:
            self._last_rx, self._any_rx = now, True
            image = (image_u8_from_vector(vec) if meta.get("header_ok", True) and not meta.get("corrupt")
                     and not meta.get(DROPPED_OVERLOAD) else None)
            late = self.ledger.late_frames
            self.ledger.on_received(meta, image, now)
            t_sent = self._timed_out.pop(meta.get("frame_number"), None) if self.ledger.late_frames > late else None
            if t_sent is not None:
                self._adapt_timeout(LATENCY_MARGIN * (now - t_sent),
                                    f"a frame the timeout gave up on arrived {now - t_sent:.2f} s after it was sent")
            self._after_change()

    def _on_stats(self, msg: Any) -> None:
        if not pmt.is_dict(msg):
            return
        stats = pmt.to_python(msg)
        name = str(stats.pop("name", "radio"))
        with self._lock:
            self.radio_stats[name] = stats
            if self.done_event.is_set():  # counters that change after the last frame (the TX's tail)
                self.write_json()

    def _adapt_timeout(self, wanted: float, why: str) -> None:
        new = min(wanted, max(self.loss_timeout_s, MAX_ADAPTED_TIMEOUT_S))
        if new > self.timeout_s:
            if new >= 1.25 * self.timeout_s:  # said once per real step, not for every late frame of a burst
                log.info("metrics sink: loss timeout %.2f s -> %.2f s (%s)", self.timeout_s, new, why)  # in the JSON too
            self.timeout_s = new

    def _record(self, o: Outcome) -> None:
        """Every accounted frame: a kept sample (the first ``n_samples``) and a CSV row."""
        r = o.sent.frame
        if o.latency_s is not None:
            self._latencies.append(o.latency_s)
            if LATENCY_MARGIN * o.latency_s > self.timeout_s:
                self._adapt_timeout(LATENCY_MARGIN * o.latency_s, f"a frame took {o.latency_s:.2f} s to arrive")
        if o.status == "lost" and o.why == "timeout" and o.sent.t_sent:
            self._timed_out[r % _WRAP] = o.sent.t_sent
            self._timed_out.move_to_end(r % _WRAP)
            if len(self._timed_out) > TIMED_OUT_MEMORY:
                self._timed_out.popitem(last=False)
        if len(self._samples) < self.n_samples:
            self._samples.append({"frame": r, "sent": o.sent.image, "received": o.image, "label": o.sent.label,
                                  "pred": o.pred, "confidence": o.confidence, "status": o.status})
        if self._csv is not None:
            self._csv_do(self._csv.writerow, {
                "frame": r, "air_frame_number": r % _WRAP, "status": f"lost:{o.why}" if o.status == "lost" else o.status,
                "label": o.sent.label, "pred": "" if o.pred is None else o.pred, "confidence": _fmt(o.confidence),
                "psnr_db": _fmt(o.psnr_db), "snr_est_db": _fmt(o.snr_est_db), "cfo_hz": _fmt(o.cfo_hz),
                "latency_s": _fmt(time.monotonic() - o.sent.t_sent),
            })

    def _after_change(self) -> None:
        if self.ledger.done and not self.done_event.is_set():
            self._t_end = time.monotonic()
            self.done_event.set()
            self.write_json()
            if self._csv_file is not None:
                self._csv_do(self._csv_file.flush)
            log.info("metrics sink: all %d frames accounted for", self.ledger.counts["frames_sent"])
        ack = (self.ledger.accounted, self.done_event.is_set())
        if ack != self._ack:  # a sent frame changes neither: one ack per accounted frame, not two
            self._ack = ack
            self.message_port_pub(PORT_ACK, meta_pmt({"accounted": ack[0], "done": ack[1]}))

    # --- timeouts and periodic writes --------------------------------------------------------------
    def _watchdog(self) -> None:
        last_write = time.monotonic()
        while not self._stop_evt.wait(0.05):
            now = time.monotonic()
            with self._lock:
                # the chain has gone quiet: what was sent long enough ago is not coming
                timeout = self.loss_timeout_in_force()
                quiet = now - self._last_rx > timeout and self.ledger.in_flight
                if quiet and self.ledger.expire(now, timeout):
                    self._after_change()
                if self.write_interval_s > 0 and now - last_write >= self.write_interval_s:
                    last_write = now
                    self.write_json()
                    if self._csv_file is not None:
                        self._csv_do(self._csv_file.flush)

    # --- the per-frame CSV: a full disk or a read-only folder stops the CSV, never the run ------------
    def _open_csv(self) -> None:
        assert self.csv_path is not None
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        self._csv_file = open(self.csv_path, "w", newline="")  # noqa: SIM115 (closed in finalize)
        self._csv = csv.DictWriter(self._csv_file, fieldnames=CSV_FIELDS)
        self._csv.writeheader()

    def _csv_do(self, op: Any, *args: Any) -> None:
        """Run a CSV operation; on OSError (ENOSPC, EROFS, EACCES: in a GNU Radio thread an exception
        would abort the process) the CSV is given up, said once, and named in the JSON as csv_error."""
        try:
            op(*args)
        except OSError as e:
            self.csv_error = f"{self.csv_path}: {e.strerror or e}"
            log.error("metrics sink: the per-frame CSV stops (%s); the summary JSON is still written", self.csv_error)
            f, self._csv_file, self._csv = self._csv_file, None, None
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()

    def loss_timeout_in_force(self) -> float:
        """The adapted loss timeout, or ``STARTUP_GRACE_S`` if longer while the chain is still silent."""
        return self.timeout_s if self._any_rx else max(self.timeout_s, STARTUP_GRACE_S)

    # --- results ------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The ledger's counters and means so far (:data:`semjscc.link.ledger.SUMMARY_KEYS` and more), the
        elapsed time and frame rate, and ``done``."""
        with self._lock:
            t_end = self._t_end if self._t_end is not None else time.monotonic()
            elapsed = t_end - self._t0 if self._t0 is not None else 0.0
            s = self.ledger.summary()
            s.update(elapsed_s=elapsed, frames_per_s=self.ledger.accounted / elapsed if elapsed > 0 else None,
                     done=self.done_event.is_set(), loss_timeout_s=self.loss_timeout_in_force())
            return s

    def latency_percentiles(self, percents: tuple[float, ...] = (50.0, 99.0)) -> dict[str, float | None]:
        """Percentiles of the latency (source -> sink, seconds) of the last ``LATENCY_WINDOW`` received
        frames: {'p50': ..., 'p99': ...} (None before any)."""
        with self._lock:
            lat = np.asarray(self._latencies)
        return {f"p{p:g}": float(np.percentile(lat, p)) if len(lat) else None for p in percents}

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
        if self.csv_error:
            doc["csv_error"] = self.csv_error
        if self.radio_stats:
            doc["radio_stats"] = {k: dict(v) for k, v in self.radio_stats.items()}
        if self.run_info:
            doc["params"] = self.run_info
        try:
            write_json(target, doc, default=str)  # atomic: a reader or a crash never sees half a file
        except OSError as e:  # a full disk: said once per run, never an exception in a GNU Radio thread
            if not self._write_failed:
                log.error("metrics sink: cannot write %s (%s); the summary stays in memory", target, e.strerror)
            self._write_failed = True
            return None
        return target


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "" if math.isnan(f) else f"{f:.4g}"
