"""``semjscc``: the command-line entry point.

Each subcommand lives in the module that owns its work and registers itself through
``add_parser(subparsers)``; this file only wires them together and turns user errors into
one line on stderr (exit 2 for usage errors) instead of a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from semjscc import __version__
from semjscc.errors import SemJSCCError

# Modules that register subcommands. Imported lazily inside add_parser so that
# `semjscc --help` does not import torch.
_COMMAND_MODULES = (
    "semjscc.commands.data_cmd",
    "semjscc.commands.train_cmd",
    "semjscc.commands.eval_cmd",
    "semjscc.commands.importance_cmd",
    "semjscc.commands.export_cmd",
    "semjscc.commands.models_cmd",
    "semjscc.commands.bench_cmd",
    "semjscc.commands.run_cmd",
    "semjscc.commands.demo_cmd",
    "semjscc.commands.grc_cmd",
    "semjscc.commands.calibrate_cmd",
    "semjscc.commands.ota_cmd",
    "semjscc.commands.replay_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="semjscc",
        description="Semantic-aware deep joint source-channel coding for images: train, export, "
        "evaluate and run over GNU Radio.",
    )
    parser.add_argument("--version", action="version", version=f"gr-semjscc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SemJSCCError as e:
        print(f"semjscc {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"semjscc {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
