"""``semjscc demo``: the simulated over-the-air link on the shipped models, with a picture."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from semjscc.commands.common import positive_int
from semjscc.errors import ModelError, UsageError

N_SHOWN = 10


def add_parser(sub: argparse._SubParsersAction) -> None:
    from semjscc.shipped import JSCC_MSE, JSCC_SEMANTIC

    p = sub.add_parser("demo", help="send CIFAR-10 images over the simulated OFDM link with the shipped models",
                       description="Run the simulated over-the-air flowgraph (deep JSCC encoder -> OFDM TX -> "
                                   "channel with noise, CFO and multipath -> OFDM RX -> decoder -> classifier) for "
                                   "each shipped deep JSCC model on the same images and channel, print accuracy and "
                                   "frame counts, and write a PNG of sent vs received images with their labels.")
    p.add_argument("--frames", type=positive_int, default=200, help="images to send per model (default %(default)s)")
    p.add_argument("--snr", type=float, default=10.0, metavar="DB", help="Es/N0 per subcarrier (default %(default)s)")
    p.add_argument("--cfo", type=float, default=3000.0, metavar="HZ", help="carrier frequency offset (default %(default)s)")
    p.add_argument("--multipath", default="indoor", metavar="SPEC",
                   help="none, two-ray, indoor or complex taps (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="channel noise and image order (default %(default)s)")
    p.add_argument("--model", action="append", default=None, metavar="LABEL=MODEL",
                   help=f"models to compare, repeatable (default semantic={JSCC_SEMANTIC}, mse={JSCC_MSE})")
    p.add_argument("--source", default="", metavar="PATH", help="images (default: the CIFAR-10 test split)")
    p.add_argument("--out", type=Path, default=Path("results/demo"),
                   help="output stem: STEM.png and STEM.json (default %(default)s)")
    p.set_defaults(func=run)


def _models(specs: list[str] | None) -> list[tuple[str, str]]:
    from semjscc.shipped import DEFAULT_EVAL_MODELS

    if not specs:
        return [(label, name) for label, name in sorted(DEFAULT_EVAL_MODELS, key=lambda m: m[0] != "semantic")]
    out = []
    for spec in specs:
        label, sep, model = spec.partition("=")
        if not sep or not label or not model:
            raise UsageError(f"--model {spec!r}: expected LABEL=MODEL, e.g. semantic=jscc-semantic-kn6")
        out.append((label, model))
    return out


def _check_models(models: list[tuple[str, str]]) -> None:
    from semjscc.paths import models_dir, resolve_model_dir

    for _label, ref in models:
        try:
            resolve_model_dir(ref)
        except ModelError:
            raise ModelError(f"model {ref!r} is missing from {models_dir()}: the demo runs the shipped models "
                             f"(restore models/ from the repository, or export your own with `semjscc export` and "
                             f"pass --model LABEL=DIR)") from None


def run(args: argparse.Namespace) -> int:
    from semjscc.gr.sim_loopback import SimConfig, run_sim

    models = _models(args.model)
    _check_models(models)
    results: dict[str, dict[str, Any]] = {}
    samples: dict[str, list[dict[str, Any]]] = {}
    classifier_ref = None
    for label, ref in models:
        cfg = SimConfig(snr_db=args.snr, cfo_hz=args.cfo, frames=args.frames, model=ref, multipath=args.multipath,
                        seed=args.seed, source=args.source, n_samples=N_SHOWN, extra={"label": label})
        print(f"{label}: sending {args.frames} images with {ref} at {args.snr:g} dB, CFO {args.cfo:g} Hz, "
              f"multipath {args.multipath} ...", flush=True)
        summary, tb = run_sim(cfg)
        summary["model"], summary["classifier"] = ref, tb.classifier_ref
        results[label], samples[label] = summary, tb.sink.samples()
        classifier_ref = classifier_ref or tb.classifier_ref
    clean = _clean_accuracy(classifier_ref, args)
    _print_table(results, clean)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png, js = args.out.with_suffix(".png"), args.out.with_suffix(".json")
    _plot(samples, png, args)
    js.write_text(json.dumps({"params": {"frames": args.frames, "snr_db": args.snr, "cfo_hz": args.cfo,
                                         "multipath": args.multipath, "seed": args.seed, "source": args.source},
                              "clean_accuracy": clean, "results": results}, indent=2, default=str) + "\n")
    print(f"wrote {png} and {js}")
    return 0


def _clean_accuracy(classifier_ref: str | None, args: argparse.Namespace) -> float | None:
    """The classifier on the very images sent, without the channel: the ceiling for the link."""
    if classifier_ref is None:
        return None
    from semjscc.link import clean_accuracy
    from semjscc.runtime import load_classifier
    from semjscc.sources import load_images

    images, labels = load_images(args.source or None, "test", args.frames, 0, args.seed)
    return clean_accuracy(load_classifier(classifier_ref).run, images, labels)


def _print_table(results: dict[str, dict[str, Any]], clean: float | None) -> None:
    def f(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    head = ("model", "sent", "received", "lost", "hdr CRC fail", "accuracy", "acc. (lost = wrong)", "PSNR dB", "SNR est dB")
    rows = [head] + [(label, str(r["frames_sent"]), str(r["frames_received"]), str(r["frames_lost"]),
                      str(r["header_crc_failures"]), f(r["accuracy"], ".3f"), f(r["accuracy_sent"], ".3f"),
                      f(r["psnr_db"], ".2f"), f(r["snr_est_db"], ".2f")) for label, r in results.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    print()
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    if clean is not None:
        print(f"\nclassifier on the same images before transmission: accuracy {clean:.3f}")


def _plot(samples: dict[str, list[dict[str, Any]]], path: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from semjscc.data import CIFAR10_CLASSES

    def name(k: Any) -> str:
        return CIFAR10_CLASSES[int(k)] if k is not None and 0 <= int(k) < len(CIFAR10_CLASSES) else "?"

    labels = list(samples)
    n = max((len(s) for s in samples.values()), default=0)
    if n == 0:
        return
    fig, axes = plt.subplots(1 + len(labels), n, figsize=(1.5 * n, 1.75 * (1 + len(labels))), squeeze=False)
    first = samples[labels[0]]
    for j in range(n):
        ax = axes[0, j]
        if j < len(first) and first[j]["sent"] is not None:
            ax.imshow(first[j]["sent"])
            ax.set_title(f"sent: {name(first[j]['label'])}", fontsize=7)
        for i, label in enumerate(labels, start=1):
            ax = axes[i, j]
            s = samples[label][j] if j < len(samples[label]) else None
            if s is None or s["received"] is None:
                ax.imshow(np.full((32, 32, 3), 40, np.uint8))
                ax.set_title("lost", fontsize=7, color="gray")
            else:
                ax.imshow(s["received"])
                ok = s["pred"] is not None and int(s["pred"]) == s["label"]
                ax.set_title(f"{name(s['pred'])}", fontsize=7, color="green" if ok else "red")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for i, label in enumerate(["sent", *labels]):
        axes[i, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(f"Simulated OFDM link: {args.snr:g} dB Es/N0, CFO {args.cfo:g} Hz, multipath {args.multipath}; "
                 f"received titles = classifier prediction (green right, red wrong)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
