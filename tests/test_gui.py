"""What a GNU Radio Companion user sees, on a virtual X server (xvfb, installed by scripts/setup.sh
dev): the GUI flowgraph's spectrum follows its SNR slider (scripts/gui_screenshot.py reads the
traces back from a screenshot), its accuracy is per setting, and GRC draws every shipped canvas
without overlaps or cut-off ports (scripts/grc_layout.py asks GRC for the extents it draws)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gnuradio.gr")

from conftest import fake_split, write_pickles
from gr_tiny_zoo import tiny_zoo
from semjscc.grc.install import blocks_dir

pytestmark = [pytest.mark.gnuradio, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
XVFB = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if shutil.which("xvfb-run") is None:
        pytest.fail("xvfb-run is missing: scripts/setup.sh dev installs it (Debian package xvfb)")
    home = tmp_path_factory.mktemp("home")
    (home / "xdg").mkdir(mode=0o700)
    e = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    return {**e, "HOME": str(home), "XDG_RUNTIME_DIR": str(home / "xdg"), "GRC_BLOCKS_PATH": str(blocks_dir())}


def test_gui_spectrum_follows_the_snr_slider(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """Moved with its own slider from 0 to 10 to 25 dB, the "noise alone" trace drops by the SNR change
    (within the plot's pixel resolution), the received band stands above it, and the status line
    counts accuracy for the current setting only."""
    zoo = tiny_zoo(tmp_path_factory)
    data = write_pickles(tmp_path_factory.mktemp("cifar"), fake_split(3, 1), fake_split(3, 2))
    out = tmp_path_factory.mktemp("gui")
    r = subprocess.run([*XVFB, sys.executable, str(REPO / "scripts" / "gui_screenshot.py"), "--out", str(out),
                        "--snr", "0", "10", "25", "--set", f"model={zoo / 'jscc-kn6'}",
                        "--set", f"classifier={zoo / 'classifier'}", "--set", f"source={data}"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    points = json.loads((out / "gui.json").read_text())["points"]
    assert [p["slider"] for p in points] == [0.0, 10.0, 25.0]
    noise = [p["noise_db"] for p in points]
    assert abs((noise[0] - noise[1]) - 10) < 3 and abs((noise[0] - noise[2]) - 25) < 4, noise
    band = [p["received_db"] for p in points]
    assert band[2] - noise[2] > 15, (band, noise)  # at 25 dB the OFDM band stands clear of the floor
    for p in points:
        assert (out / p["png"]).stat().st_size > 10_000
        assert p["status"].startswith(f"at SNR {p['slider']:g} dB, CFO 0 Hz: "), p["status"]
    assert points[2]["frames_received"] > points[0]["frames_received"] > 0


def test_grc_canvases_have_no_overlaps(env: dict[str, str], tmp_path: Path) -> None:
    """Every shipped canvas is clean; the checker itself finds a block moved onto another and one moved
    to x = 0 (its input ports are drawn left of it) in a copy, and --fix clears them."""
    lines = (REPO / "flowgraphs" / "sim_loopback.grc").read_text().splitlines(keepends=True)

    def move(name: str, x: int, y: int) -> None:
        i = next(k for k, line in enumerate(lines) if line.startswith(f"- name: {name}\n"))
        j = next(k for k in range(i, len(lines)) if "coordinate:" in lines[k])
        lines[j] = f"    coordinate: [{x}, {y}]\n"

    move("semjscc_metrics_sink_0", 0, 500)
    move("semjscc_jscc_tx_0", 24, 500)
    bad = tmp_path / "bad.grc"
    bad.write_text("".join(lines))
    script = [*XVFB, sys.executable, str(REPO / "scripts" / "grc_layout.py")]
    shipped = sorted(str(p) for p in (REPO / "flowgraphs").glob("*.grc"))
    r = subprocess.run([*script, *shipped, str(bad)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    found = [line for line in r.stdout.splitlines() if ": " in line]
    assert found and all(line.startswith("bad.grc: ") for line in found), r.stdout  # the shipped ones are clean
    assert "semjscc_metrics_sink_0 sticks out of the canvas" in r.stdout, r.stdout
    assert any("overlaps" in line and "semjscc_jscc_tx_0" in line for line in found), r.stdout
    r = subprocess.run([*script, "--fix", str(bad)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
