"""Graceful stop: Ctrl-C (SIGINT) and SIGTERM sent to real ``semjscc`` processes while they work.

``semjscc run`` on the in-process engine and on a .grc (a grcc-generated script run as a child),
``semjscc ota`` on the simulated radio and ``semjscc train jscc``: each is started, seen to be
running, signalled, and must exit 130 (SIGINT) or 143 (SIGTERM) without a traceback, keeping what
it measured: the metrics with frames_sent == frames_received + frames_lost > 0 and
``interrupted: true``; for training a checkpoint at the batch where it stopped that loads with
``weights_only=True`` and that the same command resumes from, ending on exactly the weights of a run
that was never interrupted. The link runs the shipped models (fast enough, nothing to export)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import fake_split, write_folder, write_pickles

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models"
SIGNALS = [pytest.param(signal.SIGINT, 130, "Ctrl-C", id="SIGINT"),
           pytest.param(signal.SIGTERM, 143, "SIGTERM", id="SIGTERM")]
WITH_HANGUP = [*SIGNALS, pytest.param(signal.SIGHUP, 129, "SIGHUP", id="SIGHUP")]  # the terminal closed
WAIT_S = 90.0  # generous: the machine may be shared; a healthy run needs a few seconds


def _default_sigint() -> None:
    # a background job of a non-interactive shell starts with SIGINT ignored, and children inherit
    # that: the command would (rightly) ignore the test's SIGINT
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Cli:
    """``python -m semjscc.cli.main ARGS`` with its stdout and stderr collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.p = subprocess.Popen([sys.executable, "-m", "semjscc.cli.main", *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, cwd=cwd, preexec_fn=_default_sigint)
        self._buf: dict[str, list[bytes]] = {"out": [], "err": []}
        self._pumps = [threading.Thread(target=self._pump, args=(s, self._buf[k]), daemon=True)
                       for k, s in (("out", self.p.stdout), ("err", self.p.stderr))]
        for t in self._pumps:
            t.start()

    @staticmethod
    def _pump(stream: Any, buf: list[bytes]) -> None:
        while chunk := os.read(stream.fileno(), 65536):
            buf.append(chunk)

    @property
    def out(self) -> str:
        return b"".join(self._buf["out"]).decode(errors="replace")

    @property
    def err(self) -> str:
        return b"".join(self._buf["err"]).decode(errors="replace")

    def wait_until(self, ready: Callable[[], bool], what: str) -> None:
        t0 = time.monotonic()
        while not ready():
            if self.p.poll() is not None:
                pytest.fail(f"exited ({self.p.returncode}) before {what}:\n{self.out[-2000:]}\n{self.err[-3000:]}")
            if time.monotonic() - t0 > WAIT_S:
                pytest.fail(f"no {what} within {WAIT_S:g} s:\n{self.err[-3000:]}")
            time.sleep(0.05)

    def stop(self, sig: int) -> int:
        self.p.send_signal(sig)
        rc = self.p.wait(timeout=WAIT_S)
        for t in self._pumps:
            t.join(timeout=10)
        return rc

    def __enter__(self) -> Cli:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid``."""
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == pid:
                    kids.append((int(d.name), (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def _catches_sigterm(pid: int) -> bool:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    except OSError:
        pass
    return False


def _check_stopped(c: Cli, rc: int, code: int, name: str) -> None:
    assert rc == code, f"{c.out[-1500:]}\n{c.err[-3000:]}"
    assert "Traceback" not in c.err and "Traceback" not in c.out, c.err[-3000:]
    how = "(Ctrl-C)" if name == "Ctrl-C" else f"by {name}"
    assert c.err.rstrip().endswith(f"interrupted {how}"), c.err[-1000:]


def _check_frames(doc: dict[str, Any]) -> None:
    assert doc["frames_sent"] > 0, doc
    assert doc["frames_sent"] == doc["frames_received"] + doc["frames_lost"], doc


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("home")  # grcc, GNU Radio and ONNX Runtime write under ~ (grcc's cache is reused)
    (h / "xdg").mkdir(mode=0o700)
    return h


@pytest.fixture
def env(home: Path, tmp_path: Path) -> dict[str, str]:
    e = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home / "xdg"), "QT_QPA_PLATFORM": "offscreen",
         "MPLBACKEND": "Agg", "SEMJSCC_CACHE": str(tmp_path / "cache"), "SEMJSCC_CALIBRATION": str(tmp_path / "cal")}
    e.pop("SEMJSCC_MODELS", None)
    return e


@pytest.fixture(scope="module")
def link(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the simulated link needs: GNU Radio and the shipped models; a few pictures to send."""
    pytest.importorskip("gnuradio.gr")
    for f in ("jscc-semantic-kn6/encoder.onnx", "jscc-semantic-kn6/decoder.onnx", "classifier/classifier.onnx"):
        if not (SHIPPED / f).is_file() or (SHIPPED / f).stat().st_size < 10_000:
            pytest.skip(f"shipped model file {SHIPPED / f} missing")
    return write_pickles(tmp_path_factory.mktemp("cifar"), fake_split(3, 1), fake_split(3, 2))


# --- semjscc run -------------------------------------------------------------------------------

def _check_run(c: Cli, rc: int, code: int, name: str, js: Path, csv_path: Path) -> dict[str, Any]:
    _check_stopped(c, rc, code, name)
    doc = json.loads(js.read_text())
    _check_frames(doc)
    assert doc["interrupted"] is True and doc["stopped_by"] == name and doc["done"] is False
    assert doc["frames_in_flight"] == 0
    assert f"frames: {doc['frames_sent']} sent, {doc['frames_received']} received" in c.out  # the summary
    with csv_path.open() as f:  # one row per frame accounted for, none lost to the stop
        assert len(list(csv.DictReader(f))) == doc["frames_sent"]
    return doc


@pytest.mark.slow  # runs the flowgraph
@pytest.mark.gnuradio
@pytest.mark.parametrize(("sig", "code", "name"), WITH_HANGUP)
def test_run_engine_stops_and_writes_what_it_measured(link: Path, env: dict[str, str], tmp_path: Path, sig: int,
                                                      code: int, name: str) -> None:
    js, rows = tmp_path / "r.json", tmp_path / "r.csv"
    with Cli(["run", "sim_loopback", "--frames", "100000", "--source", str(link), "--json", str(js), "--csv", str(rows)],
             env, tmp_path) as c:
        c.wait_until(lambda: "frames accounted for" in c.err, "progress line")
        rc = c.stop(sig)
    doc = _check_run(c, rc, code, name, js, rows)
    assert doc["params"]["frames"] == 100000


@pytest.mark.slow
@pytest.mark.gnuradio
@pytest.mark.parametrize(("sig", "code", "name"), SIGNALS)
def test_bench_soak_stops_and_writes_its_report(link: Path, env: dict[str, str], tmp_path: Path, sig: int,
                                                code: int, name: str) -> None:
    js, rows = tmp_path / "s.json", tmp_path / "s.csv"
    with Cli(["bench", "soak", "--frames", "100000", "--source", str(link), "--json", str(js), "--csv", str(rows)],
             env, tmp_path) as c:
        c.wait_until(lambda: "/100000 frames:" in c.err, "progress line")  # one every 1000 frames
        rc = c.stop(sig)
    _check_stopped(c, rc, code, name)
    doc = json.loads(js.read_text())
    _check_frames(doc)
    assert doc["interrupted"] is True and doc["stopped_by"] == name and not doc["done"] and doc["exceptions"] == 0
    # frames still on their way to the channel at the stop are lost without a drawn SNR
    assert sum(b["frames"] for b in doc["by_snr"]) + doc["frames_before_channel"] == doc["frames_sent"] >= 1000
    assert "| sent | received |" in c.out


@pytest.mark.slow
@pytest.mark.gnuradio
@pytest.mark.parametrize(("sig", "code", "name"), SIGNALS)
def test_run_grc_passes_the_signal_to_the_flowgraph(link: Path, env: dict[str, str], tmp_path: Path, sig: int,
                                                    code: int, name: str) -> None:
    if shutil.which("grcc") is None:
        pytest.skip("grcc not installed")
    js, rows = tmp_path / "g.json", tmp_path / "g.csv"
    grc = REPO / "flowgraphs" / "sim_loopback.grc"
    with Cli(["run", str(grc), "--frames", "100000", "--source", str(link), "--json", str(js), "--csv", str(rows)],
             env, tmp_path) as c:
        # the generated script catches SIGTERM once its top block is built, just before it starts it
        c.wait_until(lambda: any(_catches_sigterm(pid) for pid, cmd in _children(c.p.pid) if "sim_loopback.py" in cmd),
                     "flowgraph script with its signal handlers")
        time.sleep(1.5)  # frames flow from the first milliseconds after the start
        rc = c.stop(sig)
    doc = _check_run(c, rc, code, name, js, rows)
    assert doc["flowgraph"] == str(grc) and doc["cli"]["frames"] == "100000"
    assert not _children(c.p.pid)


@pytest.mark.slow
@pytest.mark.gnuradio
def test_killed_run_leaves_no_flowgraph_running_and_keeps_the_old_json(link: Path, env: dict[str, str],
                                                                       tmp_path: Path) -> None:
    """SIGKILL cannot be caught: the flowgraph script must die with its parent (it is told to stop when
    the parent goes) and the results of an earlier run must still be there, untouched."""
    if shutil.which("grcc") is None:
        pytest.skip("grcc not installed")
    js = tmp_path / "g.json"
    js.write_text('{"earlier": true}\n')
    grc = REPO / "flowgraphs" / "sim_loopback.grc"
    with Cli(["run", str(grc), "--frames", "100000", "--source", str(link), "--json", str(js)], env, tmp_path) as c:
        c.wait_until(lambda: any(_catches_sigterm(pid) for pid, cmd in _children(c.p.pid) if "sim_loopback.py" in cmd),
                     "flowgraph script with its signal handlers")
        scripts = [pid for pid, cmd in _children(c.p.pid) if "sim_loopback.py" in cmd]
        c.p.kill()
        c.p.wait(timeout=WAIT_S)
    t0 = time.monotonic()
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in scripts):
        assert time.monotonic() - t0 < 30, "the flowgraph script outlived its killed parent"
        time.sleep(0.1)
    assert json.loads(js.read_text()) == {"earlier": True}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".g.json", "semjscc-run-"))]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


