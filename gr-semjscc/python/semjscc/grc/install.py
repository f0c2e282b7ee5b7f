"""Make GNU Radio Companion find the SemJSCC blocks with no manual step, per checkout.

GRC looks for block YAML in ``$GRC_BLOCKS_PATH``, then in ``[grc] local_blocks_path`` of
``~/.gnuradio/config.conf`` (a ``:``-separated list), then in its global path. The set-up gives each
venv its own: its ``gnuradio-companion`` / ``grcc`` shims and its ``activate`` put this checkout's
``gr-semjscc/grc`` first in ``$GRC_BLOCKS_PATH`` (as ``semjscc grc`` does), so two checkouts never
mix and nothing outlives a deleted one. The user-global file is left alone, except that
``--clean`` (which the set-up runs) removes the entries earlier versions added there: paths of
gr-semjscc block folders, this checkout's, other checkouts' or gone ones, which made GRC warn "Block
with id ... overwritten" and silently use another checkout's definitions. ``--install`` still adds
this checkout there for a GRC started from a desktop menu, on request, and removes other checkouts'
entries first. Both are line edits that keep the rest of the file (comments included).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from semjscc.util.paths import PACKAGE_DIR

BLOCKS_DIR = PACKAGE_DIR.parents[1] / "grc"  # gr-semjscc/python/semjscc -> gr-semjscc/grc
_KEY = "local_blocks_path"
_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_ENTRY = re.compile(rf"^(\s*){_KEY}(\s*[=:]\s*)(.*?)\s*$")


def blocks_dir() -> Path:
    """The directory holding the ``semjscc_*.block.yml`` files."""
    return BLOCKS_DIR


SHIM_MARK = b"written by scripts/setup.sh"


def gnuradio_script(name: str) -> str | None:
    """GNU Radio's own ``grcc`` / ``gnuradio-companion`` (Python scripts) on PATH, skipping the venv
    shims that scripts/setup.sh writes (shell scripts that call back into this): callers run the
    real one under ``sys.executable``, which a shell script would fail under."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        f = Path(d or ".") / name
        try:
            if f.is_file() and os.access(f, os.X_OK) and SHIM_MARK not in f.read_bytes()[:512]:
                return str(f)
        except OSError:
            continue
    return None


def config_path() -> Path:
    """GNU Radio's per-user configuration file."""
    return Path.home() / ".gnuradio" / "config.conf"


def is_semjscc_blocks_dir(path: str) -> bool:
    """Whether a local_blocks_path entry is a gr-semjscc block folder (any checkout, present or gone)."""
    p = Path(path)
    return p.parts[-2:] == ("gr-semjscc", "grc") or (p / "semjscc_image_source.block.yml").is_file()


def clean_blocks_path(text: str, keep: str | None = None) -> tuple[str, list[str]]:
    """``text`` of a config.conf without the gr-semjscc entries in ``[grc] local_blocks_path`` (but
    ``keep``); (new text, removed entries). A line left empty is dropped."""
    lines = text.splitlines()
    section, removed = None, []
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if m:
            section = m.group(1).strip().lower()
            continue
        e = _ENTRY.match(line)
        if section != "grc" or e is None:
            continue
        indent, sep, value = e.groups()
        paths = [x.strip() for x in value.split(os.pathsep) if x.strip()]
        gone = [x for x in paths if x != keep and is_semjscc_blocks_dir(x)]
        if gone:
            removed += gone
            rest = [x for x in paths if x not in gone]
            lines[i] = f"{indent}{_KEY}{sep}{os.pathsep.join(rest)}" if rest else None  # type: ignore[call-overload]
    if not removed:
        return text, []
    return "\n".join(x for x in lines if x is not None) + "\n", removed


def merge_blocks_path(text: str, directory: str) -> tuple[str, bool]:
    """``text`` of a config.conf with ``directory`` in ``[grc] local_blocks_path``; (new text, changed)."""
    lines = text.splitlines()
    section, grc_at, entry_at = None, None, None
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if m:
            section = m.group(1).strip().lower()
            if section == "grc" and grc_at is None:
                grc_at = i
            continue
        if section == "grc" and entry_at is None and _ENTRY.match(line):
            entry_at = i
    if entry_at is not None:
        indent, sep, value = _ENTRY.match(lines[entry_at]).groups()  # type: ignore[union-attr]
        paths = [p.strip() for p in value.split(os.pathsep) if p.strip()]
        if directory in paths:
            return text, False
        lines[entry_at] = f"{indent}{_KEY}{sep}{os.pathsep.join([*paths, directory])}"
    elif grc_at is not None:
        lines.insert(grc_at + 1, f"{_KEY} = {directory}")
    else:
        if lines and lines[-1].strip():
            lines.append("")
        lines += ["[grc]", f"{_KEY} = {directory}"]
    return "\n".join(lines) + "\n", True


def install(config: Path | None = None, directory: Path | None = None) -> tuple[Path, bool]:
    """Add the SemJSCC block directory to GRC's local_blocks_path, other checkouts' entries removed
    first (they would overwrite its blocks); returns (config file, changed)."""
    config = config or config_path()
    directory = directory or blocks_dir()
    text = config.read_text() if config.is_file() else ""
    text2, removed = clean_blocks_path(text, keep=str(directory))
    new, added = merge_blocks_path(text2, str(directory))
    if added or removed:
        from semjscc.util.files import write_text

        write_text(config, new)
    return config, bool(added or removed)


def clean(config: Path | None = None) -> tuple[Path, list[str]]:
    """Remove every gr-semjscc entry from GRC's local_blocks_path; returns (config file, removed)."""
    config = config or config_path()
    if not config.is_file():
        return config, []
    new, removed = clean_blocks_path(config.read_text())
    if removed:
        from semjscc.util.files import write_text

        write_text(config, new)
    return config, removed


def grc_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment in which GRC finds the blocks and generated flowgraphs run under this
    interpreter's environment (its bin/ first on PATH: their ``#!/usr/bin/env python3``)."""
    env = dict(os.environ if base is None else base)
    blocks = str(blocks_dir())
    paths = [p for p in env.get("GRC_BLOCKS_PATH", "").split(os.pathsep) if p]
    env["GRC_BLOCKS_PATH"] = os.pathsep.join([blocks, *[p for p in paths if p != blocks]])
    bindir = str(Path(sys.executable).parent)
    rest = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != bindir]
    env["PATH"] = os.pathsep.join([bindir, *rest])
    return env


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m semjscc.grc.install",
                                description="Where GRC finds the SemJSCC blocks: prints the folder (the venv's "
                                            "shims and activate put it in $GRC_BLOCKS_PATH).")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--clean", action="store_true",
                   help="remove gr-semjscc entries (any checkout) from ~/.gnuradio/config.conf (what set-up runs)")
    g.add_argument("--install", action="store_true",
                   help="add this checkout to [grc] local_blocks_path, for a GRC started outside the venv")
    p.add_argument("--config", type=Path, default=None, help="config file (default ~/.gnuradio/config.conf)")
    args = p.parse_args(argv)
    if args.clean:
        path, removed = clean(args.config)
        if removed:
            print(f"[setup] GRC blocks: removed {', '.join(removed)} from {path} (each venv sets $GRC_BLOCKS_PATH)")
        return 0
    if args.install:
        path, changed = install(args.config)
        print(f"[setup] GRC blocks: {blocks_dir()} {'added to' if changed else 'already in'} {path}")
        return 0
    print(blocks_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
