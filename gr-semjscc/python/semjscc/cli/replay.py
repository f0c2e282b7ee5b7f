"""``semjscc replay``: decode an ``semjscc ota`` SigMF recording offline -> the run JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="decode a recorded over-the-air experiment (SigMF) offline",
                       description="Run the receiver, deep JSCC decoder and classifier on a recording written by "
                                   "`semjscc ota` and print the same JSON keys as `semjscc run` (frames_sent, "
                                   "frames_received, frames_lost, header_crc_failures, accuracy, psnr_db, "
                                   "snr_est_db), in total and per sweep point.")
    p.add_argument("recording", type=Path, help="RECORDING.sigmf-meta")
    p.add_argument("--model", default=None, metavar="NAME_OR_DIR",
                   help="deep JSCC model (default: the one the recording names); its decoder must come from the "
                        "same export as the encoder that sent the frames, or --force")
    p.add_argument("--classifier", default=None, metavar="NAME_OR_DIR",
                   help="classifier model (default: the one the recording names)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="image source, if it moved since the recording (its images are checked by sha256)")
    p.add_argument("--force", action="store_true",
                   help="decode even with a decoder not trained with the recorded encoder, or other images than "
                        "the ones sent (the results are then no comparison)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from semjscc.experiments.ota.replay import replay
    from semjscc.experiments.ota.report import write_json

    doc = replay(args.recording, args.model, args.classifier, args.data, force=args.force)
    if args.out is not None:
        write_json(args.out, doc)
    print(json.dumps(doc, indent=2))
    return 0
