"""``semjscc eval``: SNR sweep of deep JSCC schemes -> JSON, Markdown table and PNG plot."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from semjscc.cli.common import add_data_arg, finite_float, labelled_models, nonnegative_int, positive_int, snr_db
from semjscc.experiments.eval.sweep import PROTOCOLS
from semjscc.phy.frame import MIDAMBLE_INTERVALS
from semjscc.util.errors import UsageError

DEFAULT_SNRS = (0.0, 5.0, 10.0, 15.0, 20.0)

SEPARATE_CHANNELS = ("awgn", "ofdm")  # the channels separate coding (semjscc.experiments.eval.separate) simulates


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="sweep SNR: accuracy (both protocols, 95 %% CI), PSNR, SSIM per scheme",
                       description="Evaluate deep JSCC schemes (and separate coding) over a channel at several SNRs "
                                   "on the CIFAR-10 test split, under two protocols: the clean classifier judges the "
                                   "received images (the paper's setting) and the adapted receiver does (a deployed "
                                   "link). Every accuracy carries its 95 % interval; semantic-vs-MSE and "
                                   "semantic-vs-separate comparisons are paired. Models are names under models/, "
                                   "directories, or torch checkpoints (*.pt).")
    add_data_arg(p)
    p.add_argument("--model", action="append", default=None, metavar="LABEL=MODEL",
                   help="a scheme to evaluate, repeatable (default: the shipped models mse and semantic)")
    p.add_argument("--classifier", default=None, metavar="NAME_OR_DIR",
                   help="the clean protocol's classifier (default: the one the models' cards name)")
    p.add_argument("--receiver", default=None, metavar="NAME_OR_DIR",
                   help="the receiver protocol's classifier (default: the receiver the models' cards name)")
    p.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS),
                   help="which classifiers judge the images (default: both; results should report both)")
    p.add_argument("--snr", type=snr_db, nargs="+", default=list(DEFAULT_SNRS), metavar="DB",
                   help="channel SNRs in dB (default %(default)s)")
    p.add_argument("--channel", choices=("awgn", "rayleigh", "ofdm", "phy"), default="awgn",
                   help="awgn, rayleigh (block fading), ofdm (differentiable multipath OFDM model), or phy: the "
                        "radio's own numpy OFDM TX/RX with a 3 kHz frequency offset, as in the GNU Radio flowgraph "
                        "(default %(default)s)")
    p.add_argument("--doppler", type=finite_float, default=None, metavar="F",
                   help="ofdm and phy channels: normalised Doppler (Doppler frequency / sample rate, e.g. 1e-4 = "
                        "100 Hz at 1 MS/s): every multipath tap fades over the frame (Rayleigh, Clarke spectrum). "
                        "With ofdm it also switches to the radio receiver's estimator (channel tracking, the "
                        "receiver's payload SNR told to the decoder): compare --doppler 0 with --doppler 1e-4")
    p.add_argument("--midamble", type=int, choices=MIDAMBLE_INTERVALS, default=0, metavar="N",
                   help="ofdm and phy channels: a known mid-amble symbol after every N payload symbols "
                        f"({', '.join(map(str, MIDAMBLE_INTERVALS[1:]))}; default 0 = none)")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="test (the 10,000 test images; final tables) or val (the 5,000 training images held out "
                        "for choices; default %(default)s)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="evaluate N images (default: all)")
    p.add_argument("--seed", type=nonnegative_int, default=2024, help="channel noise seed (default %(default)s)")
    p.add_argument("--separate", action="store_true",
                   help="add separate source-channel coding (JPEG/WebP/HEIF + LDPC + QAM at the same channel uses): "
                        "its configuration per SNR is chosen on validation images (--separate-val), per protocol, "
                        "then evaluated here")
    p.add_argument("--codec", action="append", choices=("jpeg", "webp", "heif"), default=None,
                   help="separate coding: only this codec (repeatable; default: every codec installed)")
    p.add_argument("--separate-val", type=positive_int, default=2000, metavar="N",
                   help="validation images separate coding's configurations are chosen on (default %(default)s)")
    p.add_argument("--uncertain", nargs="+", default=None, metavar="COND",
                   help="add the SNR-uncertainty protocol (AWGN): per condition, each image meets its own SNR; "
                        "U:LO:HI (uniform, designed for the mean) or D+-S (within S dB of design SNR D), e.g. "
                        "U:0:20 10+-3; the JSCC decoder gets the receiver's estimate, separate coding the "
                        "configuration for the design SNR")
    p.add_argument("--precision", choices=("fp32", "int8", "auto"), default="fp32",
                   help="which files of the models run: fp32 (default: the reference tables), int8, or auto (what "
                        "a flowgraph picks on this CPU from the cards)")
    p.add_argument("--int8-parity", action="store_true",
                   help="instead of the sweep: int8 against fp32 for every model (encoder, decoder, both "
                        "classifiers), paired on the same images and noise at each --snr, both protocols; writes "
                        "STEM.json/.md, which `semjscc export --model DIR --record-parity` puts in the cards")
    p.add_argument("--int8-skip", action="append", choices=("encoder", "decoder", "classifier"), default=[],
                   metavar="ROLE", help="with --int8-parity: leave a role at fp32 without measuring it (one ruled out "
                                        "on validation images; repeatable; default: none)")
    p.add_argument("--int8-skip-reason", default=None, metavar="TEXT",
                   help="with --int8-skip: why, for the report (e.g. the validation run that ruled it out)")
    p.add_argument("--out", type=Path, default=None, metavar="STEM",
                   help="writes STEM.json/.md/.png/.npz (default results/eval-CHANNEL)")
    p.set_defaults(func=run)


def _parse_models(specs: list[str] | None) -> list[tuple[str, str]]:
    from semjscc.zoo.shipped import DEFAULT_EVAL_MODELS

    if not specs:
        return list(DEFAULT_EVAL_MODELS)
    return labelled_models(specs, "semantic=models/jscc-semantic-kn6")


def _classifiers(args: argparse.Namespace, schemes: list) -> dict[str, str]:
    """Protocol -> classifier reference: given, else what the first model's card names."""
    from semjscc.zoo.locate import card_classifiers

    first = schemes[0]
    named = card_classifiers(first.directory) if hasattr(first, "directory") else {
        "classifier": first.classifier_ref, "receiver": None}
    refs = {"clean": args.classifier or named["classifier"], "receiver": args.receiver or named["receiver"]}
    out = {}
    for protocol in args.protocols:
        if refs[protocol] is None:
            what = "--classifier" if protocol == "clean" else "--receiver"
            raise UsageError(f"no {protocol} classifier: the model's card names none; pass {what} NAME_OR_DIR "
                             f"(or leave {protocol} out of --protocols)")
        out[protocol] = str(refs[protocol])
    return out


