"""Training configurations (torch-free, so the CLI can show their defaults without importing torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from semjscc.util.errors import UsageError

# The classifier network (semjscc.nn.classifier); a checkpoint of another network is refused.
CLASSIFIER_ARCHITECTURE = "whiten-conv3"


@dataclass
class ClassifierConfig:
    epochs: int = 30
    batch: int = 512
    lr: float = 0.2  # peak of the triangular one-cycle schedule (SGD, Nesterov momentum 0.9)
    warmup: float = 0.2  # fraction of the steps rising to the peak
    weight_decay: float = 5e-4  # on convolution and linear weights, not on BN and biases
    label_smoothing: float = 0.2
    translate: int = 2  # random translation by up to this many pixels (reflect padding), and flips
    width: int = 64
    bf16: bool = True  # bfloat16 autocast (1.6-1.8x on a CPU with AVX512-BF16; float32 where emulated)
    ema: float = 0.998  # weight averaging: decay per step of the averaged copy that is validated and shipped
    seed: int = 0
    arch: str = CLASSIFIER_ARCHITECTURE


# The deep JSCC network (semjscc.nn.jscc); a checkpoint or card of another network is refused.
JSCC_ARCHITECTURE = "gdn-res2"


@dataclass
class JSCCConfig:
    loss: str = "mse"  # "mse" or "semantic"
    kn: float = 1 / 6
    width: int = 32
    snr_adaptive: bool = True
    snr_min: float = 0.0  # training SNRs drawn uniformly per image from [snr_min, snr_max] dB
    snr_max: float = 20.0
    channel: str = "awgn"
    doppler: float | None = None  # ofdm channel: normalised Doppler and the receiver's estimator (None: static, LS)
    mix: float = 0.0  # semantic loss: weight = mix + (1 - mix) * importance (the floor)
    epochs: int = 150
    batch: int = 128
    lr: float = 1e-3  # peak of the one-cycle schedule (Adam); 2e-3 diverged after 13 epochs with GDN
    clip_grad: float = 1.0  # gradient-norm clipping, against the rare spike
    warmup: float = 0.05  # fraction of all steps spent rising to the peak
    bf16: bool = True  # bfloat16 autocast for the convolutions (1.4x with AVX512-BF16; float32 where emulated)
    seed: int = 0
    importance_samples: int = 4
    importance_sigma: float = 0.1
    importance_clip: float = 8.0
    importance_blur: float = 1.0
    # Semantic-loss variants (docs/method.md, "Variants of the semantic loss"); the defaults are the
    # recipe of the k/n = 1/6 models, so their checkpoints resume unchanged.
    importance_power: float = 1.0  # exponent on the blurred map before normalising: > 1 steepens it
    importance_from: str | None = None  # classifier giving the maps (None: the validation classifier)
    importance_on: str = "clean"  # "clean": maps once per training image; "decoded": per batch on the decodes
    task_weight: float = 0.0  # ours, not the paper's: + task_weight * KL(p(clean) || p(decoded)) on the loss
    arch: str = JSCC_ARCHITECTURE


IMPORTANCE_ON = ("clean", "decoded")


def check_semantic_options(cfg: JSCCConfig) -> None:
    """UsageError naming the fix unless the semantic-loss options of ``cfg`` make sense."""
    if not (math.isfinite(cfg.importance_power) and cfg.importance_power > 0):
        raise UsageError(f"--importance-power {cfg.importance_power:g}: the exponent must be a finite number > 0 "
                         f"(1 = the map as it is, 2 = steeper)")
    if not (math.isfinite(cfg.importance_clip) and cfg.importance_clip >= 1):
        raise UsageError(f"--importance-clip {cfg.importance_clip:g}: the clip is a multiple of the map's mean and "
                         f"must be a finite number >= 1 (default 8)")
    if cfg.importance_on not in IMPORTANCE_ON:
        raise UsageError(f"--importance-on {cfg.importance_on!r}: choose one of {', '.join(IMPORTANCE_ON)}")
    if not (math.isfinite(cfg.task_weight) and cfg.task_weight >= 0):
        raise UsageError(f"--task-weight {cfg.task_weight:g}: must be a finite number >= 0 (0 = no task term)")
    if cfg.loss == "mse" and (cfg.importance_from or cfg.importance_on != "clean" or cfg.importance_power != 1.0):
        raise UsageError("--importance-from/--importance-on/--importance-power shape the semantic loss: add "
                         "--loss semantic, or drop them for the MSE arm")


def check_snr_range(lo: float, hi: float) -> None:
    """UsageError unless ``lo`` and ``hi`` (the SNR-adaptive training range, dB) are finite, lo <= hi."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise UsageError(f"--snr-range {lo:g} {hi:g}: both SNRs must be finite numbers of dB")
    if lo > hi:
        raise UsageError(f"--snr-range {lo:g} {hi:g}: LO must not exceed HI (training SNRs are drawn from [LO, HI] "
                         f"dB); did you mean --snr-range {hi:g} {lo:g}?")


@dataclass
class ReceiverConfig:
    epochs: int = 4  # a fine-tune from a converged classifier; 5.5 min per epoch on 2 AVX2 cores
    batch: int = 256
    lr: float = 0.03  # peak of the one-cycle schedule: a fine-tune, well below the clean training's
    warmup: float = 0.2
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    translate: int = 2
    snr_min: float = 0.0
    snr_max: float = 20.0
    separate_images: int = 20000  # training images that also get a separate-coding decode
    bf16: bool = True  # float32 where bfloat16 would be emulated (training.use_bf16)
    ema: float = 0.995
    seed: int = 0
    sources: list[str] = field(default_factory=list)  # filled in: what the mix was made of (for the record)
