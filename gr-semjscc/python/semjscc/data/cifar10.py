"""CIFAR-10 from any of three layouts, decoded once into a uint8 cache.

Layouts accepted (``resolve_source`` tells them apart):

- torchvision's python pickles: ``cifar-10-batches-py/{data_batch_1..5,test_batch}``;
- an image folder: ``train/<class>/*.{jpg,png}`` and ``test/<class>/*``;
- a ``.tar.gz``/``.tgz``/``.tar`` archive holding that image folder (as the shared
  ``cifar10-jpeg.tar.gz``).

Images come back as ``uint8`` arrays of shape ``(N, 32, 32, 3)`` (HWC, RGB) with ``int64``
labels in CIFAR-10's canonical class order. Decoded arrays are cached as ``.npy`` files keyed by
the *content* of the source as the file system describes it: the path, size, modification time and
inode of every file that is read (an image replaced or deleted inside a folder, a pickle overwritten
in place, changes the key); a damaged or inconsistent cache entry is rebuilt, never served.

Every reader has limits, checked before anything is allocated: regular files only (no FIFOs, devices,
or links to them), a byte cap per file and per archive member, the pixel count from an image's
header before it is decoded, only the image formats a dataset holds (JPEG, PNG, BMP), pickles that
can only build numpy arrays from data they actually contain. macOS metadata (``._*``, ``__MACOSX/``)
in archives and folders is skipped.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import tarfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semjscc.util.errors import DataError
from semjscc.util.files import MiB, read_regular, save_npy
from semjscc.util.paths import cache_dir, default_data_source

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
SPLITS = ("train", "test")
EXPECTED_COUNTS = {"train": 50_000, "test": 10_000}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
IMAGE_FORMATS = ("JPEG", "PNG", "BMP")  # what PIL may decode as a dataset image (never e.g. its EPS reader)
MAX_IMAGE_BYTES = 4 * MiB  # a 32x32 image file is a few KB
MAX_PICKLE_BYTES = 256 * MiB  # a CIFAR-10 batch file is 31 MB
MAX_IMAGES = 100_000  # per split: CIFAR-10 has 50,000 / 10,000; bounds the memory an archive can take
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
    cache = _cache_paths(kind, path, split) if use_cache else None
    if cache is not None:
        ds = _read_cache(cache)
        if ds is not None:
            return _checked(ds, path, split, expect_full)
    if kind == "archive":
        # one pass decodes both splits, so cache both
        both = {s: _checked(d, path, s, False) for s, d in _load_archive(path).items()}
        if use_cache:
            for s, d in both.items():
                _write_cache(_cache_paths(kind, path, s), d)
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
        raise DataError(f"{path}: {split} labels outside 0..9 (found {int(ds.labels.min())}..{int(ds.labels.max())})")
    if expect_full and len(ds) != EXPECTED_COUNTS[split]:
        raise DataError(f"{path}: {split} split has {len(ds)} images, expected {EXPECTED_COUNTS[split]}")
    return ds


# --- cache -------------------------------------------------------------------------------------

def _skipped(name: str) -> bool:
    """macOS archive metadata: AppleDouble ``._x.png`` files and ``__MACOSX/`` folders."""
    parts = Path(name).parts
    return "__MACOSX" in parts or (bool(parts) and parts[-1].startswith("._"))


def _source_files(kind: str, path: Path, split: str) -> list[Path]:
    if kind == "archive":
        return [path]
    if kind == "pickle":
        return [path / n for n in _PICKLE_FILES[split]]
    root = path / split
    return sorted(p for p in root.rglob("*") if not p.is_dir()) if root.is_dir() else []


def _cache_paths(kind: str, path: Path, split: str) -> tuple[Path, Path]:
    h = hashlib.sha256(f"{kind}|{path.resolve()}|{split}".encode())
    for f in _source_files(kind, path, split):
        try:
            st = f.stat()
            # ctime too: a file rewritten in place with its size and mtime restored (touch -d) still
            # changes it, and no user can set it back
            h.update(f"{f.relative_to(path) if f != path else f.name}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|"
                     f"{st.st_ctime_ns}\n".encode())
        except OSError:
            h.update(f"{f}|unreadable\n".encode())  # a dangling link: the loader will say so
    d = cache_dir() / "cifar10" / h.hexdigest()[:16]
    return d / f"{split}_images.npy", d / f"{split}_labels.npy"


def _read_cache(paths: tuple[Path, Path]) -> Dataset | None:
    """A cached split, or None when absent or damaged (empty, truncated, wrong shape or type)."""
    try:
        images = np.load(paths[0], allow_pickle=False)
        labels = np.load(paths[1], allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    ok = (images.dtype == np.uint8 and images.ndim == 4 and images.shape[1:] == (32, 32, 3)
          and labels.dtype == np.int64 and labels.shape == (len(images),) and len(images) > 0
          and int(labels.min()) >= 0 and int(labels.max()) < len(CIFAR10_CLASSES))
    return Dataset(images, labels) if ok else None


def _write_cache(paths: tuple[Path, Path], ds: Dataset) -> None:
    try:
        for p, arr in zip(paths, (ds.images, ds.labels), strict=True):
            save_npy(p, arr)  # atomic: a reader never sees half a file, a full disk leaves no temporary
    except OSError:
        pass  # a read-only or full cache only costs speed


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
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset pickle")
        found = super().find_class(module, name)
        if name == "_reconstruct":
            return _empty_reconstruct(found)
        if (module, name) == ("numpy", "ndarray"):
            return _EmptyOnly(found)
        return found


class _EmptyOnly:
    """``np.ndarray`` for an unpickler: arrays may only be created empty; their data comes from the
    pickle's own bytes (``__setstate__`` / ``_frombuffer``), so a 76-byte file cannot ask for 16 TiB."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __call__(self, shape: object = (0,), *args: object, **kwargs: object) -> object:
        if int(np.prod(np.atleast_1d(shape))) > 1:
            raise pickle.UnpicklingError(f"refusing to allocate an array of shape {shape} from a dataset pickle")
        return self.cls(shape, *args, **kwargs)


