"""``semjscc calibrate``: measure a radio and write its profile.

Steps (TX into RX through a cable and attenuator, or antennas; or from a second radio, ``peer``):

1. noise floor and DC offset at each RX gain, TX silent;
2. a tone at ``sample_rate / 8``, levelled to about -20 dBFS: its frequency error gives the carrier
   offset, its capture the residual IQ imbalance (gain, phase, image rejection) the AD9361's own
   quadrature tracking left;
3. OFDM frames (the experiment's waveform and TX level) at every TX attenuation and RX gain: the
   receiver's SNR estimate (Es/N0 per subcarrier), RX power, clipping -> the SNR table from which
   experiments pick the attenuation for a target SNR.

Oscillator: a Pluto's TX and RX LOs (and its sample clock) come from one crystal, so in a one-radio
loopback its ppm error cancels: the offset measured there is only a check (it should be ~0 Hz) and the
profile's ``ppm`` stays empty. With ``peer`` (another radio transmitting, same programmed LO) the offset
is the difference of the two crystals: ``ppm`` = this radio's error relative to the peer, and the
rest of the calibration runs with this radio's LO corrected by it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from semjscc.phy.channel_model import SAMPLE_RATE
from semjscc.radio.base import Radio, RadioConfig
from semjscc.radio.calib.estimators import (
    dc_offset,
    estimate_tone_frequency,
    frames_snr_db,
    frequency_error_ppm,
    iq_imbalance,
    noise_floor_dbfs,
    peak_fraction,
    power_dbfs,
    tone,
)
from semjscc.radio.calib.profile import CalibrationProfile, SNRPoint
from semjscc.radio.capture import TX_RMS_DBFS, build_batch, frames_in_window, random_payloads, tx_scale
from semjscc.radio.limits import TX_ATTEN_RANGE_DB

TONE_TARGET_DBFS = -20.0
CLIP_PEAK = 0.99


@dataclass
class CalibrationPlan:
    center_freq_hz: float = 2.45e9
    sample_rate: float = SAMPLE_RATE
    rf_bandwidth: float | None = None  # default: the sample rate
    rx_gains_db: tuple[float, ...] = (20.0, 40.0, 60.0)
    tx_attens_db: tuple[float, ...] = tuple(float(a) for a in range(0, 90, 5))
    tx_rms_dbfs: float = TX_RMS_DBFS
    capture: int = 1 << 15
    frames_per_point: int = 8
    payload_len: int = 512
    seed: int = 0
    steps: list[str] = field(default_factory=list)  # filled in as it runs (for logs)

    def config(self, tx_atten_db: float, rx_gain_db: float, lo_hz: float | None = None) -> RadioConfig:
        return RadioConfig(lo_hz=lo_hz or self.center_freq_hz, sample_rate=self.sample_rate,
                           rf_bandwidth=self.rf_bandwidth or self.sample_rate, tx_atten_db=tx_atten_db,
                           rx_gain_mode="manual", rx_gain_db=rx_gain_db).validate()

    @property
    def n_steps(self) -> int:
        return len(self.rx_gains_db) * (1 + len(self.tx_attens_db)) + 2


Progress = Callable[[str], None]


def calibrate(radio: Radio, plan: CalibrationPlan, peer: Radio | None = None,
              progress: Progress | None = None) -> CalibrationProfile:
    say = progress or (lambda _msg: None)
    tx = peer if peer is not None else radio
    info0 = radio.info()
    mid_gain = plan.rx_gains_db[len(plan.rx_gains_db) // 2]

    def setup(atten: float, gain: float, rx_lo: float | None = None) -> None:
        tx.configure(plan.config(atten, gain))
        if tx is not radio:
            radio.configure(plan.config(TX_ATTEN_RANGE_DB[1], gain, rx_lo))

    # 1. noise floor and DC offset, nothing transmitted
    tx.stop_transmit()
    floors, dcs = [], {}
    for gain in plan.rx_gains_db:
        setup(TX_ATTEN_RANGE_DB[1], gain)
        x = radio.receive(plan.capture)
        floors.append({"rx_gain_db": gain, "dbfs": noise_floor_dbfs(x)})
        dcs[gain] = dc_offset(x)
        say(f"noise floor at RX gain {gain:g} dB: {floors[-1]['dbfs']:.1f} dBFS")
    dc = dcs[mid_gain]

    # 2. tone: frequency offset and IQ imbalance
    tone_hz, tone_x, tone_atten = _levelled_tone(radio, tx, plan, setup, mid_gain)
    offset = estimate_tone_frequency(tone_x, plan.sample_rate) - tone_hz
    imb = iq_imbalance(tone_x)
    ppm = None if peer is None else -frequency_error_ppm(offset, plan.center_freq_hz)
    say(f"tone: offset {offset:+.1f} Hz, IQ gain {imb.gain_db:+.3f} dB, phase {imb.phase_deg:+.3f} deg, "
        f"image rejection {imb.image_rejection_db:.1f} dB")
    rx_lo = plan.center_freq_hz / (1 + ppm * 1e-6) if ppm is not None else None

    # 3. SNR versus TX attenuation and RX gain with the experiment's waveform
    payloads = random_payloads(plan.frames_per_point, plan.payload_len, plan.seed)
    batch = build_batch(payloads, 0, tx_scale(plan.tx_rms_dbfs))
    table: list[SNRPoint] = []
    cfos: list[float] = []
    for gain in plan.rx_gains_db:
        misses = 0
        for atten in plan.tx_attens_db:
            if misses >= 2:  # two points in a row without a frame: weaker ones will not do better
                say(f"RX gain {gain:g} dB: skipping attenuation {atten:g} dB and beyond (below detection)")
                break
            setup(atten, gain, rx_lo)
            tx.transmit(batch.waveform, cyclic=True)
            x = radio.receive(batch.capture_len)
            tx.stop_transmit()
            frames = frames_in_window(x, batch.window)
            ok = [f for f in frames if f.header_ok]
            snr = frames_snr_db([f.channel_snr_db for f in ok])  # Es/N0, what --snr means in simulation
            misses = misses + 1 if snr is None else 0
            peak = peak_fraction(x)
            table.append(SNRPoint(gain, atten, snr, power_dbfs(x), peak, peak >= CLIP_PEAK, len(ok), len(payloads)))
            cfos += [f.cfo_hz for f in ok]
            say(f"RX gain {gain:g} dB, TX attenuation {atten:g} dB: SNR "
                f"{'-' if snr is None else f'{snr:.1f} dB'}, {len(ok)}/{len(payloads)} frames"
                f"{', clipped' if peak >= CLIP_PEAK else ''}")
    tx.stop_transmit()
    info1 = radio.info()
    oscillator = {
        "ppm": ppm,
        "reference": f"peer {peer.info().serial}" if peer is not None else "none (one-radio loopback)",
        "offset_hz": offset,
        "ofdm_cfo_hz": float(np.median(cfos)) if cfos else None,
        "note": ("relative to the peer radio: program LO = f / (1 + ppm 1e-6)" if peer is not None else
                 "TX and RX share one crystal, so a loopback cannot see its error; offset_hz should be ~0. "
                 "Calibrate with --peer URI (a second radio) to measure it"),
    }
    truth = radio.describe() if hasattr(radio, "describe") else None
    if truth is not None and peer is not None and hasattr(peer, "describe"):
        truth = {**truth, "peer_ppm": peer.describe()["ppm"]}
    return CalibrationProfile(
        serial=info0.serial, uri=info0.uri, driver=info0.driver, model=info0.model, firmware=info0.firmware,
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        temperature_c={"start": info0.temperature_c, "end": info1.temperature_c},
        center_freq_hz=plan.center_freq_hz, sample_rate=plan.sample_rate,
        rf_bandwidth=plan.rf_bandwidth or plan.sample_rate, tx_rms_dbfs=plan.tx_rms_dbfs,
        oscillator=oscillator,
        dc_offset={"i": dc.real, "q": dc.imag, "dbfs": power_dbfs(np.array([dc]))},
        iq_imbalance={"gain_db": imb.gain_db, "phase_deg": imb.phase_deg, "image_rejection_db": imb.image_rejection_db},
        noise_floor=floors, snr_table=table,
        tone={"offset_hz": tone_hz, "tx_atten_db": tone_atten, "rx_power_dbfs": power_dbfs(tone_x)},
        simulated_truth=truth,
    )


def _levelled_tone(radio: Radio, tx: Radio, plan: CalibrationPlan, setup: Callable[..., None],
                   gain: float) -> tuple[float, np.ndarray, float]:
    """Transmit a tone at about fs/8 (a whole number of cycles per cyclic buffer, so the repetition has
    no phase jump) and adjust the attenuation until it arrives near -20 dBFS without clipping."""
    n = 4096
    k = round(n / 8)
    tone_hz = k * plan.sample_rate / n
    wave = tone(n, tone_hz, plan.sample_rate, amplitude=0.5)
    atten = 40.0
    x = np.zeros(0, np.complex64)
    for _ in range(8):
        setup(atten, gain)
        tx.transmit(wave, cyclic=True)
        x = radio.receive(plan.capture)
        tx.stop_transmit()
        level, peak = power_dbfs(x), peak_fraction(x)
        step = 10.0 if peak >= CLIP_PEAK else level - TONE_TARGET_DBFS
        if abs(step) <= 3.0:
            break
        new = float(np.clip(round((atten + step) * 4) / 4, *TX_ATTEN_RANGE_DB))
        if new == atten:
            break  # at a limit of the attenuator: measure with what arrives
        atten = new
    return tone_hz, x, atten
