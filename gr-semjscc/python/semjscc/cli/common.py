"""Argument helpers shared by subcommands, so options mean the same everywhere."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

from semjscc.util.errors import UsageError
from semjscc.util.paths import DATA_ENV


def add_data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="PATH", default=None,
                   help=f"CIFAR-10: a cifar-10-batches-py folder, a train/ + test/ image folder, or a .tar.gz "
                        f"of one (default: ${DATA_ENV}, else ../shared/datasets/cifar10-jpeg.tar.gz)")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def positive_int(text: str) -> int:
    v = _integer(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return v


def finite_float(text: str) -> float:
    """A float that is a number: NaN and +-inf are refused (an SNR of NaN dB means nothing)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return v


def positive_float(text: str) -> float:
    """A finite float > 0 (a time-out, a duration)."""
    v = finite_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return v


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (a seed: numpy refuses negative ones with a traceback)."""
    v = _integer(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return v


def snr_db(text: str) -> float:
    """A channel SNR in dB inside :data:`semjscc.phy.symbols.SNR_LIMITS_DB` (1e30 overflowed the noise)."""
    from semjscc.phy.symbols import check_snr_db
    from semjscc.util.errors import UsageError

    try:
        return check_snr_db(finite_float(text), "")
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cfo_hz(text: str) -> float:
    """A carrier offset in Hz inside the receiver's search range (semjscc.phy.channel_model)."""
    from semjscc.phy.channel_model import check_cfo_hz
    from semjscc.util.errors import UsageError

    try:
        return check_cfo_hz(finite_float(text), "--cfo")
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def nonnegative_float(text: str) -> float:
    """A finite float >= 0 (a clipping norm where 0 means off)."""
    v = finite_float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return v


def device_arg(text: str) -> str:
    """A compute device: auto, cpu, cuda or cuda:N (what torch and ONNX Runtime are both given)."""
    from semjscc.util.devices import check_device

    try:
        return check_device(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def existing_file(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p} does not exist or is not a file")
    return p


def labelled_models(specs: Sequence[str], example: str) -> list[tuple[str, str]]:
    """``--model LABEL=MODEL`` options as (label, model) pairs; a UsageError showing ``example`` otherwise."""
    out = []
    for spec in specs:
        label, sep, model = spec.partition("=")
        if not sep or not label or not model:
            raise UsageError(f"--model {spec!r}: expected LABEL=MODEL, e.g. {example}")
        out.append((label, model))
    return out
