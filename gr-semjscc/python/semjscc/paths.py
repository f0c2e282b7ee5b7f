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
