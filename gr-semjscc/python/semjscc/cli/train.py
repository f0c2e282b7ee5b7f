"""``semjscc train``: classifier, MSE deep JSCC and semantic deep JSCC."""

from __future__ import annotations

import argparse
from pathlib import Path

from semjscc.cli.common import (
    add_data_arg,
    device_arg,
    finite_float,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
)
from semjscc.zoo.locate import classifier_checkpoint, model_checkpoint


def add_parser(sub: argparse._SubParsersAction) -> None:
    from dataclasses import asdict

    from semjscc.nn.config import ClassifierConfig

    p = sub.add_parser("train", help="train the classifier or a deep JSCC model",
                       description="Training on the CPU by default, a GPU when present (--device), several GPUs "
                                   "under torchrun. Checkpoints are written every epoch; re-running the same "
                                   "command resumes. Ctrl-C or SIGTERM stops at a batch boundary and saves a "
                                   "checkpoint there (weights, optimizer, schedule, random state, position in the "
                                   "epoch) that the same command resumes from; exit status 130 (Ctrl-C) or 143 "
                                   "(SIGTERM).")
    what = p.add_subparsers(dest="what", metavar="WHAT", required=True)

    c = what.add_parser("classifier", help="the clean CIFAR-10 classifier (fast-CIFAR recipe)",
                        description="Train the clean classifier: whitening first layer, three conv groups, SGD "
                                    "with Nesterov momentum on a one-cycle schedule, label smoothing, translations "
                                    "and flips, weight averaging. 5,000 training images are held out for "
                                    "validation; the test split is measured once, after the last epoch.")
    add_data_arg(c)
    c.add_argument("--out", type=Path, default=Path("runs/classifier.pt"), help="checkpoint (default %(default)s)")
    cd = asdict(ClassifierConfig())
    c.add_argument("--epochs", type=positive_int, default=cd["epochs"], help="default %(default)s")
    c.add_argument("--batch", type=positive_int, default=cd["batch"], help="default %(default)s")
    c.add_argument("--lr", type=positive_float, default=cd["lr"], help="peak learning rate (default %(default)s)")
    c.add_argument("--width", type=positive_int, default=cd["width"],
                   help="channels of the first group, the others have 4x (default %(default)s)")
    c.add_argument("--no-bf16", dest="bf16", action="store_false",
                   help="train in float32 (default: bfloat16 autocast)")
    c.add_argument("--seed", type=nonnegative_int, default=0, help="default %(default)s")
    c.add_argument("--limit", type=positive_int, default=None, help="use only N images (smoke runs)")
    c.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: all cores)")
    c.add_argument("--device", type=device_arg, default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    c.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint instead of resuming")
    c.set_defaults(func=run_classifier)
    _add_jscc(what)
    _add_receiver(what)


def run_classifier(args: argparse.Namespace) -> int:
    from semjscc.nn.train_classifier import ClassifierConfig, train_classifier

    cfg = ClassifierConfig(epochs=args.epochs, batch=args.batch, lr=args.lr, width=args.width, bf16=args.bf16,
                           seed=args.seed)
    train_classifier(cfg, args.data, args.out, device=args.device, resume=not args.fresh, limit=args.limit,
                     threads=args.threads)
    return 0


def _add_jscc(what: argparse._SubParsersAction) -> None:
    from dataclasses import asdict

    from semjscc.nn.config import JSCCConfig

    d = asdict(JSCCConfig())
    j = what.add_parser("jscc", help="a deep JSCC encoder/decoder with the MSE or the semantic loss",
                        description="Train a deep JSCC encoder and decoder (GDN + residual blocks, SNR attention) over "
                                    "a differentiable channel with the MSE loss or the semantic (importance-weighted) "
                                    "loss, whose importance maps come from --classifier. Both losses share the "
                                    "architecture, seed, SNR draws and schedule. Validation every --val-every epochs: "
                                    "PSNR, SSIM and (with --classifier) accuracy at 0/10/20 dB, kept in the "
                                    "checkpoint's history and drawn next to it (CHECKPOINT.png).")
    add_data_arg(j)
    j.add_argument("--loss", choices=("mse", "semantic"), default="mse",
                   help="distortion measure: mse, or semantic (importance-weighted, needs --classifier); "
                        "default %(default)s")
    j.add_argument("--classifier", default=None, metavar="NAME_OR_DIR",
                   help="the classifier that gives the importance maps (semantic loss) and the validation accuracy: "
                        "a name under models/ (e.g. classifier), a model directory, or a checkpoint .pt")
    j.add_argument("--out", type=Path, default=None, help="checkpoint (default runs/jscc-LOSS.pt)")
    j.add_argument("--kn", type=_ratio, default=d["kn"], metavar="K/N",
                   help="bandwidth ratio k/n, e.g. 1/6 or 1/12 (default 1/6: 512 symbols per image)")
    j.add_argument("--width", type=positive_int, default=d["width"],
                   help="channels of the first stage, the others have 2x (default %(default)s)")
    j.add_argument("--fixed-snr", type=finite_float, default=None, metavar="DB",
                   help="train at one SNR without SNR attention (default: SNR-adaptive over --snr-range)")
    j.add_argument("--snr-range", type=finite_float, nargs=2, default=(d["snr_min"], d["snr_max"]), metavar=("LO", "HI"),
                   help="training SNRs are drawn uniformly from [LO, HI] dB, LO <= HI (default %(default)s)")
    j.add_argument("--channel", choices=("awgn", "rayleigh", "ofdm"), default=d["channel"],
                   help="training channel (default %(default)s)")
    j.add_argument("--doppler", type=finite_float, default=None, metavar="F",
                   help="with --channel ofdm: train on fading taps with this normalised Doppler (e.g. 1e-4 = 100 Hz "
                        "at 1 MS/s) and the radio receiver's channel estimator (default: the static channel)")
    j.add_argument("--mix", type=finite_float, default=d["mix"],
                   help="semantic loss: weight = mix + (1-mix)*importance, importance of mean 1 per image "
                        "(default %(default)s)")
    j.add_argument("--importance-from", default=None, metavar="NAME_OR_DIR",
                   help="semantic loss: the classifier whose gradients give the importance maps, e.g. the adapted "
                        "receiver that judges a deployed link (default: --classifier); with --task-weight also the "
                        "classifier whose predictions the task term keeps")
    j.add_argument("--importance-power", type=finite_float, default=d["importance_power"], metavar="P",
                   help="semantic loss: raise the blurred map to P before normalising, P > 1 steepens the weighting "
                        "(default %(default)s)")
    j.add_argument("--importance-clip", type=finite_float, default=d["importance_clip"], metavar="C",
                   help="semantic loss: clip weights at C times the image's mean, C >= 1 (default %(default)s)")
    j.add_argument("--importance-on", choices=("clean", "decoded"), default=d["importance_on"],
                   help="semantic loss: maps computed once on the clean training images (clean), or at every "
                        "batch on the decoder's output (decoded: where the classifier looks at what the decoder "
                        "makes now; ~2x the time per epoch) (default %(default)s)")
    j.add_argument("--task-weight", type=finite_float, default=d["task_weight"], metavar="LAMBDA",
                   help="add LAMBDA * KL(p(clean) || p(decoded)) of the importance classifier to the pixel loss "
                        "(a variant of ours, not the paper's; 0 = off, default %(default)s)")
    j.add_argument("--receiver", default=None, metavar="NAME_OR_DIR",
                   help="a second classifier whose accuracy on the decodes is validated too (racc@SNR), e.g. "
                        "receiver")
    j.add_argument("--epochs", type=positive_int, default=d["epochs"],
                   help="length of the whole one-cycle schedule (default %(default)s)")
    j.add_argument("--batch", type=positive_int, default=d["batch"], help="default %(default)s")
    j.add_argument("--lr", type=positive_float, default=d["lr"], help="peak learning rate of the one-cycle schedule "
                   "(default %(default)s)")
    j.add_argument("--warmup", type=finite_float, default=d["warmup"],
                   help="fraction of the steps rising to the peak (default %(default)s)")
    j.add_argument("--clip-grad", type=nonnegative_float, default=d["clip_grad"], metavar="NORM",
                   help="clip the gradient norm at NORM, 0 = never (default %(default)s)")
    j.add_argument("--no-bf16", dest="bf16", action="store_false",
                   help="train in float32 (default: bfloat16 autocast for the convolutions)")
    j.add_argument("--val-every", type=positive_int, default=5, metavar="EPOCHS",
                   help="validate (PSNR, SSIM, accuracy at 0/10/20 dB) every EPOCHS epochs and after the last "
                        "(default %(default)s)")
    j.add_argument("--seed", type=nonnegative_int, default=0, help="weights, batches, SNR draws and noise (default %(default)s)")
    j.add_argument("--limit", type=positive_int, default=None, help="use only N training images (smoke runs)")
    j.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    j.add_argument("--device", type=device_arg, default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    j.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint instead of resuming")
    j.set_defaults(func=run_jscc)


def _ratio(text: str) -> float:
    try:
        if "/" in text:
            a, b = text.split("/")
            v = float(a) / float(b)
        else:
            v = float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a ratio like 1/6") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"k/n must lie in (0, 1), got {text}")
    return v


def _classifier(ref: str | None) -> Path | None:
    """A classifier given as a model name, a model directory or a .pt file -> its weights-only
    checkpoint: the one rule every command uses for a model reference."""
    return classifier_checkpoint(ref) if ref else None


def run_jscc(args: argparse.Namespace) -> int:
    from semjscc.nn.jscc import channels_for_ratio
    from semjscc.nn.train_jscc import JSCCConfig, train_jscc
    from semjscc.util.errors import UsageError

    try:
        channels_for_ratio(args.kn)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not 0.0 <= args.mix <= 1.0:
        raise UsageError(f"--mix must lie in [0, 1], got {args.mix}")
    if args.doppler is not None:
        from semjscc.phy.channel_model import check_doppler

        check_doppler(args.doppler, "--doppler")
        if args.channel != "ofdm":
            raise UsageError(f"--doppler needs --channel ofdm, not {args.channel}")
    lo, hi = (args.fixed_snr, args.fixed_snr) if args.fixed_snr is not None else args.snr_range
    cfg = JSCCConfig(loss=args.loss, kn=args.kn, width=args.width, snr_adaptive=args.fixed_snr is None,
                     snr_min=lo, snr_max=hi, channel=args.channel, doppler=args.doppler, mix=args.mix, epochs=args.epochs,
                     batch=args.batch, lr=args.lr, warmup=args.warmup, bf16=args.bf16, clip_grad=args.clip_grad,
                     seed=args.seed, importance_power=args.importance_power, importance_clip=args.importance_clip,
                     importance_from=str(_classifier(args.importance_from)) if args.importance_from else None,
                     importance_on=args.importance_on, task_weight=args.task_weight)
    if not 0.0 <= args.warmup < 1.0:
        raise UsageError(f"--warmup must lie in [0, 1), got {args.warmup}")
    out = args.out or Path(f"runs/jscc-{args.loss}.pt")
    train_jscc(cfg, args.data, out, _classifier(args.classifier), device=args.device, resume=not args.fresh,
               limit=args.limit, threads=args.threads, val_every=args.val_every, receiver_path=_classifier(args.receiver))
    return 0


def _add_receiver(what: argparse._SubParsersAction) -> None:
    from dataclasses import asdict

    from semjscc.nn.config import ReceiverConfig

    d = asdict(ReceiverConfig())
    r = what.add_parser("receiver", help="fine-tune the clean classifier on what the channel delivers (the receiver)",
                        description="Fine-tune the receiver's classifier from the clean one on an equal mix of clean "
                                    "training images, the decodes of each deep JSCC model (random SNR in --snr-range, "
                                    "AWGN) and separate coding's decodes (configuration per SNR from an `eval "
                                    "--separate` envelope on validation images), so one receiver judges every "
                                    "scheme alike. Validation: each source at 0/10/20 dB.")
    add_data_arg(r)
    r.add_argument("--from", dest="start", required=True, metavar="NAME_OR_DIR",
                   help="the clean classifier to start from: a name under models/ (classifier), a model directory "
                        "or a checkpoint .pt")
    r.add_argument("--jscc", action="append", default=[], metavar="LABEL=MODEL",
                   help="a deep JSCC model (a name under models/, a model directory or a checkpoint .pt) whose decodes "
                        "go into the mix (repeatable; default none)")
    r.add_argument("--separate-configs", type=Path, default=None, metavar="JSON",
                   help="separate coding's configuration per SNR, chosen on validation images: the "
                        "STEM-separate-val-clean.json that `semjscc eval --separate --protocols clean` writes")
    r.add_argument("--out", type=Path, default=Path("runs/receiver.pt"), help="checkpoint (default %(default)s)")
    r.add_argument("--epochs", type=positive_int, default=d["epochs"], help="default %(default)s")
    r.add_argument("--batch", type=positive_int, default=d["batch"], help="default %(default)s")
    r.add_argument("--lr", type=positive_float, default=d["lr"], help="peak learning rate (default %(default)s)")
    r.add_argument("--snr-range", type=finite_float, nargs=2, default=(d["snr_min"], d["snr_max"]),
                   metavar=("LO", "HI"), help="SNRs of the decodes, drawn uniformly in dB (default %(default)s)")
    r.add_argument("--separate-images", type=positive_int, default=d["separate_images"], metavar="N",
                   help="training images decoded by separate coding (default %(default)s)")
    r.add_argument("--no-bf16", dest="bf16", action="store_false",
                   help="train in float32 (default: bfloat16 autocast)")
    r.add_argument("--seed", type=nonnegative_int, default=0, help="default %(default)s")
    r.add_argument("--limit", type=positive_int, default=None, help="use only N images (smoke runs)")
    r.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: all cores)")
    r.add_argument("--device", type=device_arg, default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    r.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint instead of resuming")
    r.set_defaults(func=run_receiver)


def run_receiver(args: argparse.Namespace) -> int:
    from semjscc.nn.config import ReceiverConfig
    from semjscc.nn.train_receiver import train_receiver
    from semjscc.util.errors import UsageError

    jscc = []
    for spec in args.jscc:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise UsageError(f"--jscc {spec!r}: expected LABEL=CHECKPOINT, e.g. semantic=runs/jscc-semantic.pt")
        jscc.append((label, model_checkpoint(path, "jscc.pt")))
    cfg = ReceiverConfig(epochs=args.epochs, batch=args.batch, lr=args.lr, snr_min=args.snr_range[0],
                         snr_max=args.snr_range[1], separate_images=args.separate_images, bf16=args.bf16,
                         seed=args.seed)
    train_receiver(cfg, args.data, args.out, _classifier(args.start), jscc, args.separate_configs, device=args.device,
                   resume=not args.fresh, limit=args.limit, threads=args.threads)
    return 0
