"""SNR sweeps: each scheme's accuracy under each protocol, PSNR and SSIM, with 95 % intervals.

A *scheme* is anything with ``encode(images, snr_db) -> symbols (B, k, 2)`` and
``decode(symbols, snr_db) -> images``; deep JSCC models come from ONNX model directories (what
ships and what GNU Radio runs) or torch checkpoints (during development). Every scheme sees the
same images and, per SNR, the same channel noise draws (the generator is re-seeded for each
scheme), so differences between schemes are paired, not noise.

Two *protocols*, reported side by side, never one without the other:

* ``clean``: the clean classifier judges the received images (the paper's setting: the perception
  model is fixed, trained on clean images);
* ``receiver``: the receiver classifier, fine-tuned on what the channel delivers from every scheme
  (what a deployed link would use).

Every accuracy carries its 95 % Wilson interval; per-image correctness is kept (``Sweep.correct``)
so that differences between schemes get paired intervals (:mod:`semjscc.util.stats`).
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import numpy as np
from tqdm import tqdm

from semjscc.data import Dataset
from semjscc.data.imaging import to_float_nchw
from semjscc.data.metrics import capped_psnr_db, ssim
from semjscc.link.ledger import clean_accuracy
from semjscc.phy.symbols import awgn_pairs
from semjscc.util.errors import UsageError
from semjscc.util.files import text_writer, write_together
from semjscc.util.stats import fmt_pct, paired_difference, relative_gain, wilson

Classify = Callable[[np.ndarray], np.ndarray]  # images (B,3,32,32) -> logits (B,10)
PROTOCOLS = ("clean", "receiver")
PROTOCOL_TITLES = {"clean": "clean classifier (the paper's protocol: perception model fixed)",
                   "receiver": "adapted receiver (fine-tuned on every scheme's decodes: a deployed link)"}
# The decoder's SNR input in the SNR-uncertainty protocol: the true per-image SNR plus this much
# Gaussian estimation error (dB std), about what the OFDM receiver's preamble/header estimate shows.
SNR_ESTIMATE_STD_DB = 0.5


class Scheme(Protocol):
    name: str

    def encode(self, images: np.ndarray, snr_db: np.ndarray) -> np.ndarray: ...

    def decode(self, symbols: np.ndarray, snr_db: np.ndarray) -> np.ndarray: ...


@dataclass
class SweepResult:
    scheme: str
    snr_db: float  # the channel SNR; in the uncertainty protocol the design SNR of the condition
    accuracy: float
    psnr_db: float
    ssim: float
    n: int
    frames_lost: int = 0  # only the 'phy' channel can lose frames (missed by the receiver)
    protocol: str = "clean"
    ci_low: float = 0.0
    ci_high: float = 1.0
    condition: str = ""  # the uncertainty protocol's condition ('' for a fixed SNR)


@dataclass
class Sweep:
    """The rows and, per (protocol, scheme, SNR or condition), the per-image correctness."""

    rows: list[SweepResult] = field(default_factory=list)
    correct: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)
    clean_accuracy: dict[str, float] = field(default_factory=dict)  # per protocol: the classifier on clean images

    def add(self, scheme: str, snr: float, correct: dict[str, np.ndarray], psnr: float, ss: float, n: int,
            frames_lost: int = 0, condition: str = "") -> None:
        for protocol, c in correct.items():
            lo, hi = wilson(int(c.sum()), len(c))
            self.rows.append(SweepResult(scheme, float(snr), float(c.mean()), psnr, ss, n, frames_lost, protocol,
                                         lo, hi, condition))
            self.correct[(protocol, scheme, condition or f"{snr:g}")] = c.astype(bool)


def _classify_all(classifiers: dict[str, Classify], images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    return {p: np.asarray(f(images)).argmax(1) == labels for p, f in classifiers.items()}


def sweep(schemes: list[Scheme], classifiers: dict[str, Classify], data: Dataset, snrs: list[float],
          channel: str = "awgn", batch: int = 500, seed: int = 2024, progress: bool = True,
          channel_kwargs: dict | None = None) -> Sweep:
    """Every scheme at every SNR over ``channel`` (built with ``channel_kwargs``, e.g. a Doppler), each
    protocol's classifier on the same decodes."""
    bad = [s for s in snrs if not math.isfinite(s)]
    if bad:  # checked before any image is classified (NaN would reach round() below)
        raise UsageError(f"SNR {bad[0]} dB is not a finite number: give SNRs such as 0 5 10")

    labels = data.labels
    out = Sweep(clean_accuracy={p: clean_accuracy(f, data.images, labels, batch) for p, f in classifiers.items()})
    total = len(schemes) * len(snrs) * -(-len(labels) // batch)
    bar = tqdm(total=total, desc=f"eval ({channel})", disable=not progress, leave=False)
    for snr in snrs:
        for scheme in schemes:
            chan = _Channel(channel, seed + round(snr * 100), channel_kwargs or {})
            correct: dict[str, list[np.ndarray]] = {p: [] for p in classifiers}
            ps, ss = [], []
            for s in range(0, len(labels), batch):
                x = to_float_nchw(data.images[s : s + batch])
                snr_vec = np.full(len(x), snr, dtype=np.float32)
                y, snr_seen = chan(scheme.encode(x, snr_vec), snr_vec)
                x_hat = scheme.decode(y, snr_seen)
                for p, c in _classify_all(classifiers, x_hat, labels[s : s + batch]).items():
                    correct[p].append(c)
                ps.append(capped_psnr_db(x, x_hat))
                ss.append(ssim(x, x_hat))
                bar.update()
            out.add(scheme.name, snr, {p: np.concatenate(c) for p, c in correct.items()},
                    float(np.mean(np.concatenate(ps))), float(np.mean(np.concatenate(ss))), len(labels),
                    chan.frames_lost)
    bar.close()
    return out


class _Channel:
    """(symbols, SNRs) -> (received symbols, SNRs the decoder is told). AWGN in numpy (no torch
    needed: the demo runs it on a runtime install); the other channels are the torch models."""

    def __init__(self, name: str, seed: int, kwargs: dict) -> None:
        self.torch_channel = None
        if name == "awgn" and not kwargs:
            self.rng = np.random.default_rng(seed)
            return
        import torch

        from semjscc.nn.channels import make_channel

        self.torch_channel = make_channel(name, torch.Generator().manual_seed(seed), **kwargs)

    def __call__(self, z: np.ndarray, snr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.torch_channel is None:
            return awgn_pairs(z, snr, self.rng), snr
        import torch

        with torch.no_grad():
            y, seen = self.torch_channel(torch.from_numpy(z), torch.from_numpy(snr))
        return y.numpy().astype(np.float32), seen.numpy().astype(np.float32)

    @property
    def frames_lost(self) -> int:
        return int(getattr(self.torch_channel, "frames_lost", 0))


@dataclass(frozen=True)
class Condition:
    """One case of the SNR-uncertainty protocol: the transmitter designs for ``design_db``; each image
    meets its own channel SNR, uniform in [``lo``, ``hi``] dB."""

    name: str
    design_db: float
    lo: float
    hi: float


def parse_condition(text: str) -> Condition:
    """``U:0:20`` (uniform in [0, 20] dB, designed for the mean) or ``10+-3`` (uniform within 3 dB of a
    design SNR of 10 dB)."""
    try:
        if text.upper().startswith("U:"):
            lo, hi = (float(v) for v in text[2:].split(":"))
            if not lo < hi:
                raise ValueError
            return Condition(f"U[{lo:g},{hi:g}]", (lo + hi) / 2, lo, hi)
        design, spread = (float(v) for v in text.split("+-"))
        if spread < 0:
            raise ValueError
        return Condition(f"{design:g}+-{spread:g}", design, design - spread, design + spread)
    except ValueError:
        raise UsageError(f"SNR condition {text!r}: give U:LO:HI (uniform, designed for the mean) or D+-S "
                         f"(within S dB of a design SNR D), e.g. U:0:20 or 10+-3") from None


def sweep_uncertain(schemes: list[Scheme], classifiers: dict[str, Classify], data: Dataset,
                    conditions: list[Condition], batch: int = 500, seed: int = 2024,
                    progress: bool = True, separate_for: Callable[[float], Scheme] | None = None) -> Sweep:
    """The SNR-uncertainty protocol over AWGN. Each image meets its own SNR (uniform within the
    condition); the deep JSCC encoder is given the design SNR and the decoder the receiver's estimate
    (the true SNR plus ``SNR_ESTIMATE_STD_DB`` of Gaussian error); separate coding
    (``separate_for(design_db)``: the configuration a transmitter picks for the design SNR) is
    decoded with the estimate too. Schemes see the same SNRs and noise."""
    labels = data.labels
    out = Sweep()
    for cond in conditions:
        rng = np.random.default_rng([seed, round(cond.design_db * 100) & 0xFFFF, round(cond.hi - cond.lo)])
        true_snr = rng.uniform(cond.lo, cond.hi, len(labels)).astype(np.float32)
        est = (true_snr + SNR_ESTIMATE_STD_DB * rng.standard_normal(len(labels))).astype(np.float32)
        todo = list(schemes) + ([separate_for(cond.design_db)] if separate_for is not None else [])
        for scheme in tqdm(todo, desc=f"eval {cond.name}", disable=not progress, leave=False):
            noise_rng = np.random.default_rng(seed + 17)  # the same noise for every scheme
            correct: dict[str, list[np.ndarray]] = {p: [] for p in classifiers}
            ps, ss = [], []
            for s in range(0, len(labels), batch):
                x = to_float_nchw(data.images[s : s + batch])
                z = scheme.encode(x, np.full(len(x), cond.design_db, np.float32))
                y = awgn_pairs(z, true_snr[s : s + batch], noise_rng)
                x_hat = scheme.decode(y, est[s : s + batch])
                for p, c in _classify_all(classifiers, x_hat, labels[s : s + batch]).items():
                    correct[p].append(c)
                ps.append(capped_psnr_db(x, x_hat))
                ss.append(ssim(x, x_hat))
            name = "separate" if separate_for is not None and scheme is todo[-1] else scheme.name
            out.add(name, cond.design_db, {p: np.concatenate(c) for p, c in correct.items()},
                    float(np.mean(np.concatenate(ps))), float(np.mean(np.concatenate(ss))), len(labels),
                    condition=cond.name)
    return out


# --- reports -------------------------------------------------------------------------------------

def comparisons(sw: Sweep, reference: str = "mse", scheme: str = "semantic",
                baseline: str = "separate") -> list[dict]:
    """Paired comparisons per protocol and SNR (or condition): ``scheme - reference`` in points and
    ``scheme / baseline - 1``, each with its 95 % interval."""
    out = []
    keys = sorted({(p, c) for p, _s, c in sw.correct}, key=lambda k: (k[0], _order(k[1])))
    for protocol, cond in keys:
        row: dict = {"protocol": protocol, "snr": cond}
        a = sw.correct.get((protocol, scheme, cond))
        if a is None:
            continue
        b = sw.correct.get((protocol, reference, cond))
        if b is not None:
            d, lo, hi = paired_difference(a, b)
            row.update(diff=d, diff_low=lo, diff_high=hi)
        c = sw.correct.get((protocol, baseline, cond))
        if c is not None:
            g, glo, ghi = relative_gain(a, c)
            row.update(gain=g, gain_low=glo, gain_high=ghi)
        out.append(row)
    return out


def _order(cond: str) -> tuple[float, str]:
    try:
        return float(cond), ""
    except ValueError:
        return math.inf, cond


def mean_difference(sw: Sweep, protocol: str, snrs: tuple[float, ...] = (0.0, 5.0, 10.0), scheme: str = "semantic",
                    reference: str = "mse") -> tuple[float, float, float] | None:
    """Mean over ``snrs`` of the paired per-image difference ``scheme - reference`` (the paper's
    +1.38 % is such a mean), with its 95 % interval (the SNR points are independent noise draws)."""
    parts = []
    for s in snrs:
        a, b = sw.correct.get((protocol, scheme, f"{s:g}")), sw.correct.get((protocol, reference, f"{s:g}"))
        if a is None or b is None:
            return None
        parts.append(np.asarray(a, float) - np.asarray(b, float))
    d = np.stack(parts).mean(0)  # per image, the mean over SNRs: paired across everything
    m = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(d.size))
    return m, m - 1.96 * se, m + 1.96 * se


def report(sw: Sweep, meta: dict, out: Path) -> dict:
    """Write ``out``.json (rows, comparisons, meta), ``out``.npz (per-image correctness), ``out``.md
    and ``out``.png; return the JSON document."""
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "meta": {**meta, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
                 "ci": "95 % Wilson interval per accuracy; paired intervals for differences (semjscc.util.stats)"},
        "clean_accuracy": sw.clean_accuracy,
        "rows": [r.__dict__ for r in sw.rows],
        "comparisons": comparisons(sw),
        "mean_difference_0_5_10": {p: mean_difference(sw, p) for p in {r.protocol for r in sw.rows}},
    }
    write_together({  # the set (and the figure after it) all or nothing: a full disk keeps the previous one
        out.with_suffix(".json"): text_writer(json.dumps(doc, indent=2) + "\n"),
        out.with_suffix(".npz"): lambda f: np.savez_compressed(f, **{"|".join(k): v for k, v in sw.correct.items()}),
        out.with_suffix(".md"): text_writer(markdown_table(doc) + "\n"),
        out.with_suffix(".png"): lambda f: plot(doc, f),
    })
    return doc


