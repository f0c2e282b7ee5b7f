"""Finding a model: a name under models/ or a path to its directory, its torch checkpoint, and the
classifier that judges a deep JSCC model's images (the receiver or classifier its card names)."""

from __future__ import annotations

import os
from pathlib import Path

from semjscc.util.errors import ModelError
from semjscc.util.paths import REPO_ROOT
from semjscc.zoo.card import CARD_FILE, ModelCard
from semjscc.zoo.shipped import CLASSIFIER

MODELS_ENV = "SEMJSCC_MODELS"


def models_dir() -> Path:
    """Directory of shipped models (``models/`` in the checkout unless SEMJSCC_MODELS says otherwise)."""
    return Path(os.environ.get(MODELS_ENV, REPO_ROOT / "models"))


def is_path_ref(ref: str | os.PathLike[str]) -> bool:
    """Whether a model reference is a path (absolute, or with a directory part such as ``./x`` or
    ``runs/x``) rather than a name under :func:`models_dir`."""
    text = os.fspath(ref)
    return os.path.isabs(text) or os.sep in text or bool(os.altsep and os.altsep in text) or text in (".", "..")


def resolve_model_dir(ref: str | os.PathLike[str]) -> Path:
    """A model directory: a bare name is looked up under :func:`models_dir` only (a folder of the same
    name in the current directory never shadows a shipped model); a path (``./x``, ``dir/x`` or
    absolute) is taken as it is. Returned absolute, so what a run records is what it used."""
    text = os.fspath(ref)
    if not text:
        raise ModelError("empty model reference: give a name under models/ or a path such as ./my-model")
    if is_path_ref(text):
        p = Path(text).expanduser()
        if p.is_dir():
            return p.resolve()
        if p.exists():
            raise ModelError(f"model {text!r} is a file, not a model directory: pass the folder that holds its "
                             f"card.yaml and .onnx files ({p.parent}, if that is one)")
        raise ModelError(f"model directory {text!r} not found")
    cand = models_dir() / text
    if cand.is_dir():
        return cand.resolve()
    hint = f"; for the folder {text!r} here, write ./{text}" if Path(text).is_dir() else ""
    raise ModelError(f"model {text!r} not found under {models_dir()} (`semjscc models` lists them; SEMJSCC_MODELS "
                     f"points elsewhere; a path needs a directory part such as ./{text}){hint}")


def model_checkpoint(ref: str | os.PathLike[str], default_file: str) -> Path:
    """The weights-only torch checkpoint of a model: ``ref`` itself when it is a ``.pt`` file, else the
    ``weights`` file its card names (or ``default_file``) inside the model directory ``ref`` resolves to."""
    text = os.fspath(ref)
    if text.endswith(".pt"):
        p = Path(text)
        if not p.exists():
            raise ModelError(f"checkpoint {p} not found")
        if not p.is_file():  # a FIFO would block the loader, a device or folder is no checkpoint
            kind = "a directory" if p.is_dir() else "a FIFO" if p.is_fifo() else "not a regular file"
            raise ModelError(f"{p} is {kind}, not a checkpoint (.pt)")
        return p
    directory = resolve_model_dir(ref)
    name = default_file
    card = directory / "card.yaml"
    if card.is_file():
        name = ModelCard.load(directory).weights or default_file
    p = directory / name
    if not p.is_file():
        raise ModelError(f"{directory} has no torch checkpoint {name} (the weights-only .pt next to the ONNX files): "
                         f"pass the checkpoint's path")
    return p


def classifier_checkpoint(ref: str) -> Path:
    """The weights-only torch checkpoint of a classifier given as a name, directory or .pt path."""
    return model_checkpoint(ref, "classifier.pt")



def card_classifiers(model: str | Path) -> dict[str, str | None]:
    """The classifiers a deep JSCC model's card names, as absolute directories: ``classifier`` (the clean
    one it was trained against) and ``receiver`` (adapted to what the channel delivers); None where the
    card names none. A card naming a directory that is not there is a ModelError naming the card."""

    directory = resolve_model_dir(model)
    out: dict[str, str | None] = {"classifier": None, "receiver": None}
    if not (directory / CARD_FILE).is_file():
        return out
    card = ModelCard.load(directory)
    for key in out:
        ref = getattr(card, key, None)
        if ref:
            p = (directory / ref).resolve()
            if not p.is_dir():
                raise ModelError(f"{directory / CARD_FILE} names {key} {ref}, which is not there ({p}): restore it, "
                                 f"or pass --classifier NAME_OR_DIR")
            out[key] = str(p)
    return out


def resolve_classifier(model: str | Path, classifier: str | Path | None = None) -> str:
    """The classifier for deep JSCC model ``model``: ``classifier`` when given; else the receiver its
    card names (the classifier adapted to what the channel delivers), else the classifier it names
    (the one it was trained against); else the shipped clean classifier."""
    if classifier:
        return str(classifier)
    named = card_classifiers(model)
    return named["receiver"] or named["classifier"] or CLASSIFIER
