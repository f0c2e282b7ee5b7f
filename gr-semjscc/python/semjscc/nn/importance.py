"""Semantic importance of pixels, from the classifier's gradients.

For image x with true label y, the importance of pixel (h, w) is (SmoothGrad, Smilkov 2017)

    g(h, w) = (1/n) sum_i sum_c | d log p(y | x + e_i) / d x_{c,h,w} |,   e_i ~ N(0, sigma^2)

- the true-class *log-probability* rather than the logit: it also counts pixels that would
  push the image towards a competing class;
- absolute value: a pixel matters whichever way changing it hurts;
- summed over the RGB channels: the loss weights a spatial position, all three colours alike;
- SmoothGrad (n noisy copies) removes the speckle of raw gradients, which otherwise marks
  isolated pixels rather than object regions; a Gaussian blur (``blur`` px std) then turns
  what remains into regions, the scale at which a decoder can move its errors around;
- optionally raised to a power (``power`` > 1 steepens the weighting: regions the classifier
  relies on gain weight against the rest before the clip applies);
- normalised to mean 1 per image, then clipped at ``clip`` times the mean and renormalised,
  so a few extreme pixels cannot take the whole loss. The floor (no pixel at zero weight) is
  applied in the loss through its ``mix`` factor (``semjscc.nn.losses``).

The gradient pass is the expensive part: its raw result (normalised to mean 1 per image) is computed
once per (classifier, images, SmoothGrad parameters) and cached as float16; blur, power and clip are
applied on loading (a second or so), so variants of the map share one gradient pass.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from semjscc.util.files import atomic_writer, save_npy
from semjscc.util.paths import cache_dir
from semjscc.zoo.card import sha256_file


@dataclass(frozen=True)
class ImportanceConfig:
    samples: int = 4  # SmoothGrad copies
    sigma: float = 0.1  # noise std, pixels in [0, 1]
    clip: float = 8.0  # max weight, in multiples of the image's mean
    blur: float = 1.0  # Gaussian std in pixels; 0 turns it off
    seed: int = 0
    power: float = 1.0  # exponent on the blurred map before normalising


def raw_key(cfg: ImportanceConfig) -> str:
    """The parameters of the gradient pass (what the raw cache depends on); blur, power and clip
    shape the map afterwards and are not part of it."""
    return f"smoothgrad samples={cfg.samples} sigma={cfg.sigma!r} seed={cfg.seed}"


def importance_maps(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: ImportanceConfig,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 3, H, W) images in [0, 1] -> (B, H, W) maps, mean 1 per image."""
    return shape_map(raw_importance(model, images, labels, cfg, generator), cfg)