def _data(args: argparse.Namespace):  # -> Dataset
    from semjscc.data import load_cifar10

    if args.split == "val":
        from semjscc.data import Dataset
        from semjscc.nn.training import split_train_val

        full = load_cifar10(args.data, "train")
        _tr, va = split_train_val(len(full))
        return Dataset(full.images[va], full.labels[va]).subset(args.limit)
    return load_cifar10(args.data, "test").subset(args.limit)


def run(args: argparse.Namespace) -> int:
    from semjscc.experiments.eval.schemes import load_classifier_fn, load_scheme
    from semjscc.experiments.eval.sweep import parse_condition, report, sweep, sweep_uncertain

    if args.separate and args.channel not in SEPARATE_CHANNELS:  # before the deep JSCC sweep, not after it
        raise UsageError(f"--separate supports --channel {' or '.join(SEPARATE_CHANNELS)}, not {args.channel}: "
                         f"drop --separate or pick one of those channels")
    conditions = [parse_condition(c) for c in args.uncertain or []]
    channel_kwargs = _channel_kwargs(args)
    models = _parse_models(args.model)
    if args.int8_parity:
        return _int8_parity(args, models)
    schemes = [load_scheme(label, model, args.precision) for label, model in models]
    kns = {round(s.kn, 6) for s in schemes}
    if len(kns) > 1:
        raise UsageError(f"schemes have different k/n ({sorted(kns)}): compare models of the same bandwidth ratio")
    refs = _classifiers(args, schemes)
    classifiers = {p: load_classifier_fn(r, args.precision) for p, r in refs.items()}
    data = _data(args)
    out = args.out or Path(f"results/eval-{args.channel}")
    sw = sweep(schemes, classifiers, data, args.snr, args.channel, seed=args.seed, channel_kwargs=channel_kwargs)
    meta: dict = {}
    separate_for = None
    if args.separate:
        configs = _separate(sw, classifiers, data, args, schemes[0].kn, out, meta)
        if conditions:
            separate_for = _separate_scheme_for(configs.get("clean") or next(iter(configs.values())), schemes[0].kn,
                                                data)
    if conditions:
        unc = sweep_uncertain(schemes, classifiers, data, conditions, seed=args.seed, separate_for=separate_for)
        sw.rows += unc.rows
        sw.correct.update(unc.correct)
        meta["uncertainty"] = {"conditions": [c.__dict__ for c in conditions],
                               "snr_estimate_std_db": _estimate_std()}
    meta |= {
        "channel": args.channel, "channel_options": channel_kwargs,
        "kn": f"1/{round(1 / schemes[0].kn)}", "n_images": len(data), "split": args.split,
        "models": {label: model for label, model in models}, "classifiers": refs,
        "seed": args.seed, "command": "semjscc " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "precision": args.precision,
    }
    doc = report(sw, meta, out)
    from semjscc.experiments.eval.sweep import markdown_table

    print(markdown_table(doc))
    print(f"wrote {out}.json, {out}.md, {out}.png, {out}.npz")
    return 0


