"""The shipped .grc flowgraphs: they compile with grcc, are built from the link halves, are wired as
the in-process engine, agree with the numerology, run (the GUI one offscreen), and GRC finds the
blocks (`semjscc grc`, the block path)."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("gnuradio.gr")

from conftest import SHIPPED
from semjscc.cli.main import main
from semjscc.grc.install import blocks_dir, clean, grc_env, install, merge_blocks_path
from semjscc.grc.run import error_line, run_script
from semjscc.phy.numerology import DEFAULT_NUMEROLOGY as NUM
from semjscc.util.errors import ModelError, UsageError

# the shared fixtures (tiny zoo, data, grcc compiled once per session, HOME) are in conftest.py
pytestmark = [pytest.mark.gnuradio, pytest.mark.usefixtures("gr_home")]
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.stem for p in SHIPPED])
def test_shipped_flowgraph_compiles_with_grcc(grcc_runs: dict[str, tuple[int, str, Path]], name: str) -> None:
    rc, text, script = grcc_runs[name]
    assert rc == 0 and script.is_file(), text


def test_every_shipped_flowgraph_uses_the_link_halves() -> None:
    """No .grc wires an encoder to an OFDM TX (or an OFDM RX to a decoder) by hand."""
    for grc in sorted((REPO / "flowgraphs").glob("*.grc")):
        ids = {b["id"] for b in yaml.safe_load(grc.read_text())["blocks"]}
        halves = ids & {"semjscc_jscc_tx", "semjscc_jscc_rx", "semjscc_separate_tx", "semjscc_separate_rx"}
        assert halves, grc.name
        assert not ids & {"semjscc_jscc_encoder", "semjscc_jscc_decoder", "semjscc_ofdm_tx", "semjscc_ofdm_rx",
                          "semjscc_separate_encoder", "semjscc_separate_decoder", "semjscc_classifier"}, grc.name


def test_engine_is_wired_as_its_grc() -> None:
    """semjscc.gr.sim_loopback (the in-process engine) has the graph of flowgraphs/sim_loopback.grc."""
    from semjscc.gr.sim_loopback import GRC_BLOCKS, WIRING

    doc = yaml.safe_load((REPO / "flowgraphs" / "sim_loopback.grc").read_text())
    kind = {b["name"]: b["id"] for b in doc["blocks"]}
    grc_edges = sorted((kind[a], str(pa), kind[b], str(pb)) for a, pa, b, pb in doc["connections"])
    engine_edges = sorted((GRC_BLOCKS[a], pa, GRC_BLOCKS[b], pb) for a, pa, b, pb in WIRING)
    assert engine_edges == grc_edges


@pytest.mark.slow
def test_gui_flowgraph_has_its_views(compiled: dict[str, Path]) -> None:
    gui = compiled["sim_loopback_gui"].read_text()
    assert "qtgui.freq_sink_c(" in gui and "qtgui.const_sink_c(" in gui and "semjscc_gr.image_display(" in gui
    assert "semjscc_gr.jscc_tx(" in gui and "semjscc_gr.jscc_rx(" in gui


@pytest.mark.slow
def test_grc_flowgraph_matches_numerology(compiled: dict[str, Path], zoo: Path, data: Path) -> None:
    """The .grc computes the noise voltage with plain arithmetic (grcc evaluates it without the
    venv): it must equal numerology.noise_std_for_snr, the project's single definition."""
    from gnuradio import channels
    from semjscc.gr.sim_loopback import multipath_taps

    spec = importlib.util.spec_from_file_location("generated_sim_loopback", compiled["sim_loopback"])
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    tb = mod.sim_loopback(snr_db=7.5, cfo_hz=1500.0, multipath="1,0.5j", model=str(zoo / "jscc-kn6"),
                          classifier=str(zoo / "classifier"), source=str(data), frames=4)
    ref = channels.channel_model(NUM.noise_std_for_snr(7.5), 0.0, 1.0, [1.0 + 0j], 0)
    ch = tb.channels_channel_model_0
    assert ch.noise_voltage() == pytest.approx(ref.noise_voltage(), rel=1e-6)
    assert ch.frequency_offset() == pytest.approx(1500.0 / NUM.sample_rate)
    assert tb.samp_rate == NUM.sample_rate
    np.testing.assert_allclose(ch.taps(), multipath_taps("1,0.5j"), rtol=1e-6)


