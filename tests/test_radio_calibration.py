"""Radio layer and calibration: estimators on simulated IQ with known impairments, the calibration
procedure on the simulated Pluto, profiles, the thin pyadi-iio layer against a stand-in ``adi`` module,
and failing fast without a radio (127.0.0.1 only)."""

from __future__ import annotations

import math
import socket
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import yaml
from semjscc.cli.main import main
from semjscc.radio import RadioConfig, SimAir, SimRadio, open_radio, parse_sim_uri
from semjscc.radio.base import RadioError
from semjscc.radio.calib import apply
from semjscc.radio.calib.estimators import (
    IQImbalance,
    correct_iq,
    dc_offset,
    estimate_tone_frequency,
    frequency_error_ppm,
    image_rejection_db,
    iq_imbalance,
    noise_floor_dbfs,
    power_dbfs,
    tone,
)
from semjscc.radio.calib.procedure import CalibrationPlan, calibrate
from semjscc.radio.calib.profile import CalibrationProfile, SNRPoint
from semjscc.radio.capture import build_batch, frames_in_window, random_payloads, tx_scale
from semjscc.radio.emulator import free_loopback_addresses
from semjscc.radio.sim import impair_iq
from semjscc.util.errors import UsageError

FS = 1e6
FC = 2.45e9


