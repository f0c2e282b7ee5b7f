"""Where things live: the package, the checkout, the dataset, the cache (models: :mod:`semjscc.zoo.locate`)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # this file is semjscc/util/paths.py
# gr-semjscc/python/semjscc -> repository root (an editable install keeps this layout).
REPO_ROOT = PACKAGE_DIR.parents[2]

DATA_ENV = "SEMJSCC_DATA"
CACHE_ENV = "SEMJSCC_CACHE"


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
