"""CIFAR-10 loading from the three layouts, the cache, and clear errors for bad sources."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_CACHE, fake_split, write_archive, write_folder, write_pickles
from semjscc.cli.main import main
from semjscc.data import load_cifar10, resolve_source
from semjscc.util.errors import DataError


def _sorted(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order-independent comparison: sort by label, then by content."""
    keys = [img.tobytes() for img in images]
    order = sorted(range(len(labels)), key=lambda i: (labels[i], keys[i]))
    return images[order], labels[order]


@pytest.mark.slow
def test_pickle_layout_full_size(tmp_path: Path) -> None:
    train, test = fake_split(5000, 3), fake_split(1000, 4)
    root = write_pickles(tmp_path, train, test)
    assert resolve_source(root)[0] == "pickle"
    tr = load_cifar10(root, "train", expect_full=True)
    te = load_cifar10(root, "test", expect_full=True)
    assert tr.images.shape == (50_000, 32, 32, 3) and tr.images.dtype == np.uint8
    assert te.images.shape == (10_000, 32, 32, 3)
    assert np.array_equal(tr.images, train[0]) and np.array_equal(tr.labels, train[1])
    assert np.array_equal(te.images, test[0]) and np.array_equal(te.labels, test[1])
    assert np.bincount(tr.labels).tolist() == [5000] * 10


@pytest.mark.parametrize("layout", ["folder", "archive"])
def test_folder_and_archive_layouts(tmp_path: Path, small_splits: dict, layout: str) -> None:
    if layout == "folder":
        src = write_folder(tmp_path / "cifar", small_splits)
    else:
        src = write_archive(tmp_path / "cifar.tar.gz", small_splits)
    assert resolve_source(src)[0] == layout
    for split, (images, labels) in small_splits.items():
        ds = load_cifar10(src, split)
        got = _sorted(ds.images, ds.labels)
        want = _sorted(images, labels)
        assert np.array_equal(got[0], want[0])  # PNG is lossless: pixels survive exactly
        assert np.array_equal(got[1], want[1])


def test_cache_is_used_and_survives_damage(tmp_path: Path, small_splits: dict) -> None:
    src = write_archive(tmp_path / "c.tar.gz", small_splits)
    first = load_cifar10(src, "test")
    cached = list(Path(os.environ["SEMJSCC_CACHE"]).rglob("*.npy"))
    assert {p.name for p in cached} >= {"train_images.npy", "test_images.npy", "test_labels.npy"}
    for p in cached:
        p.write_bytes(b"garbage")  # a damaged cache is rebuilt, not trusted
    again = load_cifar10(src, "test")
    assert np.array_equal(first.images, again.images)


def test_cache_misses_a_source_rewritten_in_place_with_its_size_and_mtime(tmp_path: Path, small_splits: dict) -> None:
    """The test batch written again over the old file (same inode, same size: the same images in the
    other order) and its mtime put back: the cache key's ctime still tells them apart."""
    root = write_pickles(tmp_path / "p", *small_splits.values())
    first = load_cifar10(root, "test")
    batch = next(f for f in root.rglob("test_batch*") if f.is_file())
    st = batch.stat()
    images, labels = small_splits["test"]
    root2 = write_pickles(tmp_path / "q", small_splits["train"], (images[::-1].copy(), labels[::-1].copy()))
    other = next(f for f in root2.rglob("test_batch*") if f.is_file()).read_bytes()
    assert len(other) == st.st_size  # same size: only the content differs
    with open(batch, "r+b") as f:  # in place: the inode stays
        f.write(other)
    os.utime(batch, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert batch.stat().st_ino == st.st_ino and batch.stat().st_mtime_ns == st.st_mtime_ns
    again = load_cifar10(root, "test")
    assert not np.array_equal(first.images, again.images)
    assert np.array_equal(again.images, first.images[::-1]) and np.array_equal(again.labels, first.labels[::-1])


def test_missing_and_malformed_sources(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_cifar10(tmp_path / "nope", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither"):
        load_cifar10(tmp_path / "empty", "train")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="damaged or unreadable"):
        load_cifar10(bad, "train")
    with pytest.raises(DataError, match="unknown split"):
        load_cifar10(bad, "validation")


def test_damaged_archive_is_one_line(tmp_path: Path, small_splits: dict) -> None:
    """tarfile's error for an archive no decompressor opens has one line per method tried; the
    message keeps the one for the archive's own compression, and names the fix."""
    good = write_archive(tmp_path / "good.tar.gz", small_splits).read_bytes()
    cases = {"not-gzip.tar.gz": b"\x1f\x8b\x08\x00 not really gzip" * 4,
             "not-tar.tar": b"garbage" * 200,
             "cut.tar.gz": good[: len(good) // 2]}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DataError) as e:
            load_cifar10(path, "train", use_cache=False)
        msg = str(e.value)
        assert "\n" not in msg and f"{path}: damaged or unreadable archive (" in msg, msg
        assert msg.endswith("download it again or give --data PATH / SEMJSCC_DATA of an intact copy"), msg
        assert "method bz2" not in msg and "method xz" not in msg


def test_wrong_class_folder_and_image_size(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "d" / "train" / "unicorn").mkdir(parents=True)
    (tmp_path / "d" / "test").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(tmp_path / "d" / "train" / "unicorn" / "0.png")
    with pytest.raises(DataError, match="not a CIFAR-10 class"):
        load_cifar10(tmp_path / "d", "train")
    (tmp_path / "e" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "e" / "test").mkdir(parents=True)
    Image.new("RGB", (64, 48)).save(tmp_path / "e" / "train" / "cat" / "0.png")
    with pytest.raises(DataError, match="64x48"):
        load_cifar10(tmp_path / "e", "train")


def test_malicious_pickle_refused(tmp_path: Path) -> None:
    import pickle

    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (d / name).write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}))
    with pytest.raises(DataError, match="refusing to load"):
        load_cifar10(tmp_path, "test")


def test_cli_data_command(tmp_path: Path, small_splits: dict, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_archive(tmp_path / "c.tar.gz", small_splits)
    assert main(["data", "--data", str(src)]) == 0
    out = capsys.readouterr().out
    assert "train: 50 images" in out and "test: 20 images" in out
    assert main(["data", "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err and "--data" in err


@pytest.mark.shared_data
def test_shared_archive_full(shared_archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if REAL_CACHE:
        monkeypatch.setenv("SEMJSCC_CACHE", REAL_CACHE)  # reuse the real decode cache between runs
    tr = load_cifar10(shared_archive, "train", expect_full=True)
    te = load_cifar10(shared_archive, "test", expect_full=True)
    assert tr.images.shape == (50_000, 32, 32, 3) and te.images.shape == (10_000, 32, 32, 3)
    assert np.bincount(tr.labels).tolist() == [5000] * 10
    assert np.bincount(te.labels).tolist() == [1000] * 10
    # JPEG pixels, so not exact; a real photo has spread, not a constant
    assert 20 < tr.images[:100].std() < 100
