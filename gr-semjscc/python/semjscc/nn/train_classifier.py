"""Train the receiver's classifier (``semjscc train classifier``).

The recipe (``ClassifierConfig``): SGD with Nesterov momentum on a triangular one-cycle learning
rate, label smoothing, weight decay on weights only, random translations and flips, bfloat16
autocast and channels-last memory. 5,000 training images are held out (``split_train_val``, the
same split the deep JSCC models use) and validated after every epoch; the test split is only
touched once, after the last epoch, for the record.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semjscc.data import load_cifar10
from semjscc.nn.classifier import Classifier, FlipAveraged, init_whitening
from semjscc.nn.config import ClassifierConfig
from semjscc.nn.training import (
    EpochTally,
    Runtime,
    StopFlag,
    Timer,
    augment,
    check_checkpoint_path,
    closing_note,
    epoch_batches,
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


def to_tensor(images_u8: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(images_u8).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def accuracy(model: nn.Module, images_u8: np.ndarray, labels: np.ndarray, device: torch.device, batch: int = 1000,
             bf16: bool = False) -> float:
    model.eval()
    correct = 0
    for s in range(0, len(labels), batch):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(to_tensor(images_u8[s : s + batch], device))
        correct += int((logits.argmax(1).cpu().numpy() == labels[s : s + batch]).sum())
    return correct / len(labels)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


class WeightAverage:
    """An exponential moving average of a model's weights and BN statistics (updated after every step),
    the copy that is validated and shipped: it sits in a wider minimum than the last step's weights."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for a, p in zip(self.model.state_dict().values(), model.state_dict().values(), strict=True):
            if a.dtype.is_floating_point:
                a.lerp_(p, 1.0 - self.decay)
            else:
                a.copy_(p)


def check_architecture(config: dict, path: Path) -> None:
    """ModelError unless a checkpoint's config describes today's classifier network."""
    from semjscc.util.errors import ModelError

    arch = config.get("arch", "resnet9")  # checkpoints before the field held the ResNet-9-style net
    if arch != ClassifierConfig().arch:
        raise ModelError(f"{path} holds a classifier of architecture {arch!r}; this version builds "
                         f"{ClassifierConfig().arch!r}: retrain it with `semjscc train classifier`")


