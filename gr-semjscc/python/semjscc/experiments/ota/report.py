"""Experiment outputs beside the recording: the per-frame CSV, the summary JSON and the plot of accuracy
versus measured SNR next to the simulated curve."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semjscc.experiments.ota.decode import FrameResult, summarize
from semjscc.util import files
from semjscc.util.stats import wilson_rate

CSV_FIELDS = ("point", "target_snr_db", "tx_atten_db", "frame", "air_frame_number", "image_index", "status", "label",
              "pred", "confidence", "psnr_db", "snr_est_db", "cfo_hz", "sample_start")


class FrameLog:
    """Append-only CSV, flushed per batch so an interrupted run keeps every row written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "w", newline="")  # noqa: SIM115 (kept open across batches, closed in close())
        self._w = csv.DictWriter(self._f, fieldnames=CSV_FIELDS)
        self._w.writeheader()
        self._f.flush()

    def write(self, point: dict[str, Any], frames: Sequence[FrameResult], capture_start: int) -> None:
        for r in frames:
            self._w.writerow({
                "point": point["index"], "target_snr_db": _fmt(point.get("target_snr_db")),
                "tx_atten_db": _fmt(point["tx_atten_db"]), "frame": r.frame, "air_frame_number": r.air_frame_number,
                "image_index": r.image_index, "status": r.status, "label": r.label,
                "pred": "" if r.pred is None else r.pred, "confidence": _fmt(r.confidence), "psnr_db": _fmt(r.psnr_db),
                "snr_est_db": _fmt(r.snr_est_db), "cfo_hz": _fmt(r.cfo_hz),
                "sample_start": "" if r.sample_start is None else capture_start + r.sample_start,
            })
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _fmt(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4f}"


def point_summaries(points: Sequence[dict[str, Any]], frames_by_point: dict[int, list[FrameResult]],
                    failures_by_point: dict[int, int]) -> list[dict[str, Any]]:
    """The run keys for each sweep point, with its settings."""
    out = []
    for p in points:
        frames = frames_by_point.get(p["index"], [])
        if not frames:
            continue
        out.append({**p, **summarize(frames, failures_by_point.get(p["index"], 0))})
    return out


def totals(frames_by_point: dict[int, list[FrameResult]], failures_by_point: dict[int, int]) -> dict[str, Any]:
    frames = [f for fs in frames_by_point.values() for f in fs]
    return summarize(frames, sum(failures_by_point.values()))


def write_json(path: Path, doc: dict[str, Any]) -> None:
    files.write_json(path, doc, allow_nan=False, default=_json_default)


def _json_default(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


def plot(doc: dict[str, Any], path: Path) -> None:
    """Accuracy and PSNR versus the receiver's mean SNR estimate per point, beside the simulated curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [p for p in doc.get("points", []) if p.get("snr_est_db") is not None]
    sim = doc.get("simulated", [])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    if sim:
        a1.plot([s["snr_db"] for s in sim], [100 * (s["accuracy"] or 0) for s in sim], "-", color="gray",
                label="simulated (AWGN, same PHY)")
        a2.plot([s["snr_db"] for s in sim], [s["psnr_db"] or 0 for s in sim], "-", color="gray", label="simulated")
    if pts:  # the channel's Es/N0 (the simulated curve's axis); older summaries have only the payload's
        x = [p.get("channel_snr_db") or p["snr_est_db"] for p in pts]
        acc = [100 * (p["accuracy"] or 0) for p in pts]
        # 95 % Wilson intervals: at 50 images a point carries about +-13 points
        ci = [wilson_rate(p["accuracy"] or 0.0, int(p.get("frames_received") or 0)) for p in pts]
        # (clamped: the interval of a rounded count may end a hair inside the point; none without frames)
        n = [int(p.get("frames_received") or 0) for p in pts]
        err = [[max(0.0, a - 100 * lo) if k else 0.0 for a, (lo, _hi), k in zip(acc, ci, n, strict=True)],
               [max(0.0, 100 * hi - a) if k else 0.0 for a, (_lo, hi), k in zip(acc, ci, n, strict=True)]]
        a1.errorbar(x, acc, yerr=err, fmt="o", capsize=3, label="over the air (received frames, 95 % CI)")
        a1.plot(x, [100 * (p["accuracy_sent"] or 0) for p in pts], "x", label="over the air (lost = wrong)")
        a2.plot(x, [p["psnr_db"] or 0 for p in pts], "o", label="over the air")
    clean = doc.get("clean_accuracy")
    if clean is not None:
        a1.axhline(100 * clean, color="k", ls="--", lw=1, label="clean images")
    # the channel SNR (channel_snr_db), as on the console and in summary.json's meta.snr_keys; not the
    # payload SNR after equalisation (snr_est_db), which sits above it at low SNR
    xlabel = "channel SNR (dB, measured Es/N0 per subcarrier)"
    a1.set(xlabel=xlabel, ylabel="classifier accuracy (%)", title="Accuracy vs measured channel SNR")
    a2.set(xlabel=xlabel, ylabel="PSNR (dB)", title="Reconstruction PSNR")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    meta = doc.get("meta", {})
    fig.suptitle(f"{meta.get('model', '')} over {meta.get('radio', '')}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
