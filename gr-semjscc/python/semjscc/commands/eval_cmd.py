"""``semjscc eval``: SNR sweep of deep JSCC schemes -> JSON, Markdown table and PNG plot."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from semjscc.commands.common import add_data_arg, finite_float, positive_int
from semjscc.errors import UsageError

DEFAULT_SNRS = (0.0, 5.0, 10.0, 15.0, 20.0)
SEPARATE_CHANNELS = ("awgn", "ofdm")  # the channels separate coding (semjscc.separate.envelope) simulates


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="sweep SNR: accuracy, PSNR, SSIM per scheme (JSON + table + plot)",
                       description="Evaluate deep JSCC schemes over a channel at several SNRs on the CIFAR-10 test "
                                   "split: the fixed classifier's accuracy on reconstructed images, PSNR and SSIM, "
                                   "beside the clean-image accuracy. Models are ONNX model directories or names "
                                   "under models/ (what ships) or torch checkpoints (*.pt).")
    add_data_arg(p)
    p.add_argument("--model", action="append", default=None, metavar="LABEL=MODEL",
                   help="a scheme to evaluate, repeatable (default: the shipped models mse and semantic)")
    p.add_argument("--classifier", default=None, metavar="MODEL",
                   help="classifier: ONNX model directory/name or checkpoint (default: the one the models' cards name)")
    p.add_argument("--snr", type=finite_float, nargs="+", default=list(DEFAULT_SNRS), metavar="DB",
                   help="channel SNRs in dB (default %(default)s)")
    p.add_argument("--channel", choices=("awgn", "rayleigh", "ofdm", "phy"), default="awgn",
                   help="awgn, rayleigh (block fading), ofdm (differentiable multipath OFDM model), or phy: the "
                        "radio's own numpy OFDM TX/RX with a 3 kHz frequency offset, as in the GNU Radio flowgraph")
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate N test images (default: all 10,000)")
    p.add_argument("--seed", type=int, default=2024, help="channel noise seed")
    p.add_argument("--separate", action="store_true",
                   help="add separate source-channel coding (JPEG/WebP/HEIF + LDPC + QAM, best configuration per "
                        "SNR at the same channel uses); its full sweep goes to STEM-separate.json/.md")
    p.add_argument("--codec", action="append", choices=("jpeg", "webp", "heif"), default=None,
                   help="separate coding: only this codec (repeatable; default: every codec installed)")
    p.add_argument("--separate-limit", type=positive_int, default=None, metavar="N",
                   help="evaluate separate coding on N of the images only (it tries every codec x code x "
                        "modulation, minutes per SNR on 10,000 images)")
    p.add_argument("--out", type=Path, default=None,
                   help="output stem: writes STEM.json, STEM.md, STEM.png (default results/eval-CHANNEL)")
    p.set_defaults(func=run)


def _parse_models(specs: list[str] | None) -> list[tuple[str, str]]:
    from semjscc.shipped import DEFAULT_EVAL_MODELS

    if not specs:
        return list(DEFAULT_EVAL_MODELS)
    out = []
    for spec in specs:
        label, sep, model = spec.partition("=")
        if not sep or not label or not model:
            raise UsageError(f"--model {spec!r}: expected LABEL=MODEL, e.g. semantic=models/jscc-semantic-kn6")
        out.append((label, model))
    return out


def run(args: argparse.Namespace) -> int:
    from semjscc.data import load_cifar10
    from semjscc.evaluation import markdown_table, report, sweep
    from semjscc.schemes import load_classifier_fn, load_scheme

    if args.separate and args.channel not in SEPARATE_CHANNELS:  # before the deep JSCC sweep, not after it
        raise UsageError(f"--separate supports --channel {' or '.join(SEPARATE_CHANNELS)}, not {args.channel}: "
                         f"drop --separate or pick one of those channels")
    models = _parse_models(args.model)
    schemes = [load_scheme(label, model) for label, model in models]
    kns = {round(s.kn, 6) for s in schemes}
    if len(kns) > 1:
        raise UsageError(f"schemes have different k/n ({sorted(kns)}): compare models of the same bandwidth ratio")
    classifier_ref = args.classifier or schemes[0].classifier_ref
    if classifier_ref is None:
        raise UsageError("no classifier: pass --classifier MODEL (an ONNX model directory/name or a checkpoint)")
    classify = load_classifier_fn(classifier_ref)
    data = load_cifar10(args.data, "test").subset(args.limit)
    results, clean = sweep(schemes, classify, data, args.snr, args.channel, seed=args.seed)
    out = args.out or Path(f"results/eval-{args.channel}")
    meta: dict = {}
    if args.separate:
        results += _separate_rows(classify, data, args, schemes[0].kn, out, meta)
    meta |= {
        "channel": args.channel, "kn": f"1/{round(1 / schemes[0].kn)}", "n_images": len(data),
        "models": {label: model for label, model in models}, "classifier": str(classifier_ref),
        "seed": args.seed, "command": "semjscc " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    }
    report(results, clean, meta, out)
    print(markdown_table({"meta": meta, "clean_accuracy": clean, "rows": [r.__dict__ for r in results]}))
    print(f"wrote {out}.json, {out}.md, {out}.png")
    return 0


def _separate_rows(classify, data, args: argparse.Namespace, kn: float, out: Path, meta: dict) -> list:
    """The separate-coding envelope (best configuration by accuracy at each SNR) as sweep rows;
    which configuration won at each SNR goes into ``meta``."""
    from semjscc.evaluation import SweepResult
    from semjscc.separate.envelope import run_separate_eval

    data = data.subset(args.separate_limit)
    doc = run_separate_eval(classify, data, args.snr, args.channel, kn, out=out.with_name(out.name + "-separate"),
                            seed=args.seed, codecs=args.codec)
    meta["separate_images"] = len(data.labels)
    meta["separate_best"] = {
        f"{r['snr_db']:g}": f"{r['codec']} q{r['quality']}, {r['modulation']} rate {r['code_rate']}, "
                            f"fallback {100 * r['fallback_rate']:.1f} %"
        for r in doc["envelope_accuracy"]
    }
    return [SweepResult("separate", float(r["snr_db"]), float(r["accuracy"]), float(r["psnr_db"]), float(r["ssim"]),
                        len(data.labels)) for r in doc["envelope_accuracy"]]
