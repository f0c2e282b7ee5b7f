"""``semjscc models``: list the model directories in models/ (or $SEMJSCC_MODELS)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the exported models (name, kind, k/n, loss, sizes)",
                       description="List the model directories under models/ ($SEMJSCC_MODELS overrides, --dir "
                                   "too), checking each file against the sha256 in its card.yaml.")
    p.add_argument("--dir", type=Path, default=None, help="models directory (default: models/ or $SEMJSCC_MODELS)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from semjscc.zoo.load import list_models  # reads cards only: no onnxruntime session is opened
    from semjscc.zoo.locate import models_dir

    root = args.dir if args.dir is not None else models_dir()
    models = list_models(root)
    if args.json:
        print(json.dumps({"models_dir": str(root), "models": models}, indent=2))
        return 0
    if not models:
        print(f"no models in {root} (export some with `semjscc export`)")
        return 0
    head = ("name", "kind", "k/n", "symbols", "loss", "SNR (dB)", "size", "status")
    rows = [head]
    for m in models:
        snr = "-"
        if m.get("snr_db"):
            lo, hi = m["snr_db"]
            snr = f"{lo:g}..{hi:g} adaptive" if m.get("snr_adaptive") else f"{lo:g} fixed"
        size = f"{m['total_bytes'] / 1024:.0f} KiB" if m.get("total_bytes") is not None else "-"
        rows.append((m["name"], m.get("kind") or "?", m.get("kn_label") or "-", str(m.get("n_symbols") or "-"),
                     m.get("loss") or "-", snr, size, m["status"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0
