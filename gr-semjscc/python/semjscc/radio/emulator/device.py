"""The emulated Pluto's IIO devices: ``ad9361-phy``, ``cf-ad9361-lpc`` (RX) and ``cf-ad9361-dds-core-lpc``
(TX), their channels and attributes with the sysfs file names libiio clients look them up by, the
ranges the AD9361 driver enforces, and the context XML an iiod sends for ``PRINT``.

Names and file names follow a stock Pluto's context (``iio_info -u ip:192.168.2.1`` on firmware v0.3x):
gr-iio's blocks find attributes by file name (``iio_device_identify_filename``: ``in_voltage_sampling_frequency``,
``out_altvoltage0_RX_LO_frequency``, ...), libad9361 (``ad9361_set_bb_rate``) and pyadi-iio by channel and
attribute name, and both read the FPGA's overflow/underflow flags through ``direct_reg_access``.

A write the driver would refuse returns a negative errno (-EINVAL for out of range or an unknown mode),
which the client turns into its usual error (an ``OSError`` in pylibiio, a warning in gr-iio).
"""

from __future__ import annotations

import errno
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

XO_NOMINAL_HZ = 40_000_000  # the Pluto's reference oscillator
XO_CORRECTION_RANGE = (39_992_000, 40_008_000)  # what the driver accepts (+-200 ppm)
STATUS_REG = 0x80000088  # the AXI ADC/DAC core's status register: bit 2 RX overflow, bit 0 TX underflow
OVERFLOW_BIT, UNDERFLOW_BIT = 0x4, 0x1


# The document type libiio 0.24 validates a context description against (it warns "no DTD found" without it)
_DTD = ("<!DOCTYPE context ["
        "<!ELEMENT context (device | context-attribute)*>"
        "<!ELEMENT context-attribute EMPTY>"
        "<!ELEMENT device (channel | attribute | debug-attribute | buffer-attribute)*>"
        "<!ELEMENT channel (scan-element?, attribute*)>"
        "<!ELEMENT attribute EMPTY><!ELEMENT scan-element EMPTY>"
        "<!ELEMENT debug-attribute EMPTY><!ELEMENT buffer-attribute EMPTY>"
        "<!ATTLIST context name CDATA #REQUIRED version-major CDATA #REQUIRED version-minor CDATA #REQUIRED "
        "version-git CDATA #REQUIRED description CDATA #IMPLIED>"
        "<!ATTLIST context-attribute name CDATA #REQUIRED value CDATA #REQUIRED>"
        "<!ATTLIST device id CDATA #REQUIRED name CDATA #IMPLIED label CDATA #IMPLIED>"
        "<!ATTLIST channel id CDATA #REQUIRED type (input|output) #REQUIRED name CDATA #IMPLIED>"
        "<!ATTLIST scan-element index CDATA #REQUIRED format CDATA #REQUIRED scale CDATA #IMPLIED>"
        "<!ATTLIST attribute name CDATA #REQUIRED filename CDATA #IMPLIED>"
        "<!ATTLIST debug-attribute name CDATA #REQUIRED>"
        "<!ATTLIST buffer-attribute name CDATA #REQUIRED>]>")


@dataclass(frozen=True)
class ChipLimits:
    """Ranges the driver enforces. A stock Pluto runs as an AD9363; the "ad9364" variant is the popular
    firmware setting (``fw_setenv attr_val ad9364``) that widens them."""

    model: str
    lo_hz: tuple[float, float]
    rate: tuple[float, float]
    bandwidth: tuple[float, float]


CHIPS = {
    "ad9363": ChipLimits("ad9363a", (325e6, 3.8e9), (520_833, 61.44e6), (200e3, 20e6)),
    "ad9364": ChipLimits("ad9364", (70e6, 6e9), (520_833, 61.44e6), (200e3, 56e6)),
}
RX_GAIN_MODES = ("manual", "fast_attack", "slow_attack", "hybrid")


def rx_gain_range(lo_hz: float) -> tuple[int, int]:
    """The AD9361's full gain table range at an LO (dB): it tops out lower at high frequencies."""
    if lo_hz <= 1.3e9:
        return (-1, 73)
    if lo_hz <= 4e9:
        return (-3, 71)
    return (-10, 62)


