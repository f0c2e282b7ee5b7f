"""The one layer that touches real hardware: an ADALM-Pluto through pyadi-iio (``adi.Pluto``).

Everything above it (calibration, the experiment runner, recording, replay) runs unchanged on
:class:`semjscc.radio.sim.SimRadio`; what only a real radio can check lives here and is kept small:

* attribute names: ``sample_rate``, ``rx_lo``/``tx_lo``, ``rx_rf_bandwidth``/``tx_rf_bandwidth``,
  ``tx_hardwaregain_chan0`` (negative dB = attenuation), ``gain_control_mode_chan0``,
  ``rx_hardwaregain_chan0`` (manual mode only), ``rx_buffer_size``, ``tx_cyclic_buffer``,
  ``tx()``/``rx()``/``tx_destroy_buffer()``/``rx_destroy_buffer()`` (pyadi-iio 0.0.21's ``ad9364``);
* scaling: TX floats x 2**14 -> int16 DAC words, RX int16 / 2**11 (see :mod:`semjscc.radio.base`);
* device facts from the IIO context: ``hw_serial``, ``fw_version``, ``hw_model``; the AD9361's
  temperature from ``ad9361-phy``'s ``temp0`` input (milli-degrees C);
* no device: connecting runs in a helper thread and is abandoned after ``timeout_s`` (libiio's network
  backend waits ~5 s on a socket that accepts but never answers), so a missing radio is a one-line
  UsageError within seconds, never a hang.
"""

from __future__ import annotations

import contextlib
import errno
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from semjscc.radio.base import (
    RX_COUNTS_PER_UNIT,
    TX_COUNTS_PER_UNIT,
    Radio,
    RadioConfig,
    RadioError,
    RadioInfo,
    clip_full_scale,
)
from semjscc.util.errors import UsageError

CONNECT_TIMEOUT_S = 10.0  # ip:pluto.local resolves through Avahi first: 4 s was too short
IIO_TIMEOUT_MS = 5000  # per buffer operation once connected


def _import_adi() -> Any:
    try:
        import adi
    except ImportError as e:
        raise UsageError(f"pyadi-iio is not installed ({e}); install the radio extra: "
                         "pip install 'gr-semjscc[radio]' (or scripts/setup.sh dev)") from None
    return adi


@contextlib.contextmanager
def _device(uri: str, what: str) -> Iterator[None]:
    """Driver exceptions (pyadi-iio raises bare Exceptions, libiio OSErrors) -> one-line RadioError."""
    try:
        yield
    except (UsageError, RadioError):
        raise
    except Exception as e:
        raise RadioError(f"Pluto {uri}: {what} failed ({type(e).__name__}: {e}); is it still connected?") from e


