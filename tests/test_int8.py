"""int8 model files: quantization at export, the card's record of them, the runtime's choice per card and CPU,
and the paired int8-vs-fp32 measurement (on the tiny untrained zoo: plumbing, not accuracy)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import fake_split, write_pickles
from gr_tiny_zoo import tiny_zoo

pytest.importorskip("onnxruntime.quantization")

from semjscc.cli.main import main
from semjscc.util.errors import ModelError, UsageError
from semjscc.zoo import load_classifier, load_encoder
from semjscc.zoo.card import ModelCard, sha256_file
from semjscc.zoo.precision import CPU_FLAGS_ENV, PRECISION_ENV

VNNI = "fpu sse2 avx avx2 fma avx512f avx512_vnni"
AVX2 = "fpu sse2 avx avx2 fma"


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A copy of the tiny zoo with int8 files added to its classifier and jscc-kn6, by the CLI."""
    root = tmp_path_factory.mktemp("int8-zoo")
    zoo = tiny_zoo(tmp_path_factory)
    for name in ("classifier", "jscc-kn6"):
        shutil.copytree(zoo / name, root / name)
    data = write_pickles(tmp_path_factory.mktemp("int8-data"), fake_split(2, 1), fake_split(1, 2))
    before = {p.name: sha256_file(p) for d in ("classifier", "jscc-kn6") for p in (root / d).glob("*.onnx")}
    for name in ("classifier", "jscc-kn6"):
        assert main(["export", "--model", str(root / name), "--precision", "int8", "--calibration-images", "8",
                     "--calibration-seed", "3", "--data", str(data)]) == 0
    return {"root": root, "data": data, "before": before, "zoo": zoo}  # type: ignore[dict-item]


def test_export_int8_writes_files_beside_untouched_fp32(quantized: dict) -> None:
    root = quantized["root"]
    for name, roles in (("classifier", ("classifier",)), ("jscc-kn6", ("encoder", "decoder"))):
        card = ModelCard.load(root / name)
        assert card.precision == "fp32"
        assert set(card.int8_files) == set(roles)
        for role, f in card.int8_files.items():
            assert f.file == f"{role}.int8.onnx" and sha256_file(root / name / f.file) == f.sha256
            assert sha256_file(root / name / card.files[role].file) == quantized["before"][card.files[role].file]
            assert not card.int8_use(role)  # nothing measured yet: auto must not pick it
        assert card.int8["calibration"]["images"] == 8 and card.int8["calibration"]["seed"] == 3
        assert card.int8["calibration"]["split"].startswith("train")
        assert card.int8["quantization"]["format"] == "QDQ"
        assert set(card.int8["export_parity"]) == set(roles)
        assert "--precision int8" in card.int8["command"]


def test_int8_file_says_int8_and_runs(quantized: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CPU_FLAGS_ENV, VNNI)
    clf = load_classifier(quantized["root"] / "classifier", precision="int8")
    assert clf.precision == "int8" and clf.path.name == "classifier.int8.onnx"
    assert clf.settings()["precision"] == "int8"
    x = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
    ref = load_classifier(quantized["root"] / "classifier", precision="fp32").run(x)
    out = clf.run(x)
    assert out.shape == ref.shape == (3, 10) and np.isfinite(out).all()
    # the int8 file named directly is an int8 session too
    assert load_classifier(quantized["root"] / "classifier" / "classifier.int8.onnx").precision == "int8"


def _approve(directory: Path, role: str) -> None:
    card = ModelCard.load(directory)
    card.int8["use"][role] = True
    card.save(directory)


@pytest.mark.parametrize(("flags", "request_", "expected"), [
    (VNNI, "auto", "int8"), (AVX2, "auto", "fp32"), (AVX2, "int8", "int8"), (VNNI, "fp32", "fp32")])
def test_runtime_choice_per_card_and_cpu(quantized: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture, flags: str, request_: str,
                                         expected: str) -> None:
    d = tmp_path / "classifier"
    shutil.copytree(quantized["root"] / "classifier", d)
    monkeypatch.setenv(CPU_FLAGS_ENV, flags)
    assert load_classifier(d, precision="auto").precision == "fp32"  # the card does not allow it yet
    _approve(d, "classifier")
    with caplog.at_level(logging.INFO, logger="semjscc.runtime"):
        assert load_classifier(d, precision=request_).precision == expected
    if request_ != "fp32":
        assert any(f": {expected} (" in r.getMessage() for r in caplog.records)  # the choice is logged
    monkeypatch.setenv(PRECISION_ENV, request_)  # the environment variable is the default request
    assert load_classifier(d).precision == expected


def test_int8_refused_without_avx2_or_without_file(quantized: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CPU_FLAGS_ENV, "fpu sse sse2")
    with pytest.raises(ModelError, match="lacks avx2: int8 needs AVX2"):
        load_classifier(quantized["root"] / "classifier", precision="int8")
    assert load_classifier(quantized["root"] / "classifier").precision == "fp32"  # auto falls back quietly
    monkeypatch.setenv(CPU_FLAGS_ENV, VNNI)
    with pytest.raises(ModelError, match="ships no int8 encoder file"):
        load_encoder(quantized["zoo"] / "jscc-kn12", precision="int8")
    with pytest.raises(UsageError, match="use one of auto, fp32, int8"):
        load_classifier(quantized["root"] / "classifier", precision="int4")


