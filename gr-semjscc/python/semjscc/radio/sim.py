"""A simulated Pluto: the same :class:`Radio` interface with the impairments that matter to calibration
and to the link, seeded so tests are repeatable.

Signal path of ``receive`` (everything that transmits into the same :class:`SimAir`, the radio's own TX
included, which is the cabled loopback):

* TX level: a full-scale (power 1.0) signal leaves at ``tx_power_dbm`` minus the TX attenuation, with
  multiplicative distortion noise ``tx_evm_db`` below the signal (the SNR ceiling of a real radio);
* path loss ``path_loss_db`` (cable + attenuator, or antennas and air);
* carrier offset: the transmitter's actual LO minus the receiver's, where an actual LO is the
  programmed one times (1 + ppm 1e-6) of *that radio's* oscillator. TX and RX of one Pluto share one
  oscillator, so a loopback on one radio has no offset: only two radios show their ppm difference.
  (The sample clocks share that error too; at 20 ppm it moves a 1500-sample frame by 0.03 samples,
  which is not modelled.) A signal offset beyond half the RF bandwidth is filtered out;
* thermal noise kTB + ``noise_figure_db`` at the input;
* RX gain: manual, or an AGC that puts the input at -12 dBFS; 0 dBFS = ``full_scale_dbm`` - gain;
* residual IQ imbalance (Q branch gain ``iq_gain`` and phase ``iq_phase_deg``) and DC offset, what the
  AD9361's own tracking leaves behind;
* 12-bit ADC: clipped at full scale, quantised to 1/2048.

A cyclic transmission is seen from a random point of its period (the unknown latency between TX start
and the RX buffer on a real radio); a one-shot burst lands at a random point of the next capture.

URI: ``sim`` or ``sim:SEED`` or ``sim:seed=3,ppm=12.5,loss=50,nf=6,evm=-38,iq_gain_db=0.2,iq_phase_deg=1,
dc_dbfs=-50``; a parameter not given is drawn from the seed (ppm) or takes its default.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from semjscc.radio.base import Radio, RadioConfig, RadioInfo, clip_full_scale
from semjscc.util.errors import UsageError

_BOLTZMANN_DBM_HZ = -174.0
_AGC_TARGET_DBFS = -12.0


@dataclass(frozen=True)
class SimParams:
    seed: int = 0
    ppm: float | None = None  # oscillator error; None: drawn from the seed, uniform in +-20 ppm
    tx_power_dbm: float = 7.0  # full-scale signal at 0 dB attenuation
    tx_evm_db: float = -38.0
    path_loss_db: float = 50.0
    noise_figure_db: float = 6.0
    full_scale_dbm: float = 0.0  # input power reaching 0 dBFS at 0 dB RX gain
    iq_gain_db: float = 0.2
    iq_phase_deg: float = 1.0
    dc_dbfs: float = -50.0
    temperature_c: float = 38.0

    def oscillator_ppm(self) -> float:
        if self.ppm is not None:
            return float(self.ppm)
        return float(np.random.default_rng([self.seed, 1]).uniform(-20.0, 20.0))


_URI_KEYS = {"seed": "seed", "ppm": "ppm", "loss": "path_loss_db", "nf": "noise_figure_db", "evm": "tx_evm_db",
             "tx_power": "tx_power_dbm", "iq_gain_db": "iq_gain_db", "iq_phase_deg": "iq_phase_deg",
             "dc_dbfs": "dc_dbfs", "temp": "temperature_c"}


def parse_sim_uri(uri: str) -> SimParams:
    """``sim``, ``sim:7`` or ``sim:seed=7,ppm=3.5,...`` -> SimParams (see the module docstring)."""
    head, _, rest = uri.partition(":")
    if head != "sim":
        raise UsageError(f"{uri!r} is not a simulated radio URI (sim, sim:SEED or sim:key=value,...)")
    if not rest:
        return SimParams()
    if "=" not in rest:
        rest = f"seed={rest}"
    known = {f.name for f in fields(SimParams)}
    kwargs: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, sep, value = item.partition("=")
        name = _URI_KEYS.get(key, key)
        if not sep or name not in known:
            raise UsageError(f"simulated radio URI {uri!r}: unknown item {item!r} "
                             f"(keys: {', '.join(sorted(_URI_KEYS))})")
        try:
            kwargs[name] = int(value) if name == "seed" else float(value)
        except ValueError:
            raise UsageError(f"simulated radio URI {uri!r}: {key} must be a number, got {value!r}") from None
    return SimParams(**kwargs)


class SimAir:
    """The medium simulated radios share: what one transmits, the others (and itself) receive."""

    def __init__(self) -> None:
        self.radios: list[SimRadio] = []

    def join(self, radio: SimRadio) -> None:
        self.radios.append(radio)


class SimRadio(Radio):
    driver = "sim"

    def __init__(self, params: SimParams | None = None, uri: str = "sim", air: SimAir | None = None) -> None:
        super().__init__()
        self.params = params or SimParams()
        self.uri = uri
        self.ppm = self.params.oscillator_ppm()
        self.air = air or SimAir()
        self.air.join(self)
        self._rng = np.random.default_rng([self.params.seed, 2])
        self._lo_phase = float(self._rng.uniform(0, 2 * np.pi))
        self._tx: np.ndarray | None = None
        self._tx_cyclic = False
        self._clock = 0  # RX sample counter: the time base for carrier offsets
        self.last_gain_db: float | None = None
        self.tx_clipped = 0

    @classmethod
    def from_uri(cls, uri: str, air: SimAir | None = None) -> SimRadio:
        return cls(parse_sim_uri(uri), uri, air)

    def with_params(self, **changes: Any) -> SimRadio:
        """A new radio on the same air with some parameters changed (tests)."""
        return SimRadio(replace(self.params, **changes), self.uri, self.air)

    # --- Radio interface ------------------------------------------------------------------------
    def _apply(self, config: RadioConfig) -> None:
        pass  # nothing to program: receive() reads self.config

    def info(self) -> RadioInfo:
        return RadioInfo(uri=self.uri, driver="sim", serial=f"sim-{self.params.seed}", model="SimRadio (semjscc)",
                         firmware="sim", temperature_c=self.params.temperature_c)

    def transmit(self, samples: np.ndarray, cyclic: bool = True) -> None:
        self.config  # noqa: B018 (raises when not configured, like a real radio would misbehave)
        x, clipped = clip_full_scale(samples)
        if not len(x):
            raise UsageError("nothing to transmit: empty buffer")
        self.tx_clipped += clipped
        self._tx, self._tx_cyclic = x, cyclic

    def stop_transmit(self) -> None:
        self._tx = None

    def receive(self, n: int) -> np.ndarray:
        cfg, p = self.config, self.params
        n = int(n)
        if n <= 0:
            raise UsageError("receive: the number of samples must be > 0")
        t = np.arange(n, dtype=np.float64) + self._clock
        y = np.zeros(n, dtype=np.complex128)
        for src in self.air.radios:
            burst = src._emit(n)
            if burst is None:
                continue
            offset_hz = src.config.lo_hz * (1 + src.ppm * 1e-6) - cfg.lo_hz * (1 + self.ppm * 1e-6)
            if abs(offset_hz) > cfg.rf_bandwidth / 2:
                continue  # outside the analog filter
            phase = 2 * np.pi * offset_hz / cfg.sample_rate * t + src._lo_phase - self._lo_phase
            y += air_signal(burst, src.params, src.config.tx_atten_db, p.path_loss_db, self._rng) * np.exp(1j * phase)
        out, self.last_gain_db = front_end(y, cfg.sample_rate, cfg.rx_gain_mode, cfg.rx_gain_db, p, self._rng)
        self._clock += n + int(self._rng.integers(1000, 100000))  # captures are not back to back
        return out

    def _emit(self, n: int) -> np.ndarray | None:
        """What this radio's TX puts on the air during the next ``n`` receive samples."""
        if self._tx is None:
            return None
        x = self._tx
        if self._tx_cyclic:
            start = int(self._rng.integers(0, len(x)))
            return np.take(x, start + np.arange(n), mode="wrap").astype(np.complex128)
        out = np.zeros(n, dtype=np.complex128)
        start = int(self._rng.integers(0, max(1, n - len(x) + 1)))
        seg = x[:n - start]
        out[start:start + len(seg)] = seg
        self._tx = None  # one-shot: gone once received
        return out

    def describe(self) -> dict[str, Any]:
        """The simulated truth (for recordings and tests)."""
        return {**asdict(self.params), "ppm": self.ppm}


