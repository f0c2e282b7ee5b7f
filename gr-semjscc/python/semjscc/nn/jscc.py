"""Deep JSCC encoder and decoder (Bourtsoulatze et al. 2019 style, with ADJSCC-style SNR
attention so one model serves a range of SNRs).

Encoder: five 5x5 convolutions (two with stride 2) with PReLU, 32x32x3 pixels -> 8x8xC real
values, paired into ``k = 8*8*C/2`` complex channel symbols and scaled so that the average
symbol power of *each image* is exactly 1. The bandwidth ratio is k/n with n = 3*32*32 real
source values: C = 16 gives 512 symbols (k/n = 1/6), C = 8 gives 256 (k/n = 1/12).

SNR adaptation (Xu et al., ADJSCC 2021): after each convolution an attention module pools the
feature map, appends the channel SNR (dB) and predicts a per-channel gain in (0, 1); with
``snr_adaptive=False`` the modules are absent and the SNR input is ignored, so both variants
share one interface: ``encoder(images, snr_db)``, ``decoder(symbols, snr_db)``.
"""

from __future__ import annotations

import torch
from torch import nn

from semjscc.imaging import IMAGE_SHAPE

SOURCE_DIM = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]  # n = 3072 real values
LATENT_HW = 8  # two stride-2 stages: 32 -> 8


def channels_for_ratio(kn: float) -> int:
    """Latent channels C giving bandwidth ratio k/n (k complex symbols, n real pixels)."""
    c = kn * SOURCE_DIM * 2 / (LATENT_HW * LATENT_HW)
    if abs(c - round(c)) > 1e-9 or round(c) < 2 or round(c) % 2:
        raise ValueError(f"k/n = {kn} does not give an even whole number of latent channels (got {c})")
    return round(c)


def symbols_for_ratio(kn: float) -> int:
    return channels_for_ratio(kn) * LATENT_HW * LATENT_HW // 2


class SNRAttention(nn.Module):
    """Channel-wise gains from pooled features and the SNR (ADJSCC's attention feature module)."""

    def __init__(self, ch: int, hidden: int = 16) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(ch + 1, hidden), nn.ReLU(), nn.Linear(hidden, ch), nn.Sigmoid())

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        ctx = torch.cat([x.mean(dim=(2, 3)), snr_db.view(-1, 1).to(x.dtype)], dim=1)
        return x * self.mlp(ctx)[:, :, None, None]


class _Stage(nn.Module):
    def __init__(self, conv: nn.Module, ch: int, act: bool, adaptive: bool) -> None:
        super().__init__()
        self.conv = conv
        self.act = nn.PReLU(ch) if act else nn.Identity()
        self.att = SNRAttention(ch) if adaptive else None

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv(x))
        return self.att(x, snr_db) if self.att is not None else x


def power_normalize(z: torch.Tensor) -> torch.Tensor:
    """Complex (B, k) -> same with mean |z|^2 = 1 per image (the transmitter's power constraint)."""
    power = z.real.square().add(z.imag.square()).mean(dim=1, keepdim=True)
    return z / torch.sqrt(power.clamp_min(1e-12))


class Encoder(nn.Module):
    """Images (B, 3, 32, 32) in [0, 1] + SNR dB (B,) -> complex symbols (B, k) with unit power.

    Symbols are returned as a real tensor (B, k, 2) = (real, imag): ONNX has no complex type."""

    def __init__(self, kn: float = 1 / 6, width: int = 32, snr_adaptive: bool = True) -> None:
        super().__init__()
        c, w = channels_for_ratio(kn), width
        self.kn, self.k = kn, symbols_for_ratio(kn)
        convs = [
            (nn.Conv2d(3, w, 5, 2, 2), w, True),
            (nn.Conv2d(w, 2 * w, 5, 2, 2), 2 * w, True),
            (nn.Conv2d(2 * w, 2 * w, 5, 1, 2), 2 * w, True),
            (nn.Conv2d(2 * w, 2 * w, 5, 1, 2), 2 * w, True),
            (nn.Conv2d(2 * w, c, 5, 1, 2), c, False),
        ]
        self.stages = nn.ModuleList(_Stage(m, ch, act, snr_adaptive and act) for m, ch, act in convs)

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        x = x * 2.0 - 1.0  # centre the pixels
        for s in self.stages:
            x = s(x, snr_db)
        b = x.shape[0]
        z = x.reshape(b, 2, self.k)  # first half real, second half imaginary
        zc = power_normalize(torch.complex(z[:, 0], z[:, 1]))
        return torch.stack([zc.real, zc.imag], dim=-1)


class Decoder(nn.Module):
    """Received (equalised) symbols (B, k, 2) + SNR dB (B,) -> images (B, 3, 32, 32) in [0, 1]."""

    def __init__(self, kn: float = 1 / 6, width: int = 32, snr_adaptive: bool = True) -> None:
        super().__init__()
        c, w = channels_for_ratio(kn), width
        self.kn, self.k, self.c = kn, symbols_for_ratio(kn), c
        convs = [
            (nn.ConvTranspose2d(c, 2 * w, 5, 1, 2), 2 * w, True),
            (nn.ConvTranspose2d(2 * w, 2 * w, 5, 1, 2), 2 * w, True),
            (nn.ConvTranspose2d(2 * w, 2 * w, 5, 1, 2), 2 * w, True),
            (nn.ConvTranspose2d(2 * w, w, 5, 2, 2, output_padding=1), w, True),
            (nn.ConvTranspose2d(w, 3, 5, 2, 2, output_padding=1), 3, False),
        ]
        self.stages = nn.ModuleList(_Stage(m, ch, act, snr_adaptive and act) for m, ch, act in convs)

    def forward(self, y: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        b = y.shape[0]
        x = y.permute(0, 2, 1).reshape(b, self.c, LATENT_HW, LATENT_HW)
        for s in self.stages:
            x = s(x, snr_db)
        return torch.sigmoid(x)


class JSCC(nn.Module):
    """Encoder -> channel -> decoder, for training and evaluation in torch."""

    def __init__(self, kn: float = 1 / 6, width: int = 32, snr_adaptive: bool = True) -> None:
        super().__init__()
        self.encoder = Encoder(kn, width, snr_adaptive)
        self.decoder = Decoder(kn, width, snr_adaptive)

    def forward(self, x: torch.Tensor, channel: nn.Module, snr_db: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x, snr_db)
        y, snr_seen = channel(z, snr_db)
        return self.decoder(y, snr_seen)
