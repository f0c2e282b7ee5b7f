"""Applying a calibration profile, identically in the experiment runner and in the Pluto flowgraphs
(their GRC variables call these with the flowgraph's parameters): the LO for a wanted frequency, and
the TX attenuation for a target SNR. An empty profile path means "no profile": values pass through."""

from __future__ import annotations

import math
from pathlib import Path

from semjscc.radio.base import GR_SINK_SCALE
from semjscc.radio.calib.profile import AttenChoice, CalibrationProfile
from semjscc.radio.capture import TX_RMS_DBFS, tx_scale
from semjscc.util.errors import UsageError


def load_optional(calibration: str | Path | None) -> CalibrationProfile | None:
    if calibration is None or str(calibration).strip() in ("", "none"):
        return None
    return CalibrationProfile.load(calibration)


def lo_hz(calibration: str | Path | None, freq_hz: float) -> int:
    """LO to program (whole Hz, what the Pluto takes) for RF frequency ``freq_hz``."""
    profile = load_optional(calibration)
    return round(profile.lo_hz(freq_hz) if profile is not None else float(freq_hz))


def parse_target(target_snr_db: float | str | None) -> float | None:
    """A target SNR from a flowgraph/CLI value: '' / None / NaN mean none."""
    if target_snr_db is None or (isinstance(target_snr_db, str) and not target_snr_db.strip()):
        return None
    v = float(target_snr_db)
    return None if math.isnan(v) else v


def choose_atten(calibration: str | Path | None, tx_atten_db: float, target_snr_db: float | str | None,
                 rx_gain_db: float) -> AttenChoice | None:
    """The profile's choice for a target SNR, or None when there is no target (use ``tx_atten_db``)."""
    target = parse_target(target_snr_db)
    if target is None:
        return None
    profile = load_optional(calibration)
    if profile is None:
        raise UsageError("a target SNR needs a calibration profile (semjscc calibrate --uri URI); "
                         "or give a TX attenuation instead")
    return profile.atten_for_snr(target, rx_gain_db)


def tx_atten_db(calibration: str | Path | None, tx_atten_db: float, target_snr_db: float | str | None = "",
                rx_gain_db: float = 40.0) -> float:
    """TX attenuation: the profile's for ``target_snr_db`` when one is given, else ``tx_atten_db``."""
    choice = choose_atten(calibration, tx_atten_db, target_snr_db, rx_gain_db)
    return float(tx_atten_db) if choice is None else choice.tx_atten_db


def gr_tx_amplitude(calibration: str | Path | None) -> float:
    """Multiplier between the OFDM TX block and gr-iio's Pluto sink that gives the same RF level as the
    experiment runner (the profile's TX level, default ``TX_RMS_DBFS``; see GR_SINK_SCALE)."""
    profile = load_optional(calibration)
    return tx_scale(profile.tx_rms_dbfs if profile is not None else TX_RMS_DBFS) * GR_SINK_SCALE


def design_snr_db(target_snr_db: float | str | None, default: float = 10.0) -> float:
    """The SNR an SNR-adaptive encoder designs for: the target when there is one."""
    target = parse_target(target_snr_db)
    return default if target is None else target
