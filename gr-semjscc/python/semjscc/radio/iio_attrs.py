"""Radio settings that GNU Radio 3.10's gr-iio blocks drop, written through libiio directly.

GNU Radio 3.10.5's ``iio_pluto_source.block.yml`` shows an RF bandwidth parameter but its template
never applies it (the 3.10 ``fmcomms2_source`` has no ``set_bandwidth``): the AD9361's RX analog
filter stays at whatever was set last, by another program or the previous run. The Pluto flowgraphs
call :func:`write_rx_rf_bandwidth` from a Python Snippet (Main - After Init: the gr-iio blocks exist
and have programmed the rate, whose change re-tunes the filter to the bandwidth in force): it writes
``ad9361-phy``'s ``voltage0`` input ``rf_bandwidth`` and reads it back (the driver rounds).

The write goes through its own libiio context (pylibiio, the binding pyadi-iio uses), opened in a
helper thread so that a radio that does not answer is one line within ``timeout_s``, never a hang.
Over USB a second context may be refused while gr-iio holds the device; the error then says to use
the network URI (ip:192.168.2.1, the Pluto's USB Ethernet), which any number of clients may share.
"""

from __future__ import annotations

import threading
from typing import Any

from semjscc.radio.limits import check_pluto
from semjscc.radio.pluto import CONNECT_TIMEOUT_S
from semjscc.util.errors import UsageError

PHY_DEVICE = "ad9361-phy"
RX_CHANNEL = "voltage0"  # input: the RX path; output voltage0 is the TX's


def _open_context(uri: str, timeout_s: float) -> Any:
    try:
        import iio  # pylibiio (the radio extra)
    except ImportError as e:
        raise UsageError(f"pylibiio is not installed ({e}); install the radio extra: pip install 'gr-semjscc[radio]'") from None
    result: dict[str, Any] = {}

    def attempt() -> None:
        try:
            result["ctx"] = iio.Context(uri)
        except BaseException as e:  # OSError from libiio, anything from the binding
            result["error"] = e

    worker = threading.Thread(target=attempt, name=f"iio-context {uri}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise UsageError(f"no IIO context answered at {uri} within {timeout_s:g} s (to write the RX RF bandwidth)")
    if "error" in result:
        hint = (" (gr-iio holds the USB device: use the network URI ip:192.168.2.1 instead)"
                if uri.startswith("usb:") else "")
        raise UsageError(f"cannot open {uri} to write the RX RF bandwidth: {result['error']}{hint}")
    return result["ctx"]


def write_rx_rf_bandwidth(uri: str, hz: float, timeout_s: float = CONNECT_TIMEOUT_S) -> int:
    """Write the AD9361's RX RF bandwidth (``ad9361-phy`` ``voltage0`` input ``rf_bandwidth``) at
    ``uri``; returns the value the driver reports afterwards (Hz)."""
    check_pluto(rf_bandwidth=float(hz))
    ctx = _open_context(uri, timeout_s)
    dev = ctx.find_device(PHY_DEVICE)
    if dev is None:
        raise UsageError(f"{uri} has no {PHY_DEVICE} device: not an ADALM-Pluto / AD936x radio")
    ch = dev.find_channel(RX_CHANNEL, False)
    if ch is None or "rf_bandwidth" not in ch.attrs:
        raise UsageError(f"{uri}: {PHY_DEVICE} has no {RX_CHANNEL} input rf_bandwidth attribute")
    attr = ch.attrs["rf_bandwidth"]
    try:
        attr.value = str(round(hz))
        return int(attr.value)
    except (OSError, ValueError) as e:
        raise UsageError(f"{uri}: the radio refused {PHY_DEVICE} {RX_CHANNEL} rf_bandwidth = {round(hz)} ({e})") from e
