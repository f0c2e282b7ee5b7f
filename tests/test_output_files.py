"""Where results are written (semjscc.util.files): a regular file is replaced atomically, a device or a
pipe written in place (never replaced: as root a rename would put a file where the device was), a FIFO
without a reader refused, and a result set written all or nothing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from semjscc.util.errors import DataError
from semjscc.util.files import atomic_writer, output_kind, text_writer, write_json, write_together


def _null_device(tmp_path: Path) -> Path:
    dev = tmp_path / "null"
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
    except PermissionError:
        pytest.skip("making a device node needs root")
    return dev


def test_a_device_is_written_in_place_not_replaced(tmp_path: Path) -> None:
    dev = _null_device(tmp_path)
    write_json(dev, {"a": 1})
    assert stat.S_ISCHR(os.stat(dev).st_mode) and output_kind(dev) == "stream"
    assert [p.name for p in tmp_path.iterdir()] == ["null"]  # no temporary left beside it


def test_run_json_to_a_device_keeps_the_device(tmp_path: Path, zoo: Path, data: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from semjscc.cli.main import main

    dev = _null_device(tmp_path)
    monkeypatch.setenv("SEMJSCC_MODELS", str(zoo))  # tiny models: the writer is under test, not the link
    assert main(["run", "sim_loopback", "--model", "jscc-kn6", "--source", str(data), "--frames", "1",
                 "--json", str(dev)]) == 0
    assert stat.S_ISCHR(os.stat(dev).st_mode)


def test_a_fifo_is_written_when_read_and_refused_when_not(tmp_path: Path) -> None:
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="a FIFO with no reader"):
        write_json(fifo, {"a": 1})
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader: the JSON fits in the pipe's buffer
    try:
        write_json(fifo, {"a": 1})
        assert json.loads(os.read(fd, 65536)) == {"a": 1}
    finally:
        os.close(fd)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.parametrize("make", ["directory", "socket"])
def test_what_no_result_may_replace_is_refused(tmp_path: Path, make: str) -> None:
    target = tmp_path / "t"
    if make == "directory":
        target.mkdir()
    else:
        import socket

        s = socket.socket(socket.AF_UNIX)
        s.bind(str(target))
    with pytest.raises(DataError, match=f"a {make}"), atomic_writer(target) as f:
        f.write("x")


def test_a_result_set_is_written_all_or_nothing(tmp_path: Path) -> None:
    a, b = tmp_path / "r.json", tmp_path / "r.md"
    write_together({a: text_writer("old json"), b: text_writer("old md")})

    def fail(f: object) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_together({a: text_writer("new json"), b: fail})
    assert a.read_text() == "old json" and b.read_text() == "old md"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md"]  # no temporaries left
    write_together({a: text_writer("new json"), b: text_writer("new md")})
    assert a.read_text() == "new json" and b.read_text() == "new md"