def markdown_table(doc: dict) -> str:
    """One table per protocol: accuracy [95 % CI] and PSNR per scheme and SNR, then the comparisons."""
    rows = doc["rows"]
    m = doc["meta"]
    lines = [f"Channel: {m.get('channel')}, k/n = {m.get('kn')}, {m.get('n_images')} {m.get('split', 'test')} images; "
             f"accuracy in % with its 95 % interval."]
    for protocol in [p for p in PROTOCOLS if any(r["protocol"] == p for r in rows)]:
        pr = [r for r in rows if r["protocol"] == protocol]
        schemes = list(dict.fromkeys(r["scheme"] for r in pr))
        conds = sorted({(r["condition"] or f"{r['snr_db']:g}") for r in pr}, key=_order)
        by = {(r["scheme"], r["condition"] or f"{r['snr_db']:g}"): r for r in pr}
        clean = doc.get("clean_accuracy", {}).get(protocol)
        lines += ["", f"**{PROTOCOL_TITLES.get(protocol, protocol)}**"
                  + (f"; on clean images {100 * clean:.2f} %" if clean is not None else ""), "",
                  "| SNR (dB) | " + " | ".join(f"{s} acc | {s} PSNR" for s in schemes) + " |",
                  "|---:|" + "---:|---:|" * len(schemes)]
        for c in conds:
            cells = []
            for s in schemes:
                r = by.get((s, c))
                cells += [fmt_pct(r["accuracy"], r["ci_low"], r["ci_high"]), f"{r['psnr_db']:.2f}"] if r else ["", ""]
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        comp = [x for x in doc.get("comparisons", []) if x["protocol"] == protocol]
        if any("diff" in x for x in comp):
            lines += ["", "Semantic minus MSE (paired, points): " + ", ".join(
                f"{x['snr']}: {100 * x['diff']:+.2f} [{100 * x['diff_low']:+.2f}, {100 * x['diff_high']:+.2f}]"
                for x in comp if "diff" in x)]
            md = doc.get("mean_difference_0_5_10", {}).get(protocol)
            if md:
                lines.append(f"Mean over 0, 5, 10 dB: {100 * md[0]:+.2f} [{100 * md[1]:+.2f}, {100 * md[2]:+.2f}] "
                             f"points (paper: +1.38 %).")
        if any("gain" in x for x in comp):
            lines += ["", "Semantic JSCC relative to separate coding: " + ", ".join(
                f"{x['snr']}: {100 * x['gain']:+.1f} % [{100 * x['gain_low']:+.1f}, {100 * x['gain_high']:+.1f}]"
                for x in comp if "gain" in x and not math.isnan(x["gain"])) + " (paper: +66 %)."]
    if m.get("separate_configs"):
        lines += ["", "Separate coding's configuration per SNR (chosen on validation images, per protocol):"]
        for protocol, table in m["separate_configs"].items():
            lines.append(f"- {protocol}: " + "; ".join(f"{snr} dB: {what}" for snr, what in table.items()))
    return "\n".join(lines)


