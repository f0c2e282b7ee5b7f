"""Fine-tune the receiver's classifier on what the channel delivers (``semjscc train receiver``).

A classifier trained on clean images is brittle to the artefacts of a reconstruction: JSCC blur,
codec blocks, a fallback grey. The *receiver* starts from the clean classifier and is fine-tuned
on a mix, in equal shares, of clean training images, the decodes of every deep JSCC model given
(each at its own SNR drawn uniformly in [snr_min, snr_max] dB, AWGN), and separate coding's decodes
(codec + LDPC + QAM at the configuration chosen on validation for the highest grid SNR at or below
the image's SNR, :mod:`semjscc.separate.bank`), so one receiver judges every scheme alike. The clean
classifier is kept: "clean classifier" and "adapted receiver" are the two protocols every result
table reports. Validation (the held-out 5,000 training images) measures each source at 0/10/20 dB.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semjscc.data import load_cifar10
from semjscc.nn.channels import make_channel
from semjscc.nn.config import ReceiverConfig, check_snr_range
from semjscc.nn.train_classifier import (
    WeightAverage,
    _param_groups,
    accuracy,
    check_architecture,
    load_classifier,
    to_tensor,
)
from semjscc.nn.training import (
    EpochTally,
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
    use_bf16,
)
from semjscc.util.errors import UsageError

VAL_SNRS = (0.0, 10.0, 20.0)


def _jscc_models(specs: list[tuple[str, Path]], device: torch.device) -> list[tuple[str, nn.Module]]:
    from semjscc.nn.train_jscc import load_jscc

    out = []
    for label, path in specs:
        model, _ck = load_jscc(path, device)
        for p in model.parameters():
            p.requires_grad_(False)
        out.append((label, model))
    return out


@torch.no_grad()
def _through_jscc(model: nn.Module, x: torch.Tensor, snr: torch.Tensor, channel: nn.Module) -> torch.Tensor:
    """A frozen JSCC arm's decodes, in float32 even when the receiver trains under bf16: the receiver
    must learn the artefacts of the deployed (float32 ONNX) decoder, not bf16 rounding's."""
    return model(x, channel, snr).float().clamp_(0.0, 1.0)


@torch.no_grad()
def _jscc_accuracy(clf: nn.Module, model: nn.Module, images_u8: np.ndarray, labels: np.ndarray, snr: float,
                   device: torch.device, bf16: bool) -> float:
    gen = torch.Generator(device=device).manual_seed(77)
    channel = make_channel("awgn", gen)
    correct = 0
    for s in range(0, len(labels), 500):
        x = to_tensor(images_u8[s : s + 500], device).contiguous()
        y = _through_jscc(model, x, torch.full((len(x),), snr, device=device), channel)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = clf(y.contiguous(memory_format=torch.channels_last)).argmax(1).cpu().numpy()
        correct += int((pred == labels[s : s + 500]).sum())
    return correct / len(labels)


