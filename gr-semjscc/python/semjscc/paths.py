"""Where things live: the checkout, the shipped models, the dataset, the cache."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# gr-semjscc/python/semjscc -> repository root (an editable install keeps this layout).
REPO_ROOT = PACKAGE_DIR.parents[2]

DATA_ENV = "SEMJSCC_DATA"
CACHE_ENV = "SEMJSCC_CACHE"
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
    from semjscc.errors import ModelError

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
    from semjscc.errors import ModelError

    text = os.fspath(ref)
    if text.endswith(".pt"):
        p = Path(text)
        if not p.is_file():
            raise ModelError(f"checkpoint {p} not found")
        return p
    directory = resolve_model_dir(ref)
    name = default_file
    card = directory / "card.yaml"
    if card.is_file():
        from semjscc.modelcard import ModelCard

        name = ModelCard.load(directory).weights or default_file
    p = directory / name
    if not p.is_file():
        raise ModelError(f"{directory} has no torch checkpoint {name} (the weights-only .pt next to the ONNX files): "
                         f"pass the checkpoint's path")
    return p


def default_data_source() -> Path:
    """The dataset to use when none is given: $SEMJSCC_DATA, else the shared CIFAR-10 archive."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return REPO_ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


def cache_dir() -> Path:
    """Cache for decoded datasets and importance maps: $SEMJSCC_CACHE, else XDG cache."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "semjscc"
