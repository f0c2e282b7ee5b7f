"""The emulated Pluto (semjscc.radio.emulator) driven by the real client stack, unmodified: libiio's tools
(iio_info, iio_attr, iio_readdev), pyadi-iio, gr-iio's fmcomms2 blocks and `semjscc calibrate` / `ota`.

Every emulator runs on free 127.77.x.y addresses (never 127.0.0.1, which other tests use as "no radio
there") and stops on leaving its block, or by itself after a minute or two whatever happens."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import fake_split, write_folder
from semjscc.cli.main import main
from semjscc.radio.emulator import emulated_plutos, free_loopback_addresses
from semjscc.radio.emulator.air import EmulatedRadio

LIFETIME_S = 120.0
FS = 1_000_000
LO = 2_450_000_000

needs_iio_tools = pytest.mark.skipif(shutil.which("iio_info") is None, reason="libiio-utils not installed")


def _pluto(uri: str):
    adi = pytest.importorskip("adi")
    sdr = adi.Pluto(uri)
    sdr.sample_rate = FS
    sdr.rx_lo = sdr.tx_lo = LO
    sdr.rx_rf_bandwidth = sdr.tx_rf_bandwidth = FS
    sdr.gain_control_mode_chan0 = "manual"
    sdr.rx_hardwaregain_chan0 = 40
    sdr.tx_hardwaregain_chan0 = -20
    return sdr


def _needs_radio_stack() -> None:
    """`semjscc calibrate`/`ota` on an ip: URI need pyadi-iio, and ota's recording sigmf (the radio extra)."""
    pytest.importorskip("adi")
    pytest.importorskip("sigmf")


def _tone_hz(y: np.ndarray, fs: float = FS) -> float:
    """Frequency of a dominant complex tone from the mean phase step (far finer than an FFT bin), after
    removing the receiver's DC offset; the residual IQ image (-37 dB) biases it by up to ~30 Hz."""
    y = y - np.mean(y)
    return float(np.angle(np.sum(y[1:] * np.conj(y[:-1]))) * fs / (2 * np.pi))


@needs_iio_tools
def test_libiio_tools_list_read_write_and_stream() -> None:
    with emulated_plutos((0.0,), lifetime_s=LIFETIME_S) as (pluto,):
        uri = pluto.uri
        info = subprocess.run(["iio_info", "-u", uri], capture_output=True, text=True, timeout=20)
        assert info.returncode == 0, info.stderr
        for want in ("ad9361-phy", "cf-ad9361-lpc (buffer capable)", "cf-ad9361-dds-core-lpc (buffer capable)",
                     "altvoltage0: RX_LO (output)", "xo_correction value: 40000000", "format: le:S12/16>>0"):
            assert want in info.stdout
        assert "validity error" not in info.stderr  # the context XML satisfies libiio's DTD

        def attr(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["iio_attr", "-u", uri, "-c", "ad9361-phy", *args], capture_output=True,
                                  text=True, timeout=20)

        assert attr("altvoltage0", "frequency", "915000000").returncode == 0
        assert attr("altvoltage0", "frequency").stdout.strip() == "915000000"
        refused = attr("altvoltage0", "frequency", "5800000000")  # above a stock AD9363's 3.8 GHz
        assert refused.returncode != 0 and "Invalid argument (22)" in refused.stdout + refused.stderr
        assert attr("altvoltage0", "frequency").stdout.strip() == "915000000"
        dev = subprocess.run(["iio_readdev", "-u", uri, "-b", "4096", "-s", "20000", "cf-ad9361-lpc"],
                             capture_output=True, timeout=20)
        assert dev.returncode == 0 and len(dev.stdout) == 20000 * 4  # I and Q, int16 each