def train_receiver(cfg: ReceiverConfig, data: str | None, out: Path, start: Path, jscc: list[tuple[str, Path]],
                   separate_configs: Path | None, device: str = "auto", resume: bool = True,
                   limit: int | None = None, threads: int | None = None) -> dict:
    from semjscc.phy.symbols import symbols_for_ratio
    from semjscc.separate.bank import decode_bank, load_configs
    from semjscc.util.paths import cache_dir

    check_snr_range(cfg.snr_min, cfg.snr_max)
    if not jscc and separate_configs is None:
        raise UsageError("give the decodes to adapt to: --jscc LABEL=CHECKPOINT (repeatable) and/or "
                         "--separate-configs JSON")
    check_checkpoint_path(out)  # a full, read-only or FIFO --out fails now, not after the last epoch
    rt = setup_runtime(device, threads)
    bf16 = use_bf16(cfg.bf16, rt)
    seed_everything(cfg.seed)
    full = load_cifar10(data, "train").subset(limit)
    tr_idx, va_idx = split_train_val(len(full))
    train_x, train_y = full.images[tr_idx], full.labels[tr_idx]
    val_x, val_y = full.images[va_idx], full.labels[va_idx]
    start_ck = load_checkpoint(start)
    if start_ck.get("kind") != "classifier":
        raise UsageError(f"{start} is a {start_ck.get('kind')!r} checkpoint: --from takes the clean classifier's "
                         f"checkpoint (semjscc train classifier)")
    check_architecture(start_ck["config"], start)
    width = int(start_ck["config"]["width"])
    model = load_classifier(start, rt.device).train().to(memory_format=torch.channels_last)
    arms = _jscc_models(jscc, rt.device)
    ks = {int(m.encoder.k) for _l, m in arms}
    if len(ks) > 1:
        raise UsageError(f"the JSCC models send different symbol counts ({sorted(ks)}): adapt a receiver to one "
                         f"bandwidth ratio")
    n_cu = next(iter(ks)) if ks else symbols_for_ratio(1 / 6)  # separate coding gets the same channel uses
    cfg.sources = ["clean", *(f"jscc:{label}" for label, _m in arms)] + (["separate"] if separate_configs else [])

    # separate coding's share: a bank of decodes of training images at random SNRs (cached), and of
    # 1,000 validation images at each validation SNR
    bank_x = bank_y = None
    val_bank: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    if separate_configs is not None:
        configs = load_configs(separate_configs)
        rng = np.random.default_rng(cfg.seed + 7)
        pick = np.sort(rng.permutation(len(train_x))[: min(cfg.separate_images, len(train_x))])
        snr = rng.uniform(cfg.snr_min, cfg.snr_max, len(pick))
        print(f"separate coding: decoding {len(pick)} training images at random SNRs (cached) ...", flush=True)
        bank_x = decode_bank(train_x[pick], snr, configs, n_cu, seed=cfg.seed,
                             cache=cache_dir() / "receiver")
        bank_y = train_y[pick]
        vpick = np.arange(min(1000, len(val_x)))
        for s in VAL_SNRS:
            val_bank[s] = (decode_bank(val_x[vpick], np.full(len(vpick), s), configs, n_cu,
                                       seed=cfg.seed + 1, cache=cache_dir() / "receiver"), val_y[vpick])

    opt = torch.optim.SGD(_param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=0.9, nesterov=True)
    steps_per_epoch = (len(train_x) // rt.world) // cfg.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch + 1,
                                                pct_start=cfg.warmup, anneal_strategy="linear", div_factor=10,
                                                final_div_factor=100, cycle_momentum=False)
    start_epoch, history, partial, rng_st = 0, [], None, None
    gen = torch.Generator().manual_seed(cfg.seed)
    record = {**asdict(cfg), "width": width, "arch": start_ck["config"].get("arch"), "from": str(start),
              "jscc": {label: str(p) for label, p in jscc},
              "separate_configs": str(separate_configs) if separate_configs else None}
    avg = WeightAverage(model, cfg.ema)
    if resume and out.exists():
        ck = load_checkpoint(out)
        if ck.get("kind") != "receiver" or ck.get("config", {}).get("sources") != cfg.sources:
            raise UsageError(f"{out} holds another training (kind {ck.get('kind')!r}, sources "
                             f"{ck.get('config', {}).get('sources')}); pass --fresh to start over or --out elsewhere")
        model.load_state_dict(ck["model_last"])
        avg.model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start_epoch, history, partial, rng_st = ck["epoch"], ck.get("history", []), ck.get("partial"), ck.get("rng")
        if rng_st is not None:
            set_rng_state(rng_st, gen, rt.device)
        print(resume_note(out, start_epoch, cfg.epochs, partial, steps_per_epoch))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    channel = make_channel("awgn", None)
    n_src = 1 + len(arms) + (1 if bank_x is not None else 0)
    timer = Timer(history[-1]["elapsed_s"] if history else 0.0)

    def save(epoch: int, **more: object) -> Path | None:
        return save_checkpoint(out, kind="receiver", config=record, model=avg.model.state_dict(),
                        model_last=model.state_dict(), optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                        epoch=epoch, history=history, rng=rng_state(gen, rt.device), **more)

    with StopFlag() as flag:
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            torch.manual_seed(cfg.seed * 1000 + epoch)  # channel noise, reproducible on resume
            tally, partial = EpochTally(**partial) if partial else EpochTally(), None

            def loss_of(idx: np.ndarray) -> torch.Tensor:
                src = torch.randint(0, n_src, (len(idx),), generator=gen).numpy()
                x = augment(to_tensor(train_x[idx], rt.device).contiguous(), gen, cfg.translate)
                y = torch.from_numpy(train_y[idx]).to(rt.device)
                for k, (_label, arm) in enumerate(arms, start=1):
                    rows = np.flatnonzero(src == k)
                    if len(rows):
                        snr = cfg.snr_min + (cfg.snr_max - cfg.snr_min) * torch.rand(len(rows), generator=gen)
                        x[rows] = _through_jscc(arm, x[rows].contiguous(), snr.to(rt.device), channel)
                if bank_x is not None:
                    rows = np.flatnonzero(src == n_src - 1)
                    if len(rows):
                        j = torch.randint(0, len(bank_x), (len(rows),), generator=gen).numpy()
                        x[rows] = augment(to_tensor(bank_x[j], rt.device).contiguous(), gen, cfg.translate)
                        y[rows] = torch.from_numpy(bank_y[j]).to(rt.device)
                with torch.autocast(rt.device.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = model(x.contiguous(memory_format=torch.channels_last))
                return loss_fn(logits.float(), y)

            if not train_epoch(epoch_batches(len(train_x), cfg.batch, epoch, cfg.seed, rt), tally, steps_per_epoch,
                               f"receiver {epoch + 1}/{cfg.epochs}", loss_of, opt, sched, flag, rt,
                               after_step=lambda _loss: avg.update(model)):
                save_interrupted(save, epoch, tally, steps_per_epoch, out, rt)
                break
            net = avg.model
            row: dict = {"epoch": epoch + 1, "train_loss": tally.mean_loss,
                         "val_clean": accuracy(net, val_x, val_y, rt.device, bf16=bf16)}
            for label, arm in arms:
                for s in VAL_SNRS:
                    row[f"val_{label}@{s:g}"] = round(_jscc_accuracy(net, arm, val_x, val_y, s, rt.device, bf16), 4)
            for s, (bx, by) in val_bank.items():
                row[f"val_separate@{s:g}"] = accuracy(net, bx, by, rt.device, bf16=bf16)
            row["elapsed_s"] = round(timer.elapsed, 1)
            history.append(row)
            shown = ", ".join(f"{k[4:]} {v:.3f}" for k, v in row.items() if k.startswith("val_"))
            print(f"epoch {epoch + 1}/{cfg.epochs}: loss {tally.mean_loss:.4f}  {shown}  ({timer.elapsed:.0f} s)",
                  flush=True)
            save(epoch + 1)
    note = closing_note(out, history, cfg.epochs, f"semjscc export --classifier {out} --name receiver-mine, then "
                                                  f"re-export the JSCC models with --receiver-dir receiver-mine")
    if note:
        print(note)
    return {"history": history, "checkpoint": str(out), "sources": cfg.sources}
