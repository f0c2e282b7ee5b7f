"""Training configurations (torch-free, so the CLI can show their defaults without importing torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from semjscc.errors import UsageError


@dataclass
class ClassifierConfig:
    epochs: int = 24
    batch: int = 256
    lr: float = 0.2  # peak of the one-cycle schedule (SGD, Nesterov)
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    width: int = 16
    seed: int = 0


@dataclass
class JSCCConfig:
    loss: str = "mse"  # "mse" or "semantic"
    kn: float = 1 / 6
    width: int = 16
    snr_adaptive: bool = True
    snr_min: float = 0.0  # training SNRs drawn uniformly per image from [snr_min, snr_max] dB
    snr_max: float = 20.0
    channel: str = "awgn"
    mix: float = 0.3  # semantic loss: weight = mix + (1 - mix) * importance (the floor)
    epochs: int = 10
    batch: int = 128
    lr: float = 1e-3
    seed: int = 0
    importance_samples: int = 4
    importance_sigma: float = 0.1
    importance_clip: float = 8.0
    importance_blur: float = 1.0


def check_snr_range(lo: float, hi: float) -> None:
    """UsageError unless ``lo`` and ``hi`` (the SNR-adaptive training range, dB) are finite, lo <= hi."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise UsageError(f"--snr-range {lo:g} {hi:g}: both SNRs must be finite numbers of dB")
    if lo > hi:
        raise UsageError(f"--snr-range {lo:g} {hi:g}: LO must not exceed HI (training SNRs are drawn from [LO, HI] "
                         f"dB); did you mean --snr-range {hi:g} {lo:g}?")
