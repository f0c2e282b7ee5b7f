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
from semjscc.cli.main import main

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


@pytest.mark.slow
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

    # the clean protocol with separate coding: its configuration chosen on validation images
    out = tiny["dir"] / "ev"
    assert main(["eval", "--data", str(tiny["data"]), "--model", f"mse={mse}", "--model", f"semantic={sem}",
                 "--classifier", str(tiny["clf"]), "--protocols", "clean", "--snr", "0", "10", "--separate",
                 "--out", str(out)]) == 0
    configs = out.with_name("ev-separate-val-clean.json")
    assert configs.is_file()
    # a receiver adapted to both arms' decodes and separate coding's (at the configurations chosen above)
    rcv = tiny["dir"] / "receiver.pt"
    assert main(["train", "receiver", "--data", str(tiny["data"]), "--from", str(tiny["clf"]), "--jscc", f"mse={mse}",
                 "--jscc", f"semantic={sem}", "--separate-configs", str(configs), "--epochs", "1", "--batch", "16",
                 "--separate-images", "24", "--out", str(rcv), "--threads", "1"]) == 0
    ck = torch.load(rcv, weights_only=True)
    assert ck["kind"] == "receiver" and ck["config"]["sources"] == ["clean", "jscc:mse", "jscc:semantic", "separate"]
    assert {"val_clean", "val_mse@10", "val_semantic@0", "val_separate@20"} <= set(ck["history"][-1])
    # both protocols side by side, and the SNR-uncertainty protocol
    assert main(["eval", "--data", str(tiny["data"]), "--model", f"mse={mse}", "--model", f"semantic={sem}",
                 "--classifier", str(tiny["clf"]), "--receiver", str(rcv), "--snr", "0", "10", "--separate",
                 "--uncertain", "U:0:20", "10+-3", "--out", str(out)]) == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    assert {"meta", "clean_accuracy", "rows", "comparisons", "mean_difference_0_5_10"} <= set(doc)
    rows = doc["rows"]
    assert {r["scheme"] for r in rows} == {"mse", "semantic", "separate"}
    assert {r["protocol"] for r in rows} == {"clean", "receiver"}
    assert len(rows) == 3 * 2 * 4  # schemes x protocols x (2 SNRs + 2 conditions)
    for r in rows:
        assert 0 <= r["ci_low"] <= r["accuracy"] <= r["ci_high"] <= 1 and r["n"] == 40 and -1 <= r["ssim"] <= 1
    assert {r["condition"] for r in rows} == {"", "U[0,20]", "10+-3"}
    comp = next(c for c in doc["comparisons"] if c["protocol"] == "receiver" and c["snr"] == "10")
    assert comp["diff_low"] <= comp["diff"] <= comp["diff_high"]
    assert doc["meta"]["channel"] == "awgn" and doc["meta"]["kn"] == "1/6"
    md = out.with_suffix(".md").read_text()
    assert "clean classifier" in md and "adapted receiver" in md and "Semantic minus MSE (paired" in md
    assert "relative to separate coding" in md and "chosen on validation" in md
    assert out.with_suffix(".png").stat().st_size > 1000 and out.with_suffix(".npz").is_file()


@pytest.mark.slow
def test_semantic_variants_train_and_record_their_settings(tiny: dict[str, Path]) -> None:
    """Each semantic-loss variant of issue 24 trains one epoch end to end and is recorded in the
    checkpoint's config (so a resume with other settings is refused); the receiver is validated too."""
    import torch

    for name, extra in (("rcv", ["--importance-from", str(tiny["clf"]), "--importance-power", "2",
                                 "--importance-clip", "16"]),
                        ("dec", ["--importance-on", "decoded", "--task-weight", "0.01"])):
        out = tiny["dir"] / f"variant-{name}.pt"
        assert main(["train", "jscc", "--data", str(tiny["data"]), "--loss", "semantic", "--classifier",
                     str(tiny["clf"]), "--receiver", str(tiny["clf"]), "--epochs", "1", "--batch", "16", "--width", "4",
                     "--kn", "1/24", "--out", str(out), "--threads", "1", *extra]) == 0
        ck = torch.load(out, weights_only=True)
        cfg, last = ck["config"], ck["history"][-1]
        assert cfg["kn"] == pytest.approx(1 / 24)
        assert {"acc@0", "acc@5", "acc@10", "racc@0", "racc@10"} <= set(last)
        if name == "rcv":
            assert cfg["importance_from"] == str(tiny["clf"]) and cfg["importance_power"] == 2.0
            assert cfg["importance_clip"] == 16.0 and cfg["importance_on"] == "clean"
        else:
            assert cfg["importance_on"] == "decoded" and cfg["task_weight"] == 0.01