def _noisy(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    p = np.mean(np.abs(x) ** 2)
    n = np.sqrt(p / 10 ** (snr_db / 10) / 2) * (rng.standard_normal(len(x)) + 1j * rng.standard_normal(len(x)))
    return x + n


# --- estimators on synthetic IQ ------------------------------------------------------------------
@pytest.mark.parametrize("freq", [125_000.0 + 37.3, -200_000.7, 3_000.0])
@pytest.mark.parametrize("snr_db", [10.0, 30.0])
def test_tone_frequency_within_half_a_hertz(freq: float, snr_db: float) -> None:
    rng = np.random.default_rng(1)
    x = impair_iq(tone(1 << 15, freq, FS, 0.3), 10 ** (0.3 / 20), math.radians(1.5)) + (0.01 - 0.02j)
    est = estimate_tone_frequency(_noisy(x, snr_db, rng), FS)
    assert abs(est - freq) < 0.5  # measured: < 0.05 Hz; 0.5 Hz = 0.0002 ppm at 2.45 GHz


def test_ppm_from_a_known_oscillator_offset() -> None:
    # a receiver 12.5 ppm fast sees a carrier at its nominal LO 12.5 ppm * fc too low
    offset = -12.5e-6 * FC
    x = tone(1 << 15, 125_000 + offset, FS, 0.3)
    est = estimate_tone_frequency(_noisy(x, 20.0, np.random.default_rng(2)), FS) - 125_000
    assert -frequency_error_ppm(est, FC) == pytest.approx(12.5, abs=0.001)


@pytest.mark.parametrize("gain_db, phase_deg", [(0.0, 0.0), (0.5, 2.0), (-0.3, -1.0)])
@pytest.mark.parametrize("signal, tol_db, tol_deg", [("tone", 0.02, 0.1), ("noise", 0.06, 0.4)])
def test_iq_imbalance_recovered(gain_db: float, phase_deg: float, signal: str, tol_db: float, tol_deg: float) -> None:
    """A tone (what calibration sends) gives the imbalance almost exactly; any other circular signal
    (here noise, 2**18 samples) within the statistical error of its sample moments."""
    rng = np.random.default_rng(3)
    if signal == "tone":
        x = tone(1 << 15, 125_000.0, FS, 0.3)
    else:  # not OFDM bursts: their BPSK preamble and pilots are improper (not circular)
        x = (rng.standard_normal(1 << 18) + 1j * rng.standard_normal(1 << 18)) * 0.2
    y = _noisy(impair_iq(x, 10 ** (gain_db / 20), math.radians(phase_deg)), 40.0, rng) + (0.003 + 0.001j)
    imb = iq_imbalance(y)
    assert imb.gain_db == pytest.approx(gain_db, abs=tol_db)
    assert imb.phase_deg == pytest.approx(phase_deg, abs=tol_deg)
    fixed = iq_imbalance(correct_iq(y, imb, dc_offset(y)))  # corrected with its own estimate: nothing left
    assert abs(fixed.gain_db) < 0.01 and abs(fixed.phase_deg) < 0.05


def test_image_rejection_formula_matches_measured_image() -> None:
    g, phi = 10 ** (0.2 / 20), math.radians(1.0)
    y = impair_iq(tone(4096, 125_000.0, FS, 0.5), g, phi)  # 512 whole cycles: clean FFT bins
    spec = np.abs(np.fft.fft(y)) ** 2
    measured = 10 * math.log10(spec[512] / spec[-512])
    assert image_rejection_db(g, phi) == pytest.approx(measured, abs=0.01)
    assert IQImbalance(g, phi).image_rejection_db == pytest.approx(36.9, abs=0.1)


def test_dc_offset_and_noise_floor() -> None:
    rng = np.random.default_rng(4)
    sigma2 = 10 ** (-60 / 10)
    x = np.sqrt(sigma2 / 2) * (rng.standard_normal(1 << 16) + 1j * rng.standard_normal(1 << 16)) + (2e-3 - 1e-3j)
    assert dc_offset(x) == pytest.approx(2e-3 - 1e-3j, abs=1e-5)
    assert noise_floor_dbfs(x) == pytest.approx(-60.0, abs=0.1)


# --- the simulated radio -------------------------------------------------------------------------
def _cfg(**kw: float | str) -> RadioConfig:
    return RadioConfig(lo_hz=FC, sample_rate=FS, rf_bandwidth=FS, **kw)  # type: ignore[arg-type]


def test_sim_uri_parsing() -> None:
    p = parse_sim_uri("sim:seed=3,ppm=-4.5,loss=60")
    assert (p.seed, p.ppm, p.path_loss_db) == (3, -4.5, 60.0)
    assert parse_sim_uri("sim:7").seed == 7
    assert parse_sim_uri("sim").oscillator_ppm() == parse_sim_uri("sim:0").oscillator_ppm()  # seeded
    with pytest.raises(UsageError, match="unknown item"):
        parse_sim_uri("sim:bogus=1")
    with pytest.raises(UsageError, match="expected ip:HOST"):
        open_radio("tcp:127.0.0.1")


def test_sim_link_gain_and_rx_gain_steps() -> None:
    """Received tone power = TX level - attenuation - path loss + RX gain (dBm -> dBFS), and RX gain
    steps move it dB for dB: the 'gain' a calibration measures."""
    r = SimRadio.from_uri("sim:seed=1,loss=50,dc_dbfs=-90")
    p = r.params
    wave = tone(4096, 125_000.0, FS, 0.5)  # -6 dBFS
    levels = {}
    for gain in (40.0, 60.0):
        r.configure(_cfg(tx_atten_db=40.0, rx_gain_db=gain))
        r.transmit(wave)
        levels[gain] = power_dbfs(r.receive(1 << 14))
    expected = -6.0 + p.tx_power_dbm - 40.0 - p.path_loss_db + 40.0 - p.full_scale_dbm
    assert levels[40.0] == pytest.approx(expected, abs=0.2)
    assert levels[60.0] - levels[40.0] == pytest.approx(20.0, abs=0.2)


def test_sim_loopback_has_no_offset_but_two_radios_do() -> None:
    air = SimAir()
    a = SimRadio.from_uri("sim:seed=1,ppm=10", air)
    b = SimRadio.from_uri("sim:seed=2,ppm=-5", air)
    wave = tone(4096, 125_000.0, FS, 0.5)
    a.configure(_cfg(tx_atten_db=40.0, rx_gain_db=40.0))
    b.configure(_cfg(tx_atten_db=89.75, rx_gain_db=40.0))
    a.transmit(wave)
    own = estimate_tone_frequency(a.receive(1 << 15), FS) - 125_000.0
    other = estimate_tone_frequency(b.receive(1 << 15), FS) - 125_000.0
    assert abs(own) < 0.5  # one crystal for TX and RX: a loopback cannot see it
    assert other == pytest.approx((10 - -5) * 1e-6 * FC, abs=1.0)  # TX 15 ppm above the RX


def test_sim_one_shot_burst_is_received_once() -> None:
    r = SimRadio.from_uri("sim:seed=5")
    r.configure(_cfg(tx_atten_db=20.0, rx_gain_db=40.0))
    burst = tone(2000, 125_000.0, FS, 0.5)
    r.transmit(burst, cyclic=False)
    first, second = r.receive(8000), r.receive(8000)
    loud = np.abs(first - first.mean()) > 10 * np.abs(second - second.mean()).max()
    assert 1900 <= loud.sum() <= 2000  # the burst, once, somewhere in the first capture
    assert np.ptp(np.flatnonzero(loud)) < 2000
    with pytest.raises(UsageError, match="configure"):
        SimRadio().transmit(burst)


# --- the calibration procedure -------------------------------------------------------------------
@pytest.fixture(scope="module")
def loopback_profile() -> tuple[CalibrationProfile, SimRadio]:
    radio = SimRadio.from_uri("sim:seed=11,iq_gain_db=0.4,iq_phase_deg=-1.5,dc_dbfs=-45")
    return calibrate(radio, CalibrationPlan(rx_gains_db=(40.0, 60.0))), radio


def test_calibration_recovers_simulated_impairments(loopback_profile: tuple[CalibrationProfile, SimRadio]) -> None:
    prof, radio = loopback_profile
    assert prof.oscillator["ppm"] is None and abs(prof.oscillator["offset_hz"]) < 1.0
    assert prof.iq_imbalance["gain_db"] == pytest.approx(0.4, abs=0.03)
    assert prof.iq_imbalance["phase_deg"] == pytest.approx(-1.5, abs=0.1)
    assert prof.dc_offset["dbfs"] == pytest.approx(-45.0, abs=0.3)
    floors = {f["rx_gain_db"]: f["dbfs"] for f in prof.noise_floor}
    thermal = -174 + 10 * math.log10(FS) + radio.params.noise_figure_db  # dBm at the input
    assert floors[60.0] == pytest.approx(thermal + 60.0, abs=0.5)
    assert prof.simulated_truth is not None and prof.simulated_truth["seed"] == 11


def test_snr_table_is_linear_and_hits_a_target(loopback_profile: tuple[CalibrationProfile, SimRadio]) -> None:
    prof, radio = loopback_profile
    pts = {p.tx_atten_db: p.snr_db for p in prof.snr_table if p.rx_gain_db == 40.0}
    assert pts[45.0] - pts[35.0] == pytest.approx(-10.0, abs=0.6)  # 1 dB SNR per dB of attenuation
    assert any(p.clipped for p in prof.snr_table if p.rx_gain_db == 60.0)  # strong signal, high gain: flagged
    batch = build_batch(random_payloads(8, 512, 5), 0, tx_scale(prof.tx_rms_dbfs))
    for target in (3.0, 12.0, 21.0):
        choice = prof.atten_for_snr(target, 40.0)
        assert choice.reachable
        radio.configure(_cfg(tx_atten_db=choice.tx_atten_db, rx_gain_db=40.0))
        radio.transmit(batch.waveform)
        snrs = [f.channel_snr_db for f in frames_in_window(radio.receive(batch.capture_len), batch.window)
                if f.header_ok]  # Es/N0: what a target SNR means (snr_est_db is the payload's, after MMSE)
        assert len(snrs) == 8
        assert float(np.median(snrs)) == pytest.approx(target, abs=1.0)


def test_peer_calibration_measures_relative_ppm() -> None:
    air = SimAir()
    a = SimRadio.from_uri("sim:seed=1,ppm=15", air)
    b = SimRadio.from_uri("sim:seed=2,ppm=-10", air)
    prof = calibrate(a, CalibrationPlan(rx_gains_db=(40.0,), tx_attens_db=(30.0, 40.0, 50.0)), peer=b)
    assert prof.ppm == pytest.approx(25.0, abs=0.01)
    assert prof.oscillator["reference"] == "peer sim-2"
    # the SNR sweep ran with this radio's LO corrected: the OFDM receiver saw (almost) no offset
    assert abs(prof.oscillator["ofdm_cfo_hz"]) < 200
    assert all(p.frames_ok == p.frames_sent for p in prof.snr_table if p.tx_atten_db <= 40)
    assert prof.lo_hz(FC) == pytest.approx(FC / (1 + 25e-6))


# --- profiles --------------------------------------------------------------------------------------
def _profile(table: list[tuple[float, float | None]], ppm: float | None = None) -> CalibrationProfile:
    return CalibrationProfile(
        serial="X1", uri="sim", driver="sim", model="m", firmware="f", date="2024-01-01T00:00:00+00:00",
        temperature_c={"start": 30.0, "end": 31.0}, center_freq_hz=FC, sample_rate=FS, rf_bandwidth=FS,
        tx_rms_dbfs=-15.0, oscillator={"ppm": ppm, "reference": "r", "offset_hz": 0.0, "ofdm_cfo_hz": None},
        dc_offset={"i": 0.0, "q": 0.0, "dbfs": -60.0}, iq_imbalance={"gain_db": 0, "phase_deg": 0, "image_rejection_db": 40},
        noise_floor=[{"rx_gain_db": 40.0, "dbfs": -67.0}],
        snr_table=[SNRPoint(40.0, a, s, -30.0, 0.1, False, 8, 8) for a, s in table])


def test_attenuation_choice_interpolates_and_extrapolates() -> None:
    prof = _profile([(0, 34.0), (10, 33.0), (20, 28.0), (30, 18.0), (40, 8.0), (50, None)])
    assert prof.atten_for_snr(13.0, 40.0).tx_atten_db == 35.0
    assert prof.atten_for_snr(33.5, 40.0).tx_atten_db == 5.0
    low = prof.atten_for_snr(-2.0, 40.0)  # beyond the weakest point: 1 dB per dB
    assert low.tx_atten_db == 50.0 and low.reachable
    high = prof.atten_for_snr(40.0, 42.0)
    assert not high.reachable and high.tx_atten_db == 0.0 and "not measured" in high.note


def test_attenuation_choice_refuses_a_non_finite_target() -> None:
    prof = _profile([(30, 18.0), (40, 8.0)])
    for target in (math.nan, math.inf):
        with pytest.raises(UsageError, match="must be finite numbers"):
            prof.atten_for_snr(target, 40.0)


def test_profile_roundtrip_and_apply(tmp_path: Path) -> None:
    prof = _profile([(30, 18.0), (40, 8.0)], ppm=-8.0)
    path = prof.save(tmp_path)
    assert path.name == "X1.yaml"
    doc = yaml.safe_load(path.read_text())
    assert {"date", "firmware", "temperature_c", "oscillator", "iq_imbalance", "snr_table"} <= set(doc)
    again = CalibrationProfile.load(path)
    assert again.snr_table == prof.snr_table
    assert apply.lo_hz(str(path), FC) == round(FC / (1 - 8e-6))
    assert apply.lo_hz("", FC) == int(FC)
    assert apply.tx_atten_db(str(path), 40.0, "13", 40.0) == 35.0
    assert apply.tx_atten_db(str(path), 40.0, "", 40.0) == 40.0
    with pytest.raises(UsageError, match="needs a calibration profile"):
        apply.tx_atten_db("", 40.0, 10.0, 40.0)
    with pytest.raises(UsageError, match="not found"):
        CalibrationProfile.load(tmp_path / "nope.yaml")


def test_calibrate_command_writes_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--uri", "sim:seed=4", "--rx-gains", "40", "--tx-attens", "20", "40", "60",
                 "--out", str(tmp_path), "--quiet"]) == 0
    doc = yaml.safe_load((tmp_path / "sim-4.yaml").read_text())
    assert doc["serial"] == "sim-4" and doc["firmware"] == "sim" and doc["temperature_c"]["start"] == 38.0
    assert [p["tx_atten_db"] for p in doc["snr_table"]] == [20.0, 40.0, 60.0]
    assert "not measurable in a one-radio loopback" in capsys.readouterr().out