@pytest.mark.slow
def test_gui_flowgraph_runs_offscreen(compiled: dict[str, Path], zoo: Path, data: Path, tmp_path: Path) -> None:
    env = {**grc_env(), "SEMJSCC_MODELS": str(zoo)}
    js = tmp_path / "gui.json"
    p = subprocess.Popen([sys.executable, str(compiled["sim_loopback_gui"]), "--model", "jscc-kn6",
                          f"--source={data}", f"--json-path={js}", "--frames-per-second=25", "--snr-db=15"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        t0 = time.monotonic()
        while not js.is_file() and time.monotonic() - t0 < 20 and p.poll() is None:
            time.sleep(0.1)  # the metrics sink writes every second once frames flow
        time.sleep(1.0)
        assert p.poll() is None, p.stdout.read() if p.stdout else ""
        p.send_signal(signal.SIGTERM)  # the generated Qt main stops the flowgraph and quits
        out, _ = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out
    assert "Traceback" not in out, out
    doc = json.loads(js.read_text())
    assert doc["frames_sent"] > 5 and doc["frames_received"] > 0
    assert doc["frames_sent"] == doc["frames_received"] + doc["frames_lost"]  # in-flight frames lost at stop
    assert doc["params"]["flowgraph"] == "sim_loopback_gui.grc"


def test_a_flowgraph_run_by_hand_without_a_json_prints_its_result(compiled: dict[str, Path], zoo: Path,
                                                                  data: Path) -> None:
    """`python build/sim_loopback.py` with no --json-path used to say nothing: the console gets the
    frames, the accuracy with its interval and n, PSNR and SNR."""
    env = {**grc_env(), "SEMJSCC_MODELS": str(zoo)}
    r = subprocess.run([sys.executable, str(compiled["sim_loopback"]), "--model", "jscc-kn6", f"--source={data}",
                        "--frames=3"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("semjscc metrics: "))
    assert "3 frames sent" in line and "(95 %, n = " in line and "PSNR" in line


def test_generated_script_errors_become_one_line(tmp_path: Path) -> None:
    script = tmp_path / "fg.py"
    script.write_text("from semjscc.util.errors import ModelError\nraise ModelError('model x has 7 symbols')\n")
    with pytest.raises(ModelError, match=r"^fg failed: model x has 7 symbols$"):
        run_script(script, [], timeout_s=60)
    assert error_line("Traceback...\n  File x\nsemjscc.errors.DataError: no images\n") == "DataError: no images"
    with pytest.raises(UsageError, match="did not finish"):
        (tmp_path / "slow.py").write_text("import time\ntime.sleep(30)\n")
        run_script(tmp_path / "slow.py", [], timeout_s=1)


def test_grc_refuses_what_companion_cannot_open(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from semjscc.grc.run import read_grc

    for grc in SHIPPED:
        assert "file_format" in read_grc(grc)["metadata"]
    cases = {"list.grc": ("- a\n- b\n", "not a YAML mapping"),
             "no-options.grc": ("metadata: {file_format: 1}\nblocks: []\n", "no options block"),
             "no-metadata.grc": ("options: {parameters: {id: x}}\n", "no metadata: file_format"),
             "binary.grc": (b"\xff\xfe\x00garbage", "not a GRC 3.10 flowgraph (not UTF-8 text)")}
    for name, (text, why) in cases.items():
        f = tmp_path / name
        f.write_bytes(text if isinstance(text, bytes) else text.encode())
        assert main(["grc", str(f), "--print-command"]) == 2
        err = capsys.readouterr().err
        assert why in err and "give a .grc file saved by GNU Radio Companion" in err, err
    assert main(["grc", str(tmp_path), "--print-command"]) == 2
    assert "is not a file: give FILE.grc" in capsys.readouterr().err


def test_grc_path_merge_and_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = "/opt/semjscc/grc"
    new, changed = merge_blocks_path("", d)
    assert changed and new == f"[grc]\nlocal_blocks_path = {d}\n"
    text = "# mine\n[grc]\nlocal_blocks_path = /a:/b\nglobal_blocks_path = /g\n[audio]\naudio_module = alsa\n"
    new, changed = merge_blocks_path(text, d)
    assert changed and f"local_blocks_path = /a:/b:{d}\n" in new and "# mine" in new and "audio_module = alsa" in new
    assert merge_blocks_path(new, d) == (new, False)  # idempotent
    new, _ = merge_blocks_path("[grc]\nxterm_executable = xterm\n", d)
    assert new.startswith(f"[grc]\nlocal_blocks_path = {d}\n")
    new, _ = merge_blocks_path("[audio]\naudio_module = alsa", d)
    assert new.endswith(f"audio_module = alsa\n\n[grc]\nlocal_blocks_path = {d}\n")
    cfg = tmp_path / ".gnuradio" / "config.conf"
    assert install(cfg) == (cfg, True) and install(cfg) == (cfg, False)
    assert f"local_blocks_path = {blocks_dir()}" in cfg.read_text()
    # stale entries must not win: other checkouts' (present or gone) go when this one is installed, and
    # --clean (what set-up runs: each venv sets GRC_BLOCKS_PATH) removes every gr-semjscc entry, keeping
    # the user's own
    other = tmp_path / "elsewhere" / "gr-semjscc" / "grc"
    cfg.write_text(f"# mine\n[grc]\nlocal_blocks_path = /a:{other}:/old/gr-semjscc/grc:{blocks_dir()}\n")
    assert install(cfg) == (cfg, True)
    assert f"local_blocks_path = /a:{blocks_dir()}\n" in cfg.read_text() and "# mine" in cfg.read_text()
    _, removed = clean(cfg)
    assert removed == [str(blocks_dir())] and "local_blocks_path = /a\n" in cfg.read_text()
    cfg.write_text(f"[grc]\nlocal_blocks_path = {other}\n")
    assert clean(cfg)[1] == [str(other)] and clean(cfg)[1] == []
    # semjscc grc: blocks path set, the venv first on PATH, GRC run by this interpreter
    assert main(["grc", "--print-command"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"GRC_BLOCKS_PATH={blocks_dir()}"
    assert out[1].startswith(f"PATH={Path(sys.executable).parent}")
    assert out[2].startswith(f"{sys.executable} ") and out[2].endswith("sim_loopback_gui.grc")