@pytest.mark.slow
def test_importance_picture_compares_maps_and_decoders(tiny: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    mse, sem = tiny["dir"] / "imp-mse.pt", tiny["dir"] / "imp-sem.pt"
    assert _jscc(tiny, "mse", 1, mse) == 0 and _jscc(tiny, "semantic", 1, sem) == 0
    capsys.readouterr()
    out = tiny["dir"] / "imp.png"
    assert main(["importance", "--data", str(tiny["data"]), "--classifier", str(tiny["clf"]), "--other-classifier",
                 str(tiny["clf"]), "--mse", str(mse), "--semantic", str(sem), "--n", "3", "--pool", "20",
                 "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "20 test images at 0 dB: semantic right where MSE wrong on" in said and f"wrote {out}" in said
    from PIL import Image

    with Image.open(out) as im:  # 9 rows of panels: taller than wide for 3 images
        assert im.size[1] > im.size[0] > 300


def test_training_says_what_it_wrote_and_what_comes_next(tiny: dict[str, Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tiny["dir"] / "said.pt"
    assert _jscc(tiny, "mse", 1, out) == 0
    said = capsys.readouterr().out
    assert "epoch 1/1: loss " in said and "finished 1 epochs in " in said
    assert f"next: semjscc export --jscc {out} --classifier-dir classifier --receiver-dir receiver --name jscc-mse-kn6-mine" in said
    assert _jscc(tiny, "mse", 1, out) == 0  # the same command again: nothing to do, and it says so
    assert f"{out} has all 1 epochs already: nothing to train" in capsys.readouterr().out


def test_training_takes_models_by_name_like_every_command(tiny: dict[str, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`--classifier classifier` (a name under models/), a model directory and a .pt all work: one rule."""
    import shutil

    import torch

    zoo = tmp_path / "models"
    (zoo / "clf").mkdir(parents=True)
    shutil.copy(tiny["clf"], zoo / "clf" / "classifier.pt")
    monkeypatch.setenv("SEMJSCC_MODELS", str(zoo))
    for i, ref in enumerate(("clf", str(zoo / "clf"), str(tiny["clf"]))):
        out = tmp_path / f"by-{i}.pt"
        assert main(["train", "jscc", "--data", str(tiny["data"]), "--loss", "semantic", "--classifier", ref,
                     "--importance-from", ref, "--epochs", "1", "--batch", "16", "--width", "4", "--out", str(out),
                     "--threads", "1"]) == 0, ref
        used = torch.load(out, weights_only=True)["config"]["importance_from"]
        assert used == (str(tiny["clf"]) if ref.endswith(".pt") else str(zoo / "clf" / "classifier.pt"))


def test_semantic_options_that_make_no_sense(tiny: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base = ["train", "jscc", "--data", str(tiny["data"]), "--classifier", str(tiny["clf"]),
            "--out", str(tiny["dir"] / "never.pt")]
    for extra, words in ((["--loss", "semantic", "--importance-power", "-1"], "exponent must be"),
                         (["--loss", "semantic", "--importance-power", "0"], "exponent must be"),
                         (["--loss", "semantic", "--importance-clip", "0.5"], ">= 1"),
                         (["--loss", "mse", "--task-weight", "-0.1"], ">= 0"),
                         (["--loss", "mse", "--importance-power", "2"], "--loss semantic")):
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err
    assert not (tiny["dir"] / "never.pt").exists()


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


def test_device_names_are_checked_before_torch_sees_them() -> None:
    """torch.device('tpu') raised a RuntimeError listing torch's twenty device types (a traceback)."""
    from semjscc.nn.training import setup_runtime
    from semjscc.util.devices import check_device
    from semjscc.util.errors import UsageError

    assert [check_device(d) for d in ("auto", "cpu", "cuda", "cuda:1")] == ["auto", "cpu", "cuda", "cuda:1"]
    for bad in ("tpu", "cuda:", "cuda:x", "CPU", "", None):
        with pytest.raises(UsageError, match="use auto, cpu, cuda or cuda:N"):
            check_device(bad)
        with pytest.raises(UsageError, match="use auto, cpu, cuda or cuda:N"):
            setup_runtime(bad)  # type: ignore[arg-type]
    assert setup_runtime("cpu").device.type == "cpu"


def test_snr_range_is_checked_before_anything_is_loaded(tmp_path: Path) -> None:
    """A reversed --snr-range used to train a model on it; refused before the device or the data
    (here missing) are touched."""
    from semjscc.nn.config import JSCCConfig
    from semjscc.nn.train_jscc import train_jscc
    from semjscc.util.errors import UsageError

    for lo, hi, text in ((20.0, 0.0, "LO must not exceed HI"), (0.0, float("inf"), "must be finite")):
        with pytest.raises(UsageError, match=text):
            train_jscc(JSCCConfig(snr_min=lo, snr_max=hi), "/nope", tmp_path / "j.pt", None, device="tpu")
    assert not (tmp_path / "j.pt").exists()


def test_eval_refuses_separate_on_other_channels_up_front(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """--separate --channel rayleigh was refused only after the deep JSCC sweep had run."""
    import semjscc.experiments.eval.schemes

    def no_loading(*_a: object, **_k: object) -> None:
        raise AssertionError("a model was loaded before the options were checked")

    monkeypatch.setattr(semjscc.experiments.eval.schemes, "load_scheme", no_loading)
    assert main(["eval", "--separate", "--channel", "rayleigh", "--limit", "4"]) == 2
    assert "--separate supports --channel awgn or ofdm, not rayleigh" in capsys.readouterr().err


def test_sweep_refuses_non_finite_snrs() -> None:
    from semjscc.experiments.eval.sweep import sweep
    from semjscc.util.errors import UsageError

    with pytest.raises(UsageError, match="SNR nan dB is not a finite number"):
        sweep([], lambda x: x, None, [0.0, float("nan")])  # type: ignore[arg-type]


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
