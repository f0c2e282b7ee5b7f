"""``semjscc export``: trained checkpoints -> ONNX model directories (models/NAME/ + card.yaml)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from semjscc.cli.common import existing_file
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
    p.add_argument("--classifier-dir", metavar="DIR_OR_NAME",
                   help="with --jscc: the receiver's exported classifier (a directory, or a name under --out)")
    p.add_argument("--receiver-dir", metavar="DIR_OR_NAME",
                   help="with --jscc: the receiver classifier (adapted to decodes) the model is meant for; run, demo, "
                        "ota and eval use it by default")
    p.add_argument("--name", required=True, help="model directory name, e.g. jscc-mse-kn6 or classifier")
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
    for role, f in card.files.items():
        print(f"{result.directory / f.file}: {f.bytes / 1024:.1f} KiB, |ORT - torch| <= "
              f"{(card.export_parity or {}).get(role, float('nan')):.1e}, sha256 {f.sha256[:16]}...")
    print(f"{result.directory / 'card.yaml'}: {card.kind}"
          + (f", k/n {card.kn_label}, {card.n_symbols} symbols, loss {card.loss}, classifier {card.classifier}"
             if card.kind == "jscc" else ""))
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The export command as the card records it, rebuilt from the parsed options (main() may
    have been called with an argv other than sys.argv)."""
    parts = ["semjscc", "export"]
    parts += ["--jscc", str(args.jscc)] if args.jscc is not None else ["--classifier", str(args.classifier)]
    for opt, value in (("--classifier-dir", args.classifier_dir), ("--receiver-dir", args.receiver_dir),
                       ("--name", args.name), ("--out", args.out),
                       ("--eval-json", args.eval_json), ("--train-command", args.train_command)):
        if value is not None:
            parts += [opt, str(value)]
    if args.force:
        parts.append("--force")
    return " ".join(shlex.quote(p) for p in parts)
