"""Per-device calibration profiles (``calibration/<serial>.yaml``): what ``semjscc calibrate`` measured,
and the two ways experiments use it: the LO to program for a wanted RF frequency, and the TX attenuation
that gives a target SNR."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from semjscc.radio.limits import TX_ATTEN_RANGE_DB
from semjscc.util.errors import DataError, UsageError
from semjscc.util.files import load_yaml, read_regular, write_text
from semjscc.util.paths import REPO_ROOT

CALIBRATION_ENV = "SEMJSCC_CALIBRATION"
PROFILE_VERSION = 1


def calibration_dir() -> Path:
    """Where profiles live: $SEMJSCC_CALIBRATION, else calibration/ in the checkout."""
    env = os.environ.get(CALIBRATION_ENV)
    return Path(env).expanduser() if env else REPO_ROOT / "calibration"


@dataclass
class SNRPoint:
    rx_gain_db: float
    tx_atten_db: float
    snr_db: float | None  # median receiver estimate; None: no frame decoded
    rx_power_dbfs: float
    peak: float  # largest |I|, |Q| (fraction of full scale)
    clipped: bool
    frames_ok: int
    frames_sent: int


@dataclass
class AttenChoice:
    tx_atten_db: float
    predicted_snr_db: float
    rx_gain_db: float  # the measured gain the choice is based on
    reachable: bool
    note: str = ""


@dataclass
class CalibrationProfile:
    serial: str
    uri: str
    driver: str
    model: str
    firmware: str
    date: str
    temperature_c: dict[str, float | None]  # {"start": .., "end": ..}
    center_freq_hz: float
    sample_rate: float
    rf_bandwidth: float
    tx_rms_dbfs: float  # TX level of the OFDM waveform the SNR table was measured with
    oscillator: dict[str, Any]  # ppm (None in a one-radio loopback), reference, offset_hz, ofdm_cfo_hz, note
    dc_offset: dict[str, float]  # i, q, dbfs
    iq_imbalance: dict[str, float]  # gain_db, phase_deg, image_rejection_db
    noise_floor: list[dict[str, float]]  # [{rx_gain_db, dbfs}]
    snr_table: list[SNRPoint] = field(default_factory=list)
    tone: dict[str, float] = field(default_factory=dict)  # offset_hz, tx_atten_db, rx_power_dbfs
    simulated_truth: dict[str, Any] | None = None  # SimRadio only: the parameters it simulated
    version: int = PROFILE_VERSION

    # --- use ------------------------------------------------------------------------------------
    @property
    def ppm(self) -> float | None:
        v = self.oscillator.get("ppm")
        return None if v is None else float(v)

    def lo_hz(self, freq_hz: float) -> float:
        """The LO to program so that the radio's actual LO is ``freq_hz``: actual = programmed * (1 + ppm 1e-6).
        Without a frequency reference (one-radio loopback) there is nothing to correct."""
        ppm = self.ppm
        return float(freq_hz) if ppm is None else float(freq_hz) / (1 + ppm * 1e-6)

    def gains(self) -> list[float]:
        return sorted({p.rx_gain_db for p in self.snr_table})

    def atten_for_snr(self, target_db: float, rx_gain_db: float) -> AttenChoice:
        """TX attenuation for ``target_db`` (Es/N0 per subcarrier) at the measured RX gain nearest
        ``rx_gain_db``: linear interpolation between measured points on the highest-attenuation stretch
        that brackets the target (the linear part of the curve, below the distortion ceiling); beyond the
        weakest measured point, extrapolated at -1 dB per dB."""
        if not (math.isfinite(target_db) and math.isfinite(rx_gain_db)):
            raise UsageError(f"target SNR {target_db:g} dB at RX gain {rx_gain_db:g} dB: both must be finite numbers")
        gains = self.gains()
        if not gains:
            raise UsageError(f"calibration profile for {self.serial} has no SNR table: re-run semjscc calibrate")
        gain = min(gains, key=lambda g: abs(g - rx_gain_db))
        note = "" if abs(gain - rx_gain_db) < 0.5 else f"RX gain {rx_gain_db:g} dB not measured; used {gain:g} dB"
        pts = sorted((p for p in self.snr_table if p.rx_gain_db == gain and p.snr_db is not None and not p.clipped),
                     key=lambda p: p.tx_atten_db)
        if not pts:
            raise UsageError(f"calibration profile for {self.serial}: no usable SNR point at RX gain {gain:g} dB")
        a = [p.tx_atten_db for p in pts]
        s = [float(p.snr_db) for p in pts]  # type: ignore[arg-type]
        for i in range(len(pts) - 2, -1, -1):
            lo, hi = min(s[i], s[i + 1]), max(s[i], s[i + 1])
            if lo <= target_db <= hi:
                frac = 0.0 if s[i] == s[i + 1] else (s[i] - target_db) / (s[i] - s[i + 1])
                return AttenChoice(_quarter_db(a[i] + frac * (a[i + 1] - a[i])), target_db, gain, True, note)
        best = max(range(len(s)), key=lambda i: s[i])
        if target_db > s[best]:
            why = f"{target_db:g} dB is above the best measured SNR ({s[best]:.1f} dB)"
            return AttenChoice(a[best], s[best], gain, False, "; ".join(filter(None, (note, why))))
        # below the weakest point: the link is linear there (SNR falls 1 dB per dB of attenuation)
        atten = a[-1] + (s[-1] - target_db)
        capped = min(atten, TX_ATTEN_RANGE_DB[1])
        return AttenChoice(_quarter_db(capped), s[-1] - (capped - a[-1]), gain, atten <= TX_ATTEN_RANGE_DB[1],
                           "; ".join(filter(None, (note, "extrapolated beyond the weakest measured point"))))

    # --- files ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: v for k, v in d.items() if not (k == "simulated_truth" and v is None)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalibrationProfile:
        d = dict(d)
        d["snr_table"] = [SNRPoint(**p) for p in d.get("snr_table", [])]
        known = set(cls.__dataclass_fields__)
        prof = cls(**{k: v for k, v in d.items() if k in known})
        prof.check_numbers()
        return prof

    def check_numbers(self) -> None:
        """ValueError naming the first number a profile cannot hold (an edited file: NaN, 0, negative)."""
        for name in ("center_freq_hz", "sample_rate", "rf_bandwidth"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} is {v!r}, not a frequency > 0")
        if not (isinstance(self.tx_rms_dbfs, (int, float)) and math.isfinite(self.tx_rms_dbfs)):
            raise ValueError(f"tx_rms_dbfs is {self.tx_rms_dbfs!r}, not a finite number")
        ppm = self.oscillator.get("ppm") if isinstance(self.oscillator, dict) else None
        if ppm is not None and not (isinstance(ppm, (int, float)) and math.isfinite(ppm) and abs(ppm) < 1000):
            raise ValueError(f"oscillator ppm is {ppm!r}, not a crystal error")
        for i, pt in enumerate(self.snr_table):
            for name in ("rx_gain_db", "tx_atten_db", "rx_power_dbfs"):
                v = getattr(pt, name)
                if not (isinstance(v, (int, float)) and math.isfinite(v)):
                    raise ValueError(f"snr_table[{i}].{name} is {v!r}, not a finite number")
            if pt.snr_db is not None and not (isinstance(pt.snr_db, (int, float)) and math.isfinite(pt.snr_db)):
                raise ValueError(f"snr_table[{i}].snr_db is {pt.snr_db!r}, not a finite number (or null: nothing decoded)")

    def fit_problems(self, serial: str, freq_hz: float, sample_rate: float) -> tuple[str | None, list[str]]:
        """Whether this profile describes a run on radio ``serial`` at ``freq_hz`` and ``sample_rate``:
        (why it must not be used, or None; what to warn about). Another radio's profile has another
        crystal and another SNR table: refused. Another frequency or rate changes path loss and noise
        bandwidth, so the SNR targets drift: said once."""
        if serial and self.serial and serial != self.serial:
            return (f"it was measured on radio {self.serial}, this radio is {serial}: calibrate this one "
                    f"(semjscc calibrate --uri URI) or pass --calibration none"), []
        warn = []
        if abs(freq_hz - self.center_freq_hz) > 0.01 * self.center_freq_hz:
            warn.append(f"measured at {self.center_freq_hz / 1e6:g} MHz, used at {freq_hz / 1e6:g} MHz: path loss and "
                        f"gains differ, so the SNR targets may be off; calibrate at this frequency")
        if abs(sample_rate - self.sample_rate) > 1e-6 * self.sample_rate:
            shift = 10 * math.log10(sample_rate / self.sample_rate)
            warn.append(f"measured at {self.sample_rate / 1e6:g} MS/s, used at {sample_rate / 1e6:g} MS/s: the noise "
                        f"bandwidth changes the SNR by about {-shift:+.1f} dB; calibrate at this rate")
        return None, warn

    def save(self, path: str | Path | None = None) -> Path:
        """Write YAML to ``path`` (a file, or a directory for ``<serial>.yaml``; default calibration_dir())."""
        p = Path(path) if path is not None else calibration_dir()
        # a folder (new or existing) gets <serial>.yaml; an existing file, device or pipe (/dev/stdout) is the target
        if p.suffix not in (".yaml", ".yml") and (p.is_dir() or not p.exists()):
            p = p / f"{_safe(self.serial)}.yaml"

        write_text(p, yaml.safe_dump(_plain(self.to_dict()), sort_keys=False))
        return p

    @classmethod
    def load(cls, path: str | Path) -> CalibrationProfile:
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"calibration profile {p} not found (run `semjscc calibrate --uri URI` first)")
        try:
            d = load_yaml(read_regular(p, 1 << 20, "calibration profile").decode("utf-8"), str(p), UsageError)
            return cls.from_dict(d)
        except (DataError, UnicodeDecodeError) as e:
            raise UsageError(f"{p}: not a calibration profile ({e})") from None
        except (TypeError, KeyError, AttributeError, ValueError) as e:
            raise UsageError(f"{p}: not a calibration profile ({type(e).__name__}: {str(e)[:120]})") from None


def profile_path_for(serial: str, directory: str | Path | None = None) -> Path:
    return Path(directory if directory is not None else calibration_dir()) / f"{_safe(serial)}.yaml"


def _safe(serial: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in serial) or "unknown"


def _quarter_db(x: float) -> float:
    return float(min(max(round(x * 4) / 4, TX_ATTEN_RANGE_DB[0]), TX_ATTEN_RANGE_DB[1]))


def _plain(v: Any) -> Any:
    """numpy scalars and non-finite floats -> YAML-safe values."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
