"""Radios behind one interface: ``open_radio("ip:192.168.2.1")`` (ADALM-Pluto via pyadi-iio) or
``open_radio("sim:seed=1")`` (the simulated Pluto). See :mod:`semjscc.radio.base` for the conventions."""

from __future__ import annotations

from semjscc.radio.base import (
    GAIN_MODES,
    GR_SINK_SCALE,
    RX_COUNTS_PER_UNIT,
    TX_COUNTS_PER_UNIT,
    Radio,
    RadioConfig,
    RadioInfo,
)
from semjscc.radio.sim import SimAir, SimParams, SimRadio, parse_sim_uri
from semjscc.util.errors import UsageError

_PLUTO_SCHEMES = ("ip", "usb", "local", "serial")


def open_radio(uri: str, air: SimAir | None = None, timeout_s: float | None = None) -> Radio:
    """A radio by URI: ``sim[:...]`` -> SimRadio (on ``air``, so several simulated radios hear each
    other); ``ip:``/``usb:``/``local:``/``serial:`` -> PlutoRadio, failing within ``timeout_s`` when no
    device answers."""
    scheme = uri.partition(":")[0]
    if scheme == "sim":
        return SimRadio.from_uri(uri, air)
    if scheme in _PLUTO_SCHEMES:
        from semjscc.radio.pluto import CONNECT_TIMEOUT_S, PlutoRadio

        return PlutoRadio(uri, CONNECT_TIMEOUT_S if timeout_s is None else timeout_s)
    raise UsageError(f"radio URI {uri!r}: expected ip:HOST, usb:BUS.DEV.IF, local: or sim[:SEED] "
                     "(e.g. ip:192.168.2.1, or sim for the simulated radio)")


__all__ = ["GAIN_MODES", "GR_SINK_SCALE", "RX_COUNTS_PER_UNIT", "TX_COUNTS_PER_UNIT", "Radio", "RadioConfig",
           "RadioInfo", "SimAir", "SimParams", "SimRadio", "open_radio", "parse_sim_uri"]