def _int8_parity(args: argparse.Namespace, models: list[tuple[str, str]]) -> int:
    """--int8-parity: every model's int8 files against its fp32 ones (semjscc.experiments.eval.precision)."""
    import os

    from semjscc.experiments.eval import precision
    from semjscc.zoo.locate import card_classifiers, resolve_model_dir

    if args.channel != "awgn" or args.separate or args.uncertain or args.precision != "fp32":
        raise UsageError("--int8-parity runs over AWGN on its own: drop --channel/--separate/--uncertain/--precision")
    if any(m.endswith(".pt") for _label, m in models):
        raise UsageError("--int8-parity compares the fp32 and int8 files of model directories, not checkpoints")
    jscc = {label: str(resolve_model_dir(m)) for label, m in models}
    named = card_classifiers(resolve_model_dir(models[0][1]))
    refs = {"clean": args.classifier or named["classifier"], "receiver": args.receiver or named["receiver"]}
    classifiers = {p: str(refs[p]) for p in args.protocols if refs[p] is not None}
    data = _data(args)
    out = args.out or Path("results/int8-parity")
    skip = tuple(dict.fromkeys(args.int8_skip))
    measured = precision.measure(jscc, classifiers, data, list(args.snr), seed=args.seed,
                                 threads=os.cpu_count() or 1, skip=skip)
    meta = {"n_images": len(data), "split": args.split, "snrs": list(args.snr), "seed": args.seed,
            "models": jscc, "classifiers": classifiers,
            "command": "semjscc " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "skip_reason": args.int8_skip_reason}
    doc = precision.report(measured, jscc, classifiers, meta, skip)
    precision.write(doc, out)
    for name, m in doc["models"].items():
        print(f"{name}: " + ", ".join(
            f"{role} {'int8' if ok else 'fp32'} ("
            + (f"max |diff| {m['max_abs_diff_pp'][role]:.2f} pp)" if role in m["max_abs_diff_pp"] else "not measured)")
            for role, ok in m["use"].items()))
    print(f"wrote {out}.json, {out}.md")
    return 0


