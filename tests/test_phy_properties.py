"""Property-based round trips of the numpy PHY: random payload lengths and values, frame counts,
CFO within +-20 kHz, timing offsets and frame numbers (wrapping at 2^16), at 30 dB Es/N0: every
frame comes back, in order, with its frame number and a payload error near the channel noise."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from semjscc.phy import DEFAULT_NUMEROLOGY as NUM
from semjscc.phy.frame import MAX_FRAME_NUMBER
from semjscc.phy.rx import receive
from semjscc.phy.tx import modulate_stream

SNR_DB = 30.0
FS = NUM.sample_rate
# At 30 dB the noise alone gives an MSE of 1e-3 per unit-power symbol; equalisation from a noisy
# channel estimate and residual phase add to it. 25 dB of payload SNR is a generous floor that still
# fails on a wrong frame, a misaligned payload or an unequalised channel (those give ~0 dB).
MIN_PAYLOAD_SNR_DB = 25.0
# A mean over a few symbols is too noisy for that floor (2 symbols: 24 dB happens, p ~ 0.3 %). Frames
# shorter than one OFDM symbol's 48 carriers are checked per symbol instead: an error power
# Exp(mean <= floor) exceeds 20x its mean with probability e^-20 ~ 2e-9, so |e|^2 must stay below
# 20 x 10^-2.5 (-12 dB), still far under a wrong or misaligned payload's ~0 dB.
SHORT = NUM.n_data
MAX_SYMBOL_ERROR = 20 * 10 ** (-MIN_PAYLOAD_SNR_DB / 10)

PROFILE = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def link(draw: st.DrawFn) -> dict:
    n_frames = draw(st.integers(1, 5))
    lengths = draw(st.lists(st.integers(1, 1024), min_size=n_frames, max_size=n_frames))
    return {"lengths": lengths, "seed": draw(st.integers(0, 2**32 - 1)),
            "first": draw(st.integers(0, MAX_FRAME_NUMBER)),
            "cfo_hz": draw(st.floats(-20_000.0, 20_000.0, allow_nan=False)),
            "lead": draw(st.integers(0, 5000)),  # timing: samples of noise before the first burst
            "frac_delay": draw(st.floats(0.0, 0.9)),  # sub-sample timing offset
            "phase": draw(st.floats(0.0, 2 * np.pi))}


def frac_delay(x: np.ndarray, d: float) -> np.ndarray:
    """Delay by ``d`` samples (0 <= d < 1) with a short windowed-sinc filter: a sub-sample timing
    offset, spread over a few taps well inside the cyclic prefix."""
    if d == 0:
        return x
    k = np.arange(-4, 5)
    h = np.sinc(k - d) * np.hamming(len(k))
    h /= h.sum()
    return np.convolve(x, h)[4:4 + len(x)].astype(np.complex64)


@PROFILE
@given(link())
# found by hypothesis: two short frames whose 2-symbol mean error was 24.1 dB
@example({"lengths": [1, 2], "seed": 262143, "first": 0, "cfo_hz": 0.0, "lead": 2, "frac_delay": 0.0, "phase": 0.0})
def test_tx_rx_round_trip(p: dict) -> None:
    rng = np.random.default_rng(p["seed"])
    sent = [((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)
            for n in p["lengths"]]
    x, _ = modulate_stream(sent, p["first"])
    y = np.concatenate([np.zeros(p["lead"], np.complex64), x, np.zeros(300, np.complex64)])
    y = frac_delay(y, p["frac_delay"])
    y = y * np.exp(1j * (2 * np.pi * p["cfo_hz"] / FS * np.arange(len(y)) + p["phase"]))
    std = NUM.noise_std_for_snr(SNR_DB)
    y = (y + std * (rng.standard_normal(len(y)) + 1j * rng.standard_normal(len(y))) / np.sqrt(2)).astype(np.complex64)

    frames = receive(y)
    expected = [(p["first"] + i) % (MAX_FRAME_NUMBER + 1) for i in range(len(sent))]
    assert [f.header_ok for f in frames] == [True] * len(sent)
    assert [f.frame_number for f in frames] == expected
    for f, s in zip(frames, sent, strict=True):
        assert len(f.payload) == len(s)
        err = np.abs(f.payload - s) ** 2
        if len(s) < SHORT:
            assert err.max() < MAX_SYMBOL_ERROR, f"symbol error {10 * np.log10(err.max()):.1f} dB"
        else:
            err_db = -10 * np.log10(np.mean(err))
            assert err_db >= MIN_PAYLOAD_SNR_DB, f"payload SNR {err_db:.1f} dB on {len(s)} symbols"
        assert abs(f.cfo_hz - p["cfo_hz"]) < 200.0
