"""int8 model files beside the fp32 ones (``semjscc export --precision int8``).

ONNX Runtime static quantization in QDQ format: weights int8 symmetric per output channel, activations
uint8 per tensor with ranges from MinMax calibration. Calibration images come from the *training* part of
CIFAR-10's training split (never the validation images choices are made on, never the test images results
are reported on), drawn with a seed; the card records the split, count, seed and ONNX Runtime version, so
the int8 files are reproducible from the fp32 ones. The fp32 files are left byte for byte as they are.

What each role is calibrated on is what it sees in a link: the encoder the images with an SNR drawn from
the card's training range; the decoder the fp32 encoder's symbols of those images through AWGN at those
SNRs; a classifier (clean or receiver) the images themselves.

Accuracy is not measured here: ``semjscc eval --int8-parity`` measures it on the test set, and
``semjscc export --model DIR --record-parity JSON`` writes the paired differences and the per-role verdict
(``int8.use``) into the card, for files whose sha256 the measurement recorded.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from semjscc.util.errors import ModelError, UsageError
from semjscc.zoo.card import KIND_FILES, ModelCard, ModelFile, int8_file_name, sha256_bytes, sha256_file

log = logging.getLogger("semjscc.export")

DEFAULT_CALIBRATION_IMAGES = 256
DEFAULT_CALIBRATION_SEED = 0
_CALIBRATION_BATCH = 32
_PARITY_IMAGES = 256  # validation images the int8-vs-fp32 output difference is measured on at export


def calibration_images(data: str | None, n: int, seed: int) -> np.ndarray:
    """``n`` images (float32 NCHW in [0, 1]) drawn with ``seed`` from the training part of the training
    split (the validation part held out). DataError when ``data`` is not CIFAR-10 images."""
    from semjscc.data import load_cifar10
    from semjscc.data.imaging import to_float_nchw
    from semjscc.nn.training import split_train_val

    full = load_cifar10(data, "train")
    train, _val = split_train_val(len(full))
    if n > len(train):
        raise UsageError(f"--calibration-images {n}: the training part holds only {len(train)} images")
    idx = np.sort(np.random.default_rng(seed).choice(train, n, replace=False))
    return to_float_nchw(full.images[idx])


def validation_images(data: str | None, n: int = _PARITY_IMAGES) -> np.ndarray:
    """The first ``n`` (seeded) validation images: where export measures int8 against fp32 outputs."""
    from semjscc.data import Dataset, load_cifar10
    from semjscc.data.imaging import to_float_nchw
    from semjscc.nn.training import split_train_val

    full = load_cifar10(data, "train")
    _tr, val = split_train_val(len(full))
    return to_float_nchw(Dataset(full.images[val], full.labels[val]).subset(n, seed=7).images)


def _feeds(card: ModelCard, directory: Path, role: str, images: np.ndarray, seed: int) -> list[dict[str, np.ndarray]]:
    """What ``role`` sees in a link, as ONNX Runtime feeds in batches."""
    from semjscc.phy.symbols import awgn_pairs

    feeds = []
    rng = np.random.default_rng([seed, 23])
    snr_range = card.snr_db or [0.0, 20.0]  # a classifier has none: the draw is unused
    lo, hi = float(snr_range[0]), float(snr_range[-1])
    enc = None
    if role == "decoder":
        from semjscc.zoo import load_encoder

        enc = load_encoder(directory, precision="fp32", threads=None)
    for s in range(0, len(images), _CALIBRATION_BATCH):
        x = images[s : s + _CALIBRATION_BATCH]
        snr = rng.uniform(lo, hi, len(x)).astype(np.float32)
        if role == "classifier":
            feeds.append({"images": x})
        elif role == "encoder":
            feeds.append({"images": x, "snr_db": snr})
        else:
            y = awgn_pairs(enc.run(x, snr), snr, rng)
            feeds.append({"symbols": y.astype(np.float32), "snr_db": snr})
    return feeds


def _quantize(fp32_path: Path, feeds: list[dict[str, np.ndarray]]) -> Any:
    """fp32 ONNX file -> quantized onnx.ModelProto (QDQ, per-channel int8 weights, uint8 activations)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    with tempfile.TemporaryDirectory(prefix="semjscc-quant-") as tmp:
        pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        # shape inference + graph optimisation first, as ONNX Runtime's quantization guide asks; the
        # symbolic pass is skipped (it is for transformer-style dynamic shapes and fails on these convnets)
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
        return onnx.load(str(out))


def _output_parity(fp32: bytes, int8: bytes, feeds: list[dict[str, np.ndarray]], role: str) -> dict[str, float]:
    """int8 vs fp32 outputs on validation feeds: max |difference|, the difference's power relative to
    the output's (dB), and for classifiers the top-1 agreement."""
    import onnxruntime as ort

    a, b = (ort.InferenceSession(m, providers=["CPUExecutionProvider"]) for m in (fp32, int8))
    ya = np.concatenate([a.run(None, f)[0] for f in feeds])
    yb = np.concatenate([b.run(None, f)[0] for f in feeds])
    err = float(np.mean((ya - yb) ** 2)) / max(float(np.mean(ya**2)), 1e-30)
    out = {"images": len(ya), "max_abs": float(np.abs(ya - yb).max()),
           "error_db": float(10 * np.log10(max(err, 1e-30)))}
    if role == "classifier":
        out["top1_agreement"] = float(np.mean(ya.argmax(1) == yb.argmax(1)))
    return out


