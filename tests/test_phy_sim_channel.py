"""The numpy PHY as an evaluation channel (``semjscc eval --channel phy``)."""

from __future__ import annotations

import math

import numpy as np
import torch
from semjscc.nn.channels import make_channel


def test_phy_channel_delivers_symbols_and_reports_estimated_snr() -> None:
    ch = make_channel("phy", torch.Generator().manual_seed(3))
    z = torch.randn(12, 512, 2) / math.sqrt(2)
    y, told = ch(z, torch.full((12,), 20.0))
    assert ch.frames_sent == 12 and ch.frames_lost == 0
    err_db = 10 * math.log10(1.0 / float((y - z).square().sum(-1).mean()))
    assert err_db > 18.0  # 3 kHz CFO and estimation cost well under 2 dB at 20 dB
    assert np.all(np.abs(told.numpy() - 20.0) < 1.5)  # the receiver's estimate, not the set value
    assert not torch.equal(told, torch.full((12,), 20.0))


def test_phy_channel_counts_frames_it_cannot_receive() -> None:
    ch = make_channel("phy", torch.Generator().manual_seed(4))
    z = torch.randn(6, 512, 2) / math.sqrt(2)
    y, _ = ch(z, torch.full((6,), -15.0))  # far below the header's threshold
    assert ch.frames_lost >= 5 and ch.frames_sent == 6
    assert torch.isfinite(y).all()
