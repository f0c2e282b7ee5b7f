"""OFDM numerology: the one definition of FFT size, cyclic prefix, carrier allocation, pilots,
preamble and the SNR convention.

Used by the differentiable torch OFDM channel (training/eval), the numpy reference PHY and the
GNU Radio blocks, so a model trained in simulation sees the same subcarrier grid on the air.

The grid is IEEE 802.11a's (and GNU Radio's ``digital.ofdm_tx`` default): 64-point FFT, 16-sample
cyclic prefix, 48 data subcarriers, 4 pilots at +-7 and +-21, DC and band edges empty.
Carrier indices are *signed* (0 = DC, negative = below the centre), like GNU Radio's
``occupied_carriers``.

SNR convention (everywhere in the project): the ratio of average data-symbol energy to noise
energy *per subcarrier*, i.e. Es/N0 per complex channel use. JSCC symbols have unit average
power, so an AWGN channel at ``snr_db`` and the OFDM channel at ``snr_db`` put the same noise on
each symbol (before fading). The FFT is unitary (scaled by 1/sqrt(N)), so per-subcarrier noise
variance equals per-sample time-domain noise variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from semjscc.phy.symbols import noise_power


def _default_data() -> tuple[int, ...]:
    pilots = {-21, -7, 7, 21}
    return tuple(k for k in range(-26, 27) if k != 0 and k not in pilots)


def _sync_word(seed: int, even_only: bool) -> tuple[complex, ...]:
    """A fixed pseudo-random BPSK preamble on the used carriers (deterministic, stored as data).

    ``even_only`` fills only even carriers, giving a time-domain symbol with two identical halves:
    the Schmidl & Cox timing/CFO metric needs exactly that."""
    rng = np.random.default_rng(seed)
    word = np.zeros(64, dtype=complex)
    used = [k for k in range(-26, 27) if k != 0]
    vals = rng.choice([-1.0, 1.0], size=len(used))
    for k, v in zip(used, vals, strict=True):
        if not even_only or k % 2 == 0:
            word[k % 64] = v * (math.sqrt(2) if even_only else 1.0)  # same energy with half the carriers
    return tuple(complex(c) for c in word)


@dataclass(frozen=True)
class OFDMNumerology:
    fft_len: int = 64
    cp_len: int = 16
    sample_rate: float = 1e6  # Hz; Pluto-friendly and what the docs' CFO figures assume
    data_carriers: tuple[int, ...] = field(default_factory=_default_data)
    pilot_carriers: tuple[int, ...] = (-21, -7, 7, 21)
    pilot_values: tuple[complex, ...] = (1 + 0j, 1 + 0j, 1 + 0j, -1 + 0j)
    # Two preamble symbols in FFT-bin order (index k % fft_len): sync_word1 has identical halves
    # (timing + fractional CFO), sync_word2 is full (integer CFO + channel estimate).
    sync_word1: tuple[complex, ...] = field(default_factory=lambda: _sync_word(0x5E1, True))
    sync_word2: tuple[complex, ...] = field(default_factory=lambda: _sync_word(0x5E2, False))

    def __post_init__(self) -> None:
        used = set(self.data_carriers) | set(self.pilot_carriers)
        if len(used) != len(self.data_carriers) + len(self.pilot_carriers):
            raise ValueError("data and pilot carriers overlap")
        if any(abs(k) >= self.fft_len // 2 for k in used) or 0 in used:
            raise ValueError("carriers must be nonzero and inside the FFT")
        if len(self.pilot_values) != len(self.pilot_carriers):
            raise ValueError("one pilot value per pilot carrier")

    # --- derived quantities -----------------------------------------------------------------
    @property
    def n_data(self) -> int:
        return len(self.data_carriers)

    @property
    def symbol_len(self) -> int:
        """Samples per OFDM symbol including its cyclic prefix."""
        return self.fft_len + self.cp_len

    def bins(self, carriers: tuple[int, ...]) -> np.ndarray:
        """Signed carrier indices -> FFT bin indices (numpy order, DC at 0)."""
        return np.array([k % self.fft_len for k in carriers], dtype=np.int64)

    @property
    def data_bins(self) -> np.ndarray:
        return self.bins(self.data_carriers)

    @property
    def pilot_bins(self) -> np.ndarray:
        return self.bins(self.pilot_carriers)

    @property
    def midamble_values(self) -> np.ndarray:
        """What a mid-amble (:mod:`semjscc.phy.frame`) puts on the data carriers: sync_word2's values
        there, known BPSK on every carrier; its pilot carriers keep the usual pilots."""
        return np.asarray(self.sync_word2, dtype=np.complex64)[self.data_bins]

    @property
    def subcarrier_spacing(self) -> float:
        """Hz between subcarriers (sample rate / FFT length)."""
        return self.sample_rate / self.fft_len

    def subcarriers(self, hz: float) -> float:
        """A frequency (a carrier offset) in subcarrier spacings, the receiver's unit for it."""
        return float(hz) / self.subcarrier_spacing

    def payload_symbols(self, n_channel_uses: int) -> int:
        """OFDM symbols needed for ``n_channel_uses`` complex JSCC symbols (last one zero-padded)."""
        return -(-n_channel_uses // self.n_data)

    def noise_std_for_snr(self, snr_db: float, signal_power: float = 1.0) -> float:
        """Per-sample complex noise std (E|n|^2) giving ``snr_db`` per subcarrier (unitary FFT): the AWGN rule
        of :func:`semjscc.phy.symbols.noise_power`, scaled by ``signal_power``."""
        return math.sqrt(signal_power * float(noise_power(snr_db)))

    def time_signal_power(self) -> float:
        """Average time-domain sample power of a payload symbol with unit-power data and pilots
        (unitary IFFT): used carriers / FFT length. GNU Radio's channel model takes a noise
        voltage relative to this."""
        return (self.n_data + len(self.pilot_carriers)) / self.fft_len

    def to_dict(self) -> dict:
        return {
            "fft_len": self.fft_len,
            "cp_len": self.cp_len,
            "sample_rate": self.sample_rate,
            "data_carriers": list(self.data_carriers),
            "pilot_carriers": list(self.pilot_carriers),
        }


DEFAULT_NUMEROLOGY = OFDMNumerology()
