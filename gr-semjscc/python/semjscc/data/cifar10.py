"""CIFAR-10 from any of three layouts, decoded once into a uint8 cache.

Layouts accepted (``resolve_source`` tells them apart):

- torchvision's python pickles: ``cifar-10-batches-py/{data_batch_1..5,test_batch}``;
- an image folder: ``train/<class>/*.{jpg,png}`` and ``test/<class>/*``;
- a ``.tar.gz``/``.tgz``/``.tar`` archive holding that image folder (as the shared
  ``cifar10-jpeg.tar.gz``).

Images come back as ``uint8`` arrays of shape ``(N, 32, 32, 3)`` (HWC, RGB) with ``int64``
labels in CIFAR-10's canonical class order. Decoded arrays are cached as ``.npy`` files keyed
by the source's path, size and modification time, so epochs never decode JPEGs again.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semjscc.errors import DataError
from semjscc.paths import cache_dir, default_data_source

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
SPLITS = ("train", "test")
EXPECTED_COUNTS = {"train": 50_000, "test": 10_000}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_PICKLE_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


@dataclass(frozen=True)
class Dataset:
    """One split: ``images`` uint8 (N, 32, 32, 3) and ``labels`` int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...] = CIFAR10_CLASSES

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None, seed: int = 0) -> Dataset:
        """``n`` images drawn at random with a fixed seed (all when ``n`` is None). Not the first
        ``n``: the stored order is sorted by class."""
        if n is None or n >= len(self):
            return self
        idx = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        return Dataset(self.images[idx], self.labels[idx], self.classes)


def resolve_source(source: str | os.PathLike[str] | None) -> tuple[str, Path]:
    """Return ``(kind, path)`` with kind in {"pickle", "folder", "archive"} or raise DataError."""
    path = Path(source).expanduser() if source else default_data_source()
    hint = "give --data PATH or set SEMJSCC_DATA (see README, 'Data')"
    if not path.exists():
        raise DataError(f"CIFAR-10 not found at {path}: {hint}")
    if path.is_file():
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            return "archive", path
        raise DataError(f"{path} is a file but not a .tar.gz/.tgz/.tar archive of CIFAR-10: {hint}")
    if (path / "cifar-10-batches-py").is_dir():
        path = path / "cifar-10-batches-py"
    if (path / "test_batch").is_file():
        return "pickle", path
    if (path / "train").is_dir() and (path / "test").is_dir():
        return "folder", path
    raise DataError(
        f"{path} holds neither torchvision's cifar-10-batches-py pickles nor train/<class>/ and "
        f"test/<class>/ image folders: {hint}"
    )


def load_cifar10(
    source: str | os.PathLike[str] | None = None,
    split: str = "train",
    *,
    use_cache: bool = True,
    expect_full: bool = False,
) -> Dataset:
    """Load one split of CIFAR-10 from ``source`` (default: $SEMJSCC_DATA or the shared archive)."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    kind, path = resolve_source(source)
    cache = _cache_paths(path, split) if use_cache else None
    if cache is not None and all(p.exists() for p in cache):
        try:
            ds = Dataset(np.load(cache[0]), np.load(cache[1]))
        except (OSError, ValueError):
            ds = None  # a damaged cache entry is rebuilt below
        if ds is not None:
            return _checked(ds, path, split, expect_full)
    if kind == "archive":
        # one pass decodes both splits, so cache both
        both = {s: _checked(d, path, s, False) for s, d in _load_archive(path).items()}
        if use_cache:
            for s, d in both.items():
                _write_cache(_cache_paths(path, s), d)
        return _checked(both[split], path, split, expect_full)
    ds = _load_pickles(path, split) if kind == "pickle" else _load_folder(path, split)
    ds = _checked(ds, path, split, expect_full)
    if cache is not None:
        _write_cache(cache, ds)
    return ds


def _checked(ds: Dataset, path: Path, split: str, expect_full: bool) -> Dataset:
    if ds.images.ndim != 4 or ds.images.shape[1:] != (32, 32, 3) or ds.images.dtype != np.uint8:
        raise DataError(f"{path}: {split} images have shape {ds.images.shape}, expected (N, 32, 32, 3) uint8")
    if len(ds.images) != len(ds.labels) or len(ds) == 0:
        raise DataError(f"{path}: {split} split is empty or has {len(ds.images)} images for {len(ds.labels)} labels")
    if ds.labels.min() < 0 or ds.labels.max() >= len(CIFAR10_CLASSES):
        raise DataError(f"{path}: {split} labels outside 0..9")
    if expect_full and len(ds) != EXPECTED_COUNTS[split]:
        raise DataError(f"{path}: {split} split has {len(ds)} images, expected {EXPECTED_COUNTS[split]}")
    return ds


# --- cache -------------------------------------------------------------------------------------

def _cache_paths(path: Path, split: str) -> tuple[Path, Path]:
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    d = cache_dir() / "cifar10" / key
    return d / f"{split}_images.npy", d / f"{split}_labels.npy"


def _write_cache(paths: tuple[Path, Path], ds: Dataset) -> None:
    try:
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        for p, arr in zip(paths, (ds.images, ds.labels), strict=True):
            tmp = p.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, arr)
            tmp.replace(p)  # atomic: a reader never sees half a file
    except OSError:
        pass  # a read-only cache only costs speed


# --- torchvision pickles -----------------------------------------------------------------------

class _SafeUnpickler(pickle.Unpickler):
    """Only what CIFAR-10's pickles need: numpy arrays, no arbitrary callables."""

    _ALLOWED: frozenset[tuple[str, str]] = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes array bytes into protocol-2 pickles
        ("numpy.core.numeric", "_frombuffer"),  # protocol-5 pickles written by newer numpy
        ("numpy._core.numeric", "_frombuffer"),
    })

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset pickle")


