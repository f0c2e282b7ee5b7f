"""Distortion measures: plain MSE (the baseline) and semantic distortion.

Semantic distortion is the importance-weighted squared error

    D_sem(x, x^) = mean_{b,c,h,w} w_b(h,w) * (x_bchw - x^_bchw)^2,
    w_b = mix + (1 - mix) * s_b

where ``s_b`` is the image's semantic-importance map (mean 1 per image, see
``semjscc.nn.importance``) and ``mix`` in [0, 1] blends in plain MSE. With ``mix = 1`` or a
uniform map (s = 1) it is exactly the MSE, so the two losses are on the same scale.

The task term (a variant of ours; the paper's abstract describes only the weighted distortion) is
the classifier's KL divergence from its prediction on the clean image to its prediction on the
decode, KL(p(.|x) || p(.|x^)), averaged over the batch: it asks the decoder to keep what the
classifier concludes rather than where it looks.
"""

from __future__ import annotations

import torch


def mse_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    return (x - x_hat).square().mean()


def semantic_loss(x: torch.Tensor, x_hat: torch.Tensor, importance: torch.Tensor, mix: float = 0.0) -> torch.Tensor:
    """``importance``: (B, H, W) or (B, 1, H, W) maps with mean 1 per image."""
    if not 0.0 <= mix <= 1.0:
        raise ValueError("mix must lie in [0, 1]")
    w = importance if importance.dim() == 4 else importance[:, None]
    w = mix + (1.0 - mix) * w
    return (w * (x - x_hat).square()).mean()


def task_loss(logits_clean: torch.Tensor, logits_decoded: torch.Tensor) -> torch.Tensor:
    """KL(p(.|x) || p(.|x^)) per image, averaged over the batch (nats), in float32."""
    log_p = torch.log_softmax(logits_clean.float(), dim=1)
    log_q = torch.log_softmax(logits_decoded.float(), dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()
