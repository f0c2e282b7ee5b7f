"""End-to-end CLI on a tiny synthetic CIFAR-10: train classifier, MSE and semantic JSCC,
resume, evaluate (JSON schema, table, plot), and torchrun on two CPU processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import fake_split, write_archive
from semjscc.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tiny")
    os.environ.setdefault("SEMJSCC_CACHE", str(d / "cache"))
    data = write_archive(d / "c.tar.gz", {"train": fake_split(12, 5), "test": fake_split(4, 6)})
    clf = d / "clf.pt"
    assert main(["train", "classifier", "--data", str(data), "--epochs", "1", "--batch", "32",
                 "--width", "4", "--out", str(clf)]) == 0
    return {"data": data, "clf": clf, "dir": d}


def _jscc(tiny: dict[str, Path], loss: str, epochs: int, out: Path) -> int:
    return main(["train", "jscc", "--data", str(tiny["data"]), "--loss", loss, "--classifier", str(tiny["clf"]),
                 "--epochs", str(epochs), "--batch", "16", "--width", "4", "--out", str(out), "--threads", "1"])


def test_train_resume_and_eval(tiny: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    mse, sem = tiny["dir"] / "mse.pt", tiny["dir"] / "sem.pt"
    assert _jscc(tiny, "mse", 1, mse) == 0
    assert _jscc(tiny, "semantic", 1, sem) == 0
    ck = torch.load(sem, weights_only=True)
    assert ck["epoch"] == 1 and ck["config"]["loss"] == "semantic" and len(ck["history"]) == 1
    # importance maps were cached, not recomputed per step
    assert list(Path(os.environ["SEMJSCC_CACHE"]).rglob("importance/*.npy"))
    # re-running with more epochs of the same settings is refused (schedule differs) ...
    assert _jscc(tiny, "mse", 2, mse) == 2
    assert "other settings" in capsys.readouterr().err
    # ... while the same command resumes and finishes immediately
    assert _jscc(tiny, "mse", 1, mse) == 0

    out = tiny["dir"] / "ev"
    assert main(["eval", "--data", str(tiny["data"]), "--model", f"mse={mse}", "--model", f"semantic={sem}",
                 "--classifier", str(tiny["clf"]), "--snr", "0", "10", "--separate", "--out", str(out)]) == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    assert set(doc) == {"meta", "clean_accuracy", "rows"}
    assert {r["scheme"] for r in doc["rows"]} == {"mse", "semantic", "separate"} and len(doc["rows"]) == 6
    for r in doc["rows"]:
        assert set(r) == {"scheme", "snr_db", "accuracy", "psnr_db", "ssim", "n", "frames_lost"}
        assert 0 <= r["accuracy"] <= 1 and r["n"] == 40 and -1 <= r["ssim"] <= 1
    assert doc["meta"]["channel"] == "awgn" and doc["meta"]["kn"] == "1/6"
    md = out.with_suffix(".md").read_text()
    assert "| SNR (dB) |" in md and "Semantic minus MSE" in md and "relative to separate coding" in md
    assert set(doc["meta"]["separate_best"]) == {"0", "10"}
    assert out.with_name("ev-separate.json").is_file()
    assert out.with_suffix(".png").stat().st_size > 1000


def test_eval_bad_input(tiny: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--model", "nonsense", "--classifier", str(tiny["clf"])]) == 2
    assert "LABEL=MODEL" in capsys.readouterr().err
    assert main(["eval", "--model", "a=/no/such.pt", "--classifier", str(tiny["clf"])]) == 2
    assert "not found" in capsys.readouterr().err


def test_bad_training_arguments(tiny: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "jscc", "--data", str(tiny["data"]), "--loss", "semantic", "--out",
                 str(tiny["dir"] / "x.pt")]) == 2
    assert "--classifier" in capsys.readouterr().err
    assert main(["train", "jscc", "--data", str(tiny["data"]), "--mix", "2"]) == 2
    with pytest.raises(SystemExit) as e:
        main(["train", "jscc", "--kn", "7"])
    assert e.value.code == 2


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tiny: dict[str, Path]) -> None:
    """DistributedDataParallel over gloo: what several GPUs do, without code changes."""
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tiny["dir"] / "ddp.pt"
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Numeric loopback everywhere: a machine whose hostname does not resolve (no /etc/hosts, as in a
    # bare chroot) must not hang the rendezvous or gloo's device lookup.
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo"}
    r = subprocess.run([str(torchrun), "--nnodes=1", "--node-rank=0", "--nproc-per-node=2", "--master-addr=127.0.0.1",
                        f"--master-port={port}", str(Path(sys.executable).with_name("semjscc")),
                        "train", "jscc", "--data", str(tiny["data"]), "--epochs", "1", "--batch", "8", "--width", "4",
                        "--threads", "1", "--out", str(out)], capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.is_file() and "epoch 1/1" in r.stdout