def connect_pluto(uri: str, timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
    """``adi.Pluto(uri)``, or UsageError within ``timeout_s`` when nothing answers there."""
    adi = _import_adi()
    result: dict[str, Any] = {}

    def attempt() -> None:
        try:
            result["sdr"] = adi.Pluto(uri)
        except BaseException as e:  # pyadi-iio turns every failure into a bare Exception
            result["error"] = e

    worker = threading.Thread(target=attempt, name=f"pluto-connect {uri}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    hint = ("check the cable and the URI (`iio_info -s` lists USB radios; the default network address is "
            "ip:192.168.2.1), or use --uri sim for the simulated radio")
    if worker.is_alive():  # the daemon thread is left to finish on its own; nothing waits for it
        raise UsageError(f"no Pluto answered at {uri} within {timeout_s:g} s: {hint}")
    if "error" in result:
        raise UsageError(f"no Pluto at {uri} ({result['error'] or 'no device found'}): {hint}")
    return result["sdr"]


class PlutoRadio(Radio):
    driver = "pluto"

    def __init__(self, uri: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        super().__init__()
        self.uri = uri
        self._sdr = connect_pluto(uri, timeout_s)
        with contextlib.suppress(Exception):  # an old libiio without timeouts: keep its default
            self._sdr.ctx.set_timeout(IIO_TIMEOUT_MS)
        self._sdr.rx_enabled_channels = [0]
        self._sdr.tx_enabled_channels = [0]
        with contextlib.suppress(Exception):  # the DDS tone generator may be on after boot: silence it
            self._sdr.disable_dds()
        self._transmitting = False
        self._applied: RadioConfig | None = None
        self.tx_clipped = 0

    def _apply(self, config: RadioConfig) -> None:
        """Write what changed since the last configuration: setting ``sample_rate`` reloads the AD9361's
        FIR filters, which takes time and glitches both paths, so it is not repeated needlessly."""
        sdr, old = self._sdr, self._applied
        self.stop_transmit()
        self._applied = None  # a failure half-way leaves the device unknown: write everything next time
        with _device(self.uri, "configuring"):
            self._write(sdr, old, config)
        self._applied = config

    def _write(self, sdr: Any, old: RadioConfig | None, config: RadioConfig) -> None:
        def changed(name: str) -> bool:
            return old is None or getattr(old, name) != getattr(config, name)

        def put(name: str, value: Any) -> None:
            """``sdr.name = value``; a value the driver refuses (EINVAL/ERANGE) is a one-line UsageError naming it."""
            try:
                setattr(sdr, name, value)
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ERANGE):
                    raise
                raise UsageError(f"Pluto {self.uri} refused {name} = {value!r} ({e.strerror or e}): outside what "
                                 "this radio's driver accepts (a stock Pluto is an AD9363: LO 325 MHz-3.8 GHz, RF "
                                 "bandwidth up to 20 MHz)") from None

        if changed("sample_rate"):
            put("sample_rate", round(config.sample_rate))
        if changed("rf_bandwidth"):
            put("rx_rf_bandwidth", round(config.rf_bandwidth))
            put("tx_rf_bandwidth", round(config.rf_bandwidth))
        if changed("lo_hz"):
            put("rx_lo", round(config.lo_hz))
            put("tx_lo", round(config.lo_hz))
        if changed("tx_atten_db"):
            put("tx_hardwaregain_chan0", -round(config.tx_atten_db * 4) / 4)  # 0.25 dB steps, negative = attenuation
        if changed("rx_gain_mode"):
            put("gain_control_mode_chan0", config.rx_gain_mode)
        if config.rx_gain_mode == "manual" and (changed("rx_gain_db") or changed("rx_gain_mode")):
            put("rx_hardwaregain_chan0", float(round(config.rx_gain_db)))

    def xo_correction(self) -> int:
        """The reference frequency (Hz) the AD9361 driver programs its LOs and sample clock from."""
        with _device(self.uri, "reading xo_correction"):
            return int(self._sdr._ctrl.attrs["xo_correction"].value)

    def set_xo_correction(self, hz: int) -> None:
        """Tell the driver the reference runs at ``hz``: LOs and sample clock move together (the driver
        refuses values beyond its range, +-200 ppm on a Pluto: a UsageError naming it)."""
        try:
            self._sdr._ctrl.attrs["xo_correction"].value = str(int(hz))
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ERANGE):
                raise UsageError(f"Pluto {self.uri} refused xo_correction = {int(hz)} ({e.strerror or e})") from None
            raise RadioError(f"Pluto {self.uri}: writing xo_correction failed ({e}); is it still connected?") from e
        self._applied = None  # LOs and rates were re-derived from the new reference: write them all next time

    def info(self) -> RadioInfo:
        attrs = dict(self._sdr.ctx.attrs)
        temp = None
        try:
            temp = float(self._sdr._ctrl.find_channel("temp0").attrs["input"].value) / 1000.0
        except Exception:  # older firmware: no temperature channel
            temp = None
        return RadioInfo(uri=self.uri, driver="pluto", serial=str(attrs.get("hw_serial", "unknown")),
                         model=str(attrs.get("hw_model", "ADALM-Pluto")), firmware=str(attrs.get("fw_version", "?")),
                         temperature_c=temp)

    def transmit(self, samples: np.ndarray, cyclic: bool = True) -> None:
        self.config  # noqa: B018 (configure first)
        x, clipped = clip_full_scale(samples)
        self.tx_clipped += clipped
        self.stop_transmit()  # a cyclic buffer can only be replaced after destroying it
        with _device(self.uri, "transmitting"):
            self._sdr.tx_cyclic_buffer = bool(cyclic)
            self._sdr.tx(x * TX_COUNTS_PER_UNIT)
        self._transmitting = True

    def stop_transmit(self) -> None:
        if self._transmitting:
            self._transmitting = False
            with _device(self.uri, "stopping the transmission"):
                self._sdr.tx_destroy_buffer()

    def receive(self, n: int) -> np.ndarray:
        self.config  # noqa: B018
        # A fresh buffer: its DMA starts now, so no block captured before the current transmission
        # (or before a gain change) is returned.
        with _device(self.uri, "receiving"):
            self._sdr.rx_destroy_buffer()
            self._sdr.rx_buffer_size = int(n)
            data = np.asarray(self._sdr.rx())
        return (data / RX_COUNTS_PER_UNIT).astype(np.complex64)

    def close(self) -> None:
        try:
            self.stop_transmit()
            self._sdr.rx_destroy_buffer()
        finally:
            self._sdr = None  # type: ignore[assignment]