def test_pyadi_cyclic_loopback_is_paced_and_recovers_the_waveform() -> None:
    """One radio, TX into its own RX (one oscillator: no offset): a known cyclic waveform comes back as a
    scaled, delayed copy at the SNR the link budget gives, and a capture takes its real-time duration."""
    with emulated_plutos((12.0,), lifetime_s=LIFETIME_S) as (pluto,):
        sdr = _pluto(pluto.uri)
        assert (sdr.sample_rate, sdr.rx_lo, sdr.tx_lo) == (FS, LO, LO)
        assert (sdr.rx_hardwaregain_chan0, sdr.tx_hardwaregain_chan0) == (40, -20)
        rng = np.random.default_rng(1)
        period = 4000
        x = (rng.choice([-1, 1], period) + 1j * rng.choice([-1, 1], period)) * 0.3  # QPSK chips, 0.3 full scale
        sdr.tx_cyclic_buffer = True
        sdr.tx(x * 2**14)
        n = 200_000
        sdr.rx_buffer_size = n
        t0 = time.monotonic()
        y = np.asarray(sdr.rx()) / 2**11
        elapsed = time.monotonic() - t0
        assert len(y) == n
        assert 0.19 <= elapsed < 3.0  # 200,000 samples at 1 MS/s cannot arrive before 0.2 s have passed
        y = y[-(period * 40):] - np.mean(y)
        corr = np.fft.ifft(np.fft.fft(y[:period]) * np.conj(np.fft.fft(x)))
        lag = int(np.argmax(np.abs(corr)))
        ref = np.tile(np.roll(x, lag), 40)
        gain = np.vdot(ref, y) / np.vdot(ref, ref)
        err = y - gain * ref
        snr_db = 10 * np.log10(np.mean(np.abs(gain * ref) ** 2) / np.mean(np.abs(err) ** 2))
        # 7 dBm - 20 dB attenuation - 50 dB path loss = -63 dBm against -108 dBm of noise: the TX EVM
        # (-38 dB) and the IQ imbalance (-37 dB image) set the ceiling
        assert 30 < snr_db < 40
        assert abs(20 * np.log10(abs(gain)) - (7 - 20 - 50 + 40)) < 1.0  # dBm in -> dBFS out at 40 dB gain
        with pytest.raises(OSError) as refused:
            sdr.rx_hardwaregain_chan0 = 90  # the gain table tops at 71 dB at 2.45 GHz
        assert refused.value.errno == 22
        assert sdr.rx_hardwaregain_chan0 == 40
        sdr.tx_destroy_buffer()
        sdr.rx_destroy_buffer()


def test_dds_tone_plays_until_a_tx_buffer_opens() -> None:
    """pyadi-iio's dds_single_tone: the DDS plays a tone with no TX buffer; a buffer replaces it."""
    with emulated_plutos((0.0,), lifetime_s=LIFETIME_S) as (pluto,):
        sdr = _pluto(pluto.uri)
        sdr.dds_single_tone(150e3, 0.25)
        sdr.rx_buffer_size = 20000
        y = np.asarray(sdr.rx())
        assert abs(_tone_hz(y) - 150e3) < 100
        # 0.25 of the DAC's full scale = 0.5 of the TX unit: 7 dBm - 6 dB - 20 dB - 50 dB + 40 dB gain
        assert abs(10 * np.log10(np.mean(np.abs(y / 2**11) ** 2)) - (7 - 6 - 20 - 50 + 40)) < 1.0
        sdr.tx_cyclic_buffer = True
        sdr.tx(0.5 * np.exp(-2j * np.pi * 50e3 / FS * np.arange(1000)) * 2**14)
        sdr.rx_destroy_buffer()
        assert abs(_tone_hz(np.asarray(sdr.rx())) + 50e3) < 100
        sdr.tx_destroy_buffer()


