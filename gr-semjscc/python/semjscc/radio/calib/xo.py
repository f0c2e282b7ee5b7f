"""Writing the AD9361's ``xo_correction`` after a two-radio calibration (``semjscc calibrate --peer URI
--write-xo``), so the radio's LOs *and* sample clock match the peer's instead of only its programmed LO.

``xo_correction`` is the reference frequency the driver believes in; every synthesiser and the sample clock
are programmed from it. A radio whose crystal runs ``ppm`` fast relative to the peer (what ``calibrate
--peer`` measures) matches the peer once the driver believes its reference is ``xo_correction x (1 + ppm
1e-6)``. Rounded to 1 Hz that leaves at most 0.0125 ppm (31 Hz at 2.45 GHz), which the re-measured residual
offset, stored as the profile's ``ppm``, then corrects through the LO as before.

The value lives in the driver until the radio reboots; the Pluto's firmware environment (``xo_correction``)
keeps it across reboots.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from semjscc.radio.base import Radio
from semjscc.radio.calib.estimators import estimate_tone_frequency, frequency_error_ppm
from semjscc.radio.calib.procedure import CalibrationPlan
from semjscc.radio.calib.profile import CalibrationProfile
from semjscc.radio.limits import TX_ATTEN_RANGE_DB
from semjscc.util.errors import UsageError


def _residual_offset_hz(radio: Radio, peer: Radio, plan: CalibrationPlan, atten_db: float, gain_db: float) -> float:
    """Offset of the peer's tone as ``radio`` receives it now, both on the nominal LO (no correction)."""
    n = 4096
    tone_hz = (n // 8) * plan.sample_rate / n  # whole cycles per cyclic buffer: no phase jump at the wrap
    wave = (0.5 * np.exp(2j * np.pi * tone_hz / plan.sample_rate * np.arange(n))).astype(np.complex64)
    peer.configure(plan.config(atten_db, gain_db))
    radio.configure(plan.config(TX_ATTEN_RANGE_DB[1], gain_db))  # its own TX as quiet as it goes
    peer.transmit(wave, cyclic=True)
    try:
        x = radio.receive(plan.capture)
    finally:
        peer.stop_transmit()
    return estimate_tone_frequency(x, plan.sample_rate) - tone_hz


def write_xo_correction(radio: Radio, peer: Radio, plan: CalibrationPlan, profile: CalibrationProfile,
                        progress: Callable[[str], None] | None = None) -> CalibrationProfile:
    """Correct ``radio``'s reference by the ``ppm`` ``profile`` measured against ``peer``, re-measure the
    offset and return the profile with the residual as its ``ppm`` (and what was written)."""
    say = progress or (lambda _msg: None)
    ppm = profile.ppm
    if ppm is None:
        raise UsageError("--write-xo needs --peer: a one-radio loopback cannot measure the oscillator")
    getter: Any = getattr(radio, "xo_correction", None)
    setter: Any = getattr(radio, "set_xo_correction", None)
    if getter is None or setter is None:
        raise UsageError(f"radio {radio.uri} ({radio.driver}) has no xo_correction to write; use a Pluto (ip:, usb:)")
    before = int(getter())
    value = round(before * (1 + ppm * 1e-6))
    setter(value)
    say(f"xo_correction {before} -> {value} Hz ({ppm:+.3f} ppm)")
    atten = float(profile.tone.get("tx_atten_db", 40.0))
    gain = plan.rx_gains_db[len(plan.rx_gains_db) // 2]
    residual = _residual_offset_hz(radio, peer, plan, atten, gain)
    residual_ppm = -frequency_error_ppm(residual, plan.center_freq_hz)
    say(f"residual offset after xo_correction: {residual:+.1f} Hz ({residual_ppm:+.4f} ppm)")
    osc = dict(profile.oscillator)
    osc.update({
        "ppm": residual_ppm,
        "offset_hz": residual,
        "ppm_before_xo_correction": ppm,
        "offset_hz_before_xo_correction": profile.oscillator.get("offset_hz"),
        "xo_correction_hz": value,
        "xo_correction_before_hz": before,
        "note": (f"xo_correction = {value} Hz written on this radio (lost at reboot unless set in the Pluto's "
                 "firmware environment); ppm is the residual relative to the peer: program LO = f / (1 + ppm 1e-6)"),
    })
    profile.oscillator = osc
    return profile
