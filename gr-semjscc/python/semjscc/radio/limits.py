"""What a stock ADALM-Pluto accepts: one definition, used by the radio layer, ``ota``, ``calibrate``
and the Pluto flowgraphs (a variable that checks their parameters before gr-iio sees them).

A stock Pluto is configured as an AD9363: LO 325 MHz - 3.8 GHz (the AD9364's 70 MHz - 6 GHz needs
the firmware's ``ad936x_ext_band_enable`` hack, and is not what the part is specified for). The
RX gain range depends on the band: the AD9361 driver's full gain tables, as its
``hardwaregain_available`` reports them, are -1..73 dB below 1.3 GHz and -3..71 dB from 1.3 GHz
(-10..62 dB from 4 GHz, outside an AD9363's range). A gain past the table's top is refused by the
driver with EINVAL, mid-run; here it is one line before anything is programmed.
"""

from __future__ import annotations

import math

from semjscc.util.errors import UsageError

LO_RANGE_HZ = (325e6, 3.8e9)  # AD9363 as shipped in the Pluto
RATE_RANGE = (521e3, 61.44e6)  # pyadi-iio refuses rates below 521 kS/s
BW_RANGE_HZ = (200e3, 56e6)
TX_ATTEN_RANGE_DB = (0.0, 89.75)  # 0.25 dB steps
# (band lower edge Hz, lowest gain dB, highest gain dB): the full gain table in force from that LO up
RX_GAIN_BANDS = ((0.0, -1.0, 73.0), (1.3e9, -3.0, 71.0), (4.0e9, -10.0, 62.0))


def rx_gain_range_db(lo_hz: float) -> tuple[float, float]:
    """The manual RX gain range (dB) at LO ``lo_hz``."""
    lo, hi = RX_GAIN_BANDS[0][1:]
    for edge, g_lo, g_hi in RX_GAIN_BANDS:
        if lo_hz >= edge:
            lo, hi = g_lo, g_hi
    return lo, hi


def _check(name: str, value: float, lo: float, hi: float, why: str = "") -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and lo <= value <= hi):
        shown = f"{value:g}" if isinstance(value, (int, float)) else repr(value)
        raise UsageError(f"{name} {shown} is outside the Pluto's range {lo:g} .. {hi:g}{why}")


def check_pluto(lo_hz: float | None = None, sample_rate: float | None = None, rf_bandwidth: float | None = None,
                tx_atten_db: float | None = None, rx_gain_db: float | None = None) -> bool:
    """UsageError naming the first setting a stock Pluto refuses (None: not checked); True otherwise
    (so a flowgraph variable can hold the result)."""
    if lo_hz is not None:
        _check("LO frequency (Hz)", lo_hz, *LO_RANGE_HZ, " (a stock Pluto is an AD9363)")
    if sample_rate is not None:
        _check("sample rate (S/s)", sample_rate, *RATE_RANGE)
    if rf_bandwidth is not None:
        _check("RF bandwidth (Hz)", rf_bandwidth, *BW_RANGE_HZ)
    if tx_atten_db is not None:
        _check("TX attenuation (dB)", tx_atten_db, *TX_ATTEN_RANGE_DB)
    if rx_gain_db is not None:
        at = lo_hz if lo_hz is not None else 2.45e9
        g_lo, g_hi = rx_gain_range_db(at)
        _check("RX gain (dB)", rx_gain_db, g_lo, g_hi, f" (the AD9361's gain table at {at / 1e9:g} GHz)")
    return True


def check_flowgraph(uri: str, lo_hz: float, sample_rate: float, rf_bandwidth: float,
                    tx_atten_db: float | None = None, rx_gain_db: float | None = None) -> bool:
    """What the Pluto flowgraphs check before gr-iio opens anything: a URI gr-iio can open and the
    settings a stock Pluto accepts (:func:`check_pluto`). True, for a flowgraph variable."""
    if not isinstance(uri, str) or uri.partition(":")[0] == "sim":
        raise UsageError(f"uri {uri!r}: the Pluto flowgraphs drive a real radio through gr-iio, which cannot open the "
                         "simulated radio (sim is for semjscc ota / calibrate); give ip:192.168.2.1, usb:... or '' "
                         "(the first Pluto found)")
    return check_pluto(lo_hz, sample_rate, rf_bandwidth, tx_atten_db, rx_gain_db)
