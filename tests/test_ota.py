"""Over-the-air experiments on the simulated Pluto: the runner's outputs (CSV, SigMF validated by the
sigmf library, JSON, plot), exact replay, Ctrl-C keeping what was recorded, oscillator correction
between two radios, and the Pluto flowgraphs (grcc, and their gr-iio blocks built with the runner's
parameters, against stand-in iio blocks: no radio here).

Models are tiny untrained exports (tests/gr_tiny_zoo.py): accuracies are meaningless, the plumbing,
accounting and exactness are what is tested."""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from conftest import fake_split, write_folder
from gr_tiny_zoo import tiny_zoo
from semjscc.cli.main import main
from semjscc.experiments.ota.replay import replay
from semjscc.experiments.ota.runner import Experiment, run_experiment
from semjscc.link.ledger import RUN_KEYS
from semjscc.radio.sim import SimRadio

REPO = Path(__file__).resolve().parents[1]
MODEL = "jscc-kn6"  # SNR-adaptive, 512 symbols


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("sigmf")
    pytest.importorskip("torch")  # exports the tiny models
    zoo = tiny_zoo(tmp_path_factory)
    root = tmp_path_factory.mktemp("ota")
    pics = write_folder(root / "pics", {"test": fake_split(2, 7)}) / "test"  # 20 labelled pictures
    return {"zoo": zoo, "pics": pics, "cal": root / "cal", "root": root}


