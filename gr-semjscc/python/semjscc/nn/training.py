"""What every training command shares: device and process group, seeding, batches,
checkpoints that resume, and a progress bar.

Runs on the CPU by default, on a GPU when one is visible, and on several GPUs when launched
with ``torchrun`` (DistributedDataParallel; each rank trains on its own shard of every epoch).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from semjscc.util.devices import check_device
from semjscc.util.errors import UsageError


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_runtime(device: str = "auto", threads: int | None = None) -> Runtime:
    """Pick the device and, under torchrun, join the process group. ``device``: auto, cpu, cuda or
    cuda:N (anything else is a UsageError naming those, before torch sees it)."""
    device = check_device(device)
    if threads:
        torch.set_num_threads(threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device} asked for but torch sees no GPU: use --device cpu")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: torch sees {torch.cuda.device_count()} GPU(s), numbered from 0")
    if world > 1:
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend)
        if device == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
    return Runtime(torch.device(device), rank, world)


def bf16_native(device: torch.device) -> bool:
    """Whether bfloat16 autocast is fast on ``device``. On a CPU it needs AVX512 (oneDNN's bf16
    kernels): on AVX2 alone torch emulates it, measured 18x slower than float32 for the
    classifier's training step on the 2-core reference machine."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # private API: judge by the CPU's vector unit instead
        return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def use_bf16(requested: bool, rt: Runtime) -> bool:
    """The autocast a training run really uses: bfloat16 when asked for and native, float32 (with a
    note) when asked for on hardware that would emulate it. Not a checkpoint setting: a run may
    resume on another machine."""
    if requested and not bf16_native(rt.device):
        if rt.main:
            where = f"CPU ({torch.backends.cpu.get_cpu_capability()})" if rt.device.type == "cpu" else str(rt.device)
            print(f"bfloat16 autocast is emulated on this {where}: training in float32", flush=True)
        return False
    return requested


def wrap_ddp(model: nn.Module, rt: Runtime) -> nn.Module:
    if rt.world == 1:
        return model
    ids = [rt.device.index] if rt.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


VAL_SIZE = 5000  # training images held out for every choice made while training (classifier and JSCC alike)


def split_train_val(n: int, seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and the validation part of a training split of ``n`` images (seeded,
    the same for every model, so no model is validated on images another was trained on); splits of
    at most 2 * VAL_SIZE images (smoke runs) validate on up to 256 of their training images."""
    perm = np.random.default_rng(seed).permutation(n)
    if n <= 2 * VAL_SIZE:
        return np.arange(n), np.sort(perm[:256])
    return np.sort(perm[VAL_SIZE:]), np.sort(perm[:VAL_SIZE])


def epoch_batches(n: int, batch: int, epoch: int, seed: int, rt: Runtime, shuffle: bool = True) -> Iterator[np.ndarray]:
    """Index batches for one epoch: a seeded permutation, sharded across ranks."""
    idx = np.random.default_rng(seed * 100_003 + epoch).permutation(n) if shuffle else np.arange(n)
    idx = idx[rt.rank :: rt.world]
    stop = len(idx) - len(idx) % batch if shuffle else len(idx)  # training drops the ragged tail
    for s in range(0, stop, batch):
        yield idx[s : s + batch]


def augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random ``pad``-pixel-padded (reflecting) crop and horizontal flip on a NCHW batch (on its device)."""
    n = x.shape[0]
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    ar = torch.arange(32)
    rows = (dy[:, None] + ar[None, :]).to(x.device)
    cols = (dx[:, None] + ar[None, :]).to(x.device)
    out = padded[torch.arange(n, device=x.device)[:, None, None, None], torch.arange(x.shape[1], device=x.device)[None, :, None, None],
              rows[:, None, :, None], cols[:, None, None, :]]
    flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(3), out)


# --- checkpoints -------------------------------------------------------------------------------

def check_checkpoint_path(out: Path) -> None:
    """UsageError, before any data is loaded or any epoch trained, unless checkpoints can be written at
    ``out``: a regular file or a new one, in a folder that takes files (not read-only, not a FIFO or a
    device, which would block or be replaced)."""
    if out.exists() and not out.is_file():
        kind = "a directory" if out.is_dir() else "a FIFO" if out.is_fifo() else "a device" if (
            out.is_char_device() or out.is_block_device()) else "not a regular file"
        raise UsageError(f"--out {out} is {kind}, not a checkpoint file: give a file path such as runs/model.pt")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=out.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"cannot write checkpoints next to {out} ({e.strerror}): choose --out on a writable "
                         f"disk") from None


