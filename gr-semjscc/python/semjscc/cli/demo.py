"""``semjscc demo``: the simulated over-the-air link on the shipped models, with a picture."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from semjscc.cli.common import cfo_hz, labelled_models, nonnegative_int, positive_int, snr_db
from semjscc.util.errors import ModelError
from semjscc.util.files import write_json

N_SHOWN = 10


def add_parser(sub: argparse._SubParsersAction) -> None:
    from semjscc.zoo.shipped import JSCC_MSE, JSCC_SEMANTIC

    p = sub.add_parser("demo", help="send CIFAR-10 images over the simulated OFDM link with the shipped models",
                       description="Run the simulated over-the-air flowgraph (deep JSCC encoder -> OFDM TX -> "
                                   "channel with noise, CFO and multipath -> OFDM RX -> decoder -> classifier) for "
                                   "each shipped deep JSCC model on the same images and channel, print accuracy and "
                                   "frame counts, and write a PNG of sent vs received images with their labels.")
    p.add_argument("--frames", type=positive_int, default=200, help="images to send per model (default %(default)s)")
    p.add_argument("--snr", type=snr_db, default=10.0, metavar="DB", help="Es/N0 per subcarrier (default %(default)s)")
    p.add_argument("--cfo", type=cfo_hz, default=3000.0, metavar="HZ", help="carrier frequency offset (default %(default)s)")
    p.add_argument("--multipath", default="indoor", metavar="SPEC",
                   help="none, two-ray, indoor or complex taps (default %(default)s)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="channel noise and image order (default %(default)s)")
    p.add_argument("--model", action="append", default=None, metavar="LABEL=MODEL",
                   help=f"models to compare, repeatable (default semantic={JSCC_SEMANTIC}, mse={JSCC_MSE})")
    p.add_argument("--source", default="", metavar="PATH", help="images (default: the CIFAR-10 test split)")
    p.add_argument("--out", type=Path, default=Path("results/demo"),
                   help="output stem: STEM.png and STEM.json (default %(default)s)")
    p.set_defaults(func=run)


def _models(specs: list[str] | None) -> list[tuple[str, str]]:
    from semjscc.zoo.shipped import DEFAULT_EVAL_MODELS

    if not specs:
        return [(label, name) for label, name in sorted(DEFAULT_EVAL_MODELS, key=lambda m: m[0] != "semantic")]
    return labelled_models(specs, "semantic=jscc-semantic-kn6")


def _check_models(models: list[tuple[str, str]]) -> None:
    from semjscc.zoo.locate import models_dir, resolve_model_dir

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
    clean, clean_preds, n_clean = _clean_accuracy(classifier_ref, args, samples[next(iter(samples))])
    _print_table(results, clean, n_clean)
    curve = _offline_curve(models, classifier_ref, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png, js = args.out.with_suffix(".png"), args.out.with_suffix(".json")
    _plot(samples, results, clean, curve, clean_preds, png, args)
    write_json(js, {"params": {"frames": args.frames, "snr_db": args.snr, "cfo_hz": args.cfo,
                               "multipath": args.multipath, "seed": args.seed, "source": args.source},
                    "classifier": classifier_ref, "clean_accuracy": clean, "clean_images": n_clean, "results": results,
                    "offline_awgn": curve}, default=str)
    print(f"wrote {png} and {js}")
    return 0


def _clean_accuracy(classifier_ref: str | None, args: argparse.Namespace,
                    shown: list[dict[str, Any]]) -> tuple[float | None, list[int | None], int]:
    """The classifier on the very images sent, without the channel (the ceiling for the link), its
    prediction for each image shown, and how many labelled images the accuracy is over."""
    if classifier_ref is None:
        return None, [], 0
    import numpy as np

    from semjscc.data.imaging import to_float_nchw
    from semjscc.data.sources import labelled, load_images
    from semjscc.link.ledger import clean_accuracy
    from semjscc.zoo import load_classifier

    clf = load_classifier(classifier_ref)
    images, labels = load_images(args.source or None, "test", args.frames, 0, args.seed)
    sent = [s["sent"] for s in shown if s["sent"] is not None]
    preds = [int(p) for p in clf.predict(to_float_nchw(np.stack(sent)))] if sent else []
    return clean_accuracy(clf.run, images, labels), preds, int(labelled(labels).sum())


def _print_table(results: dict[str, dict[str, Any]], clean: float | None, n_clean: int) -> None:
    def f(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    from semjscc.util.stats import fmt_pct, wilson_rate

    def acc(v: float | None, n: int | None) -> str:
        """An accuracy over n images in % with its 95 % interval (Wilson), as eval's tables show it."""
        return "-" if v is None or not n else fmt_pct(v, *wilson_rate(v, n))

    head = ("model", "sent", "received", "lost", "hdr CRC fail", "accuracy % [95 % CI]",
            "acc. % (lost = wrong) [95 % CI]", "PSNR dB", "SNR est dB")
    rows = [head] + [(label, str(r["frames_sent"]), str(r["frames_received"]), str(r["frames_lost"]),
                      str(r["header_crc_failures"]), acc(r["accuracy"], r["frames_received"]),
                      acc(r["accuracy_sent"], r["frames_sent"]), f(r["psnr_db"], ".2f"), f(r["snr_est_db"], ".2f"))
                     for label, r in results.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    print()
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    if clean is not None:
        print(f"\nclassifier on the same {n_clean} images before transmission: accuracy {acc(clean, n_clean)}")


def _offline_curve(models: list[tuple[str, str]], classifier_ref: str | None, args: argparse.Namespace,
                   snrs: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0)) -> dict[str, list[dict[str, float]]]:
    """The same images, models and classifier over AWGN at several SNRs (ONNX Runtime, no flowgraph):
    the context the demo's one SNR sits in. label -> rows {snr_db, accuracy, ci_low, ci_high}."""
    if classifier_ref is None:
        return {}
    from semjscc.data import Dataset
    from semjscc.data.sources import labelled, load_images
    from semjscc.experiments.eval.sweep import sweep
    from semjscc.zoo import OnnxScheme, load_classifier

    images, labels = load_images(args.source or None, "test", args.frames, 0, args.seed)
    known = labelled(labels)
    if not known.any():
        return {}
    data = Dataset(images[known], labels[known])
    schemes = [OnnxScheme(label, ref) for label, ref in models]
    sw = sweep(schemes, {"demo": load_classifier(classifier_ref).run}, data, list(snrs), "awgn", seed=args.seed,
               progress=False)
    out: dict[str, list[dict[str, float]]] = {}
    for r in sw.rows:
        out.setdefault(r.scheme, []).append({"snr_db": r.snr_db, "accuracy": r.accuracy, "ci_low": r.ci_low,
                                             "ci_high": r.ci_high})
    return out


