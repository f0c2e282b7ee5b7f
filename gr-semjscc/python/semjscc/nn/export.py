"""Export trained checkpoints to ONNX model directories (``semjscc export``).

Exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript). The legacy
TorchScript exporter (``dynamo=False``) cannot export the encoder at all: its power
normalisation uses complex tensors (``aten::complex``), which that exporter does not support;
the dynamo exporter lowers them to real arithmetic and matches torch to ~1e-6. It is slower
(about 2 s per file) but export is a one-off. ``external_data=False`` keeps each model in one
self-contained file (the models are well under protobuf's 2 GB limit).

Every export is checked before anything is written to the model directory: ONNX Runtime must
reproduce torch within ``PARITY_TOL`` at two batch sizes (and random SNRs), else the export
fails. Files are written to a scratch directory and moved into place at the end, so a failed
export never leaves a half model directory behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semjscc.util.errors import ModelError, UsageError
from semjscc.zoo.card import (
    CARD_FILE,
    IO_NAMES,
    KIND_FILES,
    OPSET,
    ModelCard,
    ModelFile,
    kn_label,
    sha256_bytes,
    sha256_file,
)
from semjscc.zoo.locate import models_dir

log = logging.getLogger("semjscc.export")

PARITY_TOL = 1e-4  # max |ONNX Runtime - torch| accepted at export (float32 kernels differ ~1e-6)
_PARITY_BATCHES = (1, 5)  # batch 1 and a batch > 1: the dynamic axis must work for both


@dataclass
class ExportResult:
    directory: Path
    card: ModelCard


def export_jscc(checkpoint: Path, name: str, *, classifier: str | None, receiver: str | None = None,
                out_dir: Path | None = None,
                eval_json: Path | None = None, train_command: str | None = None,
                export_command: str | None = None, force: bool = False, opset: int = OPSET) -> ExportResult:
    """Deep JSCC checkpoint -> ``out_dir/name/{encoder,decoder}.onnx + card.yaml``.

    ``classifier`` names the receiver's classifier model directory (a path, or a name under
    ``out_dir``); the card stores it relative to the new directory."""
    from semjscc.nn.train_jscc import load_jscc

    out_dir = Path(out_dir) if out_dir is not None else models_dir()
    target = _target_dir(out_dir, name, force)
    model, ck = load_jscc(Path(checkpoint))
    c = ck["config"]
    classifier_rel = _classifier_ref(classifier, out_dir, target, ck.get("classifier")) if classifier else None
    receiver_rel = _classifier_ref(receiver, out_dir, target, None, "--receiver-dir") if receiver else None
    enc, dec = model.encoder, model.decoder
    card = ModelCard(
        name=name, kind="jscc", width=int(c["width"]), kn=float(c["kn"]), n_symbols=int(enc.k),
        snr_adaptive=bool(c["snr_adaptive"]), snr_db=[float(c["snr_min"]), float(c["snr_max"])],
        loss=str(c["loss"]), channel=str(c.get("channel", "awgn")), classifier=classifier_rel, receiver=receiver_rel,
        source=_source(Path(checkpoint), ck),
        train_command=train_command or _jscc_train_command(c, Path(checkpoint), ck.get("classifier")),
        eval=_read_eval(eval_json) if eval_json is not None else None,
    )
    k = enc.k
    lo, hi = card.snr_db

    def enc_inputs(b: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        return (rng.random((b, 3, 32, 32), dtype=np.float32), rng.uniform(lo, hi, b).astype(np.float32))

    def dec_inputs(b: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        return (rng.standard_normal((b, k, 2), dtype=np.float32) * np.float32(0.7),
                rng.uniform(lo, hi, b).astype(np.float32))

    return _export(card, {"encoder": (enc, enc_inputs), "decoder": (dec, dec_inputs)}, target,
                   export_command, opset, weights=(ck, "jscc.pt"))


def export_classifier(checkpoint: Path, name: str, *, out_dir: Path | None = None, eval_json: Path | None = None,
                      train_command: str | None = None, export_command: str | None = None, force: bool = False,
                      opset: int = OPSET) -> ExportResult:
    """Classifier checkpoint -> ``out_dir/name/classifier.onnx + card.yaml``."""
    from semjscc.nn.train_classifier import load_classifier
    from semjscc.nn.training import load_checkpoint

    out_dir = Path(out_dir) if out_dir is not None else models_dir()
    target = _target_dir(out_dir, name, force)
    model = load_classifier(Path(checkpoint))
    ck = load_checkpoint(Path(checkpoint))
    c = ck["config"]
    card = ModelCard(
        name=name, kind="classifier", width=int(c["width"]), num_classes=int(model.head.out_features),
        source=_source(Path(checkpoint), ck),
        train_command=train_command or _classifier_train_command(c, Path(checkpoint)),
        eval=_read_eval(eval_json) if eval_json is not None else None,
    )
    if ck.get("kind") == "receiver":
        card.adapted = {k: c.get(k) for k in ("sources", "from", "jscc", "separate_configs", "snr_min", "snr_max")}
    if card.eval is None and ck.get("history"):
        last = ck["history"][-1]
        card.eval = {k: v for k, v in last.items() if k.startswith(("test_acc", "val_")) or k == "epoch"}

    def inputs(b: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        return (rng.random((b, 3, 32, 32), dtype=np.float32),)

    return _export(card, {"classifier": (model, inputs)}, target, export_command, opset, weights=(ck, "classifier.pt"))


# --- the export itself ---------------------------------------------------------------------------

# what a weights-only checkpoint keeps of a training checkpoint (no optimizer, schedule or random state)
WEIGHT_KEYS = ("kind", "config", "model", "epoch", "history", "classifier", "schedule_changes")


def _export(card: ModelCard, modules: dict[str, tuple[Any, Any]], target: Path, export_command: str | None,
            opset: int, weights: tuple[dict[str, Any], str] | None = None) -> ExportResult:
    """Write the ONNX files, a weights-only torch checkpoint (``weights``: the training checkpoint and
    the file name; the importance maps and parity checks need the torch model) and the card."""
    import torch

    card.opset = opset
    card.exporter = f"torch {torch.__version__} torch.onnx.export(dynamo=True)"
    card.export_id = uuid.uuid4().hex[:16]
    card.export_command = export_command
    card.export_parity = {}
    target.parent.mkdir(parents=True, exist_ok=True)
    # one export per name at a time: of two started together, the second is refused here instead of
    # silently replacing the first one's model when it finishes
    lock = target.parent / f".{target.name}.export-lock"
    try:
        os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        raise UsageError(f"another export of {target.name} is writing {target} (or one was killed: remove {lock}); "
                         f"wait for it or choose another --name") from None
    try:
        return _export_locked(card, modules, target, weights)
    finally:
        lock.unlink(missing_ok=True)


def _export_locked(card: ModelCard, modules: dict[str, tuple[Any, Any]], target: Path,
                   weights: tuple[dict[str, Any], str] | None) -> ExportResult:
    import torch

    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.export-", dir=target.parent))
    scratch.chmod(0o755)  # mkdtemp makes it private; the model directory is meant to be shared
    try:
        protos = {}
        for role, (module, make_inputs) in modules.items():
            protos[role] = _to_onnx(module.eval(), make_inputs, role, card.opset)
            card.export_parity[role] = _parity(module, protos[role], make_inputs, role)
        for role, proto in protos.items():
            _embed(proto, card.to_metadata(role))
            data = proto.SerializeToString()
            fname = KIND_FILES[card.kind][role]
            (scratch / fname).write_bytes(data)
            card.files[role] = ModelFile(file=fname, sha256=sha256_bytes(data), bytes=len(data))
        if weights is not None:
            ck, fname = weights
            torch.save({k: ck[k] for k in WEIGHT_KEYS if k in ck}, scratch / fname)
            card.weights, card.weights_sha256 = fname, sha256_file(scratch / fname)
        card.save(scratch)
        _move_into_place(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ExportResult(target, card)


def _to_onnx(module: Any, make_inputs: Any, role: str, opset: int) -> Any:
    """torch module -> onnx.ModelProto with a dynamic batch axis on every input and output."""
    import torch

    inputs, outputs = IO_NAMES[role]
    example = tuple(torch.from_numpy(a) for a in make_inputs(2, np.random.default_rng(0)))
    batch = torch.export.Dim("batch")
    with _quiet_exporter():
        program = torch.onnx.export(
            module, example, dynamo=True, external_data=False, optimize=True, opset_version=opset,
            input_names=list(inputs), output_names=list(outputs),
            dynamic_shapes=tuple({0: batch} for _ in inputs), verbose=False,
        )
    proto = program.model_proto
    got = [i.name for i in proto.graph.input]
    if got != list(inputs):  # an input the graph does not use must survive, or callers' feeds break
        raise ModelError(f"{role} exported with inputs {got}, expected {list(inputs)}; torch.onnx changed behaviour")
    return proto


def _parity(module: Any, proto: Any, make_inputs: Any, role: str) -> float:
    """Max |ONNX Runtime - torch| over a few random batches; raises when above PARITY_TOL."""
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    rng = np.random.default_rng(1)
    worst = 0.0
    for b in _PARITY_BATCHES:
        arrays = make_inputs(b, rng)
        with torch.no_grad():
            ref = module(*(torch.from_numpy(a) for a in arrays)).numpy()
        got = sess.run(None, dict(zip(names, arrays, strict=True)))[0]
        if got.shape != ref.shape:
            raise ModelError(f"exported {role} gives shape {got.shape} at batch {b}, torch {ref.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    if not worst <= PARITY_TOL:
        raise ModelError(f"exported {role} differs from torch by {worst:.2e} (> {PARITY_TOL:g}); not written")
    return worst


def _embed(proto: Any, props: dict[str, str]) -> None:
    import onnx

    keep = [p for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for k, v in props.items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    proto.producer_name = "gr-semjscc"
    proto.doc_string = f"gr-semjscc {props.get('semjscc.kind')} model {props.get('semjscc.name')}: " \
                       f"{props.get('semjscc.role')} (metadata_props semjscc.* describe it)"


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The dynamo exporter warns about internals (deprecated pytree APIs, missing torchvision
    ops, axis renames) that say nothing about this model; the parity check is the real test."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnx_ir", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _target_dir(out_dir: Path, name: str, force: bool) -> Path:
    if not name or "/" in name or name.startswith(".") or name != name.strip():
        raise UsageError(f"--name {name!r}: use a plain directory name such as jscc-mse-kn6")
    target = out_dir / name
    if target.exists() and not force:
        raise UsageError(f"{target} already exists: pass --force to replace it or choose another --name")
    return target


def _move_into_place(scratch: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.replaced-{uuid.uuid4().hex[:8]}")
        target.rename(old)
    scratch.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _classifier_ref(ref: str, out_dir: Path, target: Path, trained_with: str | None,
                    option: str = "--classifier-dir") -> str:
    """Resolve --classifier-dir (a path, or a name under the output directory) to a path
    relative to the new model directory, checking it holds a classifier (and, when the JSCC
    checkpoint records the classifier it was trained with, warning if this is another one)."""
    p = Path(ref)
    cand = p if p.is_dir() else out_dir / ref
    if not (cand / CARD_FILE).is_file():
        raise UsageError(f"{option} {ref}: no {CARD_FILE} in {cand}; export the classifier first "
                         f"(semjscc export --classifier CHECKPOINT --name NAME)")
    card = ModelCard.load(cand)
    if card.kind != "classifier":
        raise UsageError(f"{option} {ref}: {cand} holds a {card.kind} model, not a classifier")
    exported_from = (card.source or {}).get("checkpoint")
    if trained_with and exported_from and Path(trained_with).resolve() != Path(exported_from).resolve():
        log.warning("the JSCC checkpoint was trained with classifier %s but --classifier-dir %s was exported "
                    "from %s: check that they are the same network", trained_with, ref, exported_from)
    return Path(os.path.relpath(cand.resolve(), target.resolve())).as_posix()


def _source(checkpoint: Path, ck: dict[str, Any]) -> dict[str, Any]:
    return {"checkpoint": str(checkpoint), "sha256": sha256_file(checkpoint), "epoch": ck.get("epoch"),
            "config": ck.get("config")}


def _read_eval(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"--eval-json {path} not found") from None
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"--eval-json {path} is not readable JSON ({e})") from None
    if not isinstance(doc, dict):
        raise UsageError(f"--eval-json {path}: expected a JSON object (the output of semjscc eval)")
    return doc


def _jscc_train_command(c: dict[str, Any], checkpoint: Path, classifier: str | None) -> str:
    """The ``semjscc train jscc`` command that reproduces the checkpoint's configuration."""
    snr = (f"--fixed-snr {c['snr_min']:g}" if not c["snr_adaptive"]
           else f"--snr-range {c['snr_min']:g} {c['snr_max']:g}")
    parts = ["semjscc train jscc", f"--loss {c['loss']}"]
    if classifier:
        parts.append(f"--classifier {classifier}")
    parts += [f"--kn {kn_label(c['kn'])}", f"--width {c['width']}", snr, f"--channel {c.get('channel', 'awgn')}"]
    if c["loss"] == "semantic":
        parts.append(f"--mix {c['mix']:g}")
    parts += [f"--epochs {c['epochs']}", f"--batch {c['batch']}", f"--lr {c['lr']:g}", f"--seed {c['seed']}",
              f"--out {checkpoint}"]
    if c.get("clip_grad") is not None:
        parts.insert(-2, f"--clip-grad {c['clip_grad']:g}")
    return " ".join(parts)


def _classifier_train_command(c: dict[str, Any], checkpoint: Path) -> str:
    if "sources" in c:  # a receiver: fine-tuned from a clean classifier on decodes
        parts = [f"semjscc train receiver --from {c['from']}"]
        parts += [f"--jscc {label}={path}" for label, path in (c.get("jscc") or {}).items()]
        if c.get("separate_configs"):
            parts.append(f"--separate-configs {c['separate_configs']}")
        parts += [f"--epochs {c['epochs']}", f"--batch {c['batch']}", f"--lr {c['lr']:g}",
                  f"--snr-range {c['snr_min']:g} {c['snr_max']:g}", f"--separate-images {c['separate_images']}",
                  f"--seed {c['seed']}", f"--out {checkpoint}"]
        return " ".join(parts)
    return (f"semjscc train classifier --epochs {c['epochs']} --batch {c['batch']} --lr {c['lr']:g} "
            f"--width {c['width']} --seed {c['seed']} --out {checkpoint}")