def quantize_dir(directory: Path, *, data: str | None = None, n_images: int = DEFAULT_CALIBRATION_IMAGES,
                 seed: int = DEFAULT_CALIBRATION_SEED, command: str | None = None) -> ModelCard:
    """Write ``ROLE.int8.onnx`` beside each fp32 file of a model directory and record them in its card
    (``int8``: files with sha256, quantization, calibration, export parity; ``use`` false until
    ``record_parity``). The fp32 files and their entries stay as they are."""
    import onnxruntime as ort

    from semjscc.nn.export import _embed

    directory = Path(directory)
    card = ModelCard.load(directory)
    for f in card.files.values():  # quantize only what the card vouches for
        if sha256_file(directory / f.file) != f.sha256:
            raise ModelError(f"{directory / f.file}: sha256 differs from card.yaml; restore the fp32 file first")
    calib = calibration_images(data, n_images, seed)
    val = validation_images(data)
    section: dict[str, Any] = {
        "files": {}, "use": {role: False for role in card.files},
        "quantization": {"tool": f"onnxruntime {ort.__version__} quantize_static", "format": "QDQ",
                         "weights": "int8 symmetric, per output channel", "activations": "uint8 per tensor",
                         "calibrate_method": "MinMax", "pre_process": "quant_pre_process(skip_symbolic_shape)"},
        "calibration": {"split": "train (training part; validation held out)", "images": n_images, "seed": seed},
        "export_parity": {}, "accuracy": None, "command": command,
    }
    written = {}
    for role, f in card.files.items():
        proto = _quantize(directory / f.file, _feeds(card, directory, role, calib, seed))
        meta_card = ModelCard.from_dict({**card.to_dict(), "precision": "int8", "int8": None}, str(directory))
        _embed(proto, meta_card.to_metadata(role))
        data_bytes = proto.SerializeToString()
        fname = int8_file_name(KIND_FILES[card.kind][role])
        section["export_parity"][role] = _output_parity((directory / f.file).read_bytes(), data_bytes,
                                                       _feeds(card, directory, role, val, seed + 1), role)
        written[fname] = data_bytes
        section["files"][role] = ModelFile(fname, sha256_bytes(data_bytes), len(data_bytes)).__dict__
        log.info("%s: %s -> %s (%d KiB)", directory, f.file, fname, len(data_bytes) // 1024)
    for fname, data_bytes in written.items():  # the card last: it never lists a file that is not there
        tmp = directory / f".{fname}.tmp"
        tmp.write_bytes(data_bytes)
        tmp.replace(directory / fname)
    card.int8 = section
    card.save(directory)
    return card


def record_parity(directory: Path, parity_json: Path) -> ModelCard:
    """Write the measured int8 - fp32 accuracy differences of ``semjscc eval --int8-parity`` (JSON) into the
    card of ``directory`` and set ``int8.use`` per role from the verdicts there. Refused when the measurement
    was made on other files (sha256) than the card lists."""
    directory = Path(directory)
    card = ModelCard.load(directory)
    if not card.int8_files:
        raise UsageError(f"{directory}: no int8 files to record parity for; quantize first "
                         f"(semjscc export --model DIR --precision int8)")
    try:
        doc = json.loads(Path(parity_json).read_text())
        models = doc["models"]
    except FileNotFoundError:
        raise UsageError(f"--record-parity {parity_json} not found") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"--record-parity {parity_json}: not the JSON of semjscc eval --int8-parity ({e})") from None
    mine = next((m for m in models.values() if Path(m.get("directory", "")).resolve() == directory.resolve()), None)
    if mine is None:
        raise UsageError(f"--record-parity {parity_json} measured no model in {directory}")
    for role, f in card.int8_files.items():
        measured = (mine.get("sha256") or {}).get(role, {})
        if measured.get("int8") != f.sha256 or measured.get("fp32") != card.files[role].sha256:
            raise UsageError(f"--record-parity {parity_json}: its {role} measurement was made on other files than "
                             f"{directory}'s card lists (sha256); measure again")
    meta = doc.get("meta", {})
    card.int8 = {**(card.int8 or {}), "accuracy": mine["accuracy"], "use": mine["use"],
                 "accuracy_source": {"file": str(parity_json), "command": meta.get("command"),
                                     "images": meta.get("n_images"), "split": meta.get("split"),
                                     "tolerance_pp": meta.get("tolerance_pp")}}
    if mine.get("not_measured"):  # roles ruled out before the measurement: why they stay fp32
        card.int8["not_measured"] = {role: meta.get("skip_reason") or "ruled out before" for role in mine["not_measured"]}
    card.save(directory)
    return card