def air_signal(burst: np.ndarray, tx: SimParams, tx_atten_db: float, path_loss_db: float,
               rng: np.random.Generator) -> np.ndarray:
    """A transmitter's samples (full scale 1.0) as they reach a receiver's antenna, in sqrt(mW): TX level
    less attenuation and path loss, with the TX distortion noise ``tx.tx_evm_db`` below the signal.
    The carrier offset is the caller's (it depends on how the caller keeps time)."""
    n = len(burst)
    distortion = 10 ** (tx.tx_evm_db / 20) * (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / math.sqrt(2)
    amp_dbm = tx.tx_power_dbm - tx_atten_db - path_loss_db
    return 10 ** (amp_dbm / 20) * burst * (1 + distortion)


def front_end(y: np.ndarray, sample_rate: float, gain_mode: str, gain_db: float, p: SimParams,
              rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The receiver from its antenna (``y`` in sqrt(mW)) to ADC samples: thermal noise, RX gain (manual, or
    the AGC's), IQ imbalance, DC offset, 12-bit ADC -> (complex64 full scale 1.0, the gain applied).
    One definition for :class:`SimRadio` and the emulated Pluto (:mod:`semjscc.radio.emulator`)."""
    n = len(y)
    noise_dbm = _BOLTZMANN_DBM_HZ + 10 * math.log10(sample_rate) + p.noise_figure_db
    y = y + 10 ** (noise_dbm / 20) * (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / math.sqrt(2)
    if gain_mode != "manual":
        level_dbm = 10 * math.log10(np.mean(np.abs(y) ** 2) + 1e-30)
        gain_db = float(np.clip(np.round(_AGC_TARGET_DBFS - level_dbm + p.full_scale_dbm), -3, 71))
    y = y * 10 ** ((gain_db - p.full_scale_dbm) / 20)  # sqrt(mW) -> full-scale units
    y = impair_iq(y, 10 ** (p.iq_gain_db / 20), math.radians(p.iq_phase_deg))
    y += 10 ** (p.dc_dbfs / 20) * np.exp(1j * math.radians(30.0))
    return quantize_adc(y), float(gain_db)


def impair_iq(x: np.ndarray, gain: float, phase_rad: float) -> np.ndarray:
    """Receiver IQ imbalance with the I branch as reference: Q' = gain * (Q cos(phi) + I sin(phi)).
    :func:`semjscc.radio.calib.estimators.iq_imbalance` estimates exactly these two numbers."""
    i, q = x.real, x.imag
    return i + 1j * gain * (q * math.cos(phase_rad) + i * math.sin(phase_rad))


def quantize_adc(y: np.ndarray) -> np.ndarray:
    """12-bit ADC: clip each component at full scale, round to 1/2048."""
    lim = 2047 / 2048
    re = np.round(np.clip(y.real, -1.0, lim) * 2048) / 2048
    im = np.round(np.clip(y.imag, -1.0, lim) * 2048) / 2048
    return (re + 1j * im).astype(np.complex64)
