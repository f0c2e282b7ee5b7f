"""``semjscc ota``: over-the-air experiment on a Pluto (or the simulated radio)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from semjscc.cli.common import add_data_arg, finite_float, nonnegative_int, positive_int, snr_db


def add_parser(sub: argparse._SubParsersAction) -> None:
    from semjscc.zoo.shipped import JSCC_SEMANTIC

    p = sub.add_parser("ota", help="over-the-air experiment: sweep SNR or TX attenuation, record SigMF, CSV, JSON, plot",
                       description="Send N images per sweep point through a radio (TX cabled to RX through an "
                                   "attenuator, antennas, or a second radio with --tx-uri), decode and classify "
                                   "them. Writes OUT/frames.csv, OUT/recording.sigmf-meta/-data, OUT/summary.json "
                                   "and OUT/accuracy_vs_snr.png. Ctrl-C or SIGTERM keeps everything recorded so far "
                                   "(summary.json says interrupted: true; exit status 130 or 143).")
    p.add_argument("--uri", required=True, help="receiving radio (and transmitter in loopback): ip:..., usb:..., sim[:SEED]")
    p.add_argument("--tx-uri", default=None, help="a second radio that transmits (default: loopback on --uri)")
    sweep = p.add_mutually_exclusive_group(required=True)
    sweep.add_argument("--snr", type=snr_db, nargs="+", metavar="DB",
                       help="target SNRs (Es/N0 per subcarrier); the calibration profile picks the attenuation")
    sweep.add_argument("--tx-atten", type=finite_float, nargs="+", metavar="DB", help="TX attenuations to sweep instead")
    p.add_argument("--images", type=positive_int, default=100, help="images per point (default 100)")
    p.add_argument("--batch", type=positive_int, default=16, help="frames per cyclic TX buffer (default 16)")
    p.add_argument("--model", default=JSCC_SEMANTIC, help=f"deep JSCC model (default {JSCC_SEMANTIC})")
    p.add_argument("--classifier", default=None, help="classifier model (default: the one the model's card names)")
    add_data_arg(p)
    p.add_argument("--split", default="test", choices=("train", "test"),
                   help="CIFAR-10 split the images come from (default %(default)s)")
    p.add_argument("--start", type=int, default=0, help="first image index")
    p.add_argument("--order", default="stratified", choices=("stratified", "shuffled", "dataset"),
                   help="image order: stratified takes one image of every class in turn (seeded), so any N images "
                        "hold every class N/10 times give or take one; the test split itself is sorted by class "
                        "(default %(default)s)")
    p.add_argument("--shuffle-seed", type=nonnegative_int, default=None, help="seed of the stratified or shuffled order (default 0)")
    p.add_argument("--connect-timeout", type=finite_float, default=None, metavar="S",
                   help="seconds to wait for a radio to answer (default 10; ip:pluto.local may need more)")
    p.add_argument("--freq", type=float, default=2.45e9, help="RF centre frequency in Hz (default 2.45e9)")
    p.add_argument("--rate", type=float, default=1e6,
                   help="sample rate in S/s, the Pluto's 521e3 .. 61.44e6; the PHY's numerology is defined at 1 MS/s "
                        "(CFO limits scale with the rate), captures are one-shot buffers so USB speed is no limit "
                        "(default 1e6)")
    p.add_argument("--rf-bw", type=float, default=None, help="RF bandwidth in Hz (default: the sample rate)")
    p.add_argument("--rx-gain-mode", default="manual", choices=("manual", "slow_attack", "fast_attack", "hybrid"),
                   help="RX gain control; the calibration's SNR table is measured in manual (default %(default)s)")
    p.add_argument("--rx-gain", type=float, default=40.0, help="manual RX gain in dB (default 40)")
    p.add_argument("--calibration", default="auto",
                   help="profile of the receiving radio: a path, auto (calibration/<serial>.yaml if there) or none "
                        "(default %(default)s)")
    p.add_argument("--tx-calibration", default="auto",
                   help="profile of the --tx-uri radio, for its LO correction (same forms; default %(default)s)")
    p.add_argument("--design-snr", type=finite_float, default=10.0,
                   help="encoder SNR for --tx-atten sweeps without a profile prediction (default 10)")
    p.add_argument("--no-sim", action="store_true", help="skip the simulated reference curve")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the simulated curve's noise")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory, new or empty (default results/ota-DATE-TIME)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results already in --out (default: refuse, so no recording is lost)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from semjscc.experiments.ota.runner import Experiment, run_experiment, timestamped_dir
    from semjscc.link.ledger import RUN_KEYS
    from semjscc.util.stats import wilson_rate

    exp = Experiment(
        out=args.out or timestamped_dir(), overwrite=args.overwrite, uri=args.uri, tx_uri=args.tx_uri, freq_hz=args.freq,
        sample_rate=args.rate, rf_bandwidth=args.rf_bw, rx_gain_mode=args.rx_gain_mode, rx_gain_db=args.rx_gain,
        snrs=args.snr, attens=args.tx_atten, n_images=args.images, batch=args.batch, model=args.model,
        classifier=args.classifier, data=args.data, split=args.split, start=args.start,
        shuffle_seed=args.shuffle_seed, order=args.order, connect_timeout_s=args.connect_timeout, calibration=args.calibration, tx_calibration=args.tx_calibration,
        design_snr_db=args.design_snr, simulate=not args.no_sim, seed=args.seed, progress=not args.no_progress)
    try:
        doc = run_experiment(exp)
    except KeyboardInterrupt as e:
        from semjscc.util.stopping import stopped_by

        print(f"stopped by {stopped_by(e)}: everything received so far is in {exp.out} (summary.json, frames.csv, "
              f"recording)")
        raise
    print(json.dumps({k: doc[k] for k in RUN_KEYS}, indent=2))
    for p in doc["points"]:
        target = "" if p.get("target_snr_db") is None else f"target {p['target_snr_db']:g} dB, "
        acc = "-"
        if p["accuracy"] is not None:
            lo, hi = wilson_rate(p["accuracy"], int(p["frames_received"]))
            acc = f"{100 * p['accuracy']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] (95 %, n = {p['frames_received']})"
        # two measured SNRs, each named as in summary.json (meta.snr_keys): the channel's is the one
        # to compare with the target and the figure's x axis
        print(f"point {p['index']}: {target}TX attenuation {p['tx_atten_db']:g} dB -> channel SNR "
              f"{_db(p.get('channel_snr_db'))}, payload SNR after equalisation {_db(p['snr_est_db'])}, "
              f"{p['frames_received']}/{p['frames_sent']} frames, accuracy {acc}")
        if p.get("note"):  # e.g. a target beyond the profile's weakest point: its attenuation is extrapolated
            print(f"  point {p['index']}: {p['note']}")
    if doc["points"] and doc["points"][0].get("flowgraph_note"):
        print(f"note: {doc['points'][0]['flowgraph_note']}")
    print(f"wrote {exp.out}/summary.json, frames.csv, recording.sigmf-meta, accuracy_vs_snr.png")
    return 0


def _db(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} dB"
