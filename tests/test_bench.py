"""`semjscc bench throughput` (our OFDM chain against GNU Radio's) and the soak's own limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gnuradio.gr")

from semjscc.cli.main import main
from semjscc.util.errors import UsageError

# the shared fixtures (tiny zoo, data, grcc compiled once per session, HOME) are in conftest.py
pytestmark = [pytest.mark.gnuradio, pytest.mark.usefixtures("gr_home")]
REPO = Path(__file__).resolve().parents[1]


def test_bench_throughput_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "throughput", "--json", str(tmp_path / "t.json"), "--frames", "40"]) == 0
    doc = json.loads((tmp_path / "t.json").read_text())
    assert doc["ours_samples_per_s"] > 0 and doc["gr_ofdm_samples_per_s"] > 0
    assert doc["ratio"] == pytest.approx(doc["ours_samples_per_s"] / doc["gr_ofdm_samples_per_s"])
    assert doc["ours_frames_ok"] == 40 and len(doc["rows"]) == 2
    assert "ratio" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_throughput_full_chain(zoo: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--chain full: the PHY comparison, the whole link and the throttled real-time check in one report,
    every frame accounted for; figures are whatever this machine gives (benchmarks, not assertions
    on speed)."""
    out = tmp_path / "full.json"
    assert main(["bench", "throughput", "--chain", "full", "--json", str(out), "--frames", "30", "--model",
                 str(zoo / "jscc-kn6"), "--source", str(data), "--realtime-s", "1", "--rate", "2e6"]) == 0
    doc = json.loads(out.read_text())
    chain, rt = doc["chain"], doc["realtime"]
    assert [r["chain"].split(" (")[0] for r in doc["rows"][:2]] == ["semjscc analog OFDM", "GNU Radio digital OFDM"]
    assert chain["frames_sent"] == 30 == chain["frames_received"] + chain["frames_lost"]
    assert chain["samples_per_s"] > 0 and chain["latency_p50_s"] <= chain["latency_p99_s"]
    assert set(chain["blocks"]) == {"encoder", "decoder", "classifier", "ofdm_rx"}
    assert chain["models"]["classifier"]["execution_mode"] == "sequential"
    assert rt["frames_sent"] == int(1.0 * 2e6 / rt["samples_per_frame"]) == rt["frames_received"] + rt["frames_lost"]
    assert rt["series"] and rt["series"][-1]["samples_through_throttle"] >= rt["frames_sent"] * rt["samples_per_frame"] * 0.9
    assert "real time: throttle fed at" in capsys.readouterr().out


def test_bench_throughput_full_chain_refuses_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for extra, text in ((["--realtime-s", "-1"], "--realtime-s must be >= 0"), (["--max-wait", "2"], "--max-wait must lie in 0..1 s")):
        assert main(["bench", "throughput", "--chain", "full", "--json", str(tmp_path / "x.json"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and text in err[0]
    assert not (tmp_path / "x.json").exists()


def test_bench_throughput_limits(tmp_path: Path) -> None:
    """What the chains cannot run is refused before a flowgraph is built: more symbols than GNU Radio's
    reference chain fits in its buffers (it used to hang in tb.run()), a CFO beyond the receiver's
    search range, a NaN SNR. At the limit both chains run to the end."""
    from semjscc.experiments.bench import throughput as bt
    from semjscc.phy.channel_model import CFO_SEARCH_HZ

    assert (bt.GR_MAX_OFDM_SYMBOLS, bt.MAX_SYMBOLS, CFO_SEARCH_HZ) == (51, 2256, 125000.0)
    bt.check_args(2, bt.MAX_SYMBOLS, 20.0, -124999.0)
    for args, text in [((2, bt.MAX_SYMBOLS + 1, 20.0, 0.0), "--symbols must lie in 1..2256, got 2257"),
                       ((2, 0, 20.0, 0.0), "--symbols must lie in 1..2256, got 0"),
                       ((2, 512, float("nan"), 0.0), "--snr must be a finite number of dB"),
                       ((2, 512, 20.0, 125000.0), "--cfo must stay within +-8 subcarriers (125000 Hz at 1 MS/s)"),
                       ((2, 512, 20.0, float("nan")), "--cfo must stay within"),
                       ((0, 512, 20.0, 0.0), "--frames must be >= 1")]:
        with pytest.raises(UsageError) as e:
            bt.check_args(*args)
        assert text in str(e.value)
    with pytest.raises(UsageError, match="gr_packet_bytes"):
        bt.run_throughput(n_frames=2, gr_packet_bytes=584)  # 52 OFDM symbols
    # in a subprocess: a hang must fail the test, not stop the suite
    code = ("from semjscc.experiments.bench.throughput import MAX_SYMBOLS, run_throughput\n"
            "r = run_throughput(n_frames=3, n_symbols=MAX_SYMBOLS)\n"
            "print('RESULT', r['ours_frames_ok'], r['gr_ofdm_frames_ok'], r['ofdm_symbols_per_frame'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("RESULT"))  # GNU Radio logs to stdout too
    ours, theirs, n_ofdm = map(int, line.split()[1:])
    assert ours == 3 and theirs >= 1 and n_ofdm == 51


def test_soak_refuses_a_stall_timeout_of_zero() -> None:
    """0 (or NaN) ended the soak at once as 'stalled', exit status 1; refused before the flowgraph is built."""
    from semjscc.experiments.bench.soak import run_soak

    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(UsageError, match="--stall-timeout must be a number of seconds > 0"):
            run_soak(2, stall_timeout_s=bad, model="/nope")