# --- no radio: fail fast, never hang (127.0.0.1 only) --------------------------------------------
def test_no_device_fails_fast(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("adi")
    # a loopback address nothing listens on: 127.0.0.1 may hold an emulated Pluto (docs/hardware.md)
    uri = f"ip:{free_loopback_addresses(1)[0]}"
    for argv in (["calibrate", "--uri", uri], ["ota", "--uri", uri, "--snr", "10"]):
        t0 = time.monotonic()
        assert main(argv) == 2
        assert time.monotonic() - t0 < 5.0
        err = capsys.readouterr().err
        assert f"no Pluto at {uri}" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_silent_server_times_out_within_the_connect_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    """A socket that accepts and never answers: libiio alone would wait about 5 s; --connect-timeout
    (default 10 s, for ip:pluto.local's name lookup) bounds the wait."""
    pytest.importorskip("adi")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        t0 = time.monotonic()
        assert main(["calibrate", "--uri", f"ip:127.0.0.1:{port}", "--connect-timeout", "2"]) == 2
        assert time.monotonic() - t0 < 4.5
        err = capsys.readouterr().err
        assert "no Pluto answered at ip:127.0.0.1" in err and "within 2 s" in err
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        server.close()


# --- the thin pyadi-iio layer against a stand-in adi module ---------------------------------------
class _FakePluto:
    """Records what PlutoRadio does to ``adi.Pluto`` (attribute names, values, call order)."""

    def __init__(self, uri: str) -> None:
        self.__dict__["log"] = [("connect", uri)]
        self.__dict__["ctx"] = types.SimpleNamespace(
            attrs={"hw_serial": "104473dc599300131100xx", "fw_version": "v0.38", "hw_model": "PlutoSDR Rev.C"},
            set_timeout=lambda ms: self.log.append(("timeout", ms)))
        temp = types.SimpleNamespace(attrs={"input": types.SimpleNamespace(value="41250")})
        self.__dict__["_ctrl"] = types.SimpleNamespace(find_channel=lambda name: temp if name == "temp0" else None)
        self.__dict__["rx_buffer_size"] = 1024

    def __setattr__(self, name: str, value: object) -> None:
        self.log.append((name, value))
        self.__dict__[name] = value

    def tx(self, data: np.ndarray) -> None:
        self.log.append(("tx", np.array(data)))

    def rx(self) -> np.ndarray:
        n = self.rx_buffer_size
        return np.full(n, 1024 - 2048j)  # int16 counts as pyadi-iio returns them

    def disable_dds(self) -> None:
        self.log.append(("disable_dds", None))

    def tx_destroy_buffer(self) -> None:
        self.log.append(("tx_destroy_buffer", None))

    def rx_destroy_buffer(self) -> None:
        self.log.append(("rx_destroy_buffer", None))


def test_pluto_layer_attribute_names_and_scaling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "adi", types.SimpleNamespace(Pluto=_FakePluto))
    from semjscc.radio.pluto import PlutoRadio

    radio = open_radio("ip:192.0.2.1")  # never reached: adi is the stand-in
    assert isinstance(radio, PlutoRadio)
    sdr = radio._sdr
    radio.configure(RadioConfig(lo_hz=2_450_000_123.4, sample_rate=1e6, rf_bandwidth=1.5e6, tx_atten_db=37.3,
                                rx_gain_mode="manual", rx_gain_db=41.6))
    sets = dict(e for e in sdr.log if e[0] not in ("tx", "connect"))
    assert sets["sample_rate"] == 1_000_000 and isinstance(sets["sample_rate"], int)
    assert sets["rx_lo"] == sets["tx_lo"] == 2_450_000_123
    assert sets["rx_rf_bandwidth"] == sets["tx_rf_bandwidth"] == 1_500_000
    assert sets["tx_hardwaregain_chan0"] == -37.25  # negative = attenuation, 0.25 dB steps
    assert sets["gain_control_mode_chan0"] == "manual" and sets["rx_hardwaregain_chan0"] == 42.0
    assert sets["rx_enabled_channels"] == [0] and sets["tx_enabled_channels"] == [0]
    radio.transmit(np.array([0.5 + 0.25j, 1.5 - 2j], dtype=np.complex64))
    names = [e[0] for e in sdr.log]
    assert names.index("tx_cyclic_buffer") < names.index("tx")
    sent = next(e[1] for e in sdr.log if e[0] == "tx")
    np.testing.assert_array_equal(sent, [8192 + 4096j, 16384 - 16384j])  # 1.0 = 2**14, clipped at full scale
    y = radio.receive(100)
    assert sdr.rx_buffer_size == 100 and names.count("rx_destroy_buffer") == 0
    np.testing.assert_allclose(y, 0.5 - 1j)  # 2048 counts = full scale
    info = radio.info()
    assert (info.serial, info.firmware, info.temperature_c) == ("104473dc599300131100xx", "v0.38", 41.25)
    n_writes = len(sdr.log)
    radio.configure(RadioConfig(lo_hz=2_450_000_123.4, sample_rate=1e6, rf_bandwidth=1.5e6, tx_atten_db=20.0,
                                rx_gain_mode="slow_attack", rx_gain_db=10.0))
    again = [e[0] for e in sdr.log[n_writes:]]
    # the cyclic TX stops first; then only what changed is written, and no manual gain under AGC
    assert again == ["tx_destroy_buffer", "tx_hardwaregain_chan0", "gain_control_mode_chan0"]
    def unplugged() -> np.ndarray:
        raise OSError(19, "No such device")

    sdr.__dict__["rx"] = unplugged
    with pytest.raises(RadioError, match=r"receiving failed .*still connected"):
        radio.receive(10)
    radio.transmit(np.zeros(8, np.complex64))
    radio.close()  # stops the cyclic transmission and releases the RX buffer
    assert [e[0] for e in sdr.log[-3:]] == ["tx", "tx_destroy_buffer", "rx_destroy_buffer"]


@pytest.mark.parametrize("offset_hz", [-140e3, -61.25e3, 0.0, 20e3, 95e3])
def test_spectral_offset_finds_a_band_beyond_the_cfo_search(offset_hz: float) -> None:
    """The no-frames hint's estimator: an OFDM burst shifted by far more than the receiver's search
    range, with LO leakage at DC, is located to one 3.9 kHz bin; noise alone is flagged as no signal."""
    from semjscc.phy.tx import modulate_stream
    from semjscc.radio.capture import spectral_offset

    rng = np.random.default_rng(5)
    payloads = random_payloads(3, 600, seed=5)
    x, _ = modulate_stream(payloads)
    fs = 1e6
    y = x * np.exp(2j * np.pi * offset_hz / fs * np.arange(len(x)))
    y = y + 0.05 * (rng.standard_normal(len(y)) + 1j * rng.standard_normal(len(y))) + 0.3  # noise + DC leak
    found, excess_db = spectral_offset(y, fs)
    assert abs(found - offset_hz) <= fs / 256, (found, offset_hz)
    assert excess_db > 10
    noise = rng.standard_normal(len(y)) + 1j * rng.standard_normal(len(y))
    assert spectral_offset(noise, fs)[1] < 1.0