def _plot(samples: dict[str, list[dict[str, Any]]], results: dict[str, dict[str, Any]], clean: float | None,
          curve: dict[str, list[dict[str, float]]], clean_preds: list[int | None], path: Path,
          args: argparse.Namespace) -> None:
    """Sent images (true label, the classifier's prediction on the clean image), each model's received
    images (prediction, green right / red wrong) with the model's accuracy over the whole run, and the
    accuracy of both models over SNR on the same images (offline, AWGN) with 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from semjscc.data import CIFAR10_CLASSES
    from semjscc.util.stats import wilson_rate

    def name(k: Any) -> str:
        return CIFAR10_CLASSES[int(k)] if k is not None and 0 <= int(k) < len(CIFAR10_CLASSES) else "?"

    labels = list(samples)
    n = max((len(s) for s in samples.values()), default=0)
    if n == 0:
        return
    rows = 1 + len(labels)
    fig = plt.figure(figsize=(1.2 * n + 5.0, 1.75 * rows + 0.8))
    grid = fig.add_gridspec(rows, n + 4, wspace=0.08)
    first = samples[labels[0]]
    for j in range(n):
        ax = fig.add_subplot(grid[0, j])
        s0 = first[j] if j < len(first) else None
        if s0 is not None and s0["sent"] is not None:
            ax.imshow(s0["sent"])
            cp = clean_preds[j] if j < len(clean_preds) else None
            ok = cp is not None and cp == s0["label"]
            ax.set_title(f"{name(s0['label'])}\nclean: {name(cp)}", fontsize=7, color="black" if ok else "red")
        ax.set_xticks([])
        ax.set_yticks([])
        if j == 0:
            ax.set_ylabel("sent\n(label,\nclean pred.)", fontsize=8)
        for i, label in enumerate(labels, start=1):
            ax = fig.add_subplot(grid[i, j])
            s = samples[label][j] if j < len(samples[label]) else None
            if s is None or s["received"] is None:
                ax.imshow(np.full((32, 32, 3), 40, np.uint8))
                ax.set_title("lost", fontsize=7, color="gray")
            else:
                ax.imshow(s["received"])
                ok = s["pred"] is not None and int(s["pred"]) == s["label"]
                ax.set_title(name(s["pred"]), fontsize=7, color="green" if ok else "red")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                r = results[label]
                acc = r.get("accuracy_sent")
                n_sent = r.get("frames_sent") or 0
                lo, hi = wilson_rate(acc or 0.0, n_sent)
                ax.set_ylabel(f"{label}\n{100 * (acc or 0):.1f} %\n[{100 * lo:.0f}, {100 * hi:.0f}]\n"
                              f"of {n_sent}", fontsize=8)
    ax = fig.add_subplot(grid[:, n + 1:])
    colors = {label: f"C{i}" for i, label in enumerate(labels)}
    for label, pts in curve.items():
        x = [p["snr_db"] for p in pts]
        y = np.array([100 * p["accuracy"] for p in pts])
        err = np.array([[100 * (p["accuracy"] - p["ci_low"]) for p in pts], [100 * (p["ci_high"] - p["accuracy"])
                                                                            for p in pts]])
        err = np.clip(err, 0.0, None)  # rounding leaves -1e-15 where the interval ends at the estimate
        ax.errorbar(x, y, yerr=err, fmt="o-", capsize=3, color=colors.get(label), label=f"{label} (AWGN, offline)")
    for label, r in results.items():
        if r.get("accuracy_sent") is not None:
            ax.plot([args.snr], [100 * r["accuracy_sent"]], "*", ms=13, color=colors.get(label), mec="k",
                    label=f"{label}: this run (GNU Radio)")
    if clean is not None:
        ax.axhline(100 * clean, color="k", ls="--", lw=1, label="clean images")
    ax.set(xlabel="SNR (dB, Es/N0 per subcarrier)", ylabel="accuracy (%)", ylim=(0, 100),
           title=f"the same {args.frames} images, 95 % intervals")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Simulated OFDM link: {args.snr:g} dB Es/N0, CFO {args.cfo:g} Hz, multipath {args.multipath}; "
                 f"received titles = classifier prediction (green right, red wrong); row accuracy counts lost "
                 f"frames as wrong", fontsize=8)
    with warnings.catch_warnings():  # the right-hand panel spans rows: tight_layout says so, and copes
        warnings.filterwarnings("ignore", "This figure includes Axes that are not compatible with tight_layout")
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