def _empty_reconstruct(real):  # type: ignore[no-untyped-def]
    def reconstruct(subtype: object, shape: object, dtype: object) -> object:
        if isinstance(subtype, _EmptyOnly):
            subtype = subtype.cls
        if int(np.prod(np.atleast_1d(shape))) > 1:
            raise pickle.UnpicklingError(f"refusing to allocate an array of shape {shape} from a dataset pickle")
        return real(subtype, shape, dtype)

    return reconstruct


def _load_pickles(path: Path, split: str) -> Dataset:
    images, labels = [], []
    for name in _PICKLE_FILES[split]:
        f = path / name
        if not f.exists() and not f.is_symlink():
            raise DataError(f"{path}: missing {name} (a torchvision cifar-10-batches-py folder has all of "
                            f"{', '.join(_PICKLE_FILES['train'] + _PICKLE_FILES['test'])})")
        raw = read_regular(f, MAX_PICKLE_BYTES, "CIFAR-10 pickle")
        try:
            d = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
            data = np.asarray(d[b"data"])
            if data.dtype != np.uint8:  # numpy would cast floats (NaN included) to bytes with a warning only
                raise DataError(f"{f}: pixel data is {data.dtype}, CIFAR-10 pickles hold uint8")
            lab = np.asarray(d[b"labels"], dtype=np.int64).reshape(-1)
        except (pickle.UnpicklingError, KeyError, EOFError, TypeError, ValueError, LookupError, AttributeError,
                IndexError, OverflowError, MemoryError) as e:
            raise DataError(f"{f}: not a CIFAR-10 python pickle ({type(e).__name__}: {str(e)[:120]})") from None
        if data.size % 3072 or data.size // 3072 != len(lab):
            raise DataError(f"{f}: {data.size} pixel values for {len(lab)} labels; CIFAR-10 pickles hold 3072 "
                            f"(3x32x32) per labelled image")
        if len(lab) and (lab.min() < 0 or lab.max() >= len(CIFAR10_CLASSES)):
            raise DataError(f"{f}: labels outside 0..9 (found {int(lab.min())}..{int(lab.max())})")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lab)
    return Dataset(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels))


# --- image folders and archives ----------------------------------------------------------------

def _decode(data: bytes, where: str) -> np.ndarray:
    """A 32x32 dataset image: its size read from the header before anything is decoded, only the
    formats a dataset holds."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked here, first
        try:
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as im:
                if im.size != (32, 32):
                    raise DataError(f"{where}: image is {im.size[0]}x{im.size[1]}, CIFAR-10 images are 32x32")
                return np.asarray(im.convert("RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise DataError(f"{where}: not a readable {'/'.join(IMAGE_FORMATS)} image ({pil_reason(e)})") from None


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
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir() and not _skipped(p.name)):
        label = _class_index(cls_dir.name, str(cls_dir))
        for f in sorted(cls_dir.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES and not _skipped(f.name):
                if len(items) >= MAX_IMAGES:
                    raise DataError(f"{root}: more than {MAX_IMAGES} images; CIFAR-10 has {EXPECTED_COUNTS[split]}")
                items.append((f.name, label, _decode(read_regular(f, MAX_IMAGE_BYTES, "dataset image"), str(f))))
    return _stack(items, str(root))


def _load_archive(path: Path) -> dict[str, Dataset]:
    """Decode both splits in one pass over the archive (gzip cannot seek)."""
    found: dict[str, list[tuple[str, int, np.ndarray]]] = {s: [] for s in SPLITS}
    try:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                if not m.isfile() or not m.name.lower().endswith(IMAGE_SUFFIXES) or _skipped(m.name):
                    continue
                if m.size > MAX_IMAGE_BYTES:  # declared in the header: refused before a byte is read
                    raise DataError(f"{path}:{m.name}: a {m.size}-byte member, more than the {MAX_IMAGE_BYTES} "
                                    f"a dataset image may have")
                parts = Path(m.name).parts
                if m.name.startswith("/") or ".." in parts:  # nothing is extracted, but such a member is no image of ours
                    raise DataError(f"{path}: member {m.name!r} points outside the archive; not a CIFAR-10 archive")
                # .../<split>/<class>/<file>; tolerate a leading top-level folder
                if len(parts) < 3 or parts[-3] not in SPLITS:
                    continue
                split, cls = parts[-3], parts[-2]
                where = f"{path}:{m.name}"
                fh = tar.extractfile(m)
                if fh is None:
                    continue
                if len(found[split]) >= MAX_IMAGES:
                    raise DataError(f"{path}: more than {MAX_IMAGES} {split} images; CIFAR-10 has "
                                    f"{EXPECTED_COUNTS[split]}")
                found[split].append((parts[-1], _class_index(cls, where), _decode(fh.read(MAX_IMAGE_BYTES), where)))
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


def pil_reason(e: Exception) -> str:
    """PIL's message without the object reprs it embeds (``<_io.BytesIO object at 0x...>``)."""
    import re

    return re.sub(r"\s*<[^<>]* at 0x[0-9a-f]+>", "", str(e))[:120]
