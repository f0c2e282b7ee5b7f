"""Train a deep JSCC model with the MSE or the semantic loss (``semjscc train jscc``).

Both losses train the same architecture on the same images, SNR draws and channel, from the
same seed: the only difference is the distortion measure, so accuracy differences are the
loss's doing. 5,000 training images (seeded) are held out as a validation split for any
choice of hyper-parameters; the test split is never looked at during training.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from semjscc.data import load_cifar10
from semjscc.nn.channels import channel_options, make_channel
from semjscc.nn.config import JSCCConfig, check_semantic_options, check_snr_range
from semjscc.nn.importance import ImportanceConfig, cached_importance, importance_maps
from semjscc.nn.jscc import JSCC
from semjscc.nn.losses import mse_loss, semantic_loss, task_loss
from semjscc.nn.training import (
    EpochTally,
    StopFlag,
    Timer,
    check_checkpoint_path,
    check_not_diverged,
    closing_note,
    epoch_batches,
    epoch_line,
    load_checkpoint,
    resume_note,
    rng_state,
    save_checkpoint,
    save_interrupted,
    seed_everything,
    set_rng_state,
    setup_runtime,
    split_train_val,
    train_epoch,
    unwrap,
    use_bf16,
    wrap_ddp,
)
from semjscc.util.errors import UsageError

VAL_SNRS = (0.0, 5.0, 10.0, 20.0)  # 0/5/10: the mean the semantic-vs-MSE goal is judged on


def _batch_tensor(images_u8: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(images_u8).to(device).permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def validate(model: JSCC, images_u8: np.ndarray, labels: np.ndarray, classifier: torch.nn.Module | None,
             channel_name: str, device: torch.device, snrs: tuple[float, ...] = VAL_SNRS,
             doppler: float | None = None, receiver: torch.nn.Module | None = None) -> dict:
    """Mean PSNR and SSIM of the reconstructions, and the classifier's accuracy on them when one is
    given (``acc@SNR``; the receiver's as ``racc@SNR``), at each of ``snrs`` over ``channel_name``
    (fixed noise seed: runs compare like for like)."""
    from semjscc.data.metrics import ssim

    model.eval()
    gen = torch.Generator(device=device).manual_seed(99)
    channel = make_channel(channel_name, gen, **channel_options(channel_name, doppler))
    out = {}
    for snr in snrs:
        se, ss, correct, rcorrect = 0.0, 0.0, 0, 0
        for s in range(0, len(labels), 500):
            x = _batch_tensor(images_u8[s : s + 500], device)
            x_hat = model(x, channel, torch.full((x.shape[0],), snr, device=device))
            se += float((x - x_hat).square().mean(dim=(1, 2, 3)).clamp_min(1e-10).log10().sum())
            ss += float(ssim(x.cpu().numpy(), x_hat.cpu().numpy()).sum())
            if classifier is not None:
                correct += int((classifier(x_hat).argmax(1).cpu().numpy() == labels[s : s + 500]).sum())
            if receiver is not None:
                rcorrect += int((receiver(x_hat).argmax(1).cpu().numpy() == labels[s : s + 500]).sum())
        out[f"psnr@{snr:g}"] = round(-10.0 * se / len(labels), 3)
        out[f"ssim@{snr:g}"] = round(ss / len(labels), 4)
        if classifier is not None:
            out[f"acc@{snr:g}"] = round(correct / len(labels), 4)
        if receiver is not None:
            out[f"racc@{snr:g}"] = round(rcorrect / len(labels), 4)
    return out


def plot_history(history: list[dict], path: Path, title: str) -> None:
    """Training loss and the validation curves of a checkpoint's history, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot([h["epoch"] for h in history], [h["train_loss"] for h in history])
    axes[0].set(xlabel="epoch", ylabel="training loss", yscale="log", title="loss")
    for ax, key, label in ((axes[1], "psnr", "PSNR (dB)"), (axes[2], "acc", "accuracy")):
        for snr in VAL_SNRS:
            pts = [(h["epoch"], h[f"{key}@{snr:g}"]) for h in history if f"{key}@{snr:g}" in h]
            if pts:
                ax.plot(*zip(*pts, strict=True), "o-", ms=3, label=f"{snr:g} dB")
        ax.set(xlabel="epoch", ylabel=label, title=f"validation {label}")
        if ax.lines:
            ax.legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def check_architecture(config: dict, path: Path) -> None:
    """ModelError unless a checkpoint's config describes today's network."""
    from semjscc.util.errors import ModelError

    arch = config.get("arch", "conv5")  # checkpoints before the field held the plain five-convolution net
    if arch != JSCCConfig().arch:
        raise ModelError(f"{path} holds a deep JSCC of architecture {arch!r}; this version builds "
                         f"{JSCCConfig().arch!r}: retrain it with `semjscc train jscc` (or use the version that made it)")


def train_jscc(cfg: JSCCConfig, data: str | None, out: Path, classifier_path: Path | None, device: str = "auto",
               resume: bool = True, limit: int | None = None, threads: int | None = None,
               val_every: int = 5, receiver_path: Path | None = None) -> dict:
    """Train (or resume) ``out``. ``classifier_path`` gives the validation accuracy and, unless
    ``cfg.importance_from`` names another classifier, the semantic loss's importance maps and the
    task term's predictions; ``receiver_path`` adds a second validation accuracy (``racc@SNR``).
    Validation runs every ``val_every`` epochs and after the last, and its curves are drawn next to
    the checkpoint (``out`` with ``.png``)."""
    from semjscc.nn.train_classifier import load_classifier

    if cfg.loss not in ("mse", "semantic"):
        raise UsageError(f"--loss must be mse or semantic, not {cfg.loss!r}")
    check_semantic_options(cfg)
    if cfg.loss == "semantic" and classifier_path is None and not cfg.importance_from:
        raise UsageError("the semantic loss needs --classifier CHECKPOINT (its gradients give the importance maps)")
    check_snr_range(cfg.snr_min, cfg.snr_max)  # before the device, the data and the importance maps
    judge_path = Path(cfg.importance_from) if cfg.importance_from else classifier_path
    if judge_path is None and cfg.task_weight > 0:
        raise UsageError("--task-weight needs --classifier CHECKPOINT (its predictions on clean and decoded images)")
    check_checkpoint_path(out)  # a full, read-only or FIFO --out fails now, not after the last epoch
    rt = setup_runtime(device, threads)
    bf16 = use_bf16(cfg.bf16, rt)
    seed_everything(cfg.seed)
    full = load_cifar10(data, "train").subset(limit)
    tr_idx, va_idx = split_train_val(len(full))
    train_x, train_y = full.images[tr_idx], full.labels[tr_idx]
    val_x, val_y = full.images[va_idx], full.labels[va_idx]

    if resume and out.exists():
        done = load_checkpoint(out)  # a finished run says so before the minutes of importance maps below
        if done.get("epoch", 0) >= cfg.epochs and not done.get("partial") and \
                {**asdict(JSCCConfig()), **done.get("config", {})} == asdict(cfg):
            if rt.main:
                print(resume_note(out, done["epoch"], cfg.epochs, None, 0))
            return {"history": done.get("history", []), "checkpoint": str(out)}
    classifier = load_classifier(classifier_path, rt.device) if classifier_path is not None else None
    receiver = load_classifier(receiver_path, rt.device) if receiver_path is not None else None
    # the judge: the classifier whose gradients weight the pixels and whose predictions the task term keeps
    judge = classifier if judge_path == classifier_path else load_classifier(judge_path, rt.device)
    if judge is not None:
        judge.requires_grad_(False)  # only the JSCC learns; gradients reach the decode through a frozen judge
    importance = None
    icfg = ImportanceConfig(cfg.importance_samples, cfg.importance_sigma, cfg.importance_clip,
                            cfg.importance_blur, power=cfg.importance_power)
    # on decodes: one plain gradient per image (the decode already carries the channel's noise)
    icfg_decoded = ImportanceConfig(1, 0.0, cfg.importance_clip, cfg.importance_blur, power=cfg.importance_power)
    if cfg.loss == "semantic" and cfg.importance_on == "clean":
        importance = cached_importance(judge, judge_path, train_x, train_y, icfg,
                                       tag=f"train{len(train_x)}", device=rt.device)

    model = JSCC(cfg.kn, cfg.width, cfg.snr_adaptive).to(rt.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = (len(train_x) // rt.world) // cfg.batch
    # one cycle over the whole planned length: a short warm-up, then cosine decay to lr / 1e4
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch + 1,
                                                pct_start=cfg.warmup)
    start_epoch, history, partial, rng, changes = 0, [], None, None, []
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    if resume and out.exists():
        ck = load_checkpoint(out)
        check_architecture(ck.get("config", {}), out)
        old = {**asdict(JSCCConfig()), **ck.get("config", {})}  # keys added later take defaults
        retune = ("lr", "clip_grad")  # may change on resume (after a blow-up): recorded, not refused
        if {k: v for k, v in old.items() if k not in retune} != {k: v for k, v in asdict(cfg).items() if k not in retune}:
            diff = ", ".join(f"{k} {old[k]!r} -> {v!r}" for k, v in asdict(cfg).items() if old.get(k) != v)
            raise UsageError(f"{out} was trained with other settings ({diff}); run with the checkpoint's settings to "
                             f"resume, or pass --fresh to start over, or --out elsewhere")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start_epoch, history, partial, rng = ck["epoch"], ck.get("history", []), ck.get("partial"), ck.get("rng")
        changes = ck.get("schedule_changes", [])
        if old["lr"] != cfg.lr or old["clip_grad"] != cfg.clip_grad:
            # the rest of the one-cycle schedule is scaled to the new peak
            for g in opt.param_groups:
                for key in ("lr", "initial_lr", "max_lr", "min_lr"):
                    if key in g:
                        g[key] *= cfg.lr / old["lr"]
            changes.append({"at_epoch": start_epoch, "lr": [old["lr"], cfg.lr], "clip_grad": [old["clip_grad"],
                                                                                           cfg.clip_grad]})
        if rng is not None:
            set_rng_state(rng, gen, rt.device)
        if rt.main:
            print(resume_note(out, start_epoch, cfg.epochs, partial, steps_per_epoch))
    ddp = wrap_ddp(model, rt)
    channel = make_channel(cfg.channel, None, **channel_options(cfg.channel, cfg.doppler))
    timer = Timer(history[-1]["elapsed_s"] if history else 0.0)  # training time summed over resumes

    def save(epoch: int, **more: object) -> Path | None:
        return save_checkpoint(out, kind="jscc", config=asdict(cfg), model=unwrap(ddp).state_dict(),
                        optimizer=opt.state_dict(), scheduler=sched.state_dict(), epoch=epoch, history=history,
                        classifier=str(classifier_path) if classifier_path else None, schedule_changes=changes,
                        rng=rng_state(gen, rt.device), **more)

    with StopFlag() as flag:
        for epoch in range(start_epoch, cfg.epochs):
            ddp.train()
            torch.manual_seed(cfg.seed * 1000 + epoch)  # channel noise, reproducible on resume
            tally = EpochTally()
            if partial is not None:  # resuming mid-epoch: skip the batches done, draw on from where it stopped
                tally, partial = EpochTally(**partial), None
                if rng is not None:
                    set_rng_state(rng, gen, rt.device)

            def loss_of(idx: np.ndarray) -> torch.Tensor:
                x = _batch_tensor(train_x[idx], rt.device)
                flip = torch.rand(len(idx), generator=gen) < 0.5
                x = torch.where(flip.to(rt.device)[:, None, None, None], x.flip(3), x)
                snr = cfg.snr_min + (cfg.snr_max - cfg.snr_min) * torch.rand(len(idx), generator=gen)
                x_hat = ddp(x, channel, snr.to(rt.device))
                if cfg.loss == "mse":
                    loss = mse_loss(x, x_hat)
                elif importance is not None:
                    w = torch.from_numpy(importance[idx].astype(np.float32)).to(rt.device)
                    loss = semantic_loss(x, x_hat, torch.where(flip.to(rt.device)[:, None, None], w.flip(2), w), cfg.mix)
                else:  # maps of this very decode: where the judge looks at what the decoder made now
                    y = torch.from_numpy(train_y[idx]).to(rt.device)
                    with torch.autocast(rt.device.type, enabled=False):
                        w = importance_maps(judge, x_hat.detach().float(), y, icfg_decoded)
                    loss = semantic_loss(x, x_hat, w, cfg.mix)
                if cfg.task_weight > 0:
                    with torch.no_grad():
                        clean_logits = judge(x)
                    loss = loss + cfg.task_weight * task_loss(clean_logits, judge(x_hat))
                return loss

            def loss_of_autocast(idx: np.ndarray) -> torch.Tensor:
                with torch.autocast(rt.device.type, dtype=torch.bfloat16, enabled=bf16):
                    return loss_of(idx)

            if not train_epoch(epoch_batches(len(train_x), cfg.batch, epoch, cfg.seed, rt), tally, steps_per_epoch,
                               f"{cfg.loss} jscc {epoch + 1}/{cfg.epochs}", loss_of_autocast, opt, sched, flag, rt,
                               ".5f", cfg.clip_grad):
                save_interrupted(save, epoch, tally, steps_per_epoch, out, rt)
                break
            check_not_diverged(history, tally.mean_loss, epoch + 1)
            last = epoch + 1 == cfg.epochs
            val = validate(unwrap(ddp), val_x, val_y, classifier, cfg.channel, rt.device, doppler=cfg.doppler,
                           receiver=receiver) if last or (epoch + 1) % val_every == 0 else {}
            history.append({"epoch": epoch + 1, "train_loss": tally.mean_loss, **val, "clipped": tally.clipped,
                            "lr": opt.param_groups[0]["lr"], "elapsed_s": round(timer.elapsed, 1)})
            if rt.main:
                print(epoch_line(epoch + 1, cfg.epochs, f"{tally.mean_loss:.5f}", str(val) if val else "", timer.elapsed))
                save(epoch + 1)
                if val:
                    plot_history(history, out.with_suffix(".png"), f"{cfg.loss} deep JSCC, k/n {cfg.kn:.4g}, "
                                                                   f"width {cfg.width} ({out.name})")
    name = f"jscc-{cfg.loss}-kn{round(1 / cfg.kn)}-mine"
    note = closing_note(out, history, cfg.epochs, f"semjscc export --jscc {out} --classifier-dir classifier "
                                                  f"--receiver-dir receiver --name {name}")
    if note and rt.main:
        print(note)
    return {"history": history, "checkpoint": str(out)}


def load_jscc(path: Path, device: str | torch.device = "cpu") -> tuple[JSCC, dict]:
    from semjscc.util.errors import ModelError

    ck = load_checkpoint(path)
    if ck.get("kind") != "jscc":
        raise ModelError(f"{path} is a {ck.get('kind')!r} checkpoint, not a deep JSCC model")
    try:
        c = ck["config"]
        check_architecture(c, path)
        model = JSCC(float(c["kn"]), int(c["width"]), bool(c["snr_adaptive"]))
        model.load_state_dict(ck["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:  # missing keys, wrong shapes
        raise ModelError(f"{path} is not a complete deep JSCC checkpoint of this version ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160]}); retrain it with `semjscc train jscc`") from None
    return model.to(device).eval(), ck
