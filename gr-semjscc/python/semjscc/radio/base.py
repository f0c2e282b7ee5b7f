"""The radio interface every experiment goes through: a Pluto (``PlutoRadio``) or its software stand-in
(``SimRadio``), so calibration, the experiment runner, recording and replay are the same code either way.

Sample convention (both directions): complex64 with full scale 1.0 per component.

* TX: 1.0 = 2**14 DAC counts in the int16 words pyadi-iio sends (its documented convention, which
  leaves 6 dB of headroom below int16 overflow). gr-iio's fc32 sink multiplies floats by 32768, so a
  flowgraph that wants the same RF level as the runner multiplies by ``GR_SINK_SCALE`` = 0.5.
* RX: 1.0 = 2**11 counts, the full scale of the 12-bit ADC as pyadi-iio returns it (sign-extended);
  gr-iio's fc32 source divides by 2048 too, so flowgraph and runner see identical numbers.

Powers in dBFS are relative to a full-scale complex sinusoid (|x| = 1, power 1.0).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from semjscc.phy.channel_model import SAMPLE_RATE
from semjscc.radio.limits import check_pluto
from semjscc.util.errors import SemJSCCError, UsageError

TX_COUNTS_PER_UNIT = 2**14
RX_COUNTS_PER_UNIT = 2**11
GR_SINK_SCALE = TX_COUNTS_PER_UNIT / 32768.0
GAIN_MODES = ("manual", "slow_attack", "fast_attack", "hybrid")

# what a stock Pluto accepts (LO, rate, bandwidth, attenuation, per-band RX gain) is defined once,
# in semjscc.radio.limits


class RadioError(SemJSCCError):
    """The radio failed during use (unplugged, a driver error): one line, exit status 2, as for bad input
    (the fix is at the radio, not in this program; what was measured before is kept by the caller)."""

    exit_code = 2


@dataclass(frozen=True)
class RadioConfig:
    """What ``Radio.configure`` sets. ``lo_hz`` is the LO as programmed (nominal); a calibration profile
    turns a wanted RF frequency into it (:func:`semjscc.radio.calib.apply.lo_hz`)."""

    lo_hz: float = 2.45e9
    sample_rate: float = SAMPLE_RATE
    rf_bandwidth: float = SAMPLE_RATE
    tx_atten_db: float = 40.0
    rx_gain_mode: str = "manual"
    rx_gain_db: float = 40.0

    def validate(self) -> RadioConfig:
        check_pluto(self.lo_hz, self.sample_rate, self.rf_bandwidth, self.tx_atten_db,
                    self.rx_gain_db if self.rx_gain_mode == "manual" else None)
        if self.rx_gain_mode not in GAIN_MODES:
            raise UsageError(f"RX gain mode {self.rx_gain_mode!r}: expected one of {', '.join(GAIN_MODES)}")
        return self

    def with_(self, **changes: Any) -> RadioConfig:
        return replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RadioInfo:
    uri: str
    driver: str  # "pluto" or "sim"
    serial: str
    model: str
    firmware: str
    temperature_c: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Radio(ABC):
    """One transceiver: TX channel 0 and RX channel 0, sharing one reference oscillator."""

    uri: str
    driver: str = "?"

    def __init__(self) -> None:
        self._config: RadioConfig | None = None

    @property
    def config(self) -> RadioConfig:
        if self._config is None:
            raise UsageError(f"radio {self.uri}: configure() it before use")
        return self._config

    def configure(self, config: RadioConfig) -> None:
        config.validate()
        self._apply(config)
        self._config = config

    @abstractmethod
    def _apply(self, config: RadioConfig) -> None: ...

    @abstractmethod
    def info(self) -> RadioInfo: ...

    @abstractmethod
    def transmit(self, samples: np.ndarray, cyclic: bool = True) -> None:
        """Send ``samples`` (full scale 1.0, clipped there). Cyclic: repeated until
        :meth:`stop_transmit`; one-shot: sent once."""

    @abstractmethod
    def stop_transmit(self) -> None: ...

    @abstractmethod
    def receive(self, n: int) -> np.ndarray:
        """``n`` contiguous complex64 samples captured from now on (full scale 1.0)."""

    def close(self) -> None:
        """Release the device (stops a cyclic transmission)."""
        self.stop_transmit()

    def __enter__(self) -> Radio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clip_full_scale(samples: np.ndarray) -> tuple[np.ndarray, int]:
    """(samples with I and Q clipped to +-1, number of samples that were clipped)."""
    x = np.asarray(samples, dtype=np.complex64).ravel()
    re, im = np.clip(x.real, -1.0, 1.0), np.clip(x.imag, -1.0, 1.0)
    clipped = int(np.count_nonzero((re != x.real) | (im != x.imag)))
    return (re + 1j * im).astype(np.complex64), clipped
