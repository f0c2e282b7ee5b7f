"""SNR sweeps: the classifier's accuracy on reconstructed images, PSNR and SSIM, per scheme.

A *scheme* is anything with ``encode(images, snr_db) -> symbols (B, k, 2)`` and
``decode(symbols, snr_db) -> images``; deep JSCC models come from ONNX model directories (what
ships and what GNU Radio runs) or torch checkpoints (during development). Every scheme sees
the same images and, per SNR, the same channel noise draws (the generator is re-seeded for
each scheme), so differences between schemes are paired, not noise.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from semjscc.data import Dataset
from semjscc.errors import UsageError
from semjscc.imaging import to_float_nchw
from semjscc.metrics import psnr_db, ssim

Classify = Callable[[np.ndarray], np.ndarray]  # images (B,3,32,32) -> logits (B,10)


class Scheme(Protocol):
    name: str

    def encode(self, images: np.ndarray, snr_db: np.ndarray) -> np.ndarray: ...

    def decode(self, symbols: np.ndarray, snr_db: np.ndarray) -> np.ndarray: ...


@dataclass
class SweepResult:
    scheme: str
    snr_db: float
    accuracy: float
    psnr_db: float
    ssim: float
    n: int
    frames_lost: int = 0  # only the 'phy' channel can lose frames (missed by the receiver)


def sweep(schemes: list[Scheme], classify: Classify, data: Dataset, snrs: list[float], channel: str = "awgn",
          batch: int = 500, seed: int = 2024, progress: bool = True) -> tuple[list[SweepResult], float]:
    """Returns per-(scheme, SNR) results and the clean-image accuracy (the ceiling)."""
    bad = [s for s in snrs if not math.isfinite(s)]
    if bad:  # checked before any image is classified (NaN would reach round() below)
        raise UsageError(f"SNR {bad[0]} dB is not a finite number: give SNRs such as 0 5 10")
    import torch

    from semjscc.link import clean_accuracy
    from semjscc.nn.channels import make_channel

    labels = data.labels
    clean_acc = clean_accuracy(classify, data.images, labels, batch)

    results = []
    total = len(schemes) * len(snrs) * -(-len(labels) // batch)
    bar = tqdm(total=total, desc=f"eval ({channel})", disable=not progress, leave=False)
    for snr in snrs:
        for scheme in schemes:
            gen = torch.Generator().manual_seed(seed + round(snr * 100))
            chan = make_channel(channel, gen)
            correct, ps, ss = 0, [], []
            for s in range(0, len(labels), batch):
                x = to_float_nchw(data.images[s : s + batch])
                snr_vec = np.full(len(x), snr, dtype=np.float32)
                z = scheme.encode(x, snr_vec)
                with torch.no_grad():
                    y, snr_seen = chan(torch.from_numpy(z), torch.from_numpy(snr_vec))
                x_hat = scheme.decode(y.numpy().astype(np.float32), snr_seen.numpy().astype(np.float32))
                correct += int((classify(x_hat).argmax(1) == labels[s : s + batch]).sum())
                ps.append(psnr_db(x, x_hat))
                ss.append(ssim(x, x_hat))
                bar.update()
            results.append(SweepResult(scheme.name, float(snr), correct / len(labels),
                                       float(np.mean(np.concatenate(ps))), float(np.mean(np.concatenate(ss))), len(labels),
                                       int(getattr(chan, "frames_lost", 0))))
    bar.close()
    return results, clean_acc


def report(results: list[SweepResult], clean_acc: float, meta: dict, out: Path) -> dict:
    """Write ``out``.json, ``out``.md and ``out``.png; return the JSON document."""
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "meta": {**meta, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")},
        "clean_accuracy": clean_acc,
        "rows": [r.__dict__ for r in results],
    }
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown_table(doc) + "\n")
    plot(doc, out.with_suffix(".png"))
    return doc


def markdown_table(doc: dict) -> str:
    rows = doc["rows"]
    schemes = list(dict.fromkeys(r["scheme"] for r in rows))
    snrs = sorted({r["snr_db"] for r in rows})
    by = {(r["scheme"], r["snr_db"]): r for r in rows}
    m = doc["meta"]
    lines = [
        f"Channel: {m.get('channel')}, k/n = {m.get('kn')}, {m.get('n_images')} test images, "
        f"classifier clean accuracy {100 * doc['clean_accuracy']:.2f} %.",
        "",
        "| SNR (dB) | " + " | ".join(f"{s} acc (%) | {s} PSNR (dB) | {s} SSIM" for s in schemes) + " |",
        "|---:|" + "---:|---:|---:|" * len(schemes),
    ]
    for snr in snrs:
        cells = []
        for s in schemes:
            r = by.get((s, snr))
            cells += [f"{100 * r['accuracy']:.2f}", f"{r['psnr_db']:.2f}", f"{r['ssim']:.3f}"] if r else ["", "", ""]
        lines.append(f"| {snr:g} | " + " | ".join(cells) + " |")
    if len(schemes) >= 2 and "semantic" in schemes and "mse" in schemes:
        gains = [100 * (by[("semantic", s)]["accuracy"] - by[("mse", s)]["accuracy"]) for s in snrs]
        lines += ["", "Semantic minus MSE accuracy (pp): " + ", ".join(f"{s:g} dB: {g:+.2f}" for s, g in zip(snrs, gains, strict=True))]
        low = [g for s, g in zip(snrs, gains, strict=True) if s in (0.0, 5.0, 10.0)]
        if len(low) == 3:
            lines.append(f"Mean over 0, 5, 10 dB: {sum(low) / 3:+.2f} pp (paper: +1.38 %).")
    if "separate" in schemes and "semantic" in schemes:
        rel = []
        for s in snrs:
            sep, sem = by.get(("separate", s)), by.get(("semantic", s))
            if sep and sem:
                rel.append(f"{s:g} dB: {100 * (sem['accuracy'] / sep['accuracy'] - 1):+.1f} %" if sep["accuracy"] > 0
                           else f"{s:g} dB: separate coding at 0 %")
        lines += ["", "Semantic JSCC accuracy relative to separate coding: " + ", ".join(rel) + " (paper: +66 %)."]
        if m.get("separate_images"):
            lines.append(f"Separate coding evaluated on {m['separate_images']} of the images (seeded subset).")
    for snr, what in m.get("separate_best", {}).items():
        lines.append(f"- separate coding's best configuration at {snr} dB: {what}")
    return "\n".join(lines)


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["rows"]
    schemes = list(dict.fromkeys(r["scheme"] for r in rows))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for s in schemes:
        rs = sorted((r for r in rows if r["scheme"] == s), key=lambda r: r["snr_db"])
        a1.plot([r["snr_db"] for r in rs], [100 * r["accuracy"] for r in rs], "o-", label=s)
        a2.plot([r["snr_db"] for r in rs], [r["psnr_db"] for r in rs], "o-", label=s)
    snrs = sorted({r["snr_db"] for r in rows})
    a1.plot(snrs, [100 * doc["clean_accuracy"]] * len(snrs), "k--", label="clean images")
    a1.set(xlabel="SNR (dB)", ylabel="classifier accuracy (%)", title="Accuracy on received images")
    a2.set(xlabel="SNR (dB)", ylabel="PSNR (dB)", title="Reconstruction PSNR")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend()
    fig.suptitle(f"channel {doc['meta'].get('channel')}, k/n = {doc['meta'].get('kn')}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