# --- semjscc ota ---------------------------------------------------------------------------------

@pytest.mark.slow  # a whole over-the-air run in a subprocess
@pytest.mark.gnuradio
@pytest.mark.parametrize(("sig", "code", "name"), SIGNALS)
def test_ota_stops_after_a_whole_batch(link: Path, env: dict[str, str], tmp_path: Path, sig: int, code: int,
                                       name: str) -> None:
    pytest.importorskip("sigmf")
    pics = write_folder(tmp_path / "pics", {"test": fake_split(2, 7)}) / "test"  # 20 pictures
    out = tmp_path / "ota"
    frames_csv = out / "frames.csv"

    def rows() -> list[dict[str, str]]:
        with frames_csv.open() as f:
            return list(csv.DictReader(f))

    with Cli(["ota", "--uri", "sim:seed=3", "--tx-atten", *["40"] * 200, "--images", "20", "--batch", "4",
              "--data", str(pics), "--calibration", "none", "--no-sim", "--out", str(out)], env, tmp_path) as c:
        c.wait_until(lambda: frames_csv.is_file() and len(rows()) >= 4, "first batch in frames.csv")
        rc = c.stop(sig)
    _check_stopped(c, rc, code, name)
    doc = json.loads((out / "summary.json").read_text())
    _check_frames(doc)
    assert doc["interrupted"] is True and doc["meta"]["stopped_by"] == name
    assert doc["frames_sent"] % 4 == 0 and len(rows()) == doc["frames_sent"]  # whole batches, all in the CSV
    assert f"stopped by {name}" in c.out
    import sigmf

    rec = sigmf.sigmffile.fromfile(str(out / "recording.sigmf-meta"))
    rec.validate()  # the checksum matches the data kept
    assert len(rec.get_captures()) == doc["frames_sent"] // 4


