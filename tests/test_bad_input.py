"""Bad input everywhere a user can give it: every case of tests/bad_inputs.yaml, checked for its exit
status (or exception class), the text of its one-line message and the absence of a traceback (the
harness is tests/bad_input_harness.py). With $SEMJSCC_BAD_INPUT_TABLE set to a file, every case's
row is written there for scripts/bad_input_table.py, which renders docs/bad-input.md's tables.

How the CLI cases run here (a `semjscc` process costs 0.3-3 s, too much for ~150 cases):

* ``test: inprocess`` (the default): through ``semjscc.cli.main.main(argv)`` in this process, stdout
  and stderr captured, argparse's SystemExit caught, environment and cwd restored;
* ``test: subprocess``: a real ``python -m semjscc.cli.main`` process: an argparse error, a truncated
  model under ``SEMJSCC_MODELS`` and a .grc whose two ends use different models (grcc compiles it).

Block cases (``blocks:``) run their snippet against the GNU Radio blocks in this process. Cases
marked ``xfail`` are known gaps: they xfail while they misbehave and fail once they behave (remove
the mark and regenerate the table). Fixtures come from the script's ``Fixtures``; the tiny models
are the session-wide ones of tests/gr_tiny_zoo.py.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import bad_input_harness as bit
import numpy as np
import pytest
from gr_tiny_zoo import tiny_zoo

REPO = Path(__file__).resolve().parents[1]
TABLE_ENV = "SEMJSCC_BAD_INPUT_TABLE"
_ROWS: list[dict] = []

CASES = bit.load_cases()
CLI = [pytest.param(c, marks=[pytest.mark.slow] if c.slow else [], id=c.id) for c in CASES if c.kind == "cli"]
BLOCKS = [pytest.param(c, marks=[pytest.mark.slow] if c.slow else [], id=c.id) for c in CASES if c.kind == "blocks"]


@pytest.fixture(autouse=True)
def _tmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # GNU Radio and ONNX Runtime write under ~


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> object:
    class _Fixtures(bit.Fixtures):
        def _make_zoo(self) -> Path:
            return tiny_zoo(tmp_path_factory)  # shared with the other GNU Radio tests

    return _Fixtures(tmp_path_factory.mktemp("bad-input"))


@pytest.fixture(scope="module", autouse=True)
def _table_rows() -> Iterator[None]:
    """Every case's row, for scripts/bad_input_table.py, when $SEMJSCC_BAD_INPUT_TABLE names a file."""
    yield
    path = os.environ.get(TABLE_ENV)
    if path:
        Path(path).write_text(json.dumps(_ROWS, indent=1) + "\n")


def _judge(case: object, outcome: object, fx: object) -> None:
    found = bit.problems(case, outcome)
    _ROWS.append(bit.table_row(case, outcome, found, fx))
    if case.xfail:
        if found:
            pytest.xfail(case.xfail)
        pytest.fail(f"{case.id} is marked xfail ({case.xfail}) but now behaves: remove the mark and rerun "
                    f"scripts/bad_input_table.py to update docs/bad-input.md")
    assert not found, f"{case.id}: {'; '.join(found)}\nstderr: {outcome.stderr[-3000:]}\nstdout: {outcome.stdout[-1000:]}"


def test_cases_cover_every_subcommand() -> None:
    """Each subcommand (and each benchmark) has bad-input rows in the table."""
    from semjscc.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = set(sub.choices)
    bench = next(a for a in sub.choices["bench"]._actions if a.dest == "what")
    covered = {c.argv[0] for c in CASES if c.kind == "cli" and c.argv}
    assert commands <= covered, f"no bad-input case for {sorted(commands - covered)}"
    covered_bench = {c.argv[1] for c in CASES if c.kind == "cli" and c.argv[:1] == ["bench"] and len(c.argv) > 1}
    assert set(bench.choices) <= covered_bench, f"no bad-input case for bench {sorted(set(bench.choices) - covered_bench)}"


@pytest.mark.parametrize("case", CLI)
def test_cli(case: object, fx: object) -> None:
    _judge(case, bit.run_cli(case, fx, inprocess=case.test == "inprocess"), fx)


@pytest.mark.gnuradio
@pytest.mark.parametrize("case", BLOCKS)
def test_block(case: object, fx: object) -> None:
    pytest.importorskip("gnuradio.gr")
    _judge(case, bit.run_block(case, fx), fx)


@pytest.mark.gnuradio
def test_tx_logs_packets_longer_than_its_frame(caplog: pytest.LogCaptureFixture) -> None:
    """Blocks wired outside a top block's __init__ are not checked at start: the OFDM TX then drops
    an over-long packet with one error line (not silently, not a traceback), counting the rest."""
    pytest.importorskip("gnuradio.gr")
    import pmt
    from gnuradio import blocks, gr
    from semjscc.gr import ofdm_tx
    from semjscc.gr.pdus import c32_vector

    tb = gr.top_block()
    tx = ofdm_tx(max_payload_len=256)
    sink = blocks.null_sink(gr.sizeof_gr_complex)
    tb.connect(tx, sink)
    sym = (np.ones(512) + 0j).astype(np.complex64)
    with caplog.at_level(logging.ERROR, logger="semjscc.gr"):
        tb.start()
        try:
            for i in range(3):
                tx.framer.to_basic_block()._post(pmt.intern("pdus"),
                                                 pmt.cons(pmt.to_pmt({"frame_number": i}), c32_vector(sym)))
            t0 = time.monotonic()
            while tx.framer.frames_too_long < 3 and time.monotonic() - t0 < 10:
                time.sleep(0.01)
        finally:
            tb.stop()
            tb.wait()
    assert tx.framer.frames_too_long == 3 and tx.frames_framed == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "dropped a 512-symbol packet, longer than max_payload_len 256" in errors[0]