def test_two_radios_show_their_oscillators_and_xo_correction_cancels_them() -> None:
    """+25 and -25 ppm at 2.45 GHz: the receiver sees the other radio 122.5 kHz off (the offset the
    acquisition range cannot cover); writing xo_correction on the receiver leaves < 1 kHz."""
    with emulated_plutos((25.0, -25.0), lifetime_s=LIFETIME_S) as (a, b):
        tx, rx = _pluto(a.uri), _pluto(b.uri)
        tone = 100e3
        tx.tx_cyclic_buffer = True
        tx.tx(0.5 * np.exp(2j * np.pi * tone / FS * np.arange(1000)) * 2**14)
        rx.rx_buffer_size = 65536
        xa, xb = 1 + 25e-6, 1 - 25e-6
        # what B measures per its own (slow) sample clock, in nominal Hz
        expected = (LO * (xa - xb) + tone * xa) / xb
        measured = _tone_hz(np.asarray(rx.rx()))
        assert abs(measured - expected) < 100, (measured, expected)
        assert abs(measured - tone - 122.5e3) < 100
        rx.rx_destroy_buffer()
        rx._ctrl.attrs["xo_correction"].value = str(round(40e6 * xb / xa))  # B now believes A's oscillator
        residual = _tone_hz(np.asarray(rx.rx())) - tone
        assert abs(residual) < 1000, residual
        assert abs(residual) < 100  # rounding xo_correction to 1 Hz is 0.025 ppm (61 Hz); the IQ image's bias
        tx.tx_destroy_buffer()


def test_sample_clock_offset_moves_a_periodic_signal() -> None:
    """The sample clocks differ by 50 ppm too: a cyclic pulse train from A drifts 50 samples per second
    of B's capture (the interpolating resampler, not just a phase rotation)."""
    with emulated_plutos((25.0, -25.0), lifetime_s=LIFETIME_S) as (a, b):
        air_a: EmulatedRadio = a.radio
        air_b: EmulatedRadio = b.radio
        for r in (air_a, air_b):
            r.state.sample_rate, r.state.rx_lo, r.state.tx_lo, r.state.rx_bw = FS, LO, LO, FS
            r.state.gain_mode, r.state.rx_gain_db, r.state.tx_gain_db = "manual", 40.0, -10.0
        air_b.state.xo_correction = 40_000_000  # keep B's own error: the clocks stay 50 ppm apart
        period = 2000
        pulse = np.zeros(period, complex)
        pulse[0] = 1.0
        air_a.place(pulse, cyclic=True, after=None)
        k0 = int(air_b.now_index()) + 10
        n = period * 4
        first = np.abs(air_b.synthesize(k0, n))
        later = np.abs(air_b.synthesize(k0 + FS, n))  # one second of B's clock later

        def position(y: np.ndarray) -> float:
            # pulse centre within the period from the summed energy profile (parabolic peak fit)
            prof = (y.reshape(-1, period) ** 2).sum(axis=0)
            i = int(np.argmax(prof))
            lo_, mid, hi = prof[i - 1], prof[i], prof[(i + 1) % period]
            return i + 0.5 * (lo_ - hi) / (lo_ - 2 * mid + hi)

        drift = (position(first) - position(later)) % period
        expected = FS * ((1 + 25e-6) / (1 - 25e-6) - 1)  # A's samples per B-second beyond FS: ~50
        assert abs(drift - expected) < 1.0, (drift, expected)


