"""``semjscc export``: trained checkpoints -> ONNX model directories (models/NAME/ + card.yaml)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from semjscc.cli.common import add_data_arg, existing_file, positive_int
from semjscc.util.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to an ONNX model directory with a model card",
                       description="Export a deep JSCC checkpoint (encoder.onnx + decoder.onnx) or a classifier "
                                   "checkpoint (classifier.onnx) to OUT/NAME/ with a card.yaml holding the "
                                   "metadata and sha256 of each file; the same metadata is embedded in every "
                                   "ONNX file. ONNX Runtime must reproduce torch within 1e-4 or nothing is "
                                   "written. Export the classifier first: a deep JSCC card refers to it.")
    what = p.add_mutually_exclusive_group(required=True)
    # plain Path here, checked in run(): a UsageError raised inside argparse's type= would escape main()
    what.add_argument("--jscc", type=Path, metavar="CHECKPOINT", help="deep JSCC checkpoint (runs/jscc-*.pt)")
    what.add_argument("--classifier", type=Path, metavar="CHECKPOINT", help="classifier checkpoint")
    what.add_argument("--model", metavar="NAME_OR_DIR",
                      help="an exported model directory: with --precision int8, add int8 files beside its fp32 ones "
                           "(which stay as they are); with --record-parity, record measured accuracy in its card")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="fp32 (default) or int8: also write ROLE.int8.onnx, ONNX Runtime static quantization (QDQ, "
                        "per-channel int8 weights, uint8 activations) calibrated on training images; the runtime "
                        "picks them once the card records their accuracy within tolerance (--record-parity)")
    p.add_argument("--calibration-images", type=positive_int, default=256, metavar="N",
                   help="with --precision int8: training images to calibrate on (default %(default)s)")
    p.add_argument("--calibration-seed", type=int, default=0, metavar="S",
                   help="with --precision int8: which training images (default %(default)s)")
    p.add_argument("--record-parity", type=Path, default=None, metavar="JSON",
                   help="with --model: record the int8 - fp32 accuracy measured by `semjscc eval --int8-parity` "
                        "in the card and let the runtime pick the roles that held the tolerance")
    add_data_arg(p)
    p.add_argument("--classifier-dir", metavar="DIR_OR_NAME",
                   help="with --jscc: the receiver's exported classifier (a directory, or a name under --out)")
    p.add_argument("--receiver-dir", metavar="DIR_OR_NAME",
                   help="with --jscc: the receiver classifier (adapted to decodes) the model is meant for; run, demo, "
                        "ota and eval use it by default")
    p.add_argument("--name", default=None, help="model directory name, e.g. jscc-mse-kn6 or classifier (needed "
                                                "with --jscc and --classifier)")
    p.add_argument("--out", type=Path, default=None, help="models directory (default: models/ or $SEMJSCC_MODELS)")
    p.add_argument("--eval-json", type=Path, default=None, metavar="PATH",
                   help="evaluation results to record in the card (the JSON of semjscc eval)")
    p.add_argument("--train-command", default=None, metavar="CMD",
                   help="the training command to record (default: rebuilt from the checkpoint's configuration)")
    p.add_argument("--force", action="store_true", help="replace an existing model directory of that name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from semjscc.nn.export import export_classifier, export_jscc
    from semjscc.zoo.locate import models_dir

    if args.model is not None:
        return _run_model(args)
    if args.record_parity is not None:
        raise UsageError("--record-parity goes with --model DIR (an exported model directory)")
    if not args.name:
        raise UsageError("--jscc and --classifier need --name NAME (the model directory to write)")
    out = args.out if args.out is not None else models_dir()
    command = _command_line(args)
    common = dict(out_dir=out, eval_json=args.eval_json, train_command=args.train_command,
                  export_command=command, force=args.force)
    existing_file(args.jscc if args.jscc is not None else args.classifier)
    if args.jscc is not None:
        if not args.classifier_dir:
            raise UsageError("--jscc needs --classifier-dir DIR_OR_NAME (export the classifier first with "
                             "semjscc export --classifier CHECKPOINT --name classifier)")
        result = export_jscc(args.jscc, args.name, classifier=args.classifier_dir, receiver=args.receiver_dir, **common)
    else:
        if args.classifier_dir or args.receiver_dir:
            raise UsageError("--classifier-dir and --receiver-dir go with --jscc, not with --classifier")
        result = export_classifier(args.classifier, args.name, **common)
    card = result.card
    if args.precision == "int8":
        _quantize(result.directory, args)
    for role, f in card.files.items():
        print(f"{result.directory / f.file}: {f.bytes / 1024:.1f} KiB, |ORT - torch| <= "
              f"{(card.export_parity or {}).get(role, float('nan')):.1e}, sha256 {f.sha256[:16]}...")
    print(f"{result.directory / 'card.yaml'}: {card.kind}"
          + (f", k/n {card.kn_label}, {card.n_symbols} symbols, loss {card.loss}, classifier {card.classifier}"
             if card.kind == "jscc" else ""))
    return 0


def _run_model(args: argparse.Namespace) -> int:
    """--model DIR: quantize an exported directory (--precision int8) and/or record parity in its card."""
    from semjscc.nn.quantize import record_parity
    from semjscc.zoo.locate import resolve_model_dir

    if args.jscc is None and args.classifier is None and (args.classifier_dir or args.receiver_dir or args.name):
        raise UsageError("--classifier-dir, --receiver-dir and --name go with --jscc/--classifier, not with --model")
    if args.precision != "int8" and args.record_parity is None:
        raise UsageError("--model DIR needs --precision int8 (quantize it) or --record-parity JSON")
    directory = resolve_model_dir(args.model)
    if args.precision == "int8":
        _quantize(directory, args)
    if args.record_parity is not None:
        card = record_parity(directory, args.record_parity)
        uses = ", ".join(f"{role} {'int8' if ok else 'fp32'}" for role, ok in (card.int8 or {}).get("use", {}).items())
        print(f"{directory / 'card.yaml'}: accuracy recorded from {args.record_parity}; auto runs {uses}")
    return 0


def _quantize(directory: Path, args: argparse.Namespace) -> None:
    from semjscc.nn.quantize import quantize_dir

    card = quantize_dir(directory, data=args.data, n_images=args.calibration_images, seed=args.calibration_seed,
                        command=_command_line(args))
    for role, f in card.int8_files.items():
        par = (card.int8 or {}).get("export_parity", {}).get(role, {})
        extra = f", top-1 agreement {100 * par['top1_agreement']:.1f} %" if "top1_agreement" in par else ""
        print(f"{directory / f.file}: {f.bytes / 1024:.1f} KiB int8, output error {par.get('error_db', float('nan')):.1f} "
              f"dB vs fp32 on {par.get('images')} validation images{extra}, sha256 {f.sha256[:16]}...")


def _command_line(args: argparse.Namespace) -> str:
    """The export command as the card records it, rebuilt from the parsed options (main() may
    have been called with an argv other than sys.argv)."""
    parts = ["semjscc", "export"]
    if args.jscc is not None:
        parts += ["--jscc", str(args.jscc)]
    elif args.classifier is not None:
        parts += ["--classifier", str(args.classifier)]
    else:
        parts += ["--model", str(args.model)]
    for opt, value in (("--classifier-dir", args.classifier_dir), ("--receiver-dir", args.receiver_dir),
                       ("--name", args.name), ("--out", args.out),
                       ("--eval-json", args.eval_json), ("--train-command", args.train_command)):
        if value is not None:
            parts += [opt, str(value)]
    if args.force:
        parts.append("--force")
    if args.precision != "fp32":
        parts += ["--precision", args.precision, "--calibration-images", str(args.calibration_images),
                  "--calibration-seed", str(args.calibration_seed)]
    if args.data is not None:
        parts += ["--data", str(args.data)]
    return " ".join(shlex.quote(p) for p in parts)
