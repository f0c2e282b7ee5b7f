#!/usr/bin/env python3
"""The semantic-loss pilots judged by classifiers none of them trained against (issue 24): is a gain
in accuracy information the decoded image carries, or a pattern only the training classifier reads?

    scripts/pilot_judge.py checkpoints/pilots-kn24 --judge checkpoints/judge-classifier.pt \
        --json docs/results/pilots-kn24-judged.json > docs/results/pilots-kn24-judged.md

Images: the classifiers' held-out validation split (``split_train_val(50000)``) less every image the
pilots trained on, so no network in the comparison has seen them (the CIFAR-10 test split stays
untouched until the final evaluation). Each pilot decodes the same images with the same noise
draws at 0/5/10 dB; every classifier (the clean one the losses use, the adapted receiver, and each
judge: another seed and width, trained only on clean images) labels the result. Differences to
the MSE pilot are paired per image, with 95 % intervals."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from semjscc.data import load_cifar10
from semjscc.nn.channels import make_channel
from semjscc.nn.train_classifier import load_classifier
from semjscc.nn.train_jscc import load_jscc
from semjscc.nn.training import split_train_val
from semjscc.util.stats import paired_difference, wilson

SNRS = (0.0, 5.0, 10.0)


def unseen_images(pilot_limit: int) -> np.ndarray:
    """Indices into the CIFAR-10 training split that no classifier and no pilot trained on."""
    n = 50_000
    held_out = split_train_val(n)[1]
    # the pilots' `--limit N` draws Dataset.subset(N) (seed 0), then holds out its own validation
    subset = np.sort(np.random.default_rng(0).permutation(n)[:pilot_limit])
    pilot_train = subset[split_train_val(pilot_limit)[0]]
    return np.setdiff1d(held_out, pilot_train)


@torch.no_grad()
def correctness(model: torch.nn.Module, judges: dict[str, torch.nn.Module], images: np.ndarray,
                labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image 0/1 correctness of each judge on the pilot's reconstructions, per SNR, plus PSNR."""
    model.eval()
    gen = torch.Generator().manual_seed(99)  # the same noise for every pilot: differences are paired
    channel = make_channel("awgn", gen)
    out: dict[str, np.ndarray] = {}
    for snr in SNRS:
        gen.manual_seed(99 + int(snr))
        hits = {name: [] for name in judges}
        se = []
        for s in range(0, len(labels), 500):
            x = torch.from_numpy(images[s : s + 500]).permute(0, 3, 1, 2).float().div(255.0)
            x_hat = model(x, channel, torch.full((x.shape[0],), snr))
            se.append((x - x_hat).square().mean(dim=(1, 2, 3)).numpy())
            for name, clf in judges.items():
                hits[name].append(clf(x_hat).argmax(1).numpy() == labels[s : s + 500])
        for name in judges:
            out[f"{name}@{snr:g}"] = np.concatenate(hits[name]).astype(np.int8)
        out[f"psnr@{snr:g}"] = -10.0 * np.log10(np.maximum(np.concatenate(se), 1e-10))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="pilot checkpoints (scripts/pilot_semantic.sh)")
    ap.add_argument("--judge", type=Path, action="append", required=True,
                    help="an independent classifier checkpoint (repeatable)")
    ap.add_argument("--classifier", type=Path, default=Path("models/classifier/classifier.pt"))
    ap.add_argument("--receiver", type=Path, default=Path("models/receiver/classifier.pt"))
    ap.add_argument("--pilot-limit", type=int, default=20_000, help="the pilots' --limit (default 20000)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    train = load_cifar10(args.data, "train")
    idx = unseen_images(args.pilot_limit)
    images, labels = train.images[idx], train.labels[idx]
    judges = {"clean": load_classifier(args.classifier), "receiver": load_classifier(args.receiver)}
    judges.update({f"judge{i + 1}": load_classifier(p) for i, p in enumerate(args.judge)})
    for clf in judges.values():
        clf.eval()
    clean_acc = {}
    for name, clf in judges.items():
        with torch.no_grad():
            pred = np.concatenate([clf(torch.from_numpy(images[s : s + 500]).permute(0, 3, 1, 2).float().div(255.0))
                                   .argmax(1).numpy() for s in range(0, len(labels), 500)])
        clean_acc[name] = float((pred == labels).mean())

    results = {}
    for path in sorted(args.folder.glob("*.pt")):
        model, _ = load_jscc(path)
        results[path.stem] = correctness(model, judges, images, labels)
        print(f"judged {path.stem}", file=sys.stderr)
    if "mse" not in results:
        print("the folder has no mse.pt to compare with", file=sys.stderr)
        return 2
    base = results["mse"]
    names = list(judges)
    print(f"{len(labels)} images no network here trained on; accuracy on the clean images: "
          + ", ".join(f"{n} {100 * a:.1f} %" for n, a in clean_acc.items()) + "\n")
    print("| arm | PSNR 0/5/10 dB | " + " | ".join(f"{n}: mean 0-10 dB acc, vs MSE (pp, 95 %)" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    table = {"images": len(labels), "clean_accuracy": clean_acc, "arms": {}}
    for arm, res in results.items():
        psnr = " / ".join(f"{res[f'psnr@{s:g}'].mean():.2f}" for s in SNRS)
        cells, row = [], {"psnr": {f"{s:g}": float(res[f"psnr@{s:g}"].mean()) for s in SNRS}}
        for n in names:
            a = np.concatenate([res[f"{n}@{s:g}"] for s in SNRS])
            b = np.concatenate([base[f"{n}@{s:g}"] for s in SNRS])
            lo, hi = wilson(int(a.sum()), a.size)
            d, dlo, dhi = paired_difference(a, b)
            row[n] = {"accuracy": float(a.mean()), "interval": [lo, hi], "vs_mse_pp": [100 * d, 100 * dlo, 100 * dhi],
                      "per_snr": {f"{s:g}": float(res[f"{n}@{s:g}"].mean()) for s in SNRS}}
            cell = f"{100 * a.mean():.1f}"
            if arm != "mse":
                cell += f", {100 * d:+.2f} [{100 * dlo:+.2f}, {100 * dhi:+.2f}]"
            cells.append(cell)
        table["arms"][arm] = row
        print(f"| {arm} | {psnr} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
