"""``semjscc``: the command-line entry point.

Each subcommand lives in the module that owns its work and registers itself through
``add_parser(subparsers)``; this file only wires them together and turns user errors into
one line on stderr (exit 2 for usage errors) instead of a traceback.

Stopping: Ctrl-C (SIGINT), SIGTERM and SIGHUP take the same path. SIGTERM and SIGHUP are turned into
:class:`~semjscc.util.stopping.Terminated`, a ``KeyboardInterrupt``, so every command's clean-up for Ctrl-C runs
for it too; long runs (``run``, ``ota``, training) hold both signals with
:func:`~semjscc.util.stopping.deferred_signals` while
they wrap up, write what was measured (and training a resumable checkpoint), then stop. The exit
status is 128 + the signal number: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from semjscc import __version__
from semjscc.util.errors import SemJSCCError
from semjscc.util.stopping import interrupt_in_chain, on_stop_signal, requested, stop_signal

# Modules that register subcommands. Imported lazily inside add_parser so that
# `semjscc --help` does not import torch.
_COMMAND_MODULES = (
    "semjscc.cli.data",
    "semjscc.cli.train",
    "semjscc.cli.eval",
    "semjscc.cli.importance",
    "semjscc.cli.export",
    "semjscc.cli.models",
    "semjscc.cli.bench",
    "semjscc.cli.run",
    "semjscc.cli.demo",
    "semjscc.cli.grc",
    "semjscc.cli.calibrate",
    "semjscc.cli.ota",
    "semjscc.cli.replay",
    "semjscc.cli.emulate",
)
# Optional dependencies by top-level module, and what installs them: `make demo` sets up the runtime
# only (no torch), so a training or export command there must say what to run, not raise.
_OPTIONAL = {
    "torch": "the training extra", "onnxscript": "the training extra", "numba": "the training extra",
    "pillow_heif": "the training extra", "adi": "the radio extra", "iio": "the radio extra",
    "sigmf": "the radio extra",
}


def _missing_dependency(e: ModuleNotFoundError) -> str | None:
    """One line for a missing optional dependency (None: a real import bug, left to raise)."""
    top = (e.name or "").split(".")[0]
    extra = _OPTIONAL.get(top)
    if extra is None:
        return None
    return (f"this command needs {top}, which this install lacks ({extra}): run `make setup-dev` in the "
            f"checkout, or `pip install -e '.[train,radio]'` in this venv")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="semjscc",
        description="Semantic-aware deep joint source-channel coding for images: train, export, "
        "evaluate and run over GNU Radio. Ctrl-C or SIGTERM stops a command; run, ota and train first "
        "write what they have measured (exit status 130 for Ctrl-C, 143 for SIGTERM).",
    )
    parser.add_argument("--version", action="version", version=f"gr-semjscc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    on_main = threading.current_thread() is threading.main_thread()
    old: dict[int, Any] = {}
    if on_main:
        requested.clear()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup: a hang-up is meant to be ignored
                old[sig] = signal.signal(sig, on_stop_signal)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when SIGINT is ignored
            old[signal.SIGINT] = signal.signal(signal.SIGINT, on_stop_signal)
    command = ""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        command = " ".join(["", args.command, *([args.what] if getattr(args, "what", None) else [])])  # "bench soak"
        return int(args.func(args) or 0)
    except KeyboardInterrupt as e:
        return _interrupted(command, stop_signal(e))
    except BrokenPipeError:  # `semjscc models --json | head`: the reader left; nothing more to say
        import os

        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except Exception as e:
        cause = interrupt_in_chain(e)
        if cause is not None or requested:  # the error is what the interrupt left behind
            return _interrupted(command, stop_signal(cause) if cause is not None else signal.Signals(requested[0]))
        if isinstance(e, ModuleNotFoundError) and (line := _missing_dependency(e)) is not None:
            print(f"semjscc{command}: error: {line}", file=sys.stderr)
            return 2
        if not isinstance(e, SemJSCCError):
            raise
        print(f"semjscc{command}: error: {e}", file=sys.stderr)
        return e.exit_code
    finally:
        for sig, handler in old.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        if on_main:
            requested.clear()


def _interrupted(command: str, signum: signal.Signals) -> int:
    how = "(Ctrl-C)" if signum == signal.SIGINT else f"by {signal.Signals(signum).name}"
    print(f"semjscc{command}: interrupted {how}", file=sys.stderr)
    return 128 + int(signum)


if __name__ == "__main__":
    sys.exit(main())
