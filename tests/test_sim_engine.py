"""The simulated link end to end: the in-process engine (`semjscc run sim_loopback`, `semjscc demo`)
and a .grc run through `semjscc run`, with tiny untrained models: accounting and one-line errors, not
accuracy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("gnuradio.gr")

from semjscc.cli.main import main
from semjscc.grc.run import FLOWGRAPHS_DIR
from semjscc.link.ledger import RUN_KEYS as KEYS
from semjscc.phy.numerology import DEFAULT_NUMEROLOGY as NUM
from semjscc.util.errors import ModelError

# the shared fixtures (tiny zoo, data, grcc compiled once per session, HOME) are in conftest.py
# every test here runs the flowgraph or needs the tiny zoo (torch): slow, out of `make test-fast`
pytestmark = [pytest.mark.gnuradio, pytest.mark.slow, pytest.mark.usefixtures("gr_home")]
REPO = Path(__file__).resolve().parents[1]


def test_engine_end_to_end(zoo: Path, data: Path, tmp_path: Path) -> None:
    from semjscc.gr.sim_loopback import SimConfig, run_sim

    cfg = SimConfig(snr_db=20.0, cfo_hz=2000.0, frames=20, model=str(zoo / "jscc-kn6"), source=str(data),
                    json_path=str(tmp_path / "r.json"), csv_path=str(tmp_path / "r.csv"))
    t0 = time.monotonic()
    s, tb = run_sim(cfg, timeout_s=60)
    assert time.monotonic() - t0 < 30
    assert s["done"] is True
    assert s["frames_sent"] == 20 == s["frames_received"] + s["frames_lost"]
    assert s["frames_received"] == 20 and s["header_crc_failures"] == 0 and s["corrupt"] == 0
    assert abs(s["snr_est_db"] - 20.0) < 1.5 and abs(s["cfo_est_hz"] - 2000.0) < 300
    assert tb.classifier_ref.endswith("classifier")  # the one the model's card names
    doc = json.loads((tmp_path / "r.json").read_text())
    assert all(k in doc for k in KEYS)
    assert doc["params"]["snr_db"] == 20.0 and doc["params"]["noise_voltage"] == pytest.approx(NUM.noise_std_for_snr(20))
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 21


def test_batched_chain_gives_the_unbatched_chains_results(zoo: Path, data: Path, tmp_path: Path) -> None:
    """Batching, the batch wait and the adaptive window change when frames are processed, never what
    comes out: every frame's status, prediction, confidence, PSNR and SNR estimate are those of the
    chain that runs each frame on its own (one frame in flight, batches of one, no waiting)."""
    import csv

    from semjscc.gr.sim_loopback import SimConfig, run_sim

    rows = {}
    for name, kw in (("unbatched", {"max_batch": 1, "max_wait_s": 0.0, "max_in_flight": 1, "adaptive_window": False}),
                     ("batched", {})):
        cfg = SimConfig(snr_db=8.0, frames=40, model=str(zoo / "jscc-kn6"), source=str(data), seed=5,
                        csv_path=str(tmp_path / f"{name}.csv"), **kw)
        s, tb = run_sim(cfg, timeout_s=120)
        assert s["done"] and s["frames_sent"] == 40 == s["frames_received"] + s["frames_lost"]
        with open(tmp_path / f"{name}.csv") as f:
            rows[name] = {r["frame"]: r for r in csv.DictReader(f)}
        if name == "batched":
            assert tb.link_rx.clf.batches < 40  # it did batch
    keys = ("status", "label", "pred", "confidence", "psnr_db", "snr_est_db", "cfo_hz")
    assert len(rows["batched"]) == 40
    assert {f: [r[k] for k in keys] for f, r in rows["batched"].items()} == \
        {f: [r[k] for k in keys] for f, r in rows["unbatched"].items()}


def test_engine_low_snr_multipath_accounting(zoo: Path, data: Path) -> None:
    from semjscc.gr.sim_loopback import SimConfig, run_sim

    s, _ = run_sim(SimConfig(snr_db=-1.0, cfo_hz=-7000.0, frames=30, model=str(zoo / "jscc-kn6"), source=str(data),
                             multipath="indoor", seed=3, loss_timeout_s=0.5), timeout_s=60)
    assert s["done"] is True and s["frames_in_flight"] == 0
    assert s["frames_sent"] == 30 == s["frames_received"] + s["frames_lost"]
    assert s["block_errors"] == 0 and s["corrupt"] == 0


def test_run_cli_engine_and_grc(zoo: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SEMJSCC_MODELS", str(zoo))
    common = ["--snr", "20", "--cfo", "2000", "--frames", "12", "--model", "jscc-kn6", "--source", str(data),
              "--multipath", "two-ray", "--seed", "5"]
    assert main(["run", "sim_loopback", *common, "--json", str(tmp_path / "e.json")]) == 0
    assert main(["run", str(FLOWGRAPHS_DIR / "sim_loopback.grc"), *common, "--json", str(tmp_path / "g.json")]) == 0
    out = capsys.readouterr().out
    assert "12 sent, 12 received, 0 lost" in out
    e, g = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("e", "g"))
    for doc in (e, g):
        assert all(k in doc for k in KEYS)
        assert doc["frames_sent"] == 12 == doc["frames_received"] + doc["frames_lost"]
    # the same blocks, parameters and seeds: the .grc and the engine measure the same link
    assert g["snr_est_db"] == pytest.approx(e["snr_est_db"], abs=1e-6)
    assert g["psnr_db"] == pytest.approx(e["psnr_db"], abs=1e-6)
    assert g["params"]["snr_db"] == 20.0 and g["cli"]["frames"] == "12" and g["flowgraph"].endswith("sim_loopback.grc")
    # without --json the run still says what it measured, on the console (issue 26 item 5)
    assert main(["run", "sim_loopback", *common]) == 0
    out = capsys.readouterr().out
    assert "frames: 12 sent, 12 received, 0 lost" in out and "(95 %, n = 12)" in out and "wrote" not in out


def test_bad_inputs_give_one_line_errors(zoo: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from semjscc.gr.sim_loopback import SimConfig, sim_loopback

    monkeypatch.setenv("SEMJSCC_MODELS", str(zoo))
    js = str(tmp_path / "x.json")
    cases = [
        (["run", "sim_loopback", "--model", "no-such-model", "--source", str(data), "--json", js], "not found"),
        (["run", "sim_loopback", "--model", "classifier", "--source", str(data), "--json", js], "has no encoder"),
        (["run", "sim_loopback", "--model", "jscc-kn6", "--classifier", "jscc-kn6", "--source", str(data),
          "--json", js], "jscc model, which has no classifier"),
        (["run", "sim_loopback", "--multipath", "bogus", "--json", js], "multipath 'bogus'"),
        (["run", "nowhere", "--json", js], "neither a .grc file nor a shipped flowgraph"),
        (["run", str(FLOWGRAPHS_DIR / "sim_loopback_gui.grc"), "--json", js], "GUI flowgraph"),
    ]
    for argv, expect in cases:  # (--cfo out of range is argparse's now: tests/bad_inputs.yaml run-cfo-out-of-range)
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert expect in err and "\n" not in err and "Traceback" not in err, (argv, err)
    # a decoder that does not match the encoder's frame size: refused before anything runs
    cfg = SimConfig(model=str(zoo / "jscc-kn6"), decoder_model=str(zoo / "jscc-kn12"), source=str(data), frames=2)
    with pytest.raises(ModelError, match=r"sends 512 symbols per frame but decoder .* expects 256"):
        sim_loopback(cfg)


def test_demo_cli(zoo: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SEMJSCC_MODELS", str(tmp_path / "empty"))
    assert main(["demo", "--frames", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "jscc-semantic-kn6" in err and "missing" in err and "\n" not in err
    monkeypatch.setenv("SEMJSCC_MODELS", str(zoo))
    out = tmp_path / "demo"
    assert main(["demo", "--model", "tiny=jscc-kn6", "--frames", "6", "--snr", "15", "--source", str(data),
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    doc = json.loads(out.with_suffix(".json").read_text())
    r = doc["results"]["tiny"]
    assert r["frames_sent"] == 6 == r["frames_received"] + r["frames_lost"]
    assert doc["clean_accuracy"] is not None and doc["clean_images"] == 6
    # every accuracy printed carries its 95 % interval and its count
    from semjscc.util.stats import fmt_pct, wilson

    row = next(line for line in text.splitlines() if line.startswith("tiny "))
    assert fmt_pct(r["accuracy_sent"], *wilson(round(r["accuracy_sent"] * 6), 6)) in row
    assert "on the same 6 images before transmission: accuracy" in text and "[" in text.rsplit("accuracy", 1)[1]
    from PIL import Image

    with Image.open(out.with_suffix(".png")) as im:
        assert im.width > 400 and im.height > 150


def test_demo_runs_without_torch(zoo: Path, data: Path, tmp_path: Path) -> None:
    """`make demo` installs the runtime extra only: the demo, its offline AWGN curve included, must
    run with `import torch` failing."""
    out = tmp_path / "demo"
    code = ("import sys; sys.modules['torch'] = None\n"
            "from semjscc.cli.main import main\n"
            f"sys.exit(main(['demo', '--model', 'tiny=jscc-kn6', '--frames', '4', '--snr', '15', '--source', "
            f"{str(data)!r}, '--out', {str(out)!r}]))\n")
    env = {**os.environ, "SEMJSCC_MODELS": str(zoo), "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["results"]["tiny"]["frames_sent"] == 4