@dataclass
class RadioState:
    """What the attributes set; read by the signal path (:mod:`semjscc.radio.emulator.air`) under ``lock``."""

    chip: ChipLimits
    rx_lo: int = 2_400_000_000
    tx_lo: int = 2_450_000_000
    rx_lo_powerdown: bool = False
    tx_lo_powerdown: bool = False
    sample_rate: int = 30_720_000
    rx_bw: int = 18_000_000
    tx_bw: int = 18_000_000
    tx_gain_db: float = -10.0  # TX hardwaregain: minus the attenuation
    gain_mode: str = "slow_attack"
    rx_gain_db: float = 71.0
    xo_correction: int = XO_NOMINAL_HZ
    fir_enabled: bool = False
    fir_config: str = ""
    loopback: int = 0  # digital loopback (1) is not modelled; kept so pyadi-iio can read it back
    status: dict[str, int] = field(default_factory=lambda: {"rx": 0, "tx": 0})
    lpc_rate_divider: int = 1  # the FPGA's decimation/interpolation by 8 (1 or 8)
    dds: dict[str, dict[str, str]] = field(default_factory=dict)
    last_rx_dbfs: float = -100.0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    generation: int = 0  # bumped when the clocks change: open buffers re-synchronise

    @property
    def tx_atten_db(self) -> float:
        return -self.tx_gain_db

    @property
    def stream_rate(self) -> float:
        """Sample rate of the buffers (after the FPGA's optional decimation by 8)."""
        return self.sample_rate / self.lpc_rate_divider


Getter = Callable[[], str]
Setter = Callable[[str], int]  # 0 or -errno


@dataclass
class Attr:
    name: str
    filename: str
    get: Getter
    set: Setter | None = None


@dataclass
class Channel:
    id: str
    output: bool
    name: str | None = None
    scan_index: int | None = None  # a scan element (buffer channel) when set
    fmt: str = ""
    attrs: dict[str, Attr] = field(default_factory=dict)


@dataclass
class Device:
    id: str
    name: str
    channels: list[Channel] = field(default_factory=list)
    attrs: dict[str, Attr] = field(default_factory=dict)
    debug_attrs: dict[str, Attr] = field(default_factory=dict)

    def channel(self, chn_id: str, output: bool) -> Channel | None:
        return next((c for c in self.channels if c.id == chn_id and c.output == output), None)

    @property
    def is_tx(self) -> bool:
        return any(c.output for c in self.channels if c.scan_index is not None)


def _number(text: str) -> float | None:
    try:
        v = float(text.strip().split()[0])
    except (ValueError, IndexError):
        return None
    return v if math.isfinite(v) else None


def _ranged(value: float | None, lo: float, hi: float) -> bool:
    return value is not None and lo <= value <= hi


