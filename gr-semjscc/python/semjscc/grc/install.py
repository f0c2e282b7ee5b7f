"""Make GNU Radio Companion find the SemJSCC blocks with no manual step.

GRC looks for block YAML in ``$GRC_BLOCKS_PATH``, then in ``[grc] local_blocks_path`` of
``~/.gnuradio/config.conf`` (a ``:``-separated list), then in its global path. ``install()``
adds ``gr-semjscc/grc`` to ``local_blocks_path``, keeping every entry already there and the rest
of the file as it was (a line edit, not a configparser rewrite, which would drop comments).
``scripts/setup.sh`` runs ``python -m semjscc.grc.install --install``.
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
    """Add the SemJSCC block directory to GRC's local_blocks_path; returns (config file, changed)."""
    config = config or config_path()
    directory = directory or blocks_dir()
    text = config.read_text() if config.is_file() else ""
    new, changed = merge_blocks_path(text, str(directory))
    if changed:
        from semjscc.util.files import write_text

        write_text(config, new)
    return config, changed


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
                                description="Register the SemJSCC GRC blocks in ~/.gnuradio/config.conf.")
    p.add_argument("--install", action="store_true", help="add gr-semjscc/grc to [grc] local_blocks_path")
    p.add_argument("--config", type=Path, default=None, help="config file (default ~/.gnuradio/config.conf)")
    args = p.parse_args(argv)
    if not args.install:
        print(blocks_dir())
        return 0
    path, changed = install(args.config)
    print(f"[setup] GRC blocks: {blocks_dir()} {'added to' if changed else 'already in'} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
