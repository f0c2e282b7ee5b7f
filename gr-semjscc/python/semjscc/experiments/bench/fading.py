"""The numpy PHY over time-varying (Doppler) fading channels: frames lost, the payload's SNR against
the symbols sent (per frame and per OFDM symbol) and the receiver's reported SNR.

Payload SNR "against the sent symbols" is 10 log10(mean |x|^2 / mean |x_hat - x|^2), x the unit-power
symbols sent and x_hat the receiver's equalised output. Two channels:

* ``numpy`` (default): :class:`semjscc.phy.impairments.FadingChannel`, a Rayleigh fading tapped delay
  line with Clarke's Doppler spectrum, redrawn for every burst, so frames are independent fading
  realisations (a static channel, Doppler 0, has the same statistics without the time variation);
* ``gnuradio``: GNU Radio's ``channels.selective_fading_model`` with its GRC defaults (what a user
  would pick), one continuous fading process over the whole stream; at Doppler 0 its channel never
  changes, so every burst then gets its own seed (independent static draws).

``scripts/time_varying.py`` runs the grid of docs/results.md ("Time-varying channels").
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from semjscc.phy.channel_model import check_doppler, noise_voltage
from semjscc.phy.frame import DEFAULT_FRAME_FORMAT, FrameFormat
from semjscc.phy.impairments import FadingChannel
from semjscc.phy.rx import OFDMReceiver
from semjscc.phy.tx import modulate_stream

# Three paths, no line of sight: GNU Radio's selective fading block defaults (delays 0, 0.1, 1.3
# samples, magnitudes 1, 0.99, 0.97, 8 taps), normalised here to unit mean power.
GR_DELAYS = (0.0, 0.1, 1.3)
GR_MAGS = (1.0, 0.99, 0.97)
GR_NTAPS = 8
# The numpy model's default profile: three Rayleigh paths at integer delays with the same powers.
THREE_PATH = (1.0, 0.99, 0.0, 0.97)


def gr_fading_mags(delays: tuple[float, ...] = GR_DELAYS, mags: tuple[float, ...] = GR_MAGS,
                   ntaps: int = GR_NTAPS) -> list[float]:
    """Magnitudes scaled so the selective fading model's taps have unit mean power (its paths are
    independent unit-power faders, each spread over the taps by a truncated sinc)."""
    k = np.arange(ntaps)[None, :]
    energy = np.sum(np.asarray(mags)[:, None] ** 2 * np.sinc(k - np.asarray(delays)[:, None]) ** 2)
    return [float(m / np.sqrt(energy)) for m in mags]


def _cn(rng: np.random.Generator, n: int | tuple[int, ...]) -> np.ndarray:
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)


def _gr_fading(x: np.ndarray, doppler: float, seed: int) -> np.ndarray:
    from gnuradio import blocks, channels, gr

    tb = gr.top_block()
    src = blocks.vector_source_c(x.tolist(), False)
    fade = channels.selective_fading_model(8, doppler, False, 4.0, seed, list(GR_DELAYS), gr_fading_mags(), GR_NTAPS)
    snk = blocks.vector_sink_c()
    tb.connect(src, fade, snk)
    tb.run()
    return np.asarray(snk.data(), dtype=np.complex64)


def fading_link(snr_db: float, doppler: float, frames: int = 300, seed: int = 0, n_symbols: int = 512,
                taps: tuple[complex, ...] = THREE_PATH, cfo_hz: float = 0.0, channel: str = "numpy",
                fmt: FrameFormat = DEFAULT_FRAME_FORMAT, rx_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """``frames`` frames of ``n_symbols`` random unit-power symbols through a fading channel at
    ``snr_db`` (Es/N0 per subcarrier, mean over the fading) and normalised Doppler ``doppler``.

    Returns counts (``frames_sent``, ``frames_decoded``, ``header_failed``: detected but CRC failed),
    ``payload_snr_db`` (pooled over every decoded symbol), ``symbol_snr_db`` (pooled per payload OFDM
    symbol), per-frame arrays ``frame_snr_db`` (true) and ``reported_snr_db`` and their difference's
    mean and mean absolute value."""
    check_doppler(doppler)
    rng = np.random.default_rng(seed)
    sent = [_cn(rng, n_symbols) for _ in range(frames)]
    x, starts = modulate_stream(sent, 0, fmt)
    if channel == "numpy":
        ch = FadingChannel(rng, np.asarray(taps), doppler)
        bounds = [*(starts - fmt.pad_before).tolist(), len(x)]
        parts = []
        for a, b in itertools.pairwise(bounds):
            ch.redraw()  # every burst an independent realisation
            parts.append(ch.apply(x[a:b]))
        y = np.concatenate(parts)
    elif channel == "gnuradio" and doppler > 0:
        y = _gr_fading(x, doppler, seed)
    elif channel == "gnuradio":  # static: GNU Radio's model never changes, so a fresh seed per burst
        bounds = [*(starts - fmt.pad_before).tolist(), len(x)]
        y = np.concatenate([_gr_fading(x[a:b], 0.0, seed * 100_003 + 7 * i)
                            for i, (a, b) in enumerate(itertools.pairwise(bounds))])
    else:
        raise ValueError(f"channel must be 'numpy' or 'gnuradio', got {channel!r}")
    num = fmt.numerology
    n = np.arange(len(y))
    y = y * np.exp(2j * np.pi * cfo_hz / num.sample_rate * n + 1j * rng.uniform(0, 2 * np.pi))
    y = (y + noise_voltage(snr_db) * _cn(rng, len(y))).astype(np.complex64)
    rx = OFDMReceiver(fmt, **(rx_kwargs or {}))
    got = [f for f in rx.process(y) + rx.flush() if f.header_ok and 0 <= f.frame_number < frames]
    got = list({f.frame_number: f for f in got}.values())
    n_pay = fmt.n_payload_symbols(n_symbols)
    err = np.zeros((len(got), n_pay * num.n_data), dtype=np.complex64)
    mask = np.zeros(n_pay * num.n_data, dtype=bool)
    mask[:n_symbols] = True
    for i, f in enumerate(got):
        err[i, :n_symbols] = f.payload - sent[f.frame_number]
    e2 = np.abs(err) ** 2
    frame_snr = -10 * np.log10(e2[:, :n_symbols].mean(axis=1)) if len(got) else np.zeros(0)
    per_sym = (e2 * mask).reshape(len(got), n_pay, num.n_data).sum(axis=(0, 2)) / np.maximum(
        mask.reshape(n_pay, num.n_data).sum(axis=1) * max(len(got), 1), 1)
    reported = np.array([f.snr_est_db for f in got])
    diff = reported - frame_snr
    return {
        "snr_db": float(snr_db), "doppler": float(doppler), "channel": channel, "frames_sent": frames,
        "frames_decoded": len(got), "frames_lost": frames - len(got), "header_failed": rx.stats.header_failed,
        "payload_snr_db": float(-10 * np.log10(e2[:, :n_symbols].mean())) if len(got) else None,
        "symbol_snr_db": [float(v) for v in -10 * np.log10(per_sym + 1e-30)] if len(got) else [],
        "frame_mean_snr_db": float(frame_snr.mean()) if len(got) else None,
        "reported_snr_db": float(reported.mean()) if len(got) else None,
        "snr_error_db": float(diff.mean()) if len(got) else None,
        "snr_abs_error_db": float(np.abs(diff).mean()) if len(got) else None,
        "frame_snr_db": frame_snr.tolist(), "frame_reported_db": reported.tolist(),
    }
