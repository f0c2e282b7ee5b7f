"""Differentiable channels for training and evaluation: AWGN, Rayleigh block fading and
OFDM multipath, all under the project's one SNR convention (Es/N0 per complex channel use,
see ``semjscc.phy.numerology``).

Every channel maps transmitted symbols ``z`` (B, k, 2) and an SNR in dB (B,) to what the
decoder sees: equalised symbols (B, k, 2) and the SNR it is told (B,) — the true SNR here;
in GNU Radio, the receiver's per-frame estimate.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from semjscc.phy.numerology import DEFAULT_NUMEROLOGY, OFDMNumerology

CHANNELS = ("awgn", "rayleigh", "ofdm", "phy")
ESTIMATORS = ("preamble", "receiver")  # OFDMMultipath: one-symbol LS, or the radio receiver's own
N_SINUSOIDS = 16  # per fading tap in the torch channel
TIMING_MARGIN = 8  # samples the receiver opens its FFT window before the first path (OFDMReceiver's default)


def _as_complex(z: torch.Tensor) -> torch.Tensor:
    return torch.complex(z[..., 0], z[..., 1])


def _as_real(z: torch.Tensor) -> torch.Tensor:
    return torch.stack([z.real, z.imag], dim=-1)


def _noise(shape: tuple[int, ...], snr_db: torch.Tensor, gen: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Complex Gaussian noise with E|n|^2 = 10^(-snr/10) for unit-power signals."""
    std = torch.pow(10.0, -snr_db / 20.0).view(-1, *([1] * (len(shape) - 1)))
    re = torch.randn(shape, generator=gen, device=device)
    im = torch.randn(shape, generator=gen, device=device)
    return torch.complex(re, im) * (std / math.sqrt(2.0))


