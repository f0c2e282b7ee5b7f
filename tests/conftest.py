"""Shared fixtures: tiny CIFAR-10 look-alikes in each layout, the shared archive when present, and for the
GNU Radio tests a private HOME, the tiny untrained model zoo, a tiny dataset and every shipped .grc
compiled once per session (they were module-scoped copies in three files, so each .grc compiled thrice)."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from semjscc.data.cifar10 import CIFAR10_CLASSES
from semjscc.grc.install import blocks_dir, gnuradio_script
from semjscc.grc.run import FLOWGRAPHS_DIR

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


# --- GNU Radio: HOME, tiny models and data, the shipped flowgraphs compiled once ----------------------

SHIPPED = sorted(FLOWGRAPHS_DIR.glob("*.grc"))


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("home")
    (h / "xdg").mkdir(mode=0o700)
    return h


@pytest.fixture
def gr_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """For modules that use it (pytestmark usefixtures): the session's HOME for every test."""
    # grcc caches under ~/.cache, GNU Radio and ONNX Runtime write under ~; Qt needs these two
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / "xdg"))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny untrained exports (tests/gr_tiny_zoo.py); torch is imported only by the tests that ask."""
    from gr_tiny_zoo import tiny_zoo

    return tiny_zoo(tmp_path_factory)


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pickles(tmp_path_factory.mktemp("cifar"), fake_split(3, 1), fake_split(3, 2))


@pytest.fixture(scope="session")
def grcc_runs(tmp_path_factory: pytest.TempPathFactory, home: Path) -> dict[str, tuple[int, str, Path]]:
    """Every shipped .grc compiled with grcc as ``semjscc grc``/``semjscc run`` run it (under the venv's
    python, so flowgraphs whose variables call into semjscc — the Pluto ones apply calibration
    profiles — evaluate): name -> (return code, output, generated script). The first run fills grcc's block cache under
    the temporary HOME (~8x faster afterwards); the others then run in parallel."""
    out = tmp_path_factory.mktemp("grcc")
    env = {**os.environ, "HOME": str(home), "GRC_BLOCKS_PATH": str(blocks_dir())}

    def start(grc: Path) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, gnuradio_script("grcc") or "/usr/bin/grcc", "-o", str(out / grc.stem), str(grc)],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)

    first, *rest = SHIPPED
    runs = {}
    for batch in ([first], rest):
        procs = [(grc, start(grc)) for grc in batch]
        for grc, p in procs:
            text, _ = p.communicate(timeout=180)
            runs[grc.stem] = (p.returncode, text, out / grc.stem / f"{grc.stem}.py")
    return runs


@pytest.fixture(scope="session")
def compiled(grcc_runs: dict[str, tuple[int, str, Path]]) -> dict[str, Path]:
    for name in ("sim_loopback", "sim_loopback_gui"):
        assert grcc_runs[name][0] == 0, grcc_runs[name][1]
    return {name: run[2] for name, run in grcc_runs.items()}
