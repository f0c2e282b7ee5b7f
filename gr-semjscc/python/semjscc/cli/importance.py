"""``semjscc importance``: images beside their semantic-importance maps, and, with two deep JSCC
models, where each decoder's errors fall (the picture that makes the method understandable)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from semjscc.cli.common import add_data_arg, finite_float, positive_int, snr_db


def add_parser(sub: argparse._SubParsersAction) -> None:
    from semjscc.nn.config import JSCCConfig
    from semjscc.zoo.shipped import CLASSIFIER, JSCC_MSE, JSCC_SEMANTIC

    d = JSCCConfig()
    p = sub.add_parser("importance", help="render a PNG of test images, their importance maps and decoders' errors",
                       description="Compute SmoothGrad importance maps (see docs/method.md) of test images with a "
                                   "classifier and draw image | map | image x map for each. With --compare (the "
                                   "default) also the maps of the semantic-loss variants (another classifier, a "
                                   "steeper map) and, for the MSE and the semantic deep JSCC at --snr dB over AWGN, "
                                   "each decode and its error map, on images where the two decoders disagree first "
                                   "(the semantic decode classified right and the MSE one wrong, then the reverse).")
    add_data_arg(p)
    p.add_argument("--classifier", default=CLASSIFIER, metavar="NAME_OR_DIR",
                   help="the classifier whose gradients mark importance: a name under models/, a model directory, or "
                        "a checkpoint (.pt); default %(default)s (its weights-only checkpoint)")
    p.add_argument("--n", type=positive_int, default=8, help="number of images (default %(default)s)")
    p.add_argument("--samples", type=positive_int, default=d.importance_samples,
                   help="SmoothGrad copies (default %(default)s)")
    p.add_argument("--sigma", type=finite_float, default=d.importance_sigma,
                   help="SmoothGrad noise std, pixels in [0, 1] (default %(default)s)")
    p.add_argument("--clip", type=finite_float, default=d.importance_clip,
                   help="largest weight, in multiples of the image's mean (default %(default)s)")
    p.add_argument("--blur", type=finite_float, default=d.importance_blur,
                   help="Gaussian blur std in pixels, 0 = none (default %(default)s)")
    p.add_argument("--power", type=finite_float, default=2.0,
                   help="exponent of the steeper variant's map, with --compare (default %(default)s)")
    p.add_argument("--other-classifier", default="receiver", metavar="NAME_OR_DIR",
                   help="a second classifier's map, with --compare (default %(default)s: the adapted receiver)")
    p.add_argument("--compare", action=argparse.BooleanOptionalAction, default=True,
                   help="draw the variants' maps and the two decoders' errors (default on)")
    p.add_argument("--mse", default=JSCC_MSE, metavar="NAME_OR_DIR_OR_PT",
                   help="the MSE deep JSCC (default %(default)s)")
    p.add_argument("--semantic", default=JSCC_SEMANTIC, metavar="NAME_OR_DIR_OR_PT",
                   help="the semantic deep JSCC (default %(default)s)")
    p.add_argument("--snr", type=snr_db, default=0.0, metavar="DB",
                   help="channel SNR of the decodes, AWGN (default %(default)s dB: where the decoders differ most)")
    p.add_argument("--pool", type=positive_int, default=2000, metavar="N",
                   help="test images searched for disagreements between the decoders (default %(default)s)")
    p.add_argument("--out", type=Path, default=Path("results/importance.png"), metavar="PNG",
                   help="picture to write (default %(default)s)")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    from semjscc.util.errors import UsageError

    if not 0 <= args.sigma <= 1:
        raise UsageError(f"--sigma {args.sigma:g}: the SmoothGrad noise std is in pixel units of [0, 1]")
    if args.clip < 1:
        raise UsageError(f"--clip {args.clip:g}: the clip is a multiple of the map's mean and must be >= 1")
    if not 0 <= args.blur <= 16:
        raise UsageError(f"--blur {args.blur:g}: a blur std between 0 (none) and 16 pixels")
    if args.power <= 0:
        raise UsageError(f"--power {args.power:g}: the exponent must be > 0 (1 = the map as it is, 2 = steeper)")
    if args.n > 64:
        raise UsageError(f"--n {args.n}: at most 64 images fit one picture")


def run(args: argparse.Namespace) -> int:
    _check(args)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from semjscc.data import load_cifar10
    from semjscc.nn.importance import ImportanceConfig, importance_maps
    from semjscc.nn.train_classifier import load_classifier
    from semjscc.util.files import atomic_writer
    from semjscc.zoo.locate import classifier_checkpoint

    model = load_classifier(classifier_checkpoint(args.classifier))
    test = load_cifar10(args.data, "test")
    cfg = ImportanceConfig(args.samples, args.sigma, args.clip, args.blur)
    if not args.compare:
        idx = np.random.default_rng(0).choice(len(test), size=min(args.n, len(test)), replace=False)
        rows: dict[str, np.ndarray] = {}
    else:
        idx, rows = _decoder_rows(args, test, model)
    x = torch.from_numpy(test.images[idx]).permute(0, 3, 1, 2).float() / 255.0
    y = torch.from_numpy(test.labels[idx])
    maps = {"importance": importance_maps(model, x, y, cfg, torch.Generator().manual_seed(0)).numpy()}
    if args.compare:
        steep = ImportanceConfig(args.samples, args.sigma, args.clip, args.blur, power=args.power)
        maps[f"power {args.power:g}"] = importance_maps(model, x, y, steep, torch.Generator().manual_seed(0)).numpy()
        other = load_classifier(classifier_checkpoint(args.other_classifier))
        maps[f"{args.other_classifier}'s map"] = importance_maps(other, x, y, cfg,
                                                                torch.Generator().manual_seed(0)).numpy()
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    n = len(idx)
    panels = ["image", *maps, "image x importance", *(k for k in rows if not k.endswith(" pred"))]
    fig, axes = plt.subplots(len(panels), n, figsize=(1.5 * n + 1.2, 1.45 * len(panels) + 0.6), squeeze=False)
    err_max = max((float(v.max()) for k, v in rows.items() if k.endswith("error")), default=1.0)
    for j in range(n):
        img = test.images[idx[j]]
        for i, name in enumerate(panels):
            ax = axes[i, j]
            if name == "image":
                ax.imshow(img)
                ax.set_title(f"{test.classes[y[j]]}\n(clean: {test.classes[pred[j]]})", fontsize=7)
            elif name in maps:
                ax.imshow(maps[name][j], cmap="inferno")
                ax.set_title(f"max {maps[name][j].max():.1f}x mean", fontsize=6)
            elif name == "image x importance":
                m = maps["importance"][j]
                ax.imshow((img * np.clip(m / m.max(), 0, 1)[..., None]).astype(np.uint8))
            elif name.endswith("error"):
                ax.imshow(rows[name][j], cmap="magma", vmin=0, vmax=err_max)
            else:  # a decode; its title says what the classifier made of it
                ax.imshow(rows[name][j])
                ax.set_title(f"{name.split()[0]}: {test.classes[int(rows[name + ' pred'][j])]}", fontsize=6,
                             color="green" if rows[name + " pred"][j] == y[j] else "red")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=7)
    title = "CIFAR-10 test images and their semantic importance (SmoothGrad |d log p(y|x)/dx|)"
    if args.compare:
        title += (f"; MSE and semantic deep JSCC at {args.snr:g} dB AWGN, |error| blurred like the maps (one colour scale): "
                  f"images where the decoders disagree first")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(args.out, "wb") as f:
        fig.savefig(f, format="png", dpi=130)
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


def _decoder_rows(args: argparse.Namespace, test: object, model: object) -> tuple[object, dict]:
    """Test images to show (disagreements between the two decoders first) and, per decoder, its
    decodes, their |error| maps (mean over RGB) and the clean classifier's predictions on them."""
    import numpy as np
    import torch

    from semjscc.nn.channels import make_channel
    from semjscc.nn.importance import gaussian_blur
    from semjscc.nn.train_jscc import load_jscc
    from semjscc.zoo.locate import model_checkpoint

    pool = np.random.default_rng(0).choice(len(test), size=min(args.pool, len(test)), replace=False)
    decodes, preds = {}, {}
    for label, ref in (("MSE", args.mse), ("semantic", args.semantic)):
        net, _ = load_jscc(model_checkpoint(ref, "jscc.pt"))
        gen = torch.Generator().manual_seed(7)  # the same noise for both decoders
        channel = make_channel("awgn", gen)
        outs, ps = [], []
        with torch.no_grad():
            for s in range(0, len(pool), 500):
                x = torch.from_numpy(test.images[pool[s : s + 500]]).permute(0, 3, 1, 2).float() / 255.0
                x_hat = net(x, channel, torch.full((x.shape[0],), args.snr))
                outs.append(x_hat.permute(0, 2, 3, 1).numpy())
                ps.append(model(x_hat).argmax(1).numpy())
        decodes[label], preds[label] = np.concatenate(outs), np.concatenate(ps)
    truth = test.labels[pool]
    sem_only = np.flatnonzero((preds["semantic"] == truth) & (preds["MSE"] != truth))
    mse_only = np.flatnonzero((preds["MSE"] == truth) & (preds["semantic"] != truth))
    half = math.ceil(args.n / 2)
    chosen = [*sem_only[:half], *mse_only[: args.n - min(half, len(sem_only))]]
    rest = [i for i in range(len(pool)) if i not in set(chosen)]
    chosen = (chosen + rest)[: args.n]
    print(f"{len(pool)} test images at {args.snr:g} dB: semantic right where MSE wrong on {len(sem_only)}, "
          f"the reverse on {len(mse_only)}")
    rows: dict = {}
    for label in ("MSE", "semantic"):
        d = decodes[label][chosen]
        rows[f"{label} decode"] = d
        rows[f"{label} decode pred"] = preds[label][chosen]
        err = torch.from_numpy(np.abs(d - test.images[pool[chosen]] / 255.0).mean(axis=3)).float()
        # blurred like the importance maps: where errors gather, not single noisy pixels
        rows[f"{label} error"] = gaussian_blur(err, args.blur).numpy()
    return pool[chosen], rows