def test_card_naming_fp32_file_as_int8_is_refused(quantized: dict, tmp_path: Path) -> None:
    d = tmp_path / "classifier"
    shutil.copytree(quantized["root"] / "classifier", d)
    card = ModelCard.load(d)
    card.int8["files"]["classifier"]["file"] = "classifier.onnx"
    card.save(d)
    with pytest.raises(ModelError, match=r"names the fp32 file classifier\.onnx"):
        ModelCard.load(d)


def test_parity_measure_report_and_record(quantized: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from semjscc.data import load_cifar10
    from semjscc.experiments.eval import precision

    monkeypatch.setenv(CPU_FLAGS_ENV, VNNI)
    root = tmp_path / "zoo"
    shutil.copytree(quantized["root"], root)
    data = load_cifar10(str(quantized["data"]), "test")
    jscc, clfs = {"tiny": str(root / "jscc-kn6")}, {"clean": str(root / "classifier")}
    measured = precision.measure(jscc, clfs, data, [0.0, 10.0], batch=4, threads=1, progress=False)
    n = len(data.labels)
    assert {k[3] for k in measured["correct"]} == set(precision.CHAINS)
    assert all(v.shape == (n,) and v.dtype == bool for v in measured["correct"].values())
    doc = precision.report(measured, jscc, clfs, {"n_images": n, "split": "test", "command": "x"})
    by_name = doc["models"]
    assert set(by_name) == {"jscc-kn6", "classifier"}
    assert set(by_name["jscc-kn6"]["use"]) == {"encoder", "decoder"}
    rows = by_name["classifier"]["accuracy"]["classifier"]
    assert len(rows) == 1 + 2  # clean images, then each SNR
    for r in rows:
        a = r["int8"] - r["fp32"]
        assert r["diff_pp"] == pytest.approx(a, abs=1e-9)
        assert r["diff_ci_pp"][0] <= r["diff_pp"] <= r["diff_ci_pp"][1]
        assert r["within"] == (abs(r["diff_pp"]) <= precision.TOLERANCE_PP)
    assert by_name["classifier"]["use"]["classifier"] == all(r["within"] for r in rows)
    out = tmp_path / "parity"
    precision.write(doc, out)
    assert "**classifier / classifier**" in out.with_suffix(".md").read_text()
    assert main(["export", "--model", str(root / "classifier"), "--record-parity", str(out.with_suffix(".json"))]) == 0
    card = ModelCard.load(root / "classifier")
    assert card.int8["accuracy"] == json.loads(json.dumps(by_name["classifier"]["accuracy"]))
    assert card.int8_use("classifier") == by_name["classifier"]["use"]["classifier"]
    # a measurement of other files is refused
    (root / "jscc-kn6" / "encoder.int8.onnx").write_bytes(b"")
    card = ModelCard.load(root / "jscc-kn6")
    card.int8["files"]["encoder"]["sha256"] = "0" * 64
    card.save(root / "jscc-kn6")
    assert main(["export", "--model", str(root / "jscc-kn6"), "--record-parity", str(out.with_suffix(".json"))]) == 2


def test_skip_leaves_role_fp32_unmeasured(quantized: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from semjscc.data import load_cifar10
    from semjscc.experiments.eval import precision

    monkeypatch.setenv(CPU_FLAGS_ENV, VNNI)
    data = load_cifar10(str(quantized["data"]), "test")
    jscc, clfs = {"tiny": str(quantized["root"] / "jscc-kn6")}, {"clean": str(quantized["root"] / "classifier")}
    measured = precision.measure(jscc, clfs, data, [10.0], batch=8, threads=1, progress=False, skip=("decoder",))
    assert {k[3] for k in measured["correct"]} == {"fp32", "encoder", "classifier", "encoder+classifier"}
    doc = precision.report(measured, jscc, clfs, {"n_images": len(data.labels), "split": "test"}, ("decoder",))
    m = doc["models"]["jscc-kn6"]
    assert m["use"]["decoder"] is False and m["not_measured"] == ["decoder"] and "decoder" not in m["accuracy"]


def test_models_listing_checks_int8_files(quantized: dict, tmp_path: Path) -> None:
    from semjscc.zoo import list_models

    root = tmp_path / "zoo"
    shutil.copytree(quantized["root"], root)
    listed = {m["name"]: m for m in list_models(root)}
    assert listed["classifier"]["status"] == "ok"
    assert listed["classifier"]["int8_files"]["classifier"]["file"] == "classifier.int8.onnx"
    assert listed["classifier"]["int8_files"]["classifier"]["auto"] is False
    f = root / "classifier" / "classifier.int8.onnx"
    f.write_bytes(f.read_bytes()[:-1])
    assert "classifier.int8.onnx sha256 differs from card" in {m["name"]: m for m in list_models(root)}["classifier"]["status"]
