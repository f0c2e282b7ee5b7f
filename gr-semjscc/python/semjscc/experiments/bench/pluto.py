"""The shipped Pluto flowgraphs run live, through gr-iio's blocks unmodified, against emulated Plutos
(``semjscc.radio.emulator``): one radio for ``pluto_loopback``, two on one air for ``pluto_tx`` ->
``pluto_rx``. Used by the tests (tests/test_pluto_live.py) and by ``semjscc bench pluto``.

A run is judged by what a Pluto owner would see: the flowgraph ends by itself, gr-iio never says
"Invalid packet size" (its sink's rule: a length tag, if any, equal to the buffer size), every frame is
accounted for (sent = received + lost, in the metrics JSON), and the radio's own overflow / underflow
flags (what gr-iio polls and prints as ``O`` / ``U``) with their times, so start-up can be told apart
from the steady state (``STARTUP_S`` after the first TX buffer).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semjscc.link.ledger import DROPPED_OVERLOAD
from semjscc.radio.emulator.server import EmulatedPluto

STARTUP_S = 2.0  # events this long after the radio's first streaming TX buffer count as start-up
INVALID_PACKET = "Invalid packet size"  # gr-iio 3.10's sink, on a length tag that is not its buffer size
RX_START_S = 1.0  # pluto_tx starts this long after pluto_rx's radio streams (docs/hardware.md: receiver first)


@dataclass
class LiveRun:
    """One flowgraph process: exit status, its output, wall time, metrics JSON (None if none was
    written) and whether it had to be stopped."""

    name: str
    returncode: int
    output: str
    wall_s: float
    doc: dict[str, Any] | None
    timed_out: bool
    radios: list[dict[str, Any]] = field(default_factory=list)

    def problems(self) -> list[str]:
        """What a working live run must not show (empty when it is fine)."""
        out = []
        if self.timed_out:
            out.append(f"{self.name}: did not end by itself (stopped after {self.wall_s:.0f} s)")
        elif self.returncode != 0:
            out.append(f"{self.name}: exit status {self.returncode}: {self.output.strip().splitlines()[-1:]}")
        if INVALID_PACKET in self.output:
            out.append(f"{self.name}: gr-iio's sink said {INVALID_PACKET!r}")
        if self.doc is None:
            out.append(f"{self.name}: wrote no metrics JSON")
        elif self.doc.get("frames_sent") != self.doc.get("frames_received", 0) + self.doc.get("frames_lost", 0):
            out.append(f"{self.name}: frames not accounted: sent {self.doc.get('frames_sent')}, received "
                       f"{self.doc.get('frames_received')}, lost {self.doc.get('frames_lost')}")
        return out


def radio_events(pluto: EmulatedPluto, startup_s: float = STARTUP_S) -> dict[str, Any]:
    """The emulated radio's overflow / underflow flags: all of them and those after start-up."""
    r = pluto.radio
    t0 = r.first_tx_push_s
    after = (t0 + startup_s) if t0 is not None else None
    out: dict[str, Any] = {"uri": pluto.uri, "ppm": r.ppm, "first_tx_push_s": t0}
    for kind in ("underflow", "overflow"):
        times = [t for k, t in r.events if k == kind]
        out[f"{kind}s"] = len(times)
        # without a TX buffer (a receive-only radio) start-up is counted from the first event on the air
        ref = after if after is not None else startup_s
        out[f"{kind}s_after_startup"] = sum(t > ref for t in times)
    return out


def flowgraph_env() -> dict[str, str]:
    """The environment a compiled flowgraph runs in: this one, Qt headless."""
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONUNBUFFERED": "1"}