def test_gr_iio_fmcomms2_sink_and_source_stream_through_the_emulator(tmp_path: Path) -> None:
    """gr-iio 3.10's fmcomms2 blocks as GRC's Pluto blocks build them (Auto filter, FPGA decimation
    check, overflow/underflow register polling): a tone streamed out comes back at its frequency, and
    the source delivers samples at the sample rate."""
    pytest.importorskip("gnuradio.iio")
    script = tmp_path / "stream.py"
    script.write_text(textwrap.dedent("""
        import json, sys, time
        import numpy as np
        from gnuradio import analog, blocks, gr, iio
        uri = sys.argv[1]
        tb = gr.top_block()
        src = iio.fmcomms2_source_fc32(uri, [True, True], 32768)
        src.set_len_tag_key("")
        src.set_frequency(2450000000); src.set_samplerate(1000000)
        src.set_gain_mode(0, "manual"); src.set_gain(0, 40)
        src.set_quadrature(True); src.set_rfdc(True); src.set_bbdc(True)
        src.set_filter_params("Auto", "", 0, 0)
        snk = iio.fmcomms2_sink_fc32(uri, [True, True], 32768, False)
        snk.set_len_tag_key("")
        snk.set_bandwidth(1000000); snk.set_frequency(2450000000); snk.set_samplerate(1000000)
        snk.set_attenuation(0, 30); snk.set_filter_params("Auto", "", 0, 0)
        tone = analog.sig_source_c(1000000, analog.GR_COS_WAVE, 100e3, 0.25)
        vs = blocks.vector_sink_c()
        tb.connect(tone, snk); tb.connect(src, vs)
        t0 = time.monotonic(); tb.start()
        while len(vs.data()) < 1000000 and time.monotonic() - t0 < 20: time.sleep(0.02)
        elapsed = time.monotonic() - t0; tb.stop(); tb.wait()
        y = np.array(vs.data())[-65536:]
        f = np.fft.fftfreq(len(y), 1e-6)[np.argmax(np.abs(np.fft.fft(y)))]
        print(json.dumps({"samples": len(vs.data()), "elapsed": elapsed, "peak_hz": float(f),
                          "level": float(np.mean(np.abs(y)))}))
    """))
    with emulated_plutos((0.0,), lifetime_s=LIFETIME_S) as (pluto,):
        r = subprocess.run([sys.executable, str(script), pluto.uri], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        res = json.loads(r.stdout.strip().splitlines()[-1])
        state = pluto.radio.state
        assert (state.rx_lo, state.tx_lo, state.sample_rate, state.tx_atten_db) == (LO, LO, FS, 30.0)
        assert state.fir_enabled  # libad9361's ad9361_set_bb_rate loaded and enabled the FIR
    assert res["samples"] >= 1_000_000
    assert res["elapsed"] >= 0.95  # a million samples at 1 MS/s: not before a second has passed
    assert abs(res["peak_hz"] - 100e3) < 20
    # 0.25 x 32768 counts = 0.5 full scale: 7 dBm - 6 dB - 30 dB - 50 dB + 40 dB gain = -39 dBFS
    assert abs(20 * np.log10(res["level"]) + 39) < 1.5


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("images"), {"test": fake_split(2, seed=3)})


