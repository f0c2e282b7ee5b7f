"""Radio calibration: estimators on IQ (:mod:`.estimators`), the ``semjscc calibrate`` procedure
(:mod:`.procedure`), per-device profiles (:mod:`.profile`) and applying them (:mod:`.apply`)."""

from semjscc.radio.calib.apply import lo_hz, tx_atten_db
from semjscc.radio.calib.profile import CalibrationProfile, calibration_dir

__all__ = ["CalibrationProfile", "calibration_dir", "lo_hz", "tx_atten_db"]
