"""Opening models by name or path as ONNX Runtime sessions (encoder, decoder, classifier, a JSCC pair), listing them.

A model reference is a directory path, a name under ``models_dir()`` (``models/`` or
$SEMJSCC_MODELS), or for single files a path to an .onnx file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from semjscc.util.errors import ModelError
from semjscc.zoo.card import CARD_FILE, KIND_FILES, ModelCard, kn_label, sha256_file
from semjscc.zoo.locate import models_dir, resolve_classifier, resolve_model_dir
from semjscc.zoo.precision import choose
from semjscc.zoo.session import (
    ClassifierSession,
    DecoderSession,
    EncoderSession,
    OnnxModel,
    RuntimeOptions,
    check_pair,
)

log = logging.getLogger("semjscc.runtime")
M = TypeVar("M", bound=OnnxModel)


def _open(cls: type[M], ref: str | Path, options: RuntimeOptions) -> tuple[M, ModelCard | None, Path]:
    """Open the ``cls.role`` file of a model reference; returns (session, card.yaml card or None, directory)."""
    role = cls.role
    p = Path(ref)
    if p.suffix == ".onnx" and not p.is_dir():
        directory, fname = p.parent, p.name
        card = ModelCard.load(directory) if (directory / CARD_FILE).is_file() else None
        entry = card.files.get(role) if card is not None else None
        int8_entry = card.int8_files.get(role) if card is not None else None
        if int8_entry is not None and int8_entry.file == fname:  # the int8 file named directly: that is the request
            session = cls(p, expected_sha256=int8_entry.sha256, card=card, options=options, precision="int8")
            return session, card, directory
        if entry is not None and entry.file != fname:
            entry = None  # a renamed copy: the card does not describe it
    else:
        directory = resolve_model_dir(ref)
        if not (directory / CARD_FILE).exists() and not (directory / CARD_FILE).is_symlink():
            # without its card nothing says which files belong together or checks their hashes
            raise ModelError(f"{directory} has no {CARD_FILE}, so its files cannot be verified: re-export the model "
                             f"(semjscc export), or name an .onnx file to run it unverified on purpose")
        card = ModelCard.load(directory)  # a card that is a FIFO or a device is refused there
        if role not in KIND_FILES[card.kind]:
            raise ModelError(f"{directory} holds a {card.kind} model, which has no {role}; "
                             f"pass a {'deep JSCC' if role != 'classifier' else 'classifier'} model")
        entry = card.files.get(role)
        if entry is None:
            raise ModelError(f"{directory / CARD_FILE} lists no {role} file; re-export the model")
        fname = entry.file
    precision = "fp32"
    if p.suffix == ".onnx" and not p.is_dir():
        pass  # a file named directly runs as it is
    elif entry is not None and card is not None:  # only a card can offer an int8 file
        precision = choose(card, role, options.precision, f"{role} {directory}")
        if precision == "int8":
            entry = card.int8_files[role]
            fname = entry.file
    elif options.precision == "int8":
        raise ModelError(f"{role} {p}: precision int8 requested but it has no card listing an int8 file; load the "
                         f"model directory or use precision fp32/auto")
    session = cls(directory / fname, expected_sha256=entry.sha256 if entry else None, card=card, options=options,
                  precision=precision)
    return session, card, directory


def load_encoder(ref: str | Path, *, device: str | None = None, threads: int | None = None,
                 inter_threads: int | None = None, verify: bool = True,
                 options: RuntimeOptions | None = None, precision: str | None = None) -> EncoderSession:
    """The encoder of a deep JSCC model (directory, name, or encoder .onnx path)."""
    return _open(EncoderSession, ref, options or RuntimeOptions.make(device, threads, inter_threads, verify, precision=precision))[0]


def load_decoder(ref: str | Path, *, device: str | None = None, threads: int | None = None,
                 inter_threads: int | None = None, verify: bool = True,
                 options: RuntimeOptions | None = None, precision: str | None = None) -> DecoderSession:
    """The decoder of a deep JSCC model (directory, name, or decoder .onnx path)."""
    return _open(DecoderSession, ref, options or RuntimeOptions.make(device, threads, inter_threads, verify, precision=precision))[0]


def load_jscc_pair(ref: str | Path, *, device: str | None = None, threads: int | None = None,
                   inter_threads: int | None = None, verify: bool = True, precision: str | None = None
                   ) -> tuple[EncoderSession, DecoderSession, ModelCard]:
    """Encoder, decoder and card of a deep JSCC model directory (or name), checked to match."""
    options = RuntimeOptions.make(device, threads, inter_threads, verify, precision=precision)
    enc, card, _ = _open(EncoderSession, ref, options)
    dec, _, _ = _open(DecoderSession, ref, options)
    check_pair(enc, dec)
    return enc, dec, card if card is not None else enc.card


def load_classifier(ref: str | Path, *, device: str | None = None, threads: int | None = None,
                    inter_threads: int | None = None, verify: bool = True,
                    options: RuntimeOptions | None = None, precision: str | None = None) -> ClassifierSession:
    """A classifier model (directory, name, or classifier .onnx path)."""
    return _open(ClassifierSession, ref, options or RuntimeOptions.make(device, threads, inter_threads, verify, precision=precision))[0]


class OnnxScheme:
    """A deep JSCC model directory behind the numpy Scheme interface of ``semjscc.experiments.eval.sweep``."""

    def __init__(self, name: str, model: str | Path, **runtime: Any) -> None:
        self.name = name
        self.directory = resolve_model_dir(model)
        self.encoder, self.decoder, self.card = load_jscc_pair(self.directory, **runtime)
        self.kn = float(self.card.kn or 0.0)

        self.classifier_ref = resolve_classifier(self.directory)

    def encode(self, images: np.ndarray, snr_db: np.ndarray) -> np.ndarray:
        return self.encoder.run(images, snr_db)

    def decode(self, symbols: np.ndarray, snr_db: np.ndarray) -> np.ndarray:
        return self.decoder.run(symbols, snr_db)


def list_models(root: Path | None = None) -> list[dict[str, Any]]:
    """One entry per model directory under ``root`` (default models_dir()): what the card says
    plus the files' actual sizes and whether their sha256 matches. A broken directory gives
    an entry with ``status`` saying what is wrong instead of failing the listing."""
    root = Path(root) if root is not None else models_dir()
    if not root.is_dir():
        return []
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        entry: dict[str, Any] = {"name": d.name, "path": str(d)}
        try:
            card = ModelCard.load(d)
        except ModelError as e:
            if not any(d.glob("*.onnx")):
                continue  # not a model directory at all
            out.append({**entry, "kind": None, "status": str(e)})
            continue
        files, problems = {}, []
        for role, f in card.files.items():
            p = d / f.file
            if not p.is_file():
                problems.append(f"{f.file} missing")
                continue
            files[role] = {"file": f.file, "bytes": p.stat().st_size}
            if sha256_file(p) != f.sha256:
                problems.append(f"{f.file} sha256 differs from card")
        int8 = {}
        for role, f in card.int8_files.items():  # checked like the fp32 files; listed apart (not in total_bytes)
            p = d / f.file
            if not p.is_file():
                problems.append(f"{f.file} missing")
                continue
            int8[role] = {"file": f.file, "bytes": p.stat().st_size, "auto": card.int8_use(role)}
            if sha256_file(p) != f.sha256:
                problems.append(f"{f.file} sha256 differs from card")
        entry.update({
            "kind": card.kind, "kn": card.kn, "kn_label": kn_label(card.kn) if card.kn else None,
            "n_symbols": card.n_symbols, "loss": card.loss, "snr_adaptive": card.snr_adaptive,
            "snr_db": card.snr_db, "channel": card.channel, "classifier": card.classifier,
            "files": files, "total_bytes": sum(f["bytes"] for f in files.values()), "int8_files": int8,
            "status": "; ".join(problems) or "ok",
        })
        if card.name != d.name:
            entry["card_name"] = card.name
        out.append(entry)
    return out
