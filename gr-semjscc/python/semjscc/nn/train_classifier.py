"""Train the receiver's classifier (``semjscc train classifier``)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semjscc.data import load_cifar10
from semjscc.nn.classifier import Classifier
from semjscc.nn.config import ClassifierConfig
from semjscc.nn.training import (
    EpochTally,
    Runtime,
    StopFlag,
    Timer,
    augment,
    epoch_batches,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    save_interrupted,
    seed_everything,
    set_rng_state,
    setup_runtime,
    train_epoch,
    unwrap,
    wrap_ddp,
)


def to_tensor(images_u8: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(images_u8).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def accuracy(model: nn.Module, images_u8: np.ndarray, labels: np.ndarray, device: torch.device, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    for s in range(0, len(labels), batch):
        pred = model(to_tensor(images_u8[s : s + batch], device)).argmax(1).cpu().numpy()
        correct += int((pred == labels[s : s + batch]).sum())
    return correct / len(labels)


def train_classifier(cfg: ClassifierConfig, data: str | None, out: Path, device: str = "auto",
                     resume: bool = True, limit: int | None = None) -> dict:
    rt: Runtime = setup_runtime(device)
    seed_everything(cfg.seed)
    train = load_cifar10(data, "train").subset(limit)
    test = load_cifar10(data, "test").subset(limit)
    model = Classifier(width=cfg.width).to(rt.device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    steps_per_epoch = (len(train) // rt.world) // cfg.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(1, cfg.epochs * steps_per_epoch),
                                                pct_start=0.25, anneal_strategy="linear")
    start_epoch, history, changes, partial, rng = 0, [], [], None, None
    gen = torch.Generator().manual_seed(cfg.seed)
    if resume and out.exists():
        ck = load_checkpoint(out)
        model.load_state_dict(ck["model"])
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
            where = f", batch {partial['step']}/{steps_per_epoch} of epoch {start_epoch + 1}" if partial else ""
            print(f"resuming {out} at epoch {start_epoch}/{cfg.epochs}{where} (lr {opt.param_groups[0]['lr']:.4f})")
    ddp = wrap_ddp(model, rt)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    timer = Timer()

    def save(epoch: int, **more: object) -> None:
        save_checkpoint(out, kind="classifier", config=asdict(cfg), model=unwrap(ddp).state_dict(),
                        optimizer=opt.state_dict(), scheduler=sched.state_dict(), epoch=epoch, history=history,
                        schedule_changes=changes, rng=rng_state(gen, rt.device), **more)

    with StopFlag() as flag:
        for epoch in range(start_epoch, cfg.epochs):
            ddp.train()
            tally, partial = EpochTally(**partial) if partial else EpochTally(), None  # resuming mid-epoch

            def loss_of(idx: np.ndarray) -> torch.Tensor:
                x = augment(to_tensor(train.images[idx], rt.device), gen)
                return loss_fn(ddp(x), torch.from_numpy(train.labels[idx]).to(rt.device))

            if not train_epoch(epoch_batches(len(train), cfg.batch, epoch, cfg.seed, rt), tally, steps_per_epoch,
                               f"classifier {epoch + 1}/{cfg.epochs}", loss_of, opt, sched, flag, rt):
                save_interrupted(save, epoch, tally, steps_per_epoch, out, rt)
                break
            acc = accuracy(unwrap(ddp), test.images, test.labels, rt.device)
            history.append({"epoch": epoch + 1, "train_loss": tally.mean_loss, "test_acc": acc,
                            "elapsed_s": round(timer.elapsed, 1)})
            if rt.main:
                print(f"epoch {epoch + 1}/{cfg.epochs}: loss {tally.mean_loss:.4f}  test acc {acc:.4f}  "
                      f"({timer.elapsed:.0f} s)")
                save(epoch + 1)
    return {"history": history, "checkpoint": str(out)}


def load_classifier(path: Path, device: str | torch.device = "cpu") -> Classifier:
    ck = load_checkpoint(path)
    if ck.get("kind") != "classifier":
        from semjscc.errors import ModelError

        raise ModelError(f"{path} is a {ck.get('kind')!r} checkpoint, not a classifier")
    model = Classifier(width=ck["config"]["width"])
    model.load_state_dict(ck["model"])
    return model.to(device).eval()
