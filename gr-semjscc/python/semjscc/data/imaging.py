"""Image conventions shared by every stage: shape, pixel range, dataset statistics.

Every model in the project (classifier, JSCC encoder and decoder, in torch and ONNX) takes
and returns float32 NCHW images with pixels in [0, 1]. The classifier standardises with the
CIFAR-10 channel statistics *inside* the network, so nothing outside it needs to know them.
"""

from __future__ import annotations

import numpy as np

IMAGE_SHAPE = (3, 32, 32)  # C, H, W
PIXEL_RANGE = (0.0, 1.0)
# Per-channel mean and std of the CIFAR-10 training set (RGB, pixels in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def to_float_nchw(images_u8: np.ndarray) -> np.ndarray:
    """uint8 NHWC (as datasets store them) -> float32 NCHW in [0, 1]."""
    if images_u8.ndim == 3:
        images_u8 = images_u8[None]
    return np.ascontiguousarray(images_u8.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def to_uint8_nhwc(images: np.ndarray) -> np.ndarray:
    """float32 NCHW in [0, 1] -> uint8 NHWC, rounding and clipping."""
    return np.clip(np.rint(images.transpose(0, 2, 3, 1) * 255.0), 0, 255).astype(np.uint8)
