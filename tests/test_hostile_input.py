"""Hostile input beyond one-line errors (those are rows of tests/bad_inputs.yaml): bounded memory, caches
that follow their source's content, results that are never destroyed before a new one exists, files
that are never left half written, a broken pipe, an unwritable HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bad_input_harness import Fixtures
from conftest import fake_split, write_folder
from semjscc.data import load_cifar10

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    return Fixtures(tmp_path_factory.mktemp("hostile"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tar_huge_member", "pickle_huge_array", "cifar_huge_png", "pictures_huge",
                                  "pictures_zero_link", "pictures_fifo"])
def test_hostile_sources_stay_under_1_gb(fx: Fixtures, name: str, tmp_path: Path) -> None:
    """Each hostile source is refused in its own process with one line and a peak RSS under 1 GB (a
    huge-member archive or pickle used to allocate gigabytes, a FIFO used to hang)."""
    source = fx[name]
    argv = (["data", "--data", source] if not name.startswith("pictures")
            else ["run", "sim_loopback", "--source", source, "--frames", "1", "--json", str(tmp_path / "r.json")])
    # VmHWM is the peak of this process's own address space; getrusage's ru_maxrss is not: Linux carries
    # the forking parent's peak across exec, so under a big pytest process it measured pytest.
    code = ("import sys; from semjscc.cli.main import main; rc = main(sys.argv[1:]); "
            "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]; "
            "print('MAXRSS', hwm, file=sys.stderr); sys.exit(rc)")
    env = {**os.environ, **fx.env(), "SEMJSCC_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=120,
                       cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    kib = int(r.stderr.split("MAXRSS")[1].split()[0])
    assert kib < 1024 * 1024, f"{name}: peak {kib // 1024} MiB"


def test_cache_follows_what_is_inside_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replacing or deleting an image inside a folder (the top folder's mtime does not change) is seen;
    damaged cache entries are rebuilt, never served."""
    monkeypatch.setenv("SEMJSCC_CACHE", str(tmp_path / "cache"))
    root = write_folder(tmp_path / "c", {"train": fake_split(1, 1), "test": fake_split(1, 2)})
    first = load_cifar10(root, "test")
    victim = sorted((root / "test" / "cat").iterdir())[0]
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(victim, format="PNG")
    again = load_cifar10(root, "test")
    assert not np.array_equal(first.images, again.images) and (again.images == 7).all(axis=(1, 2, 3)).any()
    victim.unlink()
    assert len(load_cifar10(root, "test")) == len(first) - 1
    for f in (tmp_path / "cache").rglob("test_images.npy"):
        f.write_bytes(b"")  # a 0-byte entry (a crash, a full disk)
    assert len(load_cifar10(root, "test")) == len(first) - 1
    for f in (tmp_path / "cache").rglob("test_labels.npy"):
        np.save(f, np.zeros(3, np.int64))  # the wrong length for its images
    assert len(load_cifar10(root, "test")) == len(first) - 1


def test_cache_follows_a_pickle_overwritten_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import write_pickles

    monkeypatch.setenv("SEMJSCC_CACHE", str(tmp_path / "cache"))
    root = write_pickles(tmp_path / "p", fake_split(1, 1), fake_split(1, 2))
    first = load_cifar10(root, "test")
    st = (root / "cifar-10-batches-py").stat()
    write_pickles(tmp_path / "q", fake_split(1, 1), fake_split(1, 3))
    (root / "cifar-10-batches-py" / "test_batch").write_bytes((tmp_path / "q" / "cifar-10-batches-py" /
                                                              "test_batch").read_bytes())
    os.utime(root / "cifar-10-batches-py", ns=(st.st_atime_ns, st.st_mtime_ns))  # the folder looks untouched
    assert not np.array_equal(load_cifar10(root, "test").images, first.images)


def test_atomic_writer_leaves_nothing_when_writing_fails(tmp_path: Path) -> None:
    from semjscc.util.files import atomic_writer

    target = tmp_path / "r.json"
    target.write_text("old\n")
    with pytest.raises(OSError), atomic_writer(target) as f:
        f.write("half")
        raise OSError(28, "No space left on device")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.slow  # compiles and runs a flowgraph
def test_failed_grc_run_keeps_the_earlier_json(tmp_path: Path) -> None:
    """`semjscc run X.grc --json R` deleted R before running; a run that fails now leaves it as it was."""
    pytest.importorskip("gnuradio.gr")
    from semjscc.cli.main import main

    js = tmp_path / "r.json"
    js.write_text('{"earlier": true}\n')
    assert main(["run", str(REPO / "flowgraphs" / "sim_loopback.grc"), "--model", "/nope", "--json", str(js)]) == 2
    assert json.loads(js.read_text()) == {"earlier": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_models_listing_into_a_closed_pipe(tmp_path: Path) -> None:
    """`semjscc models --json | head -1` ended in a BrokenPipeError traceback."""
    r = subprocess.run(f"{sys.executable} -m semjscc.cli.main models --json | head -1", shell=True, capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)
    assert r.stdout.strip() == "{" and "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_unwritable_home_gets_a_private_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """GNU Radio's FFT blocks raise when $HOME/.gr_fftw_wisdom cannot be locked (a read-only home)."""
    pytest.importorskip("gnuradio.gr")
    import semjscc.gr as sg

    monkeypatch.setenv("HOME", str(tmp_path / "ro"))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path / "ro") else real_access(p, mode))
    sg._writable_home()
    assert os.environ["HOME"] != str(tmp_path / "ro") and os.access(os.environ["HOME"], os.W_OK)
