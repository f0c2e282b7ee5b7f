"""The receiver's classifier: a fast-CIFAR convolutional network for 32x32 images.

Built on the ideas of the fast CIFAR-10 training recipes (Page's ResNet-9 DAWNBench entry and
Jordan's airbench line): a first 2x2 convolution whose weights are the *whitening* of the
training set's 2x2 patches (computed from data, then frozen: the network starts from decorrelated
inputs), then three groups of conv-pool-BN-GELU-conv-BN-GELU at widths w, 4w, 4w, a global max
pool and a linear head with a fixed small scale. With w = 64 and 30 epochs it reached 89.3 % on the
JPEG CIFAR-10 test copies (90.0 % with flip averaging), about 4 minutes per epoch on a 2-core CPU
(bfloat16 autocast, channels-last).

Input: float32 NCHW pixels in [0, 1]; the CIFAR-10 standardisation is inside the network, so
exported ONNX models take the same pixels the JSCC decoder produces.
"""

from __future__ import annotations

import torch
from torch import nn

from semjscc.data.imaging import CIFAR10_MEAN, CIFAR10_STD

WHITEN_PATCH = 2  # patch size of the whitening layer
WHITEN_EPS = 5e-4  # added to the patch covariance's eigenvalues: bounds the gain on near-flat directions


class _Group(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.pool(self.conv1(x))))
        return self.act(self.bn2(self.conv2(x)))


class Classifier(nn.Module):
    """``width`` is the first group's channel count (the later ones have 4x)."""

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        w = width
        n_patch = 3 * WHITEN_PATCH * WHITEN_PATCH
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR10_STD).view(1, 3, 1, 1))
        self.whiten = nn.Conv2d(3, 2 * n_patch, WHITEN_PATCH, padding=0)  # each eigen-direction and its negative
        self.whiten.weight.requires_grad_(False)
        self.features = nn.Sequential(
            nn.GELU(),
            _Group(2 * n_patch, w),  # 31 -> 15
            _Group(w, 4 * w),  # 15 -> 7
            _Group(4 * w, 4 * w),  # 7 -> 3
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, num_classes, bias=False)
        self.logit_scale = 1 / 9  # keeps the initial logits small, as the fast recipes do

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.head(self.features(self.whiten(x))) * self.logit_scale


@torch.no_grad()
def init_whitening(model: Classifier, images: torch.Tensor) -> None:
    """Set the whitening layer from ``images`` (float NCHW in [0, 1], a few thousand suffice): its
    filters are the eigenvectors of the standardised 2x2 patches' covariance scaled by 1/sqrt of
    their eigenvalues, each once with either sign."""
    x = (images - model.mean) / model.std
    p = x.unfold(2, WHITEN_PATCH, 1).unfold(3, WHITEN_PATCH, 1)  # N, C, H', W', k, k
    p = p.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3 * WHITEN_PATCH * WHITEN_PATCH).double()
    p = p - p.mean(dim=0)
    eigval, eigvec = torch.linalg.eigh(p.T @ p / len(p))
    w = (eigvec.T / torch.sqrt(eigval + WHITEN_EPS)[:, None]).reshape(-1, 3, WHITEN_PATCH, WHITEN_PATCH)
    model.whiten.weight.copy_(torch.cat([w, -w]).to(model.whiten.weight.dtype))
    model.whiten.bias.zero_()


class FlipAveraged(nn.Module):
    """Test-time augmentation: the mean of the logits of an image and its mirror image."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.model(x) + self.model(x.flip(3)))