def rescue_path(path: Path) -> Path:
    """Where a checkpoint goes when its own place refuses it mid-run (disk full, remounted read-only)."""
    return Path(tempfile.gettempdir()) / f"semjscc-rescued-{path.name}"


def save_checkpoint(path: Path, **state: Any) -> Path | None:
    """Atomic save: a crash mid-write never leaves a half checkpoint behind. When ``path`` cannot be
    written (a full or read-only disk), the state goes to :func:`rescue_path` instead, or, if that fails
    too, stays in memory for the next try; training goes on either way, and the line printed says where
    the state is. Returns where it was written (None: nowhere)."""
    from semjscc.util.files import atomic_writer

    try:
        with atomic_writer(path, "wb") as f:
            torch.save(state, f)
        return path
    except OSError as e:
        rescue = rescue_path(path)
        try:
            with atomic_writer(rescue, "wb") as f:
                torch.save(state, f)
        except OSError as e2:
            print(f"could not write {path} ({e.strerror}) nor {rescue} ({e2.strerror}): training goes on with "
                  f"its state in memory and tries again after the next epoch; free some space", flush=True)
            return None
        print(f"could not write {path} ({e.strerror}): saved in {rescue} instead; training goes on (move it to "
              f"{path} to resume from it)", flush=True)
        return rescue


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load with ``weights_only=True``: tensors and plain data only, no code. Only a regular file is
    opened (a FIFO would block torch.load for ever)."""
    from semjscc.util.files import check_regular

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"checkpoint {path} not found")
    check_regular(path, what="checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UsageError(f"checkpoint {path} not found") from None
    except Exception as e:
        # torch's own text runs to several lines and suggests weights_only=False: not advice to pass on
        raise UsageError(f"{path} is not a readable gr-semjscc checkpoint: torch.load(weights_only=True) refused it "
                         f"({type(e).__name__}); expected a .pt written by `semjscc train`") from None


class StopFlag:
    """Holds SIGINT/SIGTERM while training: the loop polls :meth:`should_stop` at each batch
    boundary, writes a resumable checkpoint there (see :func:`rng_state`) and leaves the block,
    which then delivers the signal (``KeyboardInterrupt`` under ``semjscc``: exit 130 for Ctrl-C,
    143 for SIGTERM) instead of dying mid-step."""

    def __init__(self) -> None:
        self._held: list[int] = []
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> StopFlag:
        from semjscc.util.stopping import deferred_signals

        self._held = self._stack.enter_context(deferred_signals())
        return self

    @property
    def stop(self) -> bool:
        return bool(self._held)

    def should_stop(self, rt: Runtime) -> bool:
        """Whether to stop now; under torchrun every rank stops at the same batch when any was signalled."""
        if rt.world > 1:
            t = torch.tensor([float(self.stop)], device=rt.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            if t.item() > 0 and not self._held:
                self._held.append(signal.SIGTERM)  # another rank's signal (torchrun passes SIGTERM on)
        return self.stop

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


class DivergedError(UsageError):
    """Training blew up: the checkpoint on disk is left as it was (the last good epoch)."""


def check_not_diverged(history: list[dict], loss: float, epoch: int, factor: float = 4.0) -> None:
    """Refuse to save an epoch whose mean loss rose more than ``factor`` times above the best so far
    (a blow-up, not noise): :class:`DivergedError`, and the checkpoint of the last good epoch stays."""
    best = min((h["train_loss"] for h in history), default=None)
    if not np.isfinite(loss) or (best is not None and loss > factor * best):
        raise DivergedError(f"epoch {epoch}: mean training loss {loss:.4g} against {best:.4g} before: training diverged; "
                       f"the checkpoint of the last good epoch is kept (lower --lr or --clip-grad and start again)")


@dataclass
class EpochTally:
    """How far an epoch has come: batches done, summed loss, samples seen (a checkpoint's ``partial``)."""

    step: int = 0
    total: float = 0.0
    seen: int = 0
    clipped: int = 0  # steps whose gradient norm was clipped

    @property
    def mean_loss(self) -> float:
        return self.total / max(self.seen, 1)


def train_epoch(batches: Iterator[np.ndarray], tally: EpochTally, steps_per_epoch: int, desc: str,
                loss_of: Callable[[np.ndarray], torch.Tensor], opt: torch.optim.Optimizer, sched: Any,
                flag: StopFlag, rt: Runtime, loss_format: str = ".3f", clip_grad: float = 0.0,
                after_step: Callable[[torch.Tensor], None] | None = None) -> bool:
    """One epoch of optimizer steps, the loss of each batch of indices from ``loss_of``, from batch
    ``tally.step`` on (the ones before are skipped: a resumed epoch), with a progress bar. Updates
    ``tally``; returns False when a stop signal ended it early (the caller then checkpoints).
    ``clip_grad`` > 0 clips the gradient norm (counted in ``tally.clipped``); a non-finite loss
    raises :class:`DivergedError` before the step, so the weights stay as they were. ``after_step``
    runs after every optimizer step (weight averaging)."""
    params = [p for g in opt.param_groups for p in g["params"]]
    bar = tqdm(itertools.islice(batches, tally.step, None), total=steps_per_epoch, initial=tally.step, desc=desc,
               disable=not rt.main, leave=False)
    for idx in bar:
        if flag.should_stop(rt):
            break
        loss = loss_of(idx)
        if not torch.isfinite(loss.detach()):
            raise DivergedError(f"the training loss became {float(loss.detach())} at batch {tally.step + 1} of {desc}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, clip_grad)
            tally.clipped += int(norm > clip_grad)
        opt.step()
        sched.step()
        if after_step is not None:
            after_step(loss)
        tally.total += float(loss.detach()) * len(idx)
        tally.seen += len(idx)
        tally.step += 1
        bar.set_postfix(loss=f"{tally.mean_loss:{loss_format}}")
    bar.close()
    return not flag.should_stop(rt)  # every rank asks as often as the others (an all-reduce each)


def save_interrupted(save: Callable[..., Path | None], epoch: int, tally: EpochTally, steps_per_epoch: int,
                     out: Path, rt: Runtime) -> None:
    """The resumable checkpoint of a stopped epoch: ``save(epoch, partial=...)`` at this batch."""
    if rt.main:  # weights, optimizer, schedule, RNG and the position in the epoch at this batch
        where = save(epoch, partial=asdict(tally))
        if where is None:
            print(f"interrupted in epoch {epoch + 1} after batch {tally.step}/{steps_per_epoch}: nothing could be "
                  f"saved (see above)")
            return
        print(f"interrupted in epoch {epoch + 1} after batch {tally.step}/{steps_per_epoch}: saved in {where}; "
              f"run the same command to resume from there" + (f" (after moving it to {out})" if where != out else ""))


def resume_note(out: Path, start_epoch: int, epochs: int, partial: dict | None, steps_per_epoch: int) -> str:
    """What a resumed run says it is doing, in the words of its epoch counter (1-based)."""
    if partial:
        return f"resuming {out}: epoch {start_epoch + 1}/{epochs} from batch {partial['step']}/{steps_per_epoch}"
    if start_epoch >= epochs:
        return f"{out} has all {epochs} epochs already: nothing to train (--fresh starts over, --out elsewhere)"
    return f"resuming {out} after epoch {start_epoch}/{epochs}"


def epoch_line(epoch: int, epochs: int, loss: str, val: str, elapsed: float) -> str:
    """One line per finished epoch; the validation part only on epochs that validated."""
    return f"epoch {epoch}/{epochs}: loss {loss}" + (f"  val {val}" if val else "") + f"  ({elapsed:.0f} s)"


def closing_note(out: Path, history: list[dict], epochs: int, next_step: str) -> str | None:
    """The last line of a run that reached its final epoch: what was written and what to do next
    (None for a run that stopped early: its interruption message already said how to resume)."""
    if not history or history[-1].get("epoch") != epochs:
        return None
    png = out.with_suffix(".png")
    drawn = f" (curves: {png})" if png.exists() else ""
    return f"finished {epochs} epochs in {history[-1].get('elapsed_s', 0):.0f} s: {out}{drawn}; next: {next_step}"


def rng_state(gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    """The random number generators a training step draws from, for an exact mid-epoch resume."""
    state = {"gen": gen.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], gen: torch.Generator, device: torch.device) -> None:
    gen.set_state(state["gen"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def write_json(path: Path, obj: Any) -> None:
    from semjscc.util import files

    files.write_json(path, obj)


class Timer:
    """Seconds since it was made, plus ``offset`` (the time of the runs a resumed training continues)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.t0 = time.perf_counter() - offset

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0
