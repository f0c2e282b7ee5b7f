"""``semjscc grc``: GNU Radio Companion with the SemJSCC blocks and this venv's Python."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from semjscc.util.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grc", help="open GNU Radio Companion with the SemJSCC blocks (flowgraphs run in this venv)",
                       description="Launch gnuradio-companion under this venv's Python with GRC_BLOCKS_PATH set to "
                                   "the SemJSCC blocks and the venv's bin/ first on PATH, so flowgraphs it "
                                   "generates and runs see semjscc and ONNX Runtime. Opens the shipped GUI "
                                   "flowgraph unless files are given.")
    p.add_argument("files", nargs="*", type=Path, metavar="FILE.grc", help="flowgraphs to open")
    p.add_argument("--print-command", action="store_true",
                   help="print the environment and command instead of launching (for scripts and debugging)")
    p.add_argument("--compile", action="store_true",
                   help="compile FILE.grc to a Python script with grcc under this venv's Python (which the flowgraphs' "
                        "imports need) instead of opening GRC; run the script with .venv/bin/python")
    p.add_argument("--out", type=Path, default=Path("build"), metavar="DIR",
                   help="with --compile: where the scripts go (default %(default)s, outside the tracked files)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from semjscc.grc.install import grc_env
    from semjscc.grc.run import FLOWGRAPHS_DIR, read_grc

    files = [str(f) for f in args.files] or [str(p) for p in [FLOWGRAPHS_DIR / "sim_loopback_gui.grc"] if p.is_file()]
    for f in map(Path, files):  # what GNU Radio Companion would only report in its window, refused here
        if not f.is_file():
            raise UsageError(f"{f} does not exist" if not f.exists() else f"{f} is not a file: give FILE.grc")
        if f.suffix != ".grc":
            raise UsageError(f"{f} is not a .grc flowgraph: GNU Radio Companion opens FILE.grc")
        read_grc(f)
    if args.compile:
        from semjscc.grc.run import compile_grc

        if not args.files:
            raise UsageError("--compile needs the flowgraphs to compile: semjscc grc --compile FILE.grc [--out DIR]")
        for f in map(Path, files):
            print(f"wrote {compile_grc(f, args.out)}")
        return 0
    from semjscc.grc.install import gnuradio_script

    companion = gnuradio_script("gnuradio-companion")
    if companion is None:
        raise UsageError("gnuradio-companion not found: install GNU Radio (scripts/setup.sh)")
    env = grc_env()
    # GRC runs flowgraphs with the interpreter it runs under: this venv's, not /usr/bin/python3
    cmd = [sys.executable, companion, *files]
    if args.print_command:
        print(f"GRC_BLOCKS_PATH={env['GRC_BLOCKS_PATH']}")
        print(f"PATH={env['PATH']}")
        print(" ".join(cmd))
        return 0
    _check_display()
    _check_gtk()
    os.execve(sys.executable, cmd, env)
    return 0  # not reached


def _check_display() -> None:
    """GTK aborts with a traceback without a display (a shell over SSH): say so, and what works headless."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UsageError("GNU Radio Companion needs a display and neither $DISPLAY nor $WAYLAND_DISPLAY is set "
                         "(over SSH: ssh -X); headless, compile and run flowgraphs instead: "
                         "semjscc grc --compile FILE.grc, semjscc run FILE.grc")


def _check_gtk() -> None:
    try:
        import gi

        gi.require_version("Gtk", "3.0")
    except (ImportError, ValueError):
        raise UsageError("GNU Radio Companion needs GTK 3 bindings, which are missing: "
                         "sudo apt-get install gir1.2-gtk-3.0") from None