@pytest.mark.slow
@pytest.mark.gnuradio
def test_ota_recording_survives_sigkill_at_any_moment(link: Path, env: dict[str, str], tmp_path: Path) -> None:
    """20 runs killed with SIGKILL at random moments: every recording left behind replays (the batches
    committed before the kill), never "hash does not match"."""
    pytest.importorskip("sigmf")
    import random

    pics = write_folder(tmp_path / "pics", {"test": fake_split(2, 7)}) / "test"
    rng = random.Random(20)
    replayed = 0
    for i in range(20):
        out = tmp_path / f"ota{i}"
        with Cli(["ota", "--uri", "sim:seed=3", "--tx-atten", "40", "--images", "20", "--batch", "2", "--data",
                  str(pics), "--calibration", "none", "--no-sim", "--no-progress", "--out", str(out)], env, tmp_path) as c:
            c.wait_until(lambda out=out: (out / "recording.sigmf-meta").is_file(), "recording started")
            time.sleep(rng.uniform(0.0, 1.5))
            c.p.kill()
            c.p.wait(timeout=WAIT_S)
        r = subprocess.run([sys.executable, "-m", "semjscc.cli.main", "replay", str(out / "recording.sigmf-meta")],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert r.returncode == 0, f"kill {i}: {r.stderr[-2000:]}"
        doc = json.loads(r.stdout)
        assert doc["frames_sent"] == 2 * doc["captures"] == doc["frames_received"] + doc["frames_lost"]
        replayed += doc["captures"] > 0
    assert replayed >= 5  # most kills came after a batch or more was committed


# --- semjscc train -------------------------------------------------------------------------------

TRAIN = ["train", "jscc", "--epochs", "2", "--batch", "4", "--width", "4", "--threads", "1", "--seed", "3"]
STEPS = 62  # batches of 4 per epoch over 250 images
_BATCH = re.compile(r"jscc (\d)/2:.*?(\d+)/(\d+) \[")


@pytest.fixture(scope="module")
def train_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    return write_pickles(tmp_path_factory.mktemp("train"), fake_split(25, 4), fake_split(2, 5))


@pytest.fixture(scope="module")
def uninterrupted(train_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same training, never stopped (in this process: one interpreter start less)."""
    import torch
    from semjscc.cli.main import main

    out = tmp_path_factory.mktemp("ref") / "ref.pt"
    threads = torch.get_num_threads()
    try:
        assert main([*TRAIN, "--data", str(train_data), "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)  # --threads 1 is process-wide
    return torch.load(out, weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code", "name"), SIGNALS)
def test_training_saves_a_checkpoint_that_resumes_exactly(train_data: Path, uninterrupted: dict[str, Any],
                                                          env: dict[str, str], tmp_path: Path, sig: int, code: int,
                                                          name: str) -> None:
    import torch

    ck = tmp_path / "j.pt"
    argv = [*TRAIN, "--data", str(train_data), "--out", str(ck)]

    def batches_done() -> int:
        m = _BATCH.findall(c.err)
        return int(m[-1][1]) if m else 0

    with Cli(argv, env, tmp_path) as c:
        c.wait_until(lambda: batches_done() >= 3, "training batches")
        rc = c.stop(sig)
    _check_stopped(c, rc, code, name)
    state = torch.load(ck, weights_only=True)  # tensors and plain data only
    assert state["kind"] == "jscc" and state["epoch"] in (0, 1) and "partial" in state
    step = state["partial"]["step"]
    assert f"interrupted in epoch {state['epoch'] + 1} after batch {step}/{STEPS}" in c.out

    r = subprocess.run([sys.executable, "-m", "semjscc.cli.main", *argv], capture_output=True, text=True, env=env,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resuming {ck}: epoch {state['epoch'] + 1}/2 from batch {step}/{STEPS}" in r.stdout
    assert "finished 2 epochs in " in r.stdout and f"next: semjscc export --jscc {ck} " in r.stdout
    assert "val {}" not in r.stdout
    done = torch.load(ck, weights_only=True)
    assert done["epoch"] == 2 and "partial" not in done
    # the same weights and losses as a run that was never stopped
    assert done["model"].keys() == uninterrupted["model"].keys()
    for k, v in uninterrupted["model"].items():
        assert torch.equal(done["model"][k], v), k
    assert [h["train_loss"] for h in done["history"]] == [h["train_loss"] for h in uninterrupted["history"]]
