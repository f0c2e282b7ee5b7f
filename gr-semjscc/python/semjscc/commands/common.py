"""Argument helpers shared by subcommands, so options mean the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from semjscc.errors import UsageError
from semjscc.paths import DATA_ENV


def add_data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="PATH", default=None,
                   help=f"CIFAR-10: a cifar-10-batches-py folder, a train/ + test/ image folder, or a .tar.gz "
                        f"of one (default: ${DATA_ENV}, else ../shared/datasets/cifar10-jpeg.tar.gz)")


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return v


def existing_file(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p} does not exist or is not a file")
    return p
