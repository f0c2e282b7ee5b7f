"""``semjscc importance``: render images beside their semantic-importance maps."""

from __future__ import annotations

import argparse
from pathlib import Path

from semjscc.cli.common import add_data_arg, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    from semjscc.nn.config import JSCCConfig
    from semjscc.zoo.shipped import CLASSIFIER

    d = JSCCConfig()
    p = sub.add_parser("importance", help="render a PNG grid of images beside their importance maps",
                       description="Compute SmoothGrad importance maps (see docs/method.md) of test images with a "
                                   "classifier checkpoint and draw image | map | image x map for each.")
    add_data_arg(p)
    p.add_argument("--classifier", default=CLASSIFIER, metavar="NAME_OR_DIR",
                   help="the classifier whose gradients mark importance: a name under models/, a model directory, or "
                        "a checkpoint (.pt); default %(default)s (its weights-only checkpoint)")
    p.add_argument("--n", type=positive_int, default=8, help="number of images (default %(default)s)")
    p.add_argument("--samples", type=positive_int, default=d.importance_samples,
                   help="SmoothGrad copies (default %(default)s)")
    p.add_argument("--sigma", type=float, default=d.importance_sigma,
                   help="SmoothGrad noise std, pixels in [0, 1] (default %(default)s)")
    p.add_argument("--clip", type=float, default=d.importance_clip,
                   help="largest weight, in multiples of the image's mean (default %(default)s)")
    p.add_argument("--blur", type=float, default=d.importance_blur,
                   help="Gaussian blur std in pixels, 0 = none (default %(default)s)")
    p.add_argument("--out", type=Path, default=Path("results/importance.png"), metavar="PNG",
                   help="picture to write (default %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from semjscc.data import load_cifar10
    from semjscc.nn.importance import ImportanceConfig, importance_maps
    from semjscc.nn.train_classifier import load_classifier
    from semjscc.zoo.locate import classifier_checkpoint

    model = load_classifier(classifier_checkpoint(args.classifier))
    test = load_cifar10(args.data, "test")
    idx = np.random.default_rng(0).choice(len(test), size=args.n, replace=False)
    x = torch.from_numpy(test.images[idx]).permute(0, 3, 1, 2).float() / 255.0
    y = torch.from_numpy(test.labels[idx])
    maps = importance_maps(model, x, y, ImportanceConfig(args.samples, args.sigma, args.clip, args.blur),
                           torch.Generator().manual_seed(0)).numpy()
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    fig, axes = plt.subplots(3, args.n, figsize=(1.6 * args.n, 5.2))
    axes = np.asarray(axes).reshape(3, args.n)
    for j in range(args.n):
        img = test.images[idx[j]]
        axes[0, j].imshow(img)
        axes[0, j].set_title(f"{test.classes[y[j]]}\n(pred {test.classes[pred[j]]})", fontsize=7)
        axes[1, j].imshow(maps[j], cmap="inferno")
        axes[1, j].set_title(f"max {maps[j].max():.1f}x mean", fontsize=7)
        axes[2, j].imshow((img * np.clip(maps[j] / maps[j].max(), 0, 1)[..., None]).astype(np.uint8))
        for a in axes[:, j]:
            a.axis("off")
    fig.suptitle("CIFAR-10 test images, their semantic importance (SmoothGrad |d log p(y|x)/dx|), image x importance",
                 fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")
    return 0
