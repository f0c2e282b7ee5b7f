#!/usr/bin/env python3
"""The semantic-loss pilots' validation as one Markdown table (and JSON): one row per checkpoint in
a folder written by scripts/pilot_semantic.sh, its last validation, and the gain over the MSE arm.

    scripts/pilot_table.py runs/pilots --json docs/results/pilots-kn24.json > docs/results/pilots-kn24.md

Accuracies are on the pilots' 5,000 validation images (clean classifier ``acc``, receiver ``racc``);
one validation accuracy near 70 % carries about +-1.3 pp (95 %), a paired difference between two
arms on the same images and noise less."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

SNRS = ("0", "5", "10", "20")


def validation(path: Path, epoch: int | None) -> dict:
    """The run's validation at ``epoch`` (None: its last), with its settings."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    vals = [h for h in ck.get("history", []) if "psnr@10" in h and (epoch is None or h["epoch"] == epoch)]
    cfg = ck.get("config", {})
    row = {"name": path.stem, "epoch": vals[-1]["epoch"] if vals else None, "epochs": cfg.get("epochs"),
           "trained": ck.get("epoch"), "loss": cfg.get("loss"),
           "importance_from": cfg.get("importance_from"), "importance_power": cfg.get("importance_power", 1.0),
           "importance_clip": cfg.get("importance_clip"), "importance_on": cfg.get("importance_on", "clean"),
           "task_weight": cfg.get("task_weight", 0.0), "elapsed_s": vals[-1]["elapsed_s"] if vals else None}
    if vals:
        row.update({k: v for k, v in vals[-1].items() if "@" in k})
    return row


def mean(row: dict, key: str) -> float:
    vals = [row.get(f"{key}@{s}") for s in ("0", "5", "10")]
    return sum(vals) / 3 if all(v is not None for v in vals) else math.nan


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--epoch", type=int, default=None,
                    help="compare every run at this validated epoch (default: each run's last validation)")
    args = ap.parse_args()
    rows = [r for r in (validation(p, args.epoch) for p in sorted(args.folder.glob("*.pt"))) if r["epoch"]]
    base = next((r for r in rows if r["name"] == "mse"), None)
    print("| arm | validated at epoch | PSNR 10 dB | clean acc 0 / 5 / 10 / 20 dB | receiver acc 0 / 5 / 10 / 20 dB "
          "| mean 0-10 vs MSE (clean / receiver, pp) |")
    print("|---|---:|---:|---|---|---:|")
    for r in rows:
        acc = " / ".join(f"{100 * r[f'acc@{s}']:.1f}" if f"acc@{s}" in r else "–" for s in SNRS)
        racc = " / ".join(f"{100 * r[f'racc@{s}']:.1f}" if f"racc@{s}" in r else "–" for s in SNRS)
        gain = "–"
        if base is not None and r is not base:
            gain = f"{100 * (mean(r, 'acc') - mean(base, 'acc')):+.2f} / {100 * (mean(r, 'racc') - mean(base, 'racc')):+.2f}"
        psnr = f"{r['psnr@10']:.2f}" if "psnr@10" in r else "–"
        print(f"| {r['name']} | {r['epoch']}/{r['epochs']} | {psnr} | {acc} | {racc} | {gain} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
