"""Reading and writing files so that hostile input cannot hang or exhaust the machine, and a crash or a
full disk never leaves half a result.

Reading: regular files only (a FIFO would block forever, a link to /dev/zero never ends), each with a
byte limit checked before anything is read; YAML without aliases (a few hundred bytes of nested
aliases expand to gigabytes). Writing: a temporary file beside the target, flushed and fsynced, then
renamed over it, so a reader sees the old file or the new one and never a torn one; the temporary
file is removed if anything fails (a full disk leaves nothing behind). Only regular files (and absent
paths) are replaced: a device or a pipe is written in place, anything else refused.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from semjscc.util.errors import DataError, OutputError

MiB = 1 << 20


def check_regular(path: str | os.PathLike[str], max_bytes: int | None = None, what: str = "file") -> int:
    """The size of ``path`` if it is a regular file (links followed) within ``max_bytes``; DataError
    otherwise (missing, a directory, a device, a FIFO, a dangling link, too large)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        kind = "a dangling link" if p.is_symlink() else "missing"
        raise DataError(f"{p}: {kind}, not a readable {what}") from None
    except OSError as e:
        raise DataError(f"{p}: cannot be read ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise DataError(f"{p}: {kind}, not a {what}")
    if max_bytes is not None and st.st_size > max_bytes:
        raise DataError(f"{p}: {st.st_size} bytes, more than the {max_bytes} a {what} may have")
    return st.st_size


def read_regular(path: str | os.PathLike[str], max_bytes: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (see :func:`check_regular`)."""
    check_regular(path, max_bytes, what)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    if len(data) > max_bytes:  # it grew after the check
        raise DataError(f"{path}: more than the {max_bytes} bytes a {what} may have")
    return data


def load_yaml(text: str, where: str, error: type[Exception] = DataError, fix: str = "") -> Any:
    """``yaml.safe_load`` that refuses anchors and aliases (an alias bomb expands exponentially) and
    names ``where`` (and ``fix``) in the one-line ``error``."""
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise yaml.YAMLError("YAML aliases are not accepted here")
            event = self.peek_event()
            if getattr(event, "anchor", None):
                raise yaml.YAMLError("YAML anchors are not accepted here")
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise error(f"{where} is not readable YAML{at} ({problem}){'; ' + fix if fix else ''}") from None


def output_kind(path: str | os.PathLike[str]) -> str:
    """What is at an output path: "absent", "file" (regular, links followed), "stream" (a character
    device such as /dev/null or a terminal, or a pipe: /dev/stdout in a shell pipeline), or
    DataError for what no result may be written to (a directory, a block device, a socket)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return "absent"  # a dangling link too: the rename replaces the link, never its missing target
    except NotADirectoryError:
        above = next((a for a in p.parents if a.is_file()), p.parent)
        raise DataError(f"{p}: {above} is a file, not a directory") from None
    except OSError as e:
        raise DataError(f"{p}: cannot be written ({e.strerror})") from None
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return "stream"
    kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
    raise DataError(f"{p} is {kind}; give a file name to write to")


@contextlib.contextmanager
def _stream_writer(target: Path, mode: str) -> Iterator[IO[Any]]:
    """Write in place to a character device or a pipe (never replace it: as root a rename would put a
    file where /dev/null was). A FIFO nobody reads would block forever: refused instead."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        why = "a FIFO with no reader" if e.errno == errno.ENXIO else e.strerror
        raise DataError(f"{target}: cannot be written ({why})") from None
    os.set_blocking(fd, True)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
    except OSError as e:  # /dev/full, a closed pipe
        raise OutputError(f"{target}: not written ({e.strerror})", e.errno, e.strerror) from None


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Write ``path`` through a temporary file in the same directory, fsynced and renamed over it on
    success, removed on failure. Two writers never share a temporary file. A device or a pipe at
    ``path`` (``--json /dev/stdout``) is written in place; a directory, block device or socket is
    refused (:func:`output_kind`)."""
    target = Path(path)
    if output_kind(target) == "stream":
        with _stream_writer(target, mode) as f:
            yield f
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise OutputError(f"{target}: not written ({e.strerror}); nothing there was changed", e.errno, e.strerror) from None
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are meant to be shared
        os.replace(tmp, target)
    except OSError as e:  # a full disk, a read-only or vanished folder: one line, the old file kept
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(f"{target}: not written ({e.strerror}); nothing there was changed", e.errno, e.strerror) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a crash once the directory is synced
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_together(files: dict[Path, Callable[[IO[bytes]], None]]) -> None:
    """Write a result set (``path: writer(binary file)``) all or nothing: every file goes to a temporary
    beside its target first; only when all are written and fsynced are they renamed into place, so a
    full disk or an error leaves the previous set untouched and no temporary behind."""
    for path in files:
        if output_kind(path) == "stream":
            raise DataError(f"{path}: a device or a pipe; a result set needs file names")
    temps: dict[Path, str] = {}
    try:
        for path, write in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps[path] = tmp
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
        for path, tmp in temps.items():
            os.replace(tmp, path)
    except BaseException as e:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, OutputError):  # a full disk, a read-only folder
            names = ", ".join(p.name for p in files)
            raise OutputError(f"{next(iter(files)).parent}: {names} not written ({e.strerror}); nothing there was "
                              f"changed", e.errno, e.strerror) from None
        raise


def text_writer(text: str) -> Callable[[IO[bytes]], None]:
    """A :func:`write_together` writer of UTF-8 ``text``."""
    return lambda f: f.write(text.encode())


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_writer(path) as f:
        f.write(text)


def write_json(path: str | os.PathLike[str], doc: Any, **kwargs: Any) -> None:
    write_text(path, json.dumps(doc, indent=2, **kwargs) + "\n")


def save_npy(path: str | os.PathLike[str], array: Any) -> None:
    import numpy as np

    with atomic_writer(path, "wb") as f:
        np.save(f, array)