def train_classifier(cfg: ClassifierConfig, data: str | None, out: Path, device: str = "auto",
                     resume: bool = True, limit: int | None = None, threads: int | None = None) -> dict:
    check_checkpoint_path(out)  # a full, read-only or FIFO --out fails now, not after the last epoch
    rt: Runtime = setup_runtime(device, threads)
    bf16 = use_bf16(cfg.bf16, rt)
    seed_everything(cfg.seed)
    full = load_cifar10(data, "train").subset(limit)
    tr_idx, va_idx = split_train_val(len(full))
    train_x, train_y = full.images[tr_idx], full.labels[tr_idx]
    val_x, val_y = full.images[va_idx], full.labels[va_idx]
    model = Classifier(width=cfg.width)
    init_whitening(model, to_tensor(train_x[:5000], torch.device("cpu")).contiguous())
    model = model.to(rt.device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(_param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=0.9, nesterov=True)
    steps_per_epoch = (len(train_x) // rt.world) // cfg.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch + 1,
                                                pct_start=cfg.warmup, anneal_strategy="linear", div_factor=10,
                                                final_div_factor=100, cycle_momentum=False)
    start_epoch, history, changes, partial, rng = 0, [], [], None, None
    gen = torch.Generator().manual_seed(cfg.seed)
    if resume and out.exists():
        ck = load_checkpoint(out)
        check_architecture(ck.get("config", {}), out)
        model.load_state_dict(ck.get("model_last", ck["model"]))  # "model": the averaged weights that ship
        opt.load_state_dict(ck["optimizer"])
        start_epoch, history = ck["epoch"], ck.get("history", [])
        changes, partial, rng = ck.get("schedule_changes", []), ck.get("partial"), ck.get("rng")
        done_steps = start_epoch * steps_per_epoch + (partial["step"] if partial else 0)
        old_epochs = ck["config"]["epochs"]
        if old_epochs == cfg.epochs:
            sched.load_state_dict(ck["scheduler"])
        else:
            # A different --epochs on resume reshapes the rest of the one-cycle schedule: the
            # learning rate continues from the new curve's value at the current step.
            sched.last_epoch = done_steps - 1
            sched.step()
            changes.append({"at_epoch": start_epoch, "from_epochs": old_epochs, "to_epochs": cfg.epochs})
        if rng is not None:
            set_rng_state(rng, gen, rt.device)
        if rt.main:
            print(f"{resume_note(out, start_epoch, cfg.epochs, partial, steps_per_epoch)} "
                  f"(lr {opt.param_groups[0]['lr']:.4f})")
    avg = WeightAverage(model, cfg.ema)
    if start_epoch or partial:
        avg.model.load_state_dict(ck["model"])
    ddp = wrap_ddp(model, rt)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    timer = Timer(history[-1]["elapsed_s"] if history else 0.0)

    def save(epoch: int, **more: object) -> Path | None:
        return save_checkpoint(out, kind="classifier", config=asdict(cfg), model=avg.model.state_dict(),
                        model_last=unwrap(ddp).state_dict(),
                        optimizer=opt.state_dict(), scheduler=sched.state_dict(), epoch=epoch, history=history,
                        schedule_changes=changes, rng=rng_state(gen, rt.device), **more)

    with StopFlag() as flag:
        for epoch in range(start_epoch, cfg.epochs):
            ddp.train()
            tally, partial = EpochTally(**partial) if partial else EpochTally(), None  # resuming mid-epoch

            def loss_of(idx: np.ndarray) -> torch.Tensor:
                x = augment(to_tensor(train_x[idx], rt.device), gen, cfg.translate)
                with torch.autocast(rt.device.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = ddp(x.contiguous(memory_format=torch.channels_last))
                return loss_fn(logits.float(), torch.from_numpy(train_y[idx]).to(rt.device))

            def averaged(loss: torch.Tensor) -> None:
                avg.update(unwrap(ddp))

            if not train_epoch(epoch_batches(len(train_x), cfg.batch, epoch, cfg.seed, rt), tally, steps_per_epoch,
                               f"classifier {epoch + 1}/{cfg.epochs}", loss_of, opt, sched, flag, rt,
                               after_step=averaged):
                save_interrupted(save, epoch, tally, steps_per_epoch, out, rt)
                break
            net = avg.model
            row = {"epoch": epoch + 1, "train_loss": tally.mean_loss,
                   "val_acc_last": accuracy(unwrap(ddp), val_x, val_y, rt.device, bf16=bf16),
                   "val_acc": accuracy(net, val_x, val_y, rt.device, bf16=bf16),
                   "val_acc_flip": accuracy(FlipAveraged(net), val_x, val_y, rt.device, bf16=bf16),
                   "elapsed_s": round(timer.elapsed, 1)}
            if epoch + 1 == cfg.epochs:  # the record: measured once, after every choice was made
                test = load_cifar10(data, "test").subset(limit)
                row["test_acc"] = accuracy(net, test.images, test.labels, rt.device)
                row["test_acc_flip"] = accuracy(FlipAveraged(net), test.images, test.labels, rt.device)
            history.append(row)
            if rt.main:
                print(f"epoch {epoch + 1}/{cfg.epochs}: loss {tally.mean_loss:.4f}  val acc {row['val_acc']:.4f} "
                      f"(flip-averaged {row['val_acc_flip']:.4f}, last step {row['val_acc_last']:.4f})  "
                      f"({timer.elapsed:.0f} s)")
                save(epoch + 1)
    note = closing_note(out, history, cfg.epochs, f"semjscc export --classifier {out} --name classifier-mine")
    if note and rt.main:
        print(note)
    return {"history": history, "checkpoint": str(out)}


def load_classifier(path: Path, device: str | torch.device = "cpu") -> Classifier:
    ck = load_checkpoint(path)
    if ck.get("kind") not in ("classifier", "receiver"):
        from semjscc.util.errors import ModelError

        raise ModelError(f"{path} is a {ck.get('kind')!r} checkpoint, not a classifier")
    from semjscc.util.errors import ModelError

    try:
        check_architecture(ck["config"], path)
        model = Classifier(width=int(ck["config"]["width"]))
        model.load_state_dict(ck["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:  # missing keys, wrong shapes
        raise ModelError(f"{path} is not a complete classifier checkpoint of this version ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160]}); retrain it with `semjscc train classifier`") from None
    return model.to(device).eval()