def test_calibrate_and_ota_run_against_the_emulator(tmp_path: Path, images: Path) -> None:
    """`semjscc calibrate` and `semjscc ota` through pyadi-iio on an emulated Pluto, as on a real one."""
    _needs_radio_stack()
    with emulated_plutos((0.0,), lifetime_s=LIFETIME_S) as (pluto,):
        profile = tmp_path / "cal.yaml"
        assert main(["calibrate", "--uri", pluto.uri, "--rx-gains", "40", "--tx-attens", "20", "40", "60",
                     "--out", str(profile), "--quiet"]) == 0
        out = tmp_path / "ota"
        assert main(["ota", "--uri", pluto.uri, "--snr", "15", "--images", "8", "--batch", "8", "--data", str(images),
                     "--calibration", str(profile), "--no-sim", "--no-progress", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_sent"] == 8 and summary["frames_received"] == 8
    assert summary["meta"]["rx"]["serial"].startswith("emu")


def test_refused_setting_and_unplugged_radio_end_with_one_line(tmp_path: Path, images: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A frequency a stock Pluto refuses (5.8 GHz on an AD9363: radio.limits stops it before the radio is
    touched; the emulated driver's own EINVAL is test_pyadi_cyclic_loopback_...'s), and a radio unplugged
    mid-run: each one line, exit 2; the run that lost its radio keeps its summary."""
    _needs_radio_stack()
    with emulated_plutos((0.0,), lifetime_s=LIFETIME_S) as (pluto,):
        args = ["ota", "--uri", pluto.uri, "--tx-atten", "30", "--data", str(images), "--calibration", "none",
                "--no-sim", "--no-progress"]
        capsys.readouterr()
        assert main([*args, "--freq", "5.8e9", "--images", "4", "--out", str(tmp_path / "refused")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "outside the Pluto's range" in err, err

        def unplug_after_the_first_batch() -> None:
            t_end = time.monotonic() + 20
            while pluto.stats["rx_samples"] == 0 and time.monotonic() < t_end:
                time.sleep(0.001)
            pluto.unplug()

        threading.Thread(target=unplug_after_the_first_batch, daemon=True).start()
        out = tmp_path / "unplugged"
        t0 = time.monotonic()
        assert main([*args, "--images", "20", "--batch", "1", "--out", str(out)]) == 2
        assert time.monotonic() - t0 < 30
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "still connected" in err[0], err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True


def test_calibrate_peer_writes_xo_correction_and_the_two_radio_link_works(tmp_path: Path, images: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Two stock Plutos 50 ppm apart: uncorrected, the receiver acquires the 122.5 kHz offset (its search
    reaches +-140 kHz) and every frame of a two-radio run arrives; `calibrate --peer --write-xo` writes the
    receiver's xo_correction, says so, leaves a residual offset < 1 kHz, and the same run receives every
    frame with the carrier centred."""
    _needs_radio_stack()
    with emulated_plutos((25.0, -25.0), lifetime_s=LIFETIME_S) as (a, b):
        ota = ["ota", "--uri", b.uri, "--tx-uri", a.uri, "--tx-atten", "25", "--images", "8", "--batch", "8",
               "--data", str(images), "--tx-calibration", "none", "--no-sim", "--no-progress"]
        assert main([*ota, "--calibration", "none", "--out", str(tmp_path / "raw")]) == 0
        raw = json.loads((tmp_path / "raw" / "summary.json").read_text())
        assert raw["frames_received"] == 8 and raw["frames_lost"] == 0
        assert abs(abs(raw["cfo_est_hz"]) - 122.5e3) < 2e3  # 50 ppm of 2.45 GHz
        profile = tmp_path / "b.yaml"
        capsys.readouterr()
        assert main(["calibrate", "--uri", b.uri, "--peer", a.uri, "--write-xo", "--rx-gains", "40",
                     "--tx-attens", "20", "40", "--out", str(profile), "--quiet"]) == 0
        said = capsys.readouterr().out
        osc = yaml.safe_load(profile.read_text())["oscillator"]
        expected = round(40e6 * (1 - 25e-6) / (1 + 25e-6))  # 39,998,000: B now believes A's oscillator
        assert abs(osc["xo_correction_hz"] - expected) <= 2
        assert b.radio.state.xo_correction == osc["xo_correction_hz"]
        assert f"wrote xo_correction = {osc['xo_correction_hz']} Hz on {b.uri}" in said
        assert abs(osc["ppm_before_xo_correction"] + 50.0) < 0.05
        assert abs(osc["offset_hz"]) < 1000 and abs(osc["ppm"]) < 0.4
        assert main([*ota, "--calibration", str(profile), "--out", str(tmp_path / "fixed")]) == 0
    fixed = json.loads((tmp_path / "fixed" / "summary.json").read_text())
    assert fixed["frames_received"] == 8
    assert abs(fixed["cfo_est_hz"]) < 1000


@needs_iio_tools
def test_emulate_pluto_command(capfd: pytest.CaptureFixture[str]) -> None:
    """`semjscc emulate-pluto ... -- COMMAND` serves while COMMAND runs and exits with its status; only
    loopback addresses; and with no emulator there, a radio command still fails fast with one line."""
    _needs_radio_stack()
    addr, nobody = free_loopback_addresses(2)
    assert main(["emulate-pluto", "--address", addr, "--xo-ppm", "3.5", "--",
                 "iio_attr", "-u", f"ip:{addr}", "-C", "hw_serial"]) == 0
    out, err = capfd.readouterr()
    assert f"hw_serial: emu{addr.replace('.', '')}" in out and "+3.500 ppm" in err
    assert main(["emulate-pluto", "--address", addr, "--", "iio_attr", "-u", f"ip:{addr}", "-c", "ad9361-phy",
                 "voltage0", "hardwaregain", "80"]) == 1  # iio_attr's own status for a refused write
    assert main(["emulate-pluto", "--address", "192.168.2.1", "--duration", "1"]) == 2
    assert "only loopback addresses" in capfd.readouterr().err
    assert main(["calibrate", "--uri", f"ip:{addr}", "--write-xo"]) == 2  # needs --peer
    t0 = time.monotonic()
    assert main(["calibrate", "--uri", f"ip:{nobody}"]) == 2
    assert time.monotonic() - t0 < 5
    err = capfd.readouterr().err.strip().splitlines()
    assert "--write-xo needs --peer" in err[0] and f"no Pluto at ip:{nobody}" in err[-1]
