"""Where transmitted images come from: a CIFAR-10 split, a folder of pictures, or a list of
files — as uint8 (N, 32, 32, 3) arrays with labels (-1 where unknown). Shared by the GNU Radio
image source, ``semjscc run`` and the experiment runners, so frame n means the same image
everywhere."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np

from semjscc.data import CIFAR10_CLASSES, load_cifar10
from semjscc.data.cifar10 import IMAGE_SUFFIXES, pil_reason
from semjscc.util.errors import DataError, UsageError
from semjscc.util.files import MiB, read_regular

PICTURE_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "GIF", "TIFF", "PPM")
MAX_PICTURE_BYTES = 64 * MiB
UNKNOWN_LABEL = -1  # a picture outside CIFAR-10's class folders: sent and received, never scored
MAX_PICTURE_PIXELS = 40_000_000  # checked from the header before decoding (~120 MB as RGB)


def labelled(labels: np.ndarray) -> np.ndarray:
    """Which images carry a label (the only ones an accuracy counts): a boolean mask. Labels are
    class indices, so any negative one (``UNKNOWN_LABEL``) is none, as the callers' ``>= 0`` was."""
    return np.asarray(labels) >= 0


def _load_picture(path: Path) -> np.ndarray:
    """Any picture as a 32x32 RGB image (centre square crop, then resized): a regular file of at most
    ``MAX_PICTURE_BYTES``, its pixel count checked from the header before it is decoded."""
    from PIL import Image, UnidentifiedImageError

    data = read_regular(path, MAX_PICTURE_BYTES, "picture")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked here, first
        try:
            with Image.open(io.BytesIO(data), formats=PICTURE_FORMATS) as im:
                if im.size[0] * im.size[1] > MAX_PICTURE_PIXELS:
                    raise DataError(f"{path}: {im.size[0]}x{im.size[1]} pixels, more than the {MAX_PICTURE_PIXELS} a "
                                    f"picture may have (it is scaled to 32x32 anyway: resize it first)")
                im.draft("RGB", (64, 64))  # JPEG: decode at a reduced scale, the result is 32x32
                im = im.convert("RGB")
                side = min(im.size)  # centre square crop, then 32x32: the models' input size
                left, top = (im.width - side) // 2, (im.height - side) // 2
                im = im.crop((left, top, left + side, top + side)).resize((32, 32), Image.BILINEAR)
                return np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise DataError(f"{path}: not a readable {'/'.join(PICTURE_FORMATS)} image ({pil_reason(e)})") from None


def _label_from_parent(path: Path) -> int:
    return CIFAR10_CLASSES.index(path.parent.name) if path.parent.name in CIFAR10_CLASSES else UNKNOWN_LABEL


# How the images to send are ordered before start/count apply. CIFAR-10's test split is sorted
# by class, so the first N images in dataset order are all airplanes up to N = 1000: an accuracy
# measured on them measures one class. "stratified" (class-balanced, seeded) is what the
# over-the-air runner and the Pluto flowgraphs use by default.
IMAGE_ORDERS = ("stratified", "shuffled", "dataset")


def resolve_order(order: str | None, shuffle_seed: int | None) -> str:
    """The order in force: ``order`` if given, else the historical rule (a seed means shuffled)."""
    if order is None or order == "":
        return "dataset" if shuffle_seed is None else "shuffled"
    if order not in IMAGE_ORDERS:
        raise UsageError(f"image order {order!r}: expected one of {', '.join(IMAGE_ORDERS)}")
    return order


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices into ``labels`` taking one image of every class per round (each class's images in a
    seeded random order, the classes in a seeded random order within each round), so any first N
    hold each class floor(N/C) or ceil(N/C) times while the classes last. Unlabelled images (-1)
    form a class of their own."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    groups = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    out: list[np.ndarray] = []
    for r in range(max((len(g) for g in groups), default=0)):
        row = np.array([g[r] for g in groups if r < len(g)])
        out.append(row[rng.permutation(len(row))])
    return np.concatenate(out) if out else np.arange(0)


def load_images(source: str | os.PathLike[str] | None = None, split: str = "test", count: int = 0,
                start: int = 0, shuffle_seed: int | None = None,
                order: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels to transmit.

    ``source``: None or a CIFAR-10 location (see ``semjscc.data``) -> its ``split``; a folder
    that is not a CIFAR-10 layout -> every picture in it (recursively, labels from CIFAR-10
    class folder names); a comma-separated list of picture files. ``count`` 0 means all.
    ``order`` (:data:`IMAGE_ORDERS`, applied before ``start``/``count``): ``stratified``
    (:func:`stratified_order`, seed ``shuffle_seed`` or 0), ``shuffled`` (a seeded random order) or
    ``dataset``; None: shuffled when ``shuffle_seed`` is given, else dataset order."""
    order_name = resolve_order(order, shuffle_seed)
    if count < 0 or start < 0:
        raise UsageError(f"count and start must be >= 0 (got count={count}, start={start})")
    files: list[Path] | None = None
    if source is not None and "," in str(source):
        files = [Path(p.strip()) for p in str(source).split(",") if p.strip()]
    elif source is not None and Path(source).is_dir() and not _is_cifar_layout(Path(source)):
        files = sorted(p for p in Path(source).rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("._")
                       and "__MACOSX" not in p.parts)
        if not files:
            raise DataError(f"{source}: no pictures ({', '.join(IMAGE_SUFFIXES)}) found")
    elif source is not None and Path(source).is_file() and Path(source).suffix.lower() in IMAGE_SUFFIXES:
        files = [Path(source)]
    n = len(files) if files is not None else 0
    if files is None:
        ds = load_cifar10(source, split)
        n = len(ds.labels)
    if order_name == "stratified":
        all_labels = (np.array([_label_from_parent(f) for f in files]) if files is not None else ds.labels)
        order = stratified_order(all_labels, 0 if shuffle_seed is None else shuffle_seed)
    elif order_name == "shuffled":
        order = np.random.default_rng(0 if shuffle_seed is None else shuffle_seed).permutation(n)
    else:
        order = np.arange(n)
    order = order[start:]
    if count:
        order = order[:count]
    if len(order) == 0:
        raise UsageError(f"no images left after start={start} (the source has {n})")
    if files is not None:  # only the pictures that are sent are decoded
        missing = [str(files[i]) for i in order if not files[i].exists() and not files[i].is_symlink()]
        if missing:
            raise DataError(f"image file(s) not found: {', '.join(missing[:3])}")
        images = np.stack([_load_picture(files[i]) for i in order])
        return images, np.array([_label_from_parent(files[i]) for i in order], dtype=np.int64)
    return np.ascontiguousarray(ds.images[order]), ds.labels[order]


def _is_cifar_layout(path: Path) -> bool:
    return (path / "cifar-10-batches-py").is_dir() or (path / "test_batch").is_file() or (
        (path / "train").is_dir() and (path / "test").is_dir())