def _load_pickles(path: Path, split: str) -> Dataset:
    images, labels = [], []
    for name in _PICKLE_FILES[split]:
        f = path / name
        if not f.is_file():
            raise DataError(f"{path}: missing {name} (a torchvision cifar-10-batches-py folder has all of "
                            f"{', '.join(_PICKLE_FILES['train'] + _PICKLE_FILES['test'])})")
        try:
            with open(f, "rb") as fh:
                d = _SafeUnpickler(fh, encoding="bytes").load()
            data = np.asarray(d[b"data"], dtype=np.uint8)
            lab = np.asarray(d[b"labels"], dtype=np.int64)
        except (pickle.UnpicklingError, KeyError, EOFError, TypeError, ValueError) as e:
            raise DataError(f"{f}: not a CIFAR-10 python pickle ({e})") from None
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lab)
    return Dataset(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels))


# --- image folders and archives ----------------------------------------------------------------

def _decode(data: bytes, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{where}: not a readable image ({e})") from None
    if arr.shape != (32, 32, 3):
        raise DataError(f"{where}: image is {arr.shape[1]}x{arr.shape[0]}, CIFAR-10 images are 32x32")
    return arr


def _class_index(name: str, where: str) -> int:
    try:
        return CIFAR10_CLASSES.index(name)
    except ValueError:
        raise DataError(f"{where}: folder {name!r} is not a CIFAR-10 class ({', '.join(CIFAR10_CLASSES)})") from None


def _stack(items: list[tuple[str, int, np.ndarray]], where: str) -> Dataset:
    if not items:
        raise DataError(f"{where}: no images found")
    items.sort(key=lambda t: (t[1], t[0]))  # deterministic order whatever the file system says
    return Dataset(np.stack([t[2] for t in items]), np.array([t[1] for t in items], dtype=np.int64))


def _load_folder(path: Path, split: str) -> Dataset:
    root = path / split
    items = []
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        label = _class_index(cls_dir.name, str(cls_dir))
        for f in sorted(cls_dir.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                items.append((f.name, label, _decode(f.read_bytes(), str(f))))
    return _stack(items, str(root))


def _load_archive(path: Path) -> dict[str, Dataset]:
    """Decode both splits in one pass over the archive (gzip cannot seek)."""
    found: dict[str, list[tuple[str, int, np.ndarray]]] = {s: [] for s in SPLITS}
    try:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                if not m.isfile() or not m.name.lower().endswith(IMAGE_SUFFIXES):
                    continue
                parts = Path(m.name).parts
                # .../<split>/<class>/<file>; tolerate a leading top-level folder
                if len(parts) < 3 or parts[-3] not in SPLITS:
                    continue
                split, cls = parts[-3], parts[-2]
                where = f"{path}:{m.name}"
                fh = tar.extractfile(m)
                if fh is None:
                    continue
                found[split].append((parts[-1], _class_index(cls, where), _decode(fh.read(), where)))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: damaged or unreadable archive ({_archive_reason(path, e)}): download it again or "
                        f"give --data PATH / SEMJSCC_DATA of an intact copy") from None
    return {s: _stack(found[s], f"{path} ({s}/<class>/ images)") for s in SPLITS}


_METHOD = re.compile(r"^-?\s*method (\w+): \w+\((['\"])(.*)\2\)$")


def _archive_reason(path: Path, e: BaseException) -> str:
    """One line from an archive error: tarfile's "could not be opened" lists what each decompressor
    said, one line each; keep the one for the archive's own compression."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if len(lines) > 1:
        want = "gz" if path.name.endswith((".gz", ".tgz")) else "tar"
        for ln in lines[1:]:
            m = _METHOD.match(ln)
            if m and m.group(1) == want:
                return f"{'gzip' if want == 'gz' else 'tar'}: {m.group(3)}"
    return lines[0] if lines else type(e).__name__
