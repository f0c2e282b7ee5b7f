"""``semjscc data``: check a CIFAR-10 source and fill the decode cache."""

from __future__ import annotations

import argparse

from semjscc.cli.common import add_data_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="check a CIFAR-10 source and decode it into the cache",
                       description="Load both CIFAR-10 splits from --data, decode them once into the cache "
                                   "(uint8 arrays) and print what was found.")
    add_data_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from semjscc.data import load_cifar10, resolve_source

    kind, path = resolve_source(args.data)
    for split in ("train", "test"):
        ds = load_cifar10(args.data, split)
        counts = ", ".join(str(int(c)) for c in (ds.labels[:, None] == range(10)).sum(0))
        print(f"{split}: {len(ds)} images {ds.images.shape[1:]} {ds.images.dtype} from {kind} {path}; per class: {counts}")
    return 0