def _channel_kwargs(args: argparse.Namespace) -> dict:
    """The channel's options from --doppler / --midamble (checked before any model is loaded)."""
    from semjscc.nn.channels import channel_options
    from semjscc.phy.channel_model import check_doppler

    if args.doppler is None and not args.midamble:
        return {}
    if args.channel not in ("ofdm", "phy"):
        raise UsageError(f"--doppler and --midamble need --channel ofdm or phy (the OFDM frame), not {args.channel}")
    if args.separate:
        raise UsageError("--separate simulates the static OFDM channel only: drop --doppler/--midamble or --separate")
    doppler = None if args.doppler is None else check_doppler(args.doppler, "--doppler")
    return channel_options(args.channel, doppler, args.midamble)


def _estimate_std() -> float:
    from semjscc.experiments.eval.sweep import SNR_ESTIMATE_STD_DB

    return SNR_ESTIMATE_STD_DB


def _separate(sw, classifiers: dict, data, args: argparse.Namespace, kn: float, out: Path, meta: dict) -> dict:
    """Separate coding per protocol: its configuration at each SNR chosen on ``--separate-val``
    validation images (the whole envelope, written to STEM-separate-val-PROTOCOL.json: what `train
    receiver --separate-configs` reads), then that configuration evaluated on the evaluation images with
    per-image outcomes. Returns protocol -> {SNR: configuration row}."""
    from semjscc.data import Dataset, load_cifar10
    from semjscc.experiments.eval.separate import ChoiceCache, evaluate_choice, run_separate_eval
    from semjscc.nn.training import split_train_val

    full = load_cifar10(args.data, "train")
    _tr, va = split_train_val(len(full))
    val = Dataset(full.images[va], full.labels[va]).subset(args.separate_val, seed=1)
    chosen: dict[str, dict[float, dict]] = {}
    meta["separate_configs"] = {}
    for protocol, classify in classifiers.items():
        doc = run_separate_eval(classify, val, args.snr, args.channel, kn,
                                out=out.with_name(f"{out.name}-separate-val-{protocol}"), seed=args.seed + 1,
                                codecs=args.codec)
        chosen[protocol] = {float(r["snr_db"]): r for r in doc["envelope_accuracy"]}
        meta["separate_configs"][protocol] = {
            f"{snr:g}": f"{r['codec']} q{r['quality']}, {r['modulation']} rate {r['code_rate']}"
            for snr, r in chosen[protocol].items()}
    meta["separate_val_images"] = len(val)
    reuse = {protocol: ChoiceCache() for protocol in classifiers}  # codec tables etc., reused across SNRs
    for snr in args.snr:
        correct, psnr, ss = {}, None, None
        for protocol, classify in classifiers.items():
            r = chosen[protocol][float(snr)]
            res = evaluate_choice(classify, data, snr, args.channel, kn, r["codec"], str(r["quality"]),
                                  r["modulation"], r["code_rate"], seed=args.seed, reuse=reuse[protocol])
            correct[protocol] = res.correct
            psnr, ss = res.psnr_db, res.ssim
        sw.add("separate", snr, correct, float(psnr), float(ss), len(data.labels))
    return chosen


def _separate_scheme_for(configs: dict[float, dict], kn: float, data):  # -> Callable
    """For the uncertainty protocol: design SNR -> the literal separate-coding scheme a transmitter would
    use (the configuration chosen on validation for the highest SNR of the grid at or below it)."""
    from semjscc.data.imaging import to_float_nchw
    from semjscc.phy.symbols import symbols_for_ratio
    from semjscc.separate.bank import Config, config_for
    from semjscc.separate.codecs import make_codec
    from semjscc.separate.scheme import SeparateScheme

    table = {snr: Config(str(r["codec"]), str(r["quality"]), str(r["modulation"]), str(r["code_rate"]))
             for snr, r in configs.items()}
    fallback = to_float_nchw(data.images).mean(0)

    def scheme_for(design_db: float) -> SeparateScheme:
        c = config_for(table, design_db)
        return SeparateScheme(make_codec(c.codec), None if c.quality == "auto" else int(c.quality), c.modulation,
                              c.code_rate, symbols_for_ratio(kn), fallback=fallback)

    return scheme_for