class AWGN(nn.Module):
    def __init__(self, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.gen = generator

    def forward(self, z: torch.Tensor, snr_db: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _as_complex(z)
        return _as_real(x + _noise(tuple(x.shape), snr_db, self.gen, z.device)), snr_db


class RayleighBlock(nn.Module):
    """One CN(0, 1) gain per image (slow fading), known at the receiver, MMSE-equalised.

    The decoder is told the *instantaneous* SNR |h|^2 * snr, as a receiver estimating it from
    pilots would report."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.gen = generator

    def forward(self, z: torch.Tensor, snr_db: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _as_complex(z)
        b = x.shape[0]
        h = torch.complex(torch.randn(b, 1, generator=self.gen, device=z.device),
                          torch.randn(b, 1, generator=self.gen, device=z.device)) / math.sqrt(2.0)
        y = h * x + _noise(tuple(x.shape), snr_db, self.gen, z.device)
        n0 = torch.pow(10.0, -snr_db / 10.0).view(-1, 1)
        g = h.abs().square()
        x_hat = y * h.conj() / (g + n0)  # MMSE
        snr_inst = snr_db + 10.0 * torch.log10(g.view(-1).clamp_min(1e-6))
        return _as_real(x_hat), snr_inst


class OFDMMultipath(nn.Module):
    """OFDM over a random multipath channel, with the numerology the radio uses.

    Per image: symbols fill the data carriers of ceil(k/48) OFDM symbols (pilots on their
    carriers, unused slots zero), unitary IFFT, cyclic prefix, a random channel of ``n_taps``
    taps with exponential power-delay profile (decay ``decay`` per tap, total power 1, length
    <= CP so it is circular per symbol), AWGN, optional clipping at ``clip_ratio`` times the
    RMS amplitude (PAPR control), CP removal, FFT. ``fading=False`` uses the profile's fixed
    amplitudes instead of random taps; ``perfect_csi`` equalises with the true response.

    ``estimator`` 'preamble' (the historic model): the channel is estimated by least squares from
    one known preamble symbol (sync_word2) that went through the same channel and noise, each data
    carrier equalised (``equalizer`` 'mmse' or 'zf'), and the decoder told the channel SNR.
    'receiver': the frame the radio sends (both preamble symbols, a 2-symbol header, pilots and,
    with ``midamble``, mid-ambles, :mod:`semjscc.phy.frame`) and the radio receiver's own estimator
    and equaliser (:meth:`semjscc.phy.rx.OFDMReceiver.equaliser`: channel tracking through the
    frame); the decoder is told the receiver's payload SNR estimate, as in GNU Radio.

    ``doppler``: normalised Doppler (Doppler frequency / sample rate): every tap fades with Clarke's
    spectrum over the frame (a sum of sinusoids, one value per OFDM symbol at its centre; the
    change within a symbol, inter-carrier interference, is left out). The estimate is not
    differentiated (it does not depend on the payload), the equalised symbols are.
    """

    def __init__(self, numerology: OFDMNumerology = DEFAULT_NUMEROLOGY, n_taps: int = 4, decay: float = 0.5,
                 equalizer: str = "mmse", clip_ratio: float | None = None, fading: bool = True,
                 perfect_csi: bool = False, generator: torch.Generator | None = None, doppler: float = 0.0,
                 estimator: str = "preamble", midamble: int = 0) -> None:
        super().__init__()
        from semjscc.phy.channel_model import check_doppler
        from semjscc.phy.frame import FrameFormat

        if n_taps < 1 or n_taps > numerology.cp_len + 1:
            raise ValueError(f"n_taps must be 1..{numerology.cp_len + 1} (a channel longer than the CP is not circular)")
        if equalizer not in ("mmse", "zf"):
            raise ValueError("equalizer must be 'mmse' or 'zf'")
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
        self.doppler = check_doppler(doppler, "doppler")
        if self.doppler and not fading:
            raise ValueError("doppler needs fading=True (a fixed channel does not change)")
        self.fmt = FrameFormat(numerology=numerology, midamble=midamble)
        self.num, self.n_taps, self.decay = numerology, n_taps, decay
        self.equalizer, self.clip_ratio, self.gen = equalizer, clip_ratio, generator
        self.fading, self.perfect_csi, self.estimator = fading, perfect_csi, estimator
        pdp = torch.tensor([decay**i for i in range(n_taps)], dtype=torch.float32)
        self.register_buffer("pdp", pdp / pdp.sum())
        grid_pilots = torch.zeros(numerology.fft_len, dtype=torch.complex64)
        grid_pilots[torch.as_tensor(numerology.pilot_bins)] = torch.tensor(numerology.pilot_values, dtype=torch.complex64)
        self.register_buffer("pilot_grid", grid_pilots)
        self.register_buffer("preamble", torch.tensor(numerology.sync_word2, dtype=torch.complex64))
        self.register_buffer("data_bins", torch.as_tensor(numerology.data_bins))
        self._rx = None  # the receiver whose equaliser the 'receiver' estimator uses, built on first use

    def forward(self, z: torch.Tensor, snr_db: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.estimator == "receiver" or self.doppler:
            return self._frame(z, snr_db)
        num, dev = self.num, z.device
        x = _as_complex(z)
        b, k = x.shape
        n_sym = num.payload_symbols(k)
        nfft, ncp = num.fft_len, num.cp_len
        slots = torch.zeros(b, n_sym * num.n_data, dtype=x.dtype, device=dev)
        slots = torch.cat([x, slots[:, k:]], dim=1).view(b, n_sym, num.n_data)
        grid = self.pilot_grid.to(dev).expand(b, n_sym + 1, nfft).clone()
        grid[:, 0] = self.preamble.to(dev)
        grid[:, 1:, self.data_bins] = slots
        time = self._time(grid)
        # random multipath, one realisation per image, applied per symbol (circular thanks to the CP)
        if self.fading:
            taps = torch.complex(torch.randn(b, self.n_taps, generator=self.gen, device=dev),
                                 torch.randn(b, self.n_taps, generator=self.gen, device=dev))
            taps = taps * torch.sqrt(self.pdp.to(dev) / 2.0)
        else:  # a fixed channel: the power-delay profile's amplitudes
            taps = torch.sqrt(self.pdp.to(dev)).to(torch.complex64).expand(b, -1)
        H = torch.fft.fft(taps, n=nfft)  # (b, nfft) frequency response
        rx = torch.fft.fft(time[..., ncp:], norm="ortho") * H[:, None, :]
        rx = rx + _noise(tuple(rx.shape), snr_db, self.gen, dev)
        # LS estimate from the preamble (noise included: a one-symbol estimate costs ~3 dB with ZF,
        # as on the air); perfect_csi isolates the rest of the chain
        H_est = H if self.perfect_csi else rx[:, 0] / self.preamble.to(dev)
        Hd = H_est[:, self.data_bins][:, None, :]
        y = rx[:, 1:, self.data_bins]
        if self.equalizer == "zf":
            x_hat = y / Hd
        else:
            n0 = torch.pow(10.0, -snr_db / 10.0).view(-1, 1, 1)
            x_hat = y * Hd.conj() / (Hd.abs().square() + n0)
        return _as_real(x_hat.reshape(b, -1)[:, :k]), snr_db

    def _time(self, grid: torch.Tensor) -> torch.Tensor:
        """Unitary IFFT, cyclic prefix and the optional clipping of a (b, symbols, fft) grid."""
        time = torch.fft.ifft(grid, norm="ortho")
        time = torch.cat([time[..., -self.num.cp_len:], time], dim=-1)  # cyclic prefix
        if self.clip_ratio is not None:
            rms = time.abs().square().mean(dim=(1, 2), keepdim=True).sqrt()
            mag = time.abs().clamp_min(1e-12)
            time = time * torch.clamp(self.clip_ratio * rms / mag, max=1.0)
        return time

    def _fading_taps(self, b: int, n_sym: int, dev: torch.device) -> torch.Tensor:
        """(b, symbols, taps) complex gains: per tap a sum of sinusoids with Clarke's spectrum
        (:class:`semjscc.phy.impairments.FadingTaps`, here in torch), sampled at each symbol's centre."""
        m = N_SINUSOIDS
        alpha = 2 * math.pi * (torch.arange(m, device=dev) + torch.rand(b, self.n_taps, 1, generator=self.gen,
                                                                        device=dev)) / m
        phi = 2 * math.pi * torch.rand(b, self.n_taps, m, generator=self.gen, device=dev)
        t = (torch.arange(n_sym, device=dev, dtype=torch.float32) + 0.5) * self.num.symbol_len
        w = 2 * math.pi * self.doppler * torch.cos(alpha)  # (b, taps, m) rad/sample
        ph = t[None, :, None, None] * w[:, None] + phi[:, None]  # (b, symbols, taps, m)
        g = torch.polar(torch.ones_like(ph), ph).sum(-1) / math.sqrt(m)
        return g * torch.sqrt(self.pdp.to(dev))

    def _frame(self, z: torch.Tensor, snr_db: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The time-varying channel and/or the receiver's estimator (see the class docstring)."""
        import numpy as np

        from semjscc.phy.frame import encode_header

        num, fmt, dev = self.num, self.fmt, z.device
        x = _as_complex(z)
        b, k = x.shape
        nfft = num.fft_len
        mid = torch.as_tensor(fmt.midamble_rows(k))
        n_rows = len(mid)
        n_pay = n_rows - int(mid.sum())
        first = fmt.n_overhead if self.estimator == "receiver" else 1  # symbols before the payload
        grid = self.pilot_grid.to(dev).expand(b, first + n_rows, nfft).clone()
        fns = torch.randint(0, 1 << 16, (b,), generator=self.gen, device=dev).cpu().numpy()
        if self.estimator == "receiver":
            grid[:, 0] = torch.tensor(num.sync_word1, dtype=torch.complex64, device=dev)
            grid[:, 1] = self.preamble.to(dev)
            hdr = torch.from_numpy(encode_header(fns, np.full(b, k), fmt.pattern)).to(dev)
            grid[:, fmt.n_preamble:first, self.data_bins] = hdr.view(b, fmt.n_header, num.n_data)
        else:
            grid[:, 0] = self.preamble.to(dev)
        slots = torch.zeros(b, n_pay * num.n_data, dtype=x.dtype, device=dev)
        slots = torch.cat([x, slots[:, k:]], dim=1).view(b, n_pay, num.n_data)
        payload_rows = torch.nonzero(~mid).view(-1).to(dev) + first
        mid_rows = torch.nonzero(mid).view(-1).to(dev) + first
        grid[:, payload_rows[:, None], self.data_bins[None, :]] = slots
        grid[:, mid_rows[:, None], self.data_bins[None, :]] = torch.from_numpy(num.midamble_values).to(dev)
        time = self._time(grid)
        n_sym = first + n_rows
        if self.fading:
            taps = self._fading_taps(b, n_sym, dev)
        else:
            taps = torch.sqrt(self.pdp.to(dev)).to(torch.complex64).expand(b, n_sym, -1)
        H = torch.fft.fft(taps, n=nfft)  # (b, symbols, nfft)
        if self.estimator == "receiver":  # its FFT window opens timing_margin samples into the CP: a delay
            bins = torch.fft.fftfreq(nfft, device=dev) * nfft
            H = H * torch.polar(torch.ones(nfft, device=dev), -2 * math.pi * bins * TIMING_MARGIN / nfft)
        rx = torch.fft.fft(time[..., num.cp_len:], norm="ortho") * H
        rx = rx + _noise(tuple(rx.shape), snr_db, self.gen, dev)
        y = rx[:, payload_rows][..., self.data_bins]
        if self.perfect_csi or self.estimator == "preamble":
            Hd = H[:, payload_rows][..., self.data_bins] if self.perfect_csi else (
                rx[:, 0] / self.preamble.to(dev))[:, None, self.data_bins]
            n0 = torch.pow(10.0, -snr_db / 10.0).view(-1, 1, 1)
            x_hat = y / Hd if self.equalizer == "zf" else y * Hd.conj() / (Hd.abs().square() + n0)
            return _as_real(x_hat.reshape(b, -1)[:, :k]), snr_db
        if self._rx is None:
            from semjscc.phy.rx import OFDMReceiver

            self._rx = OFDMReceiver(fmt, equalizer=self.equalizer, timing_margin=TIMING_MARGIN)
        used = torch.as_tensor(self._rx.g.used_bins, device=dev)
        Y = rx[..., used].detach().cpu().numpy().astype(np.complex128)
        w, snr_est, _, _ = self._rx.equaliser(Y, fns, k, fmt.pattern)
        x_hat = torch.from_numpy(w.astype(np.complex64)).to(dev) * y
        told = torch.from_numpy(snr_est.astype(np.float32)).to(dev)
        return _as_real(x_hat.reshape(b, -1)[:, :k]), told


def channel_options(name: str, doppler: float | None = None, midamble: int = 0) -> dict:
    """:func:`make_channel` options for a Doppler / mid-amble choice: OFDM channels only; the torch
    OFDM channel then uses the radio receiver's estimator (static and fading compare like for like)."""
    if doppler is None and not midamble:
        return {}
    if name not in ("ofdm", "phy"):
        raise ValueError(f"a Doppler or mid-amble needs the ofdm or phy channel, not {name!r}")
    kw: dict = {"midamble": midamble}
    if doppler is not None:
        kw["doppler"] = doppler
    if name == "ofdm":
        kw["estimator"] = "receiver"
    return kw


def make_channel(name: str, generator: torch.Generator | None = None, **kwargs: object) -> nn.Module:
    if name == "awgn":
        return AWGN(generator)
    if name == "rayleigh":
        return RayleighBlock(generator)
    if name == "ofdm":
        return OFDMMultipath(generator=generator, **kwargs)  # type: ignore[arg-type]
    if name == "phy":  # the radio's numpy PHY end to end (evaluation only: not differentiable)
        from semjscc.phy.sim_channel import PhyChannel

        return PhyChannel(seed=generator.initial_seed() if generator is not None else 0, **kwargs)  # type: ignore[return-value, arg-type]
    raise ValueError(f"unknown channel {name!r}: choose one of {', '.join(CHANNELS)}")