def start(script: Path, args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-u", str(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=flowgraph_env(), start_new_session=True)


def finish(name: str, proc: subprocess.Popen[str], t0: float, timeout_s: float, json_path: Path) -> LiveRun:
    """Wait for a started flowgraph (SIGTERM, then SIGKILL, past ``timeout_s``) and collect its run."""
    timed_out = False
    try:
        output, _ = proc.communicate(timeout=max(1.0, timeout_s - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.terminate()
        try:
            output, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    wall = time.monotonic() - t0
    doc = None
    if json_path.is_file():
        import json

        doc = json.loads(json_path.read_text())
    return LiveRun(name, proc.returncode, output, wall, doc, timed_out)


def run_loopback(script: Path, pluto: EmulatedPluto, out_dir: Path, frames: int, args: list[str],
                 timeout_s: float) -> LiveRun:
    """``pluto_loopback`` (compiled) on one emulated radio; metrics to ``out_dir/loopback.json`` (+ CSV)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, cs = out_dir / "loopback.json", out_dir / "loopback.csv"
    js.unlink(missing_ok=True)
    t0 = time.monotonic()
    proc = start(script, ["--uri", pluto.uri, "--frames", str(frames), "--json-path", str(js),
                          "--csv-path", str(cs), *args])
    run = finish("pluto_loopback", proc, t0, timeout_s, js)
    run.radios = [radio_events(pluto)]
    return run


def run_pair(tx_script: Path, rx_script: Path, tx: EmulatedPluto, rx: EmulatedPluto, out_dir: Path, frames: int,
             tx_args: list[str], rx_args: list[str], timeout_s: float) -> tuple[LiveRun, LiveRun]:
    """``pluto_rx`` on ``rx`` started first, then ``pluto_tx`` on ``tx``, the same frames, source and seed
    (the caller passes those in both argument lists); (rx run, tx run)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "rx.json"
    js.unlink(missing_ok=True)
    t0 = time.monotonic()
    rx_proc = start(rx_script, ["--uri", rx.uri, "--frames", str(frames), "--json-path", str(js),
                                "--csv-path", str(out_dir / "rx.csv"), *rx_args])
    # the receiver listens once its radio streams (its models are loaded by then); then the transmitter starts
    while rx.stats["rx_samples"] == 0 and rx_proc.poll() is None and time.monotonic() - t0 < timeout_s:
        time.sleep(0.05)
    time.sleep(RX_START_S)
    t1 = time.monotonic()
    tx_proc = start(tx_script, ["--uri", tx.uri, "--frames", str(frames), *tx_args])
    tx_run = finish("pluto_tx", tx_proc, t1, timeout_s, out_dir / "no-tx.json")
    rx_run = finish("pluto_rx", rx_proc, t0, timeout_s, js)
    tx_run.doc = {}  # pluto_tx writes no metrics: what it sent is the receiver's reference source's
    rx_run.radios = [radio_events(rx)]
    tx_run.radios = [radio_events(tx)]
    return rx_run, tx_run


def tx_problems(run: LiveRun) -> list[str]:
    """``problems`` for a transmit-only flowgraph (no metrics JSON of its own)."""
    return [p for p in run.problems() if "metrics" not in p and "not accounted" not in p]


def read_frames(path: Path) -> dict[int, dict[str, str]]:
    """A metrics sink's per-frame CSV, by frame number."""
    with open(path, newline="") as f:
        return {int(row["frame"]): row for row in csv.DictReader(f)}


# --- semjscc bench pluto: issue 22's goals, measured on emulated radios ------------------------------------

def _accuracy(rows: dict[int, dict[str, str]]) -> dict[str, Any]:
    from semjscc.util.stats import wilson

    got = [r for r in rows.values() if r["status"] == "received"]
    correct = sum(r["pred"] == r["label"] for r in got)
    lo, hi = wilson(correct, len(got)) if got else (0.0, 1.0)
    return {"n": len(got), "correct": correct, "accuracy": correct / len(got) if got else None, "ci95": [lo, hi]}


def _paired(live: dict[int, dict[str, str]], sim: dict[int, dict[str, str]]) -> dict[str, Any]:
    """Live minus simulated accuracy on the frames both received, paired by frame (same images)."""
    import numpy as np

    from semjscc.util.stats import paired_difference

    common = [k for k in live if k in sim and live[k]["status"] == sim[k]["status"] == "received"]
    same_image = sum(live[k]["label"] == sim[k]["label"] for k in common)
    a = np.array([live[k]["pred"] == live[k]["label"] for k in common], float)
    b = np.array([sim[k]["pred"] == sim[k]["label"] for k in common], float)
    d, lo, hi = paired_difference(a, b)
    return {"n": len(common), "same_label": same_image, "difference": d, "ci95": [lo, hi]}


def bench_pluto(out_dir: Path, frames: int, snr_db: float, model: str, pair_frames: int, ota_images: int,
                seed: int, timeout_s: float, say: Any = print) -> dict[str, Any]:
    """(a) pluto_loopback on one emulated radio at ``snr_db`` (a calibration profile picks the TX
    attenuation) against sim_loopback on the same images; (b) pluto_tx -> pluto_rx on two radios at +25 /
    -25 ppm without calibration, then ``calibrate --peer --write-xo`` and its residual offset; (c) a default
    ``semjscc ota`` run's images per class. Returns the report (``rows`` per goal)."""
    from semjscc.cli.main import main
    from semjscc.grc.run import compiled_script, find_grc
    from semjscc.radio.emulator import emulated_plutos

    out_dir.mkdir(parents=True, exist_ok=True)
    scripts = {n: compiled_script(find_grc(n)) for n in ("pluto_loopback", "pluto_tx", "pluto_rx")}
    rows: list[dict[str, Any]] = []
    common = ["--model", model, "--order", "shuffled", "--seed", str(seed)]

    # (a) loopback
    with emulated_plutos((0.0,), lifetime_s=timeout_s + 600) as (pluto,):
        prof = out_dir / "loopback-profile.yaml"
        say(f"calibrating {pluto.uri}")
        assert main(["calibrate", "--uri", pluto.uri, "--rx-gains", "40", "--tx-attens", "20", "25", "30", "35",
                     "40", "--out", str(prof), "--quiet"]) == 0
        say(f"pluto_loopback: {frames} frames at {snr_db:g} dB")
        live = run_loopback(scripts["pluto_loopback"], pluto, out_dir / "loopback", frames,
                            ["--calibration", str(prof), "--target-snr", str(snr_db), *common], timeout_s)
    say("sim_loopback on the same images")
    sim_json, sim_csv = out_dir / "sim_loopback.json", out_dir / "sim_loopback.csv"
    assert main(["run", "sim_loopback", "--snr", str(snr_db), "--frames", str(frames), "--seed", str(seed),
                 "--model", model, "--json", str(sim_json), "--csv", str(sim_csv)]) == 0
    import json

    sim_doc = json.loads(sim_json.read_text())
    d = live.doc or {}
    stats = d.get("radio_stats", {})
    tx_stream, rx_mon = stats.get("tx_stream", {}), stats.get("rx_monitor", {})
    live_rows, sim_rows = read_frames(out_dir / "loopback" / "loopback.csv"), read_frames(sim_csv)
    rows.append({"goal": "a: pluto_loopback, one emulated radio", "problems": live.problems(), "wall_s": live.wall_s,
                 "frames_sent": d.get("frames_sent"), "frames_received": d.get("frames_received"),
                 "frames_lost": d.get("frames_lost"), DROPPED_OVERLOAD: d.get(DROPPED_OVERLOAD),
                 "frames_per_s": d.get("frames_per_s"), "snr_est_db": d.get("snr_est_db"),
                 "channel_snr_db": d.get("channel_snr_db"),
                 "stream_tx_late_events": tx_stream.get("late_events"), "stream_tx": tx_stream, "rx_monitor": rx_mon,
                 "radio": live.radios[0], "invalid_packet": INVALID_PACKET in live.output,
                 "accuracy_live": _accuracy(live_rows), "accuracy_sim": _accuracy(sim_rows),
                 "sim_frames_received": sim_doc.get("frames_received"), "paired": _paired(live_rows, sim_rows)})

    # (b) two radios, no calibration; then calibrate --peer --write-xo
    with emulated_plutos((25.0, -25.0), lifetime_s=timeout_s + 600) as (tx, rx):
        say(f"pluto_tx -> pluto_rx: {pair_frames} frames, +25 / -25 ppm, no calibration")
        rx_run, tx_run = run_pair(scripts["pluto_tx"], scripts["pluto_rx"], tx, rx, out_dir / "pair", pair_frames,
                                  ["--snr-table", str(prof), "--target-snr", str(snr_db), *common], common, timeout_s)
        rd = rx_run.doc or {}
        rows.append({"goal": "b: pluto_tx -> pluto_rx, +25/-25 ppm, no calibration",
                     "problems": rx_run.problems() + tx_problems(tx_run), "frames_sent": rd.get("frames_sent"),
                     "frames_received": rd.get("frames_received"), "frames_lost": rd.get("frames_lost"),
                     "received_fraction": (rd.get("frames_received", 0) / rd["frames_sent"]) if rd.get("frames_sent")
                     else None, "cfo_est_hz": rd.get("cfo_est_hz"), "snr_est_db": rd.get("snr_est_db"),
                     "radios": rx_run.radios + tx_run.radios})
        say("calibrate --peer --write-xo")
        peer_prof = out_dir / "peer-profile.yaml"
        assert main(["calibrate", "--uri", rx.uri, "--peer", tx.uri, "--write-xo", "--rx-gains", "40",
                     "--tx-attens", "30", "--out", str(peer_prof), "--quiet"]) == 0
        import yaml

        osc = yaml.safe_load(peer_prof.read_text())["oscillator"]
        rows.append({"goal": "b: calibrate --peer --write-xo, residual offset",
                     "residual_ppm": osc.get("ppm"), "residual_hz": abs(osc["offset_hz"]),
                     "offset_hz_before": osc.get("offset_hz_before_xo_correction"),
                     "xo_correction": rx.radio.state.xo_correction})

    # (c) a default ota run: images per class
    with emulated_plutos((0.0,), lifetime_s=timeout_s + 600) as (pluto,):
        say(f"semjscc ota, defaults, {ota_images} images")
        ota_dir = out_dir / "ota"
        assert main(["ota", "--uri", pluto.uri, "--calibration", "none", "--tx-atten", "30", "--images",
                     str(ota_images), "--no-sim", "--no-progress", "--out", str(ota_dir)]) == 0
    with open(ota_dir / "frames.csv", newline="") as f:
        labels = [int(r["label"]) for r in csv.DictReader(f)]
    counts = [labels.count(c) for c in range(10)]
    rows.append({"goal": "c: semjscc ota default order, images per class", "images": len(labels), "per_class": counts,
                 "max_deviation": max(abs(c - len(labels) / 10) for c in counts)})
    return {"meta": {"benchmark": "pluto", "frames": frames, "snr_db": snr_db, "model": model, "seed": seed,
                     "startup_s": STARTUP_S}, "rows": rows}
