"""The radio's own PHY as an evaluation channel: numpy OFDM TX -> multipath, frequency offset,
AWGN -> numpy OFDM RX (synchronisation, channel estimation, SNR estimate, equalisation).

``semjscc eval --channel phy`` uses it so that offline numbers and the GNU Radio flowgraph
(which runs the same TX/RX code) differ only by what GNU Radio adds, not by modelling. The
decoder is told the receiver's per-frame SNR *estimate*, as in the flowgraph. A frame the
receiver misses is handed on as all-zero symbols and counted in ``frames_lost``.

With ``doppler`` the multipath taps fade (:class:`semjscc.phy.impairments.FadingChannel`, Rayleigh
with Clarke's spectrum, an independent realisation per frame, mean power as ``taps``);
``midamble`` sends mid-ambles (:mod:`semjscc.phy.frame`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from semjscc.phy.channel_model import check_doppler
from semjscc.phy.frame import DEFAULT_FRAME_FORMAT, MAX_FRAME_NUMBER, FrameFormat
from semjscc.phy.impairments import FadingChannel
from semjscc.phy.rx import receive
from semjscc.phy.symbols import from_pairs, to_pairs
from semjscc.phy.tx import modulate_stream


class PhyChannel:
    def __init__(self, cfo_hz: float = 3000.0, taps: Sequence[complex] = (1.0,), seed: int = 0,
                 fmt: FrameFormat = DEFAULT_FRAME_FORMAT, doppler: float | None = None, midamble: int = 0) -> None:
        taps_arr = np.asarray(taps, dtype=np.complex64)
        self.taps = taps_arr / np.sqrt(np.sum(np.abs(taps_arr) ** 2))  # unit power: the set SNR holds on average
        self.cfo_hz = cfo_hz
        self.fmt = replace(fmt, midamble=midamble) if midamble else fmt
        self.doppler = None if doppler is None else check_doppler(doppler, "doppler")
        self.rng = np.random.default_rng(seed)
        self.frames_sent = self.frames_lost = 0

    def __call__(self, z, snr_db):
        import torch

        x = from_pairs(z.numpy())
        snr = np.asarray(snr_db, dtype=np.float64)
        y = np.zeros_like(x)
        told = snr.copy()
        num = self.fmt.numerology
        # one stream per distinct SNR (the sweep uses one SNR per batch)
        for s in np.unique(snr):
            idx = np.flatnonzero(snr == s)
            first = self.frames_sent % (MAX_FRAME_NUMBER + 1)
            samples, starts = modulate_stream([x[i] for i in idx], first_frame_number=first, fmt=self.fmt)
            if self.doppler is None:
                samples = np.convolve(samples, self.taps)[: len(samples)].astype(np.complex64)
            else:  # fading taps, a fresh realisation for every burst
                fading = FadingChannel(self.rng, self.taps, self.doppler)
                bounds = [*(starts - self.fmt.pad_before).tolist(), len(samples)]
                parts = []
                for a, b in itertools.pairwise(bounds):
                    fading.redraw()
                    parts.append(fading.apply(samples[a:b]))
                samples = np.concatenate(parts)
            n = np.arange(len(samples))
            phase0 = self.rng.uniform(0, 2 * np.pi)
            samples *= np.exp(1j * (2 * np.pi * self.cfo_hz / num.sample_rate * n + phase0)).astype(np.complex64)
            std = num.noise_std_for_snr(float(s))
            noise = (self.rng.standard_normal(len(samples)) + 1j * self.rng.standard_normal(len(samples))) * (std / np.sqrt(2))
            frames = receive((samples + noise).astype(np.complex64), fmt=self.fmt)
            got = {f.frame_number: f for f in frames if f.header_ok}
            for j, i in enumerate(idx):
                f = got.get((first + j) % (MAX_FRAME_NUMBER + 1))
                if f is not None and len(f.payload) == x.shape[1]:
                    y[i] = f.payload
                    told[i] = f.snr_est_db
                else:
                    self.frames_lost += 1
            self.frames_sent += len(idx)
        out = torch.from_numpy(to_pairs(y))
        return out, torch.from_numpy(told.astype(np.float32))