@pytest.fixture(autouse=True)
def _env(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEMJSCC_MODELS", str(env["zoo"]))
    monkeypatch.setenv("SEMJSCC_CALIBRATION", str(env["cal"]))
    monkeypatch.setenv("HOME", str(tmp_path))  # ONNX Runtime and GNU Radio write under ~


@pytest.fixture(scope="module")
def experiment(env: dict[str, Path]) -> Iterator[dict]:
    """calibrate + ota on the simulated loopback, once for the module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEMJSCC_MODELS", str(env["zoo"]))
        mp.setenv("SEMJSCC_CALIBRATION", str(env["cal"]))
        mp.setenv("HOME", str(env["root"]))
        assert main(["calibrate", "--uri", "sim:seed=21", "--rx-gains", "40", "--quiet"]) == 0
        out = env["root"] / "run"
        assert main(["ota", "--uri", "sim:seed=21", "--snr", "2", "14", "--images", "10", "--batch", "4",
                     "--model", MODEL, "--data", str(env["pics"]), "--out", str(out), "--no-progress"]) == 0
        yield {"out": out, "summary": json.loads((out / "summary.json").read_text())}


def test_experiment_outputs(experiment: dict) -> None:
    import sigmf

    out, doc = experiment["out"], experiment["summary"]
    assert set(RUN_KEYS) <= set(doc)
    assert doc["frames_sent"] == 20 == doc["frames_received"] + doc["frames_lost"]
    assert [p["target_snr_db"] for p in doc["points"]] == [2.0, 14.0]
    for p in doc["points"]:  # the profile's attenuation gives the target within a dB
        assert p["channel_snr_db"] == pytest.approx(p["target_snr_db"], abs=1.0)  # Es/N0, as the target
        assert p["frames_sent"] == 10 and p["tx_atten_db"] > 0
    assert doc["simulated"] and all(0.0 <= s["accuracy"] <= 1.0 for s in doc["simulated"])
    rows = list(csv.DictReader((out / "frames.csv").open()))
    assert len(rows) == 20 and {r["status"] for r in rows} <= {"received", "lost", "corrupt"}
    assert sum(r["status"] == "received" for r in rows) == doc["frames_received"]
    received = [r for r in rows if r["status"] == "received"]
    assert all(r["pred"] != "" and float(r["psnr_db"]) > 0 and r["sample_start"] for r in received)
    assert (out / "accuracy_vs_snr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # SigMF: the library reads it back, verifies the sha512 and validates the schema
    rec = sigmf.sigmffile.fromfile(str(out / "recording.sigmf-meta"))
    rec.validate()
    g = rec.get_global_info()
    assert g["core:datatype"] == "cf32_le" and g["core:sample_rate"] == 1e6 and "sim-21" in g["core:hw"]
    assert g["semjscc:experiment"]["calibration"]["rx"].endswith("sim-21.yaml")
    caps = rec.get_captures()
    assert len(caps) == 6 and all(c["core:frequency"] == 2.45e9 and "core:datetime" in c for c in caps)
    assert [c["semjscc:tx_atten_db"] for c in caps] == [doc["points"][0]["tx_atten_db"]] * 3 + [
        doc["points"][1]["tx_atten_db"]] * 3
    frames = [a for a in rec.get_annotations() if "semjscc:frame" in a]
    assert sorted(a["semjscc:frame"] for a in frames) == list(range(20))
    for a in frames:
        if a["semjscc:status"] == "received":
            assert {"semjscc:snr_est_db", "semjscc:label", "semjscc:pred"} <= set(a) and a["core:sample_count"] > 0
        # every frame annotation (lost ones too) has a length and the signal's band edges (inspectrum)
        assert a["core:sample_count"] > 0
        assert a["core:freq_lower_edge"] == pytest.approx(2.45e9 - 26.5 * 1e6 / 64)
        assert a["core:freq_upper_edge"] == pytest.approx(2.45e9 + 26.5 * 1e6 / 64)
    assert rec.sample_count == sum(int(r) for r in _capture_lengths(caps, rec.sample_count))


def test_default_order_measures_every_class(experiment: dict) -> None:
    """The default order is stratified (the test split is sorted by class): 10 images per point are one
    of each class; the order is recorded in the summary and in the recording."""
    out, doc = experiment["out"], experiment["summary"]
    rows = list(csv.DictReader((out / "frames.csv").open()))
    for k in (0, 1):
        assert sorted(int(r["label"]) for r in rows if r["point"] == str(k)) == list(range(10))
    assert doc["meta"]["images"]["order"] == "stratified" and doc["meta"]["images"]["shuffle_seed"] == 0
    assert _recording_global(out)["semjscc:experiment"]["images"]["order"] == "stratified"
    assert set(doc["meta"]["snr_keys"]) == {"channel_snr_db", "snr_est_db"}


def test_lost_frames_are_annotated_over_the_capture_window() -> None:
    """A lost frame's annotation spans the capture's period (it was there somewhere), never a bare start."""
    from semjscc.experiments.ota.decode import CaptureResult, FrameResult
    from semjscc.experiments.ota.runner import _annotations, occupied_band_hz

    lost = FrameResult(frame=3, image_index=3, label=2, status="lost", air_frame_number=3)
    ann = _annotations(CaptureResult(frames=[lost], header_failures=[]), (1520, 25840), 512,
                       occupied_band_hz(915e6, 2e6))
    (start, count, meta), = ann
    assert (start, count) == (1520, 24320) and meta["semjscc:status"] == "lost"
    assert meta["core:freq_upper_edge"] - meta["core:freq_lower_edge"] == pytest.approx(53 * 2e6 / 64)


def _capture_lengths(caps: list[dict], total: int) -> list[int]:
    starts = [c["core:sample_start"] for c in caps] + [total]
    return [b - a for a, b in itertools.pairwise(starts)]


def test_replay_reproduces_the_experiment_exactly(experiment: dict, capsys: pytest.CaptureFixture[str]) -> None:
    doc = experiment["summary"]
    assert main(["replay", str(experiment["out"] / "recording.sigmf-meta")]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["models_match"]
    for key in RUN_KEYS:
        assert again[key] == doc[key], key
    for a, b in zip(again["points"], doc["points"], strict=True):
        assert {k: a[k] for k in RUN_KEYS} == {k: b[k] for k in RUN_KEYS}


def test_ctrl_c_keeps_everything_recorded(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    import sigmf

    calls = {"n": 0}
    real = SimRadio.receive

    def receive(self: SimRadio, n: int) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the user presses Ctrl-C during the third capture
        return real(self, n)

    monkeypatch.setattr(SimRadio, "receive", receive)
    exp = Experiment(out=tmp_path / "cut", uri="sim:seed=3", attens=[40.0], n_images=12, batch=4, model=MODEL,
                     data=str(env["pics"]), calibration="none", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(exp)
    doc = json.loads((exp.out / "summary.json").read_text())
    assert doc["interrupted"] and doc["frames_sent"] == 8  # two whole batches
    assert len(list(csv.DictReader((exp.out / "frames.csv").open()))) == 8
    rec = sigmf.sigmffile.fromfile(str(exp.out / "recording.sigmf-meta"))  # checksum matches the data kept
    rec.validate()
    assert len(rec.get_captures()) == 2
    monkeypatch.setattr(SimRadio, "receive", real)
    again = replay(exp.out / "recording.sigmf-meta")
    assert {k: again[k] for k in RUN_KEYS} == {k: doc[k] for k in RUN_KEYS}


def test_two_radios_need_the_oscillator_correction(env: dict[str, Path], tmp_path: Path) -> None:
    """75 ppm between two radios at 2.45 GHz = 184 kHz (crystals out of the Pluto's +-25 ppm class), beyond
    the receiver's +-141 kHz: without the profile nothing is received; with the peer calibration
    everything is. (Two stock Plutos, up to 122.5 kHz apart, need no profile: test_emulated_pluto.)"""
    rx, tx = "sim:seed=1,ppm=40", "sim:seed=2,ppm=-35"
    common = ["--uri", rx, "--tx-uri", tx, "--images", "6", "--batch", "6", "--model", MODEL, "--data",
              str(env["pics"]), "--no-progress", "--no-sim"]
    assert main(["ota", *common, "--tx-atten", "40", "--calibration", "none", "--out", str(tmp_path / "raw")]) == 0
    raw = json.loads((tmp_path / "raw" / "summary.json").read_text())
    assert raw["frames_received"] == 0 and raw["frames_lost"] == 6
    # the summary says why: the signal sits ~184 kHz off the LO, outside the search range
    hint = raw["meta"]["hints"]["0"]
    assert "off the LO, beyond the receiver's" in hint and "--peer" in hint, hint
    offset_khz = float(hint.split("centred ")[1].split(" kHz")[0])
    # 75 ppm of 2.45 GHz; the band sits only ~6 dB above the floor here, so allow two 3.9 kHz bins
    assert abs(abs(offset_khz) - 183.75) < 8, hint
    assert main(["calibrate", "--uri", rx, "--peer", tx, "--rx-gains", "40", "--tx-attens", "30", "40", "50",
                 "--out", str(tmp_path / "cal"), "--quiet"]) == 0
    profile = tmp_path / "cal" / "sim-1.yaml"
    assert main(["ota", *common, "--snr", "12", "--calibration", str(profile), "--out", str(tmp_path / "fixed")]) == 0
    fixed = json.loads((tmp_path / "fixed" / "summary.json").read_text())
    assert fixed["frames_received"] == 6 and abs(fixed["cfo_est_hz"]) < 500
    assert fixed["points"][0]["rx_lo_hz"] == round(2.45e9 / (1 + 75e-6))


def test_a_disk_that_fills_mid_run_keeps_the_batches_recorded(env: dict[str, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """ENOSPC on the second batch's samples: one line, exit 2, and the recording keeps the first batch,
    which replay decodes (it used to end in a traceback)."""
    import errno

    from semjscc.experiments.ota import recording

    calls = {"n": 0}
    real = recording.os.fsync

    def fsync(fd: int) -> None:  # 1: metadata at open, 2-3: batch 1 data and metadata, 4: batch 2 data
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(recording.os, "fsync", fsync)
    out = tmp_path / "full"
    code = main(["ota", "--uri", "sim", "--tx-atten", "40", "--images", "8", "--batch", "4", "--model", MODEL,
                 "--data", str(env["pics"]), "--calibration", "none", "--no-progress", "--no-sim", "--out", str(out)])
    assert code == 2
    assert "recording stopped (No space left on device); it keeps the 1 batches" in capsys.readouterr().err
    monkeypatch.setattr(recording.os, "fsync", real)
    doc = replay(out / "recording.sigmf-meta")
    assert doc["captures"] == 1 and doc["frames_sent"] == 4


def test_snr_sweep_without_profile_is_refused(env: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ota", "--uri", "sim:seed=99", "--snr", "10", "--calibration", "none", "--model", MODEL,
                 "--data", str(env["pics"]), "--out", str(tmp_path)]) == 2
    assert "needs a calibration profile" in capsys.readouterr().err


def test_experiment_values_are_checked_before_the_radio_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A NaN target SNR (which reached round() while choosing the attenuation) and radio settings
    outside the Pluto's ranges (a sample rate of 0 reached the SigMF writer after the first capture)
    are refused before a radio is opened or anything is written."""
    from semjscc.experiments.ota import runner
    from semjscc.util.errors import UsageError

    def no_radio(*_a: object, **_k: object) -> None:
        raise AssertionError("the radio was opened")

    monkeypatch.setattr(runner, "open_radio", no_radio)
    out = tmp_path / "o"
    cases = [({"snrs": [10.0, math.nan]}, "target SNR nan dB is not a finite number"),
             ({"attens": [40.0], "design_snr_db": math.inf}, "--design-snr inf is not a finite number"),
             ({"attens": [40.0], "sample_rate": 0.0}, "sample rate (S/s) 0 is outside the Pluto's range"),
             ({"attens": [40.0], "sample_rate": 100e6}, "sample rate (S/s) 1e+08 is outside"),
             ({"attens": [40.0], "rf_bandwidth": 100e6}, "RF bandwidth (Hz) 1e+08 is outside"),
             ({"attens": [40.0], "freq_hz": 10e9}, "LO frequency (Hz) 1e+10 is outside"),
             ({"attens": [40.0], "rx_gain_db": math.nan}, "RX gain (dB) nan is outside")]
    for kwargs, text in cases:
        with pytest.raises(UsageError) as e:
            run_experiment(Experiment(out=out, **kwargs))
        assert text in str(e.value), (kwargs, str(e.value))
    assert not out.exists()


def test_replay_refuses_a_model_of_another_symbol_count(experiment: dict, env: dict[str, Path]) -> None:
    """A 256-symbol model on a 512-symbol recording used to decode every frame as corrupt (exit 0)."""
    from semjscc.util.errors import ModelError

    with pytest.raises(ModelError, match=r"holds frames of 512 symbols \(recorded with .*\) but model .* decodes 256"):
        replay(experiment["out"] / "recording.sigmf-meta", model=str(env["zoo"] / "jscc-kn12"))


def test_replay_names_a_missing_data_file(experiment: dict, tmp_path: Path) -> None:
    from semjscc.util.errors import UsageError

    meta = tmp_path / "recording.sigmf-meta"
    shutil.copy(experiment["out"] / "recording.sigmf-meta", meta)
    with pytest.raises(UsageError, match=r"recording\.sigmf-data is missing: the samples of recording\.sigmf-meta"):
        replay(meta)


# --- the Pluto flowgraphs ----------------------------------------------------------------------------
FLOWGRAPHS = ("pluto_tx", "pluto_rx", "pluto_loopback")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """All Pluto flowgraphs through one grcc run (it spends seconds loading the block library)."""
    pytest.importorskip("gnuradio.iio")
    from semjscc.grc.install import gnuradio_script

    grcc = gnuradio_script("grcc")
    if grcc is None:
        pytest.skip("grcc not installed")
    out = tmp_path_factory.mktemp("grcc")
    env = {**os.environ, "HOME": str(out), "GRC_BLOCKS_PATH": str(REPO / "gr-semjscc" / "grc")}
    grcs = [str(REPO / "flowgraphs" / f"{name}.grc") for name in FLOWGRAPHS]
    r = subprocess.run([sys.executable, grcc, "-o", str(out), *grcs], capture_output=True, text=True, env=env,
                       timeout=180)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log
    assert "rror" not in log, log  # grcc logs expression errors and still writes a script
    return {name: out / f"{name}.py" for name in FLOWGRAPHS}


@pytest.mark.slow
@pytest.mark.gnuradio
def test_pluto_flowgraphs_compile(compiled: dict[str, Path]) -> None:
    for name, script in compiled.items():
        text = script.read_text()
        lo = "tx_calibration" if name == "pluto_tx" else "calibration"
        assert f"semjscc_calib.lo_hz({lo}, freq)" in text, name
        assert ("iio.fmcomms2_sink_fc32" in text) == (name != "pluto_rx")
        assert ("iio.fmcomms2_source_fc32" in text) == (name != "pluto_tx")
        if name != "pluto_rx":  # an int parameter: GRC passes the flowgraph's variable (an enum got '0')
            assert "max_wait_s=0.005, midamble=midamble)" in text, name
        subprocess.run([sys.executable, "-m", "py_compile", str(script)], check=True)


class _Recorder:
    """Stand-in gr-iio Pluto blocks (real GNU Radio hier blocks, so they connect), recording the calls."""

    made: ClassVar[list] = []

    @classmethod
    def cls(cls, kind: str) -> type:
        from gnuradio import blocks, gr

        def init(self: object, uri: str, channels: list, buffer_size: int, cyclic: bool | None = None) -> None:
            if kind == "source":
                gr.hier_block2.__init__(self, "fake_pluto_source", gr.io_signature(0, 0, 0),
                                        gr.io_signature(1, 1, gr.sizeof_gr_complex))
                self.inner = blocks.null_source(gr.sizeof_gr_complex)
                self.connect(self.inner, self)
            else:
                gr.hier_block2.__init__(self, "fake_pluto_sink", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                        gr.io_signature(0, 0, 0))
                self.inner = blocks.null_sink(gr.sizeof_gr_complex)
                self.connect(self, self.inner)
            self.calls = {"kind": kind, "uri": uri, "buffer_size": buffer_size, "cyclic": cyclic}
            cls.made.append(self)

        def recorder(name: str):
            return lambda self, *args: self.calls.__setitem__(name, args)

        methods = {m: recorder(m) for m in ("set_len_tag_key", "set_frequency", "set_samplerate", "set_gain_mode",
                                            "set_gain", "set_quadrature", "set_rfdc", "set_bbdc", "set_filter_params",
                                            "set_bandwidth", "set_attenuation")}
        return type(f"Fake{kind}", (gr.hier_block2,), {"__init__": init, **methods})


@pytest.mark.slow  # compiles the Pluto flowgraphs
@pytest.mark.gnuradio
def test_loopback_flowgraph_gets_the_runners_parameters(env: dict[str, Path], compiled: dict[str, Path],
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generated pluto_loopback top block, built with the options the runner prints for a point,
    programs the same LO, attenuation, rate, bandwidth and gain into gr-iio as the runner's radio layer,
    and feeds it the same TX level."""
    iio = pytest.importorskip("gnuradio.iio")
    from semjscc.radio import GR_SINK_SCALE

    # a peer-calibrated profile, so the LO correction is visible (loopback profiles have no ppm); the
    # experiment then runs on that one radio in loopback, as the flowgraph does
    rx, tx = "sim:seed=1,ppm=15", "sim:seed=2,ppm=-10"
    assert main(["calibrate", "--uri", rx, "--peer", tx, "--rx-gains", "40", "--tx-attens", "30", "40", "50",
                 "--out", str(tmp_path / "cal"), "--quiet"]) == 0
    out = tmp_path / "run"
    assert main(["ota", "--uri", rx, "--snr", "12", "--images", "4", "--batch", "4", "--model", MODEL,
                 "--data", str(env["pics"]), "--calibration", str(tmp_path / "cal" / "sim-1.yaml"), "--out", str(out),
                 "--no-progress", "--no-sim"]) == 0
    doc = json.loads((out / "summary.json").read_text())
    point = doc["points"][0]
    spec = importlib.util.spec_from_file_location("pluto_loopback_gen", compiled["pluto_loopback"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _Recorder.made = []
    monkeypatch.setattr(iio, "fmcomms2_source_fc32", _Recorder.cls("source"))
    monkeypatch.setattr(iio, "fmcomms2_sink_fc32", _Recorder.cls("sink"))
    # the runner's command line for this point -> the generated script's own argument parser
    args = module.argument_parser().parse_args([*shlex.split(point["flowgraph_args"]), "--source", str(env["pics"]),
                                                "--frames", "4"])
    kwargs = {k: getattr(args, k) for k in vars(args)}
    # a simulated run's options name the Pluto's default address (gr-iio cannot open sim), and say so
    assert kwargs["uri"] == "ip:192.168.2.1" and "cannot open sim" in point["flowgraph_note"]
    assert kwargs["order"] == doc["meta"]["images"]["order"] == "stratified" and kwargs["seed"] == 0
    tb = module.pluto_loopback(**kwargs)
    try:
        by_kind = {b.calls["kind"]: b.calls for b in _Recorder.made}
        src, sink = by_kind["source"], by_kind["sink"]
        assert src["uri"] == sink["uri"] == "ip:192.168.2.1"
        assert sink["set_frequency"] == (point["tx_lo_hz"],) and src["set_frequency"] == (point["rx_lo_hz"],)
        assert point["rx_lo_hz"] == point["tx_lo_hz"] == round(2.45e9 / (1 + 25e-6))  # the profile's correction
        assert sink["set_attenuation"] == (0, point["tx_atten_db"])
        assert sink["set_samplerate"] == src["set_samplerate"] == (1_000_000,)
        assert sink["set_bandwidth"] == (1_000_000,)
        assert src["set_gain_mode"] == (0, "manual") and src["set_gain"] == (0, point["rx_gain_db"])
        # gr-iio 3.10's sink with a length tag key wants a tag equal to its buffer size on every buffer:
        # none is set, the Stream TX feeds it a continuous stream
        assert sink["cyclic"] is False and sink["set_len_tag_key"] == ("",) and sink["buffer_size"] == 16384
        phy = _recording_global(out)["semjscc:phy"]
        assert math.isclose(tb.tx_amp, phy["tx_scale"] * GR_SINK_SCALE, rel_tol=1e-12)  # same RF level
        assert tb.design_snr == 12.0
    finally:
        del tb


def _recording_global(out: Path) -> dict:
    return json.loads((out / "recording.sigmf-meta").read_text())["global"]


class _AirLink:
    """Stand-in gr-iio Pluto blocks joined by a wire: what the sink is given, the source delivers,
    each paced at the sample rate by a throttle (the DAC and the ADC). The sink records every tag
    that reaches it (gr-iio 3.10's sink stops on a length tag that is not its buffer size)."""

    def __init__(self) -> None:
        import collections
        import threading

        self.wire: collections.deque = collections.deque()
        self.lock = threading.Lock()
        self.sink_tags: list = []
        self.sink_samples = 0
        self.made: list = []

    def cls(self, kind: str) -> type:
        from gnuradio import blocks, gr

        link = self

        class _WireSink(gr.sync_block):
            def __init__(self) -> None:
                gr.sync_block.__init__(self, "wire_sink", [np.complex64], None)

            def work(self, input_items: list, _output_items: list) -> int:
                x = input_items[0]
                link.sink_tags += self.get_tags_in_window(0, 0, len(x))
                with link.lock:
                    link.wire.append(x.copy())
                    link.sink_samples += len(x)
                return len(x)

        class _WireSource(gr.sync_block):
            def __init__(self) -> None:
                gr.sync_block.__init__(self, "wire_source", None, [np.complex64])
                self.rest = np.zeros(0, np.complex64)

            def work(self, _input_items: list, output_items: list) -> int:
                out = output_items[0]
                with link.lock:
                    while len(self.rest) < len(out) and link.wire:
                        self.rest = np.concatenate([self.rest, link.wire.popleft()])
                n = len(out)
                take = min(n, len(self.rest))
                out[:take] = self.rest[:take]
                out[take:] = 0  # the radio hears silence when nothing is on the air
                self.rest = self.rest[take:]
                return n

        def init(self: object, uri: str, channels: list, buffer_size: int, cyclic: bool | None = None) -> None:
            io = gr.io_signature(1, 1, gr.sizeof_gr_complex)
            none = gr.io_signature(0, 0, 0)
            gr.hier_block2.__init__(self, f"fake_pluto_{kind}", io if kind == "sink" else none,
                                    none if kind == "sink" else io)
            self.thr = blocks.throttle(gr.sizeof_gr_complex, 1e6)
            if kind == "sink":
                self.wire_block = _WireSink()
                self.connect(self, self.thr, self.wire_block)
            else:
                self.wire_block = _WireSource()
                self.connect(self.wire_block, self.thr, self)
            self.calls = {"kind": kind, "uri": uri, "buffer_size": buffer_size}
            link.made.append(self)

        def set_samplerate(self: object, rate: int) -> None:
            self.thr.set_sample_rate(rate)

        def record(name: str):
            return lambda self, *args: self.calls.__setitem__(name, args)

        methods = {m: record(m) for m in ("set_len_tag_key", "set_frequency", "set_gain_mode", "set_gain",
                                          "set_quadrature", "set_rfdc", "set_bbdc", "set_filter_params",
                                          "set_bandwidth", "set_attenuation")}
        return type(f"Wire{kind}", (gr.hier_block2,), {"__init__": init, "set_samplerate": set_samplerate,
                                                        **methods})


@pytest.mark.slow
@pytest.mark.gnuradio
def test_loopback_flowgraph_streams_and_ends_on_its_own(env: dict[str, Path], compiled: dict[str, Path],
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generated pluto_loopback, its gr-iio blocks replaced by a wire paced at 1 MS/s: every frame
    goes out whole through the Stream TX and is accounted for, no tag reaches the sink, the RX RF
    bandwidth is written through libiio (the snippet), the JSON carries the stream's own counters,
    and the flowgraph finishes by itself (a radio source never does: the RX monitor ends it)."""
    import threading

    iio = pytest.importorskip("gnuradio.iio")
    from semjscc.radio import iio_attrs

    link = _AirLink()
    monkeypatch.setattr(iio, "fmcomms2_source_fc32", link.cls("source"))
    monkeypatch.setattr(iio, "fmcomms2_sink_fc32", link.cls("sink"))
    written: list = []
    monkeypatch.setattr(iio_attrs, "write_rx_rf_bandwidth", lambda uri, hz, *a: written.append((uri, hz)) or int(hz))
    spec = importlib.util.spec_from_file_location("pluto_loopback_wire", compiled["pluto_loopback"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "live.json"
    tb = module.pluto_loopback(uri="ip:192.168.2.1", model=MODEL, source=str(env["pics"]), frames=20,
                               json_path=str(out), rf_bw=1.5e6)
    module.snippets_main_after_init(tb)
    assert written == [("ip:192.168.2.1", 1.5e6)]
    finished = threading.Event()
    tb.start()
    threading.Thread(target=lambda: (tb.wait(), finished.set()), daemon=True).start()
    try:
        assert finished.wait(120), "the flowgraph did not finish by itself"
    finally:
        tb.stop()
        tb.wait()
    doc = json.loads(out.read_text())
    assert doc["frames_sent"] == 20 == doc["frames_received"] + doc["frames_lost"]
    # the wire is paced like a radio: a receive chain that falls behind on loaded cores loses samples,
    # and then (only then) frames, each counted by the RX monitor as an overflow
    if doc["frames_lost"] or doc["dropped_overload"]:
        # the JSON is written when the last frame is accounted for, so its copy of the monitor's counters
        # may predate a late overflow: the block's own counters are the final word
        overflows = max(doc["radio_stats"]["rx_monitor"]["overflow_events"],
                        tb.semjscc_rx_monitor_0.counts["overflow_events"])
        assert overflows > 0, doc
    assert doc["frames_received"] >= 15 and doc["corrupt"] == 0
    assert link.sink_tags == []  # no length tags: gr-iio 3.10's sink would have stopped
    stream = tb.semjscc_stream_tx_0.stats()
    # every burst queued went out: the 20 frames and the first flush frame (the OFDM TX's burst shaper
    # writes a burst's trailing zeros only when another burst follows, so the last flush frame stays there)
    assert stream["bursts_in"] == stream["bursts_out"] >= 21
    assert stream["tail_samples"] == 16384 and stream["upstream_done"]
    assert link.sink_samples == stream["samples_out"]  # the tail pushed the last part-buffer through
    assert doc["radio_stats"]["tx_stream"]["bursts_in"] >= 20
    assert doc["radio_stats"]["rx_monitor"]["samples_in"] > 0
    assert {"overflow_events", "overflow_samples", "measured_s"} <= set(doc["radio_stats"]["rx_monitor"])
    assert doc["params"]["order"] == "stratified"