class PlutoDevices:
    """The three devices of one emulated Pluto over one :class:`RadioState`."""

    def __init__(self, state: RadioState, serial: str, uri: str) -> None:
        self.state, self.serial, self.uri = state, serial, uri
        self.devices = [self._phy(), self._dds(), self._lpc()]
        self.context_attrs = {
            "hw_model": f"Analog Devices PlutoSDR Rev.C (Z7010-{state.chip.model.upper()}) [semjscc emulator]",
            "hw_model_variant": "0",
            "hw_serial": serial,
            "fw_version": "v0.38-emulated",
            "ad9361-phy,model": state.chip.model,
            "ad9361-phy,xo_correction": str(XO_NOMINAL_HZ),
            "local,kernel": "semjscc-emulator",
            "uri": uri,
        }

    def find(self, key: str) -> Device | None:
        """A device by id, name (what iiod's lexer accepts)."""
        return next((d for d in self.devices if key in (d.id, d.name)), None)

    # --- ad9361-phy -------------------------------------------------------------------------------
    def _phy(self) -> Device:
        s, chip = self.state, self.state.chip
        dev = Device("iio:device0", "ad9361-phy")

        def setter(check: Callable[[str], bool], apply: Callable[[str], None], clocks: bool = False) -> Setter:
            def write(text: str) -> int:
                with s.lock:
                    if not check(text):
                        return -errno.EINVAL
                    apply(text)
                    if clocks:
                        s.generation += 1
                return 0
            return write

        def num_in(lo: float, hi: float) -> Callable[[str], bool]:
            return lambda t: _ranged(_number(t), lo, hi)

        def rate_set(t: str) -> None:
            s.sample_rate = round(_number(t) or 0)

        def rate_ok(t: str) -> bool:
            return _ranged(_number(t), *chip.rate)

        def lo_attrs(which: str) -> dict[str, Attr]:
            lo_get = (lambda: str(s.rx_lo)) if which == "rx" else (lambda: str(s.tx_lo))

            def lo_set(t: str) -> None:
                setattr(s, f"{which}_lo", round(_number(t) or 0))

            def pd_get() -> str:
                return str(int(getattr(s, f"{which}_lo_powerdown")))

            def pd_set(t: str) -> None:
                setattr(s, f"{which}_lo_powerdown", bool(int(_number(t) or 0)))

            ch, label = ("altvoltage0", "RX_LO") if which == "rx" else ("altvoltage1", "TX_LO")
            base = f"out_{ch}_{label}_"
            lo, hi = chip.lo_hz
            attrs = {
                "frequency": Attr("frequency", base + "frequency", lo_get, setter(num_in(lo, hi), lo_set)),
                "frequency_available": Attr("frequency_available", base + "frequency_available",
                                            lambda: f"[{lo:.0f} 1 {hi:.0f}]"),
                "powerdown": Attr("powerdown", base + "powerdown", pd_get, setter(num_in(0, 1), pd_set)),
                "external": Attr("external", base + "external", lambda: "0", setter(num_in(0, 1), lambda t: None)),
                "fastlock_store": Attr("fastlock_store", base + "fastlock_store", lambda: "0",
                                       setter(num_in(0, 15), lambda t: None)),
                "fastlock_recall": Attr("fastlock_recall", base + "fastlock_recall", lambda: "0",
                                        setter(num_in(0, 15), lambda t: None)),
            }
            return attrs

        dev.channels.append(Channel("altvoltage0", True, "RX_LO", attrs=lo_attrs("rx")))
        dev.channels.append(Channel("altvoltage1", True, "TX_LO", attrs=lo_attrs("tx")))

        def gain_ok(t: str) -> bool:
            lo, hi = rx_gain_range(s.rx_lo)
            return _ranged(_number(t), lo, hi)

        def gain_set(t: str) -> None:
            if s.gain_mode == "manual":  # the driver ignores a manual gain while the AGC runs
                s.rx_gain_db = float(round(_number(t) or 0))

        def mode_set(t: str) -> None:
            s.gain_mode = t.strip()

        def bw_set(which: str) -> Setter:
            return setter(num_in(*chip.bandwidth), lambda t: setattr(s, f"{which}_bw", round(_number(t) or 0)))

        def fir_en_set(t: str) -> None:
            s.fir_enabled = bool(int(_number(t) or 0))

        def flag(name: str, filename: str, default: str = "1") -> Attr:
            box = [default]
            return Attr(name, filename, lambda: box[0],
                        setter(num_in(0, 1), lambda t: box.__setitem__(0, str(int(_number(t) or 0)))))

        rate_attrs = {
            "sampling_frequency": Attr("sampling_frequency", "{d}_voltage_sampling_frequency", lambda: str(s.sample_rate),
                                       setter(rate_ok, rate_set, clocks=True)),
            "sampling_frequency_available": Attr("sampling_frequency_available",
                                                 "{d}_voltage_sampling_frequency_available",
                                                 lambda: f"[{chip.rate[0]:.0f} 1 {chip.rate[1]:.0f}]"),
            "rf_bandwidth_available": Attr("rf_bandwidth_available", "{d}_voltage_rf_bandwidth_available",
                                           lambda: f"[{chip.bandwidth[0]:.0f} 1 {chip.bandwidth[1]:.0f}]"),
            "filter_fir_en": Attr("filter_fir_en", "{d}_voltage_filter_fir_en", lambda: str(int(s.fir_enabled)),
                                  setter(num_in(0, 1), fir_en_set)),
        }

        def shared(d: str) -> dict[str, Attr]:
            return {k: Attr(a.name, a.filename.format(d=d), a.get, a.set) for k, a in rate_attrs.items()}

        rx = Channel("voltage0", False)
        rx.attrs = {
            **shared("in"),
            "hardwaregain": Attr("hardwaregain", "in_voltage0_hardwaregain", lambda: f"{s.rx_gain_db:.6f} dB",
                                 setter(gain_ok, gain_set)),
            "hardwaregain_available": Attr("hardwaregain_available", "in_voltage0_hardwaregain_available",
                                           lambda: "[{} 1 {}]".format(*rx_gain_range(s.rx_lo))),
            "gain_control_mode": Attr("gain_control_mode", "in_voltage0_gain_control_mode", lambda: s.gain_mode,
                                      setter(lambda t: t.strip() in RX_GAIN_MODES, mode_set)),
            "gain_control_mode_available": Attr("gain_control_mode_available",
                                                "in_voltage_gain_control_mode_available", lambda: " ".join(RX_GAIN_MODES)),
            "rf_bandwidth": Attr("rf_bandwidth", "in_voltage_rf_bandwidth", lambda: str(s.rx_bw), bw_set("rx")),
            "rssi": Attr("rssi", "in_voltage0_rssi", lambda: f"{max(0.0, -s.last_rx_dbfs):.2f} dB"),
            "rf_port_select": Attr("rf_port_select", "in_voltage0_rf_port_select", lambda: "A_BALANCED",
                                   setter(lambda t: t.strip() in ("A_BALANCED", "B_BALANCED", "C_BALANCED"),
                                          lambda t: None)),
            "rf_port_select_available": Attr("rf_port_select_available", "in_voltage_rf_port_select_available",
                                             lambda: "A_BALANCED B_BALANCED C_BALANCED A_N A_P B_N B_P C_N C_P TX_MONITOR1 "
                                                     "TX_MONITOR2 TX_MONITOR1_2"),
            "quadrature_tracking_en": flag("quadrature_tracking_en", "in_voltage_quadrature_tracking_en"),
            "rf_dc_offset_tracking_en": flag("rf_dc_offset_tracking_en", "in_voltage_rf_dc_offset_tracking_en"),
            "bb_dc_offset_tracking_en": flag("bb_dc_offset_tracking_en", "in_voltage_bb_dc_offset_tracking_en"),
        }
        tx = Channel("voltage0", True)
        tx.attrs = {
            **shared("out"),
            "hardwaregain": Attr("hardwaregain", "out_voltage0_hardwaregain", lambda: f"{s.tx_gain_db:.6f} dB",
                                 setter(num_in(-89.75, 0.0),
                                        lambda t: setattr(s, "tx_gain_db", round((_number(t) or 0) * 4) / 4))),
            "rf_bandwidth": Attr("rf_bandwidth", "out_voltage_rf_bandwidth", lambda: str(s.tx_bw), bw_set("tx")),
            "rssi": Attr("rssi", "out_voltage0_rssi", lambda: "0.00 dB"),
            "rf_port_select": Attr("rf_port_select", "out_voltage0_rf_port_select", lambda: "A",
                                   setter(lambda t: t.strip() in ("A", "B"), lambda t: None)),
            "rf_port_select_available": Attr("rf_port_select_available", "out_voltage_rf_port_select_available",
                                             lambda: "A B"),
        }
        # libad9361 and pyadi-iio switch the RX and TX FIR filters together through this pseudo channel
        out = Channel("out", False, attrs={"voltage_filter_fir_en": Attr(
            "voltage_filter_fir_en", "in_out_voltage_filter_fir_en", lambda: str(int(s.fir_enabled)),
            setter(num_in(0, 1), fir_en_set))})
        temp = Channel("temp0", False, attrs={"input": Attr("input", "in_temp0_input", lambda: "38000")})
        dev.channels += [rx, tx, out, temp]

        def path_rates(kind: str) -> str:
            r = s.sample_rate
            if kind == "rx":
                return f"BBPLL:{r * 32} ADC:{r * 8} R2:{r * 4} R1:{r * 2} RF:{r} RXSAMP:{r}"
            return f"BBPLL:{r * 32} DAC:{r * 8} T2:{r * 4} T1:{r * 2} TF:{r} TXSAMP:{r}"

        def fir_get() -> str:
            return "FIR Rx: 128,4 Tx: 128,4" if s.fir_config else "FIR Rx: 0,0 Tx: 0,0"

        def xo_set(t: str) -> None:
            s.xo_correction = round(_number(t) or 0)

        def plain(name: str, value: str) -> Attr:
            box = [value]
            return Attr(name, name, lambda: box[0], lambda t: (box.__setitem__(0, t.strip()), 0)[1])

        for a in (
            Attr("xo_correction", "xo_correction", lambda: str(s.xo_correction),
                 setter(num_in(*XO_CORRECTION_RANGE), xo_set, clocks=True)),
            Attr("xo_correction_available", "xo_correction_available",
                 lambda: "[{} 1 {}]".format(*XO_CORRECTION_RANGE)),
            Attr("filter_fir_config", "filter_fir_config", fir_get,
                 setter(lambda t: True, lambda t: setattr(s, "fir_config", t))),
            Attr("rx_path_rates", "rx_path_rates", lambda: path_rates("rx")),
            Attr("tx_path_rates", "tx_path_rates", lambda: path_rates("tx")),
            plain("calib_mode", "auto"),
            Attr("calib_mode_available", "calib_mode_available", lambda: "auto manual manual_tx_quad tx_quad rf_dc_offs rssi_gain_step"),
            plain("ensm_mode", "fdd"),
            Attr("ensm_mode_available", "ensm_mode_available", lambda: "sleep wait alert fdd pinctrl pinctrl_fdd_indep"),
            plain("trx_rate_governor", "nominal"),
            Attr("trx_rate_governor_available", "trx_rate_governor_available", lambda: "nominal highest_osr"),
            plain("dcxo_tune_coarse", "0"),
            plain("dcxo_tune_fine", "0"),
            plain("multichip_sync", "0"),
            plain("rssi_gain_step_error", "lna_error: 0 0 0 0\nmixer_error: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"),
        ):
            dev.attrs[a.name] = a

        def loopback_set(t: str) -> int:
            v = _number(t)
            if v not in (0, 1, 2):
                return -errno.EINVAL
            s.loopback = int(v)
            return 0

        dev.debug_attrs["loopback"] = Attr("loopback", "loopback", lambda: str(s.loopback), loopback_set)
        dev.debug_attrs["direct_reg_access"] = self._register_attr(None)
        return dev

    # --- streaming devices --------------------------------------------------------------------------
    def _register_attr(self, which: str | None) -> Attr:
        """``direct_reg_access``: write "ADDR" to select, "ADDR VALUE" to write; read gives the selected
        register. Only the status register means something (write 1 to clear, as on the FPGA core)."""
        s = self.state
        selected = [0]

        def get() -> str:
            with s.lock:
                if which is not None and selected[0] == STATUS_REG:
                    return str(s.status[which])
                return "0"

        def put(text: str) -> int:
            try:
                parts = [int(p, 0) for p in text.split()]
            except ValueError:
                return -errno.EINVAL
            if not 1 <= len(parts) <= 2:
                return -errno.EINVAL
            selected[0] = parts[0]
            if len(parts) == 2 and which is not None and parts[0] == STATUS_REG:
                with s.lock:
                    s.status[which] &= ~parts[1]
            return 0

        return Attr("direct_reg_access", "direct_reg_access", get, put)

    def _rate_divider_attrs(self, d: str, output: bool) -> dict[str, Attr]:
        """The FPGA's decimation/interpolation by 8 (gr-iio and pyadi-iio reach it through the stream
        device's ``sampling_frequency``)."""
        s = self.state

        def set_rate(t: str) -> int:
            v = _number(t)
            with s.lock:
                if v is None:
                    return -errno.EINVAL
                # the core offers exactly two rates: the AD9361's and an eighth of it
                divider = 8 if abs(v - s.sample_rate / 8) < abs(v - s.sample_rate) else 1
                if divider != s.lpc_rate_divider:
                    s.lpc_rate_divider = divider
                    s.generation += 1
            return 0

        return {
            "sampling_frequency": Attr("sampling_frequency", f"{d}_voltage_sampling_frequency",
                                       lambda: str(round(s.stream_rate)), set_rate),
            "sampling_frequency_available": Attr("sampling_frequency_available",
                                                 f"{d}_voltage_sampling_frequency_available",
                                                 lambda: f"{s.sample_rate} {s.sample_rate // 8} "),
        }

    def _lpc(self) -> Device:
        dev = Device("iio:device2", "cf-ad9361-lpc")
        for i, d in enumerate(("voltage0", "voltage1")):
            ch = Channel(d, False, scan_index=i, fmt="le:S12/16>>0")
            ch.attrs = {
                "calibbias": self._const(f"in_{d}_calibbias", "calibbias", "0"),
                "calibphase": self._const(f"in_{d}_calibphase", "calibphase", "0.000000"),
                "calibscale": self._const(f"in_{d}_calibscale", "calibscale", "1.000000"),
                "samples_pps": self._const("in_voltage_samples_pps", "samples_pps", "0"),
                **self._rate_divider_attrs("in", False),
            }
            dev.channels.append(ch)
        dev.debug_attrs["direct_reg_access"] = self._register_attr("rx")
        return dev

    def _dds(self) -> Device:
        dev = Device("iio:device1", "cf-ad9361-dds-core-lpc")
        for i, d in enumerate(("voltage0", "voltage1")):
            ch = Channel(d, True, scan_index=i, fmt="le:S16/16>>0")
            ch.attrs = {
                "calibphase": self._const(f"out_{d}_calibphase", "calibphase", "0.000000"),
                "calibscale": self._const(f"out_{d}_calibscale", "calibscale", "1.000000"),
                **self._rate_divider_attrs("out", True),
            }
            dev.channels.append(ch)
        # Two DDS tones per I and Q; they play while no TX buffer is open (air.EmulatedRadio.dds_tones)
        s = self.state
        for i, label in enumerate(("TX1_I_F1", "TX1_I_F2", "TX1_Q_F1", "TX1_Q_F2")):
            cid = f"altvoltage{i}"
            values = s.dds.setdefault(cid, {"raw": "0", "frequency": "9279985", "phase": "90000" if "Q" in label else "0",
                                            "scale": "0.000000", "sampling_frequency": "30720000"})
            ch = Channel(cid, True, label)
            for attr in values:
                ch.attrs[attr] = self._stored(f"out_{cid}_{label}_{attr}", attr, values)
            dev.channels.append(ch)
        dev.debug_attrs["direct_reg_access"] = self._register_attr("tx")
        return dev

    @staticmethod
    def _const(filename: str, name: str, value: str) -> Attr:
        return Attr(name, filename, lambda: value, lambda t: 0)

    def _stored(self, filename: str, name: str, values: dict[str, str]) -> Attr:
        def put(t: str) -> int:
            if _number(t) is None:
                return -errno.EINVAL
            values[name] = t.strip()
            return 0
        return Attr(name, filename, lambda: values[name], put)

    # --- the context XML ------------------------------------------------------------------------------
    def xml(self) -> str:
        out = ['<?xml version="1.0" encoding="utf-8"?>', _DTD,
               '<context name="network" description="semjscc emulated ADALM-Pluto" '
               'version-major="0" version-minor="24" version-git="emulate">']
        for k, v in self.context_attrs.items():
            out.append(f"<context-attribute name={quoteattr(k)} value={quoteattr(v)} />")
        for dev in self.devices:
            out.append(f"<device id={quoteattr(dev.id)} name={quoteattr(dev.name)}>")
            for ch in dev.channels:
                name = f" name={quoteattr(ch.name)}" if ch.name else ""
                out.append(f"<channel id={quoteattr(ch.id)}{name} type=\"{'output' if ch.output else 'input'}\">")
                if ch.scan_index is not None:
                    out.append(f"<scan-element index=\"{ch.scan_index}\" format={quoteattr(ch.fmt)} />")
                for a in ch.attrs.values():
                    out.append(f"<attribute name={quoteattr(a.name)} filename={quoteattr(a.filename)} />")
                out.append("</channel>")
            for a in dev.attrs.values():
                out.append(f"<attribute name={quoteattr(a.name)} />")
            for a in dev.debug_attrs.values():
                out.append(f"<debug-attribute name={quoteattr(a.name)} />")
            out.append("</device>")
        out.append("</context>")
        return "".join(out)