def plot(doc: dict, path: Path | IO[bytes]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc["rows"] if not r["condition"]]
    protocols = [p for p in PROTOCOLS if any(r["protocol"] == p for r in rows)]
    if not rows:
        return
    fig, axes = plt.subplots(1, len(protocols) + 1, figsize=(5 * (len(protocols) + 1), 4), squeeze=False)
    axes = axes[0]
    for ax, protocol in zip(axes, protocols, strict=False):
        pr = [r for r in rows if r["protocol"] == protocol]
        for s in dict.fromkeys(r["scheme"] for r in pr):
            rs = sorted((r for r in pr if r["scheme"] == s), key=lambda r: r["snr_db"])
            x = [r["snr_db"] for r in rs]
            y = np.array([100 * r["accuracy"] for r in rs])
            err = np.array([[100 * (r["accuracy"] - r["ci_low"]) for r in rs], [100 * (r["ci_high"] - r["accuracy"])
                                                                             for r in rs]])
            ax.errorbar(x, y, yerr=err, fmt="o-", capsize=3, label=s)
        clean = doc.get("clean_accuracy", {}).get(protocol)
        if clean is not None:
            ax.axhline(100 * clean, color="k", ls="--", lw=1, label="clean images")
        ax.set(xlabel="SNR (dB)", ylabel="accuracy (%)", title=protocol)
    pr = [r for r in rows if r["protocol"] == protocols[0]]
    for s in dict.fromkeys(r["scheme"] for r in pr):
        rs = sorted((r for r in pr if r["scheme"] == s), key=lambda r: r["snr_db"])
        axes[-1].plot([r["snr_db"] for r in rs], [r["psnr_db"] for r in rs], "o-", label=s)
    axes[-1].set(xlabel="SNR (dB)", ylabel="PSNR (dB)", title="reconstruction PSNR")
    for a in axes:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(f"channel {doc['meta'].get('channel')}, k/n = {doc['meta'].get('kn')}, "
                 f"{doc['meta'].get('n_images')} images, 95 % intervals")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
