"""Shared fixtures: tiny CIFAR-10 look-alikes in each layout, the shared archive when present."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from semjscc.data.cifar10 import CIFAR10_CLASSES

REPO = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
# scripts/test.sh points this at the user's real cache so the shared archive is decoded once
REAL_CACHE = os.environ.get("SEMJSCC_CACHE")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own dataset/importance cache unless it asks for the shared one."""
    if "SEMJSCC_TEST_KEEP_CACHE" not in os.environ:
        monkeypatch.setenv("SEMJSCC_CACHE", str(tmp_path_factory.mktemp("cache")))


def fake_split(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n_per_class)
    images = rng.integers(0, 256, size=(len(labels), 32, 32, 3), dtype=np.uint8)
    return images, labels


def write_pickles(root: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> Path:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    chunks = np.array_split(np.arange(len(train[1])), 5)
    for i, idx in enumerate(chunks, start=1):
        with open(d / f"data_batch_{i}", "wb") as f:
            data = train[0][idx].transpose(0, 3, 1, 2).reshape(len(idx), -1)
            pickle.dump({b"data": data, b"labels": train[1][idx].tolist()}, f, protocol=2)
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": test[0].transpose(0, 3, 1, 2).reshape(len(test[1]), -1),
                     b"labels": test[1].tolist()}, f, protocol=2)
    return root


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def write_folder(root: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    for split, (images, labels) in splits.items():
        for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
            d = root / split / CIFAR10_CLASSES[lab]
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{i:04d}.png").write_bytes(_png(img))
    return root


def write_archive(path: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for split, (images, labels) in splits.items():
            for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
                data = _png(img)
                info = tarfile.TarInfo(f"{split}/{CIFAR10_CLASSES[lab]}/{i:04d}.png")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def small_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"train": fake_split(5, 1), "test": fake_split(2, 2)}


@pytest.fixture
def shared_archive() -> Path:
    if not SHARED_ARCHIVE.is_file():
        pytest.skip(f"shared CIFAR-10 archive not present at {SHARED_ARCHIVE}")
    return SHARED_ARCHIVE
