"""ONNX export, the model card and the ONNX Runtime layer, on tiny untrained networks.

One module-scoped zoo is exported once (the dynamo exporter takes a few seconds per file):
a classifier, an SNR-adaptive k/n = 1/6 model and a fixed-SNR k/n = 1/12 model.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from semjscc.cli.main import main
from semjscc.nn.classifier import Classifier
from semjscc.nn.config import ClassifierConfig, JSCCConfig
from semjscc.nn.export import PARITY_TOL, export_jscc
from semjscc.nn.jscc import JSCC
from semjscc.nn.training import save_checkpoint
from semjscc.util.errors import ModelError
from semjscc.zoo import (
    OnnxScheme,
    check_pair,
    list_models,
    load_classifier,
    load_decoder,
    load_encoder,
    load_jscc_pair,
)
from semjscc.zoo.card import CARD_FILE, META_PREFIX, ModelCard

WIDTH = 4


def _jscc_ckpt(path: Path, kn: float, adaptive: bool, seed: int) -> JSCC:
    torch.manual_seed(seed)
    cfg = JSCCConfig(kn=kn, width=WIDTH, snr_adaptive=adaptive, snr_min=0.0 if adaptive else 10.0,
                     snr_max=20.0 if adaptive else 10.0)
    model = JSCC(kn, WIDTH, adaptive).eval()
    save_checkpoint(path, kind="jscc", config=asdict(cfg), model=model.state_dict(), epoch=1, history=[])
    return model


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("zoo")
    root = tmp / "models"
    torch.manual_seed(0)
    clf = Classifier(width=WIDTH)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding them is actually tested
        for m in clf.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    clf.eval()
    save_checkpoint(tmp / "clf.pt", kind="classifier", config=asdict(ClassifierConfig(width=WIDTH)),
                    model=clf.state_dict(), epoch=1, history=[{"epoch": 1, "test_acc": 0.1}])
    # the classifier goes through the CLI, the deep JSCC models through the Python API
    assert main(["export", "--classifier", str(tmp / "clf.pt"), "--name", "classifier", "--out", str(root)]) == 0
    kn6 = _jscc_ckpt(tmp / "kn6.pt", 1 / 6, True, 1)
    kn12 = _jscc_ckpt(tmp / "kn12.pt", 1 / 12, False, 2)
    export_jscc(tmp / "kn6.pt", "jscc-kn6", classifier="classifier", out_dir=root, train_command="make it")
    export_jscc(tmp / "kn12.pt", "jscc-kn12", classifier="classifier", out_dir=root)
    return {"root": root, "tmp": tmp, "clf": clf, "kn6": kn6, "kn12": kn12}


def _images(rng: np.random.Generator, b: int) -> np.ndarray:
    return rng.random((b, 3, 32, 32), dtype=np.float32)


@pytest.mark.parametrize("name", ["jscc-kn6", "jscc-kn12"])
def test_jscc_parity_with_torch(zoo: dict, name: str) -> None:
    model = zoo["kn6" if name == "jscc-kn6" else "kn12"]
    enc, dec, card = load_jscc_pair(zoo["root"] / name)
    assert enc.n_symbols == model.encoder.k == card.n_symbols
    rng = np.random.default_rng(3)
    for b in (1, 7):  # the batch axis is dynamic
        x = _images(rng, b)
        snr = rng.uniform(0, 20, b).astype(np.float32)  # random SNRs: the adaptive model uses them
        with torch.no_grad():
            z_ref = model.encoder(torch.from_numpy(x), torch.from_numpy(snr)).numpy()
            y = z_ref + 0.1 * rng.standard_normal(z_ref.shape).astype(np.float32)
            x_ref = model.decoder(torch.from_numpy(y), torch.from_numpy(snr)).numpy()
        z = enc.run(x, snr)
        x_hat = dec.run(y, snr)
        assert z.shape == (b, card.n_symbols, 2) and x_hat.shape == (b, 3, 32, 32)
        assert np.abs(z - z_ref).max() <= PARITY_TOL
        assert np.abs(x_hat - x_ref).max() <= PARITY_TOL
        np.testing.assert_allclose((z**2).sum(-1).mean(1), 1.0, atol=1e-4)  # unit power per image
    # one float SNR for the whole batch is the same as a vector of it
    x = _images(rng, 3)
    np.testing.assert_array_equal(enc.run(x, 7.0), enc.run(x, np.full(3, 7.0, np.float32)))
    assert card.export_parity is not None and max(card.export_parity.values()) <= PARITY_TOL


def test_classifier_parity_with_torch(zoo: dict) -> None:
    clf = load_classifier(zoo["root"] / "classifier")
    x = _images(np.random.default_rng(4), 9)
    with torch.no_grad():
        ref = zoo["clf"](torch.from_numpy(x)).numpy()
    logits = clf.run(x)
    assert logits.shape == (9, 10)
    assert np.abs(logits - ref).max() <= PARITY_TOL
    np.testing.assert_array_equal(clf.predict(x), ref.argmax(1))
    assert clf.run(x[:0]).shape == (0, 10)


def test_card_yaml_and_onnx_metadata_agree(zoo: dict) -> None:
    import onnx

    d = zoo["root"] / "jscc-kn6"
    card = ModelCard.load(d)
    assert card.kind == "jscc" and card.kn_label == "1/6" and card.n_symbols == 512
    assert card.snr_adaptive is True and card.snr_db == [0.0, 20.0] and card.loss == "mse"
    assert card.classifier == "../classifier" and card.train_command == "make it"
    assert card.export_command is None and card.source is not None and card.source["epoch"] == 1
    assert set(card.files) == {"encoder", "decoder"}
    props = {p.key: p.value for p in onnx.load(str(d / "decoder.onnx")).metadata_props}
    assert props[META_PREFIX + "role"] == "decoder" and props[META_PREFIX + "pixels"].startswith("float32 NCHW")
    embedded, role = ModelCard.from_metadata(props, "decoder.onnx")
    assert role == "decoder"
    assert embedded.files == {}  # a file cannot hold its own hash: only card.yaml has them
    assert embedded.to_dict() == {k: v for k, v in {**card.to_dict(), "files": {}}.items()
                                  if k not in ("weights", "weights_sha256")}
    assert card.weights == "jscc.pt" and (d / "jscc.pt").is_file()  # the weights-only checkpoint beside them
    fixed = ModelCard.load(zoo["root"] / "jscc-kn12")
    assert fixed.snr_adaptive is False and fixed.snr_db == [10.0, 10.0] and "--fixed-snr 10" in fixed.train_command
    clf_card = ModelCard.load(zoo["root"] / "classifier")
    assert clf_card.kind == "classifier" and clf_card.kn is None and clf_card.num_classes == 10
    assert clf_card.export_command.startswith("semjscc export --classifier")
    for f in (*card.files.values(), *clf_card.files.values()):
        assert 10_000 < f.bytes < 2_000_000  # self-contained (no external data), small


def _one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_truncated_onnx_is_one_line_error_naming_the_file(zoo: dict, tmp_path: Path) -> None:
    bad = tmp_path / "encoder.onnx"  # a bare file: no card, so no hash to catch it first
    data = (zoo["root"] / "jscc-kn6" / "encoder.onnx").read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError) as e:
        load_encoder(bad)
    msg = _one_line_error(e)
    assert str(bad) in msg and "re-export" in msg


def test_sha256_mismatch_with_card_is_refused(zoo: dict, tmp_path: Path) -> None:
    import onnx

    d = tmp_path / "m"
    shutil.copytree(zoo["root"] / "jscc-kn6", d)
    p = d / "decoder.onnx"
    proto = onnx.load(str(p))
    proto.doc_string = "edited"  # a changed file that still loads
    onnx.save(proto, str(p))
    with pytest.raises(ModelError) as e:
        load_jscc_pair(d)
    msg = _one_line_error(e)
    assert "sha256" in msg and "card.yaml" in msg and str(p) in msg
    load_decoder(d, verify=False)  # the check can be switched off deliberately
    card = d / CARD_FILE  # an edited card no longer matches the metadata the files carry
    card.write_text(card.read_text().replace("n_symbols: 512", "n_symbols: 256"))
    with pytest.raises(ModelError, match=r"card\.yaml says n_symbols=256") as e:
        load_encoder(d)
    _one_line_error(e)


def test_mismatched_encoder_decoder_pair_is_refused(zoo: dict, tmp_path: Path) -> None:
    enc = load_encoder(zoo["root"] / "jscc-kn6")
    dec = load_decoder(zoo["root"] / "jscc-kn12")
    with pytest.raises(ModelError) as e:
        check_pair(enc, dec)
    msg = _one_line_error(e)
    assert "1/6" in msg and "1/12" in msg and "do not belong together" in msg
    mixed = tmp_path / "mixed"  # a directory without a card holding halves of two models
    mixed.mkdir()
    shutil.copy(zoo["root"] / "jscc-kn6" / "encoder.onnx", mixed)
    shutil.copy(zoo["root"] / "jscc-kn12" / "decoder.onnx", mixed)
    with pytest.raises(ModelError, match=r"has no card\.yaml, so its files cannot be verified"):
        load_jscc_pair(mixed)  # without a card nothing says the halves belong together


def test_wrong_inputs_are_refused(zoo: dict) -> None:
    enc, dec, _ = load_jscc_pair(zoo["root"] / "jscc-kn6")
    clf = load_classifier(zoo["root"] / "classifier")
    x = np.zeros((2, 3, 32, 32), np.float32)
    cases = [
        (lambda: enc.run(x.astype(np.float64), 5.0), "float32"),
        (lambda: enc.run(np.zeros((2, 3, 16, 16), np.float32), 5.0), "shape"),
        (lambda: enc.run(x, np.zeros(3, np.float32)), "batch"),
        (lambda: dec.run(np.zeros((2, 256, 2), np.float32), 5.0), "shape"),
        (lambda: clf.run(x[0]), "shape"),
        (lambda: clf.run(x.tolist()), "numpy array"),
    ]
    for call, words in cases:
        with pytest.raises(ModelError, match=words) as e:
            call()
        _one_line_error(e)
    with pytest.raises(ModelError, match="holds a classifier model"):
        load_encoder(zoo["root"] / "classifier")
    with pytest.raises(ModelError, match="not found"):
        load_classifier("no-such-model")


def test_models_command_lists_exported_models(zoo: dict, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("SEMJSCC_MODELS", str(zoo["root"]))
    assert main(["models", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_name = {m["name"]: m for m in doc["models"]}
    assert set(by_name) == {"classifier", "jscc-kn6", "jscc-kn12"}
    m = by_name["jscc-kn12"]
    assert m["kind"] == "jscc" and m["kn_label"] == "1/12" and m["n_symbols"] == 256 and m["loss"] == "mse"
    assert m["snr_adaptive"] is False and m["status"] == "ok" and m["total_bytes"] > 0
    assert by_name["classifier"]["files"]["classifier"]["bytes"] > 0
    assert main(["models"]) == 0
    assert "jscc-kn6" in capsys.readouterr().out
    assert [m["name"] for m in list_models(zoo["root"])] == ["classifier", "jscc-kn12", "jscc-kn6"]


def test_provider_in_use_is_logged(zoo: dict, caplog: pytest.LogCaptureFixture) -> None:
    import onnxruntime as ort

    with caplog.at_level(logging.INFO, logger="semjscc.runtime"):
        clf = load_classifier(zoo["root"] / "classifier", device="cpu", threads=1)
    assert clf.provider == "CPUExecutionProvider"
    assert any("running on CPUExecutionProvider" in r.getMessage() and "intra_op_threads=1" in r.getMessage()
               for r in caplog.records if r.name == "semjscc.runtime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu installed: the CPU-only fallback message cannot be provoked")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="semjscc.runtime"):
        clf = load_classifier(zoo["root"] / "classifier", device="cuda")
    assert clf.provider == "CPUExecutionProvider"
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert loud and "RUNNING ON CPU" in loud[0].getMessage()


def test_onnx_scheme_and_classifier_reference(zoo: dict) -> None:
    from semjscc.experiments.eval.schemes import load_classifier_fn

    scheme = OnnxScheme("kn6", str(zoo["root"] / "jscc-kn6"))
    assert scheme.kn == pytest.approx(1 / 6)
    assert Path(scheme.classifier_ref) == (zoo["root"] / "classifier").resolve()
    x = _images(np.random.default_rng(5), 2)
    snr = np.full(2, 10.0, np.float32)
    logits = load_classifier_fn(scheme.classifier_ref)(scheme.decode(scheme.encode(x, snr), snr))
    assert logits.shape == (2, 10)


def test_export_refuses_to_overwrite_and_needs_classifier_dir(zoo: dict, capsys: pytest.CaptureFixture) -> None:
    ckpt = str(zoo["tmp"] / "kn6.pt")
    assert main(["export", "--jscc", ckpt, "--name", "jscc-kn6", "--classifier-dir", "classifier",
                 "--out", str(zoo["root"])]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", "--jscc", ckpt, "--name", "x", "--out", str(zoo["root"])]) == 2
    assert "--classifier-dir" in capsys.readouterr().err
    assert main(["export", "--jscc", ckpt, "--name", "x", "--classifier-dir", "jscc-kn12",
                 "--out", str(zoo["root"])]) == 2
    assert "not a classifier" in capsys.readouterr().err
    assert not (zoo["root"] / "x").exists()


def test_bench_runtime_json(zoo: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "runtime", "--json", str(out), "--model", str(zoo["root"] / "jscc-kn6"),
                 "--repeat", "2", "--warmup", "0", "--batch", "1", "3"]) == 0
    doc = json.loads(out.read_text())
    assert {(r["stage"], r["batch"]) for r in doc["rows"]} == {
        (s, b) for s in ("encoder", "decoder", "classifier", "chain") for b in (1, 3)}
    for r in doc["rows"]:
        assert r["torch_ms"] > 0 and r["ort_ms"] > 0
        assert r["speedup"] == pytest.approx(r["torch_ms"] / r["ort_ms"], rel=1e-2)
        assert r["ort_images_per_s"] > 0 and r["torch_images_per_s"] > 0
        # the card's source checkpoints are still there, so torch has the same weights
        assert r["max_abs_diff"] is not None and r["max_abs_diff"] <= PARITY_TOL
    meta = doc["meta"]
    assert meta["cpu_count"] and meta["onnxruntime"] and meta["torch"] and meta["threads"] >= 1
    assert meta["ort_providers"]["encoder"] == "CPUExecutionProvider"
    assert "| chain | 3 |" in capsys.readouterr().out


def test_card_rejects_garbage(tmp_path: Path) -> None:
    (tmp_path / CARD_FILE).write_text("name: x\nkind: detector\n")
    with pytest.raises(ModelError, match="kind"):
        ModelCard.load(tmp_path)
    (tmp_path / CARD_FILE).write_text("[unclosed\n")
    with pytest.raises(ModelError, match="not readable YAML"):
        ModelCard.load(tmp_path)
    with pytest.raises(ModelError, match=r"semjscc\.role"):
        ModelCard.from_metadata({"producer": "someone else"}, "foreign.onnx")


def test_a_second_export_of_one_name_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    """Two `export --name cc` at once: the one that finds the other's lock is refused, so neither model
    silently replaces the other (the lock goes when an export ends, whatever the outcome)."""
    from dataclasses import asdict

    import torch
    from semjscc.nn.classifier import Classifier
    from semjscc.nn.config import ClassifierConfig
    from semjscc.nn.export import export_classifier
    from semjscc.nn.training import save_checkpoint
    from semjscc.util.errors import UsageError

    ck = tmp_path / "clf.pt"
    torch.manual_seed(0)
    save_checkpoint(ck, kind="classifier", config=asdict(ClassifierConfig(width=4)),
                    model=Classifier(width=4).eval().state_dict(), epoch=1, history=[])
    out = tmp_path / "zoo"
    out.mkdir()
    lock = out / ".cc.export-lock"
    lock.write_text("")  # an export of cc under way
    with pytest.raises(UsageError, match="another export of cc"):
        export_classifier(ck, "cc", out_dir=out, force=True)
    assert not (out / "cc").exists()
    lock.unlink()
    export_classifier(ck, "cc", out_dir=out, force=True)
    assert (out / "cc" / "card.yaml").is_file() and not lock.exists()