def raw_importance(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: ImportanceConfig,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """The SmoothGrad sum of |d log p(y|x)/dx| over colours, (B, H, W), before any shaping."""
    model.eval()
    acc = torch.zeros(images.shape[0], images.shape[2], images.shape[3], device=images.device)
    for _ in range(cfg.samples):
        noisy = images + cfg.sigma * torch.randn(images.shape, generator=generator, device=images.device)
        x = noisy.detach().requires_grad_(True)
        logp = torch.log_softmax(model(x), dim=1).gather(1, labels.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(logp, x)
        acc += grad.abs().sum(dim=1)
    return acc


def shape_map(raw: torch.Tensor, cfg: ImportanceConfig) -> torch.Tensor:
    """Raw gradient magnitudes (B, H, W) -> weights: blurred, raised to ``cfg.power``, mean 1, clipped."""
    m = gaussian_blur(raw, cfg.blur)
    if cfg.power != 1.0:
        m = (m / m.mean(dim=(1, 2), keepdim=True).clamp_min(1e-12)).pow(cfg.power)
    return normalise(m, cfg.clip)


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur (B, H, W) maps with a (6 sigma + 1)-tap Gaussian, reflecting at the borders."""
    if sigma <= 0:
        return maps
    r = max(1, round(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=maps.dtype, device=maps.device)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    x = torch.nn.functional.pad(maps[:, None], (r, r, r, r), mode="reflect")
    x = torch.nn.functional.conv2d(x, g.view(1, 1, 1, -1))
    x = torch.nn.functional.conv2d(x, g.view(1, 1, -1, 1))
    return x[:, 0]


def normalise(maps: torch.Tensor, clip: float) -> torch.Tensor:
    m = maps / maps.mean(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    m = m.clamp(max=clip)
    return m / m.mean(dim=(1, 2), keepdim=True)


def cached_importance(model: nn.Module, classifier_path: Path, images_u8: np.ndarray, labels: np.ndarray,
                      cfg: ImportanceConfig, tag: str, batch: int = 500, device: str | torch.device = "cpu") -> np.ndarray:
    """Importance maps for a whole split as float16 (N, H, W), from the cache when present.

    ``tag`` names the data (e.g. the dataset split); the key also covers the classifier's
    bytes, the images' content and the parameters, so a changed input never reuses a stale map."""
    h = hashlib.sha256()
    h.update(sha256_file(classifier_path).encode())
    h.update(raw_key(cfg).encode())
    h.update(images_u8[:: max(1, len(images_u8) // 64)].tobytes())
    h.update(str(images_u8.shape).encode())
    path = cache_dir() / "importance" / f"{tag}-raw-{h.hexdigest()[:16]}.npy"
    raw = None
    if path.exists():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == images_u8.shape[:3] and cached.dtype == np.float16 and np.isfinite(cached).all():
                raw = cached
        except (OSError, ValueError, EOFError):
            pass  # damaged: computed again below
    if raw is None:
        raw = _raw_pass(model, images_u8, labels, cfg, tag, batch, device, path)
    out = np.empty(images_u8.shape[:3], dtype=np.float16)
    for s in range(0, len(raw), 2000):
        out[s : s + 2000] = shape_map(torch.from_numpy(raw[s : s + 2000].astype(np.float32)), cfg).numpy()
    return out


def _raw_pass(model: nn.Module, images_u8: np.ndarray, labels: np.ndarray, cfg: ImportanceConfig, tag: str,
              batch: int, device: str | torch.device, path: Path) -> np.ndarray:
    """Raw maps of a whole split, each normalised to mean 1 (float16 keeps them in range; shaping is
    scale-free), written to ``path``. The pass takes minutes, so it keeps its progress beside ``path``
    after every batch (the maps so far and the noise generator's state): a run stopped in it (Ctrl-C,
    SIGTERM, a crash) continues where it stopped, with the same noise, instead of starting over. A cache
    that cannot be written only costs the resume."""
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    shape = images_u8.shape[:3]
    partial, progress = path.with_name(path.stem + ".partial.npy"), path.with_name(path.stem + ".progress.npz")
    out, done = _open_partial(partial, progress, shape, batch, gen)
    if out is None:
        out, done = np.empty(shape, dtype=np.float16), 0
    elif done:
        print(f"importance maps ({tag}): continuing at image {done}/{shape[0]} from an interrupted run", flush=True)
    bar = tqdm(range(done, len(labels), batch), desc=f"importance maps ({tag})", leave=False,
               total=-(-len(labels) // batch), initial=done // batch)
    for s in bar:
        x = torch.from_numpy(images_u8[s : s + batch]).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        y = torch.from_numpy(labels[s : s + batch]).to(device)
        raw = raw_importance(model, x, y, cfg, gen)
        out[s : s + batch] = (raw / raw.mean(dim=(1, 2), keepdim=True).clamp_min(1e-30)).cpu().numpy().astype(np.float16)
        if isinstance(out, np.memmap):
            out.flush()
            with contextlib.suppress(OSError), atomic_writer(progress, "wb") as f:
                np.savez(f, done=np.int64(min(s + batch, len(labels))), batch=np.int64(batch),
                         gen=gen.get_state().numpy())
    result = np.array(out)
    with contextlib.suppress(OSError):  # a read-only or full cache only costs time
        save_npy(path, result)
        for p in (progress, partial):
            p.unlink(missing_ok=True)
    return result


def _open_partial(partial: Path, progress: Path, shape: tuple[int, ...], batch: int,
                  gen: torch.Generator) -> tuple[np.ndarray | None, int]:
    """The memory-mapped maps of an earlier, interrupted pass and how many images it finished (its
    generator state restored into ``gen``), or a fresh map file; (None, 0) where none can be written."""
    try:
        partial.parent.mkdir(parents=True, exist_ok=True)
        if partial.is_file() and progress.is_file():
            with contextlib.suppress(OSError, ValueError, KeyError, EOFError, RuntimeError):
                with np.load(progress, allow_pickle=False) as st:
                    done, state = int(st["done"]), torch.from_numpy(np.array(st["gen"], dtype=np.uint8))
                    same_batches = int(st["batch"]) == batch  # the noise is drawn a batch at a time
                mm = np.lib.format.open_memmap(partial, mode="r+")
                if same_batches and mm.shape == shape and mm.dtype == np.float16 and 0 <= done <= shape[0]:
                    gen.set_state(state)
                    return mm, done
        progress.unlink(missing_ok=True)
        return np.lib.format.open_memmap(partial, mode="w+", dtype=np.float16, shape=shape), 0
    except OSError:
        return None, 0
