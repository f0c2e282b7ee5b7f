"""QA of the separate-coding GNU Radio blocks (semjscc.gr.separate_blocks) and flowgraphs/sim_separate.grc."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gnuradio.gr")

import pmt
from gnuradio import blocks, gr
from semjscc.data.imaging import to_float_nchw
from semjscc.gr import separate_decoder, separate_encoder
from semjscc.gr.pdus import c32_vector, u8_vector

pytestmark = pytest.mark.gnuradio
REPO = Path(__file__).resolve().parents[1]
CFG = {"codec": "jpeg", "quality": -1, "modulation": "16qam", "rate": "3/4", "n_symbols": 512}


def images(n: int) -> np.ndarray:
    """Smooth uint8 HWC images (small JPEG bitstreams that fit the budget)."""
    x = np.linspace(0.0, 1.0, 32)
    out = [np.stack([np.outer(x, x[::-1]) * (0.3 + 0.2 * i), np.outer(x, x), np.full((32, 32), 0.1 * i)], -1)
           for i in range(n)]
    return np.clip(np.rint(np.stack(out) * 255), 0, 255).astype(np.uint8)


def run_block(block: gr.basic_block, msgs: list) -> list[tuple[dict, object]]:
    tb = gr.top_block()
    tb.blk, tb.dbg = block, blocks.message_debug()
    tb.msg_connect(tb.blk, "out", tb.dbg, "store")
    tb.start()
    try:
        for m in msgs:
            tb.blk._post(pmt.intern("in"), m)
        t0 = time.monotonic()
        while tb.dbg.num_messages() < len(msgs) and time.monotonic() - t0 < 10:
            time.sleep(0.01)
    finally:
        tb.stop()
        tb.wait()
    return [(pmt.to_python(pmt.car(tb.dbg.get_message(i))), pmt.cdr(tb.dbg.get_message(i)))
            for i in range(tb.dbg.num_messages())]


def encode(imgs: np.ndarray) -> list[tuple[dict, object]]:
    msgs = [pmt.cons(pmt.to_pmt({"frame_number": i, "label": 3}), u8_vector(im)) for i, im in enumerate(imgs)]
    return run_block(separate_encoder(**CFG), msgs)


def test_encoder_exact_symbols_unit_power() -> None:
    out = encode(images(4))
    assert len(out) == 4
    for i, (meta, vec) in enumerate(out):
        assert meta["frame_number"] == i and meta["label"] == 3 and meta["payload_bytes"] > 0
        assert pmt.is_c32vector(vec) and pmt.length(vec) == 512
        y = np.asarray(pmt.c32vector_elements(vec))
        assert abs(np.mean(np.abs(y) ** 2) - 1.0) < 0.1


def test_encoder_decoder_reproduces_codec_image() -> None:
    imgs = images(3)
    enc_out = encode(imgs)
    rx = [pmt.cons(pmt.to_pmt({**meta, "snr_est_db": 30.0, "header_ok": True}), vec) for meta, vec in enc_out]
    dec = separate_decoder(**CFG, equalizer="none")
    out = run_block(dec, rx)
    scheme = dec.scheme
    for im, (meta, vec) in zip(imgs, out, strict=True):
        assert meta["fallback"] is False
        payload, qi = scheme._payload(im)
        ref = scheme.codec.decode(payload, scheme.codec.qualities[qi])
        got = np.asarray(pmt.u8vector_elements(vec), np.uint8).reshape(32, 32, 3)
        np.testing.assert_array_equal(got, np.clip(np.rint(to_float_nchw(ref)[0].transpose(1, 2, 0) * 255), 0, 255))
    assert dec.fallbacks == 0 and dec.stats["images"] == 3


def test_corrupted_payload_gives_counted_fallback() -> None:
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(512) + 1j * rng.standard_normal(512)).astype(np.complex64) / np.sqrt(2)
    msgs = [pmt.cons(pmt.to_pmt({"frame_number": 0, "snr_est_db": 20.0, "header_ok": True}), c32_vector(noise)),
            pmt.cons(pmt.to_pmt({"frame_number": 1, "snr_est_db": 20.0, "header_ok": True}), c32_vector(noise[:100]))]
    dec = separate_decoder(**CFG, equalizer="none")
    out = run_block(dec, msgs)
    assert len(out) == 2
    meta, vec = out[0]
    assert meta["fallback"] is True and meta["fallback_reason"] in ("ldpc", "codec", "too_big")
    np.testing.assert_array_equal(np.asarray(pmt.u8vector_elements(vec)), 128)  # mid-grey, 32*32*3 values
    assert pmt.length(vec) == 32 * 32 * 3
    assert out[1][0]["corrupt"] is True and dec.corrupt == 1
    assert dec.fallbacks == 1 and dec.stats["images"] == 1


@pytest.mark.slow
def test_sim_separate_grc_compiles(tmp_path: Path) -> None:
    from semjscc.grc.install import gnuradio_script

    grcc = gnuradio_script("grcc")
    if grcc is None:
        pytest.skip("grcc not installed")
    env = {**os.environ, "HOME": str(tmp_path), "GRC_BLOCKS_PATH": str(REPO / "gr-semjscc" / "grc")}
    r = subprocess.run([sys.executable, grcc, "-o", str(tmp_path), str(REPO / "flowgraphs" / "sim_separate.grc")],
                       capture_output=True, text=True, env=env, timeout=120)
    log = r.stdout + r.stderr
    assert r.returncode == 0 and "rror" not in log, log
    text = (tmp_path / "sim_separate.py").read_text()
    assert "semjscc_gr.separate_tx(" in text and "semjscc_gr.separate_rx(" in text
    for opt in ("--snr-db", "--frames", "--json-path", "--codec", "--quality", "--modulation", "--code-rate"):
        assert opt in text


@pytest.mark.slow
def test_semjscc_run_sets_any_grc_parameter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """``semjscc run X.grc --set PARAM=VALUE``: separate coding's codec, modulation and code rate."""
    if shutil.which("grcc") is None:
        pytest.skip("grcc not installed")
    from conftest import fake_split, write_pickles
    from semjscc.cli.main import main

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    data = write_pickles(tmp_path / "cifar", fake_split(1, 1), fake_split(1, 2))
    js = tmp_path / "sep.json"
    grc = str(REPO / "flowgraphs" / "sim_separate.grc")
    rc = main(["run", grc, "--frames", "4", "--snr", "20", "--source", str(data), "--json", str(js),
               "--set", "codec=webp", "--set", "modulation=qpsk", "--set", "code_rate=1/2"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads(js.read_text())
    assert (doc["params"]["codec"], doc["params"]["modulation"], doc["params"]["code_rate"]) == ("webp", "qpsk", "1/2")
    assert doc["cli"]["codec"] == "webp" and doc["frames_sent"] == doc["frames_received"] + doc["frames_lost"] == 4
    capsys.readouterr()
    for argv, message in ((["--set", "nope=1"], "has no parameter 'nope' (--set takes one of:"),
                          (["--set", "codec"], "expected PARAM=VALUE"),
                          (["--set", "snr_db=3"], "use --snr for that parameter")):
        assert main(["run", grc, "--frames", "2", "--json", str(js), *argv]) == 2
        assert message in capsys.readouterr().err
    assert main(["run", "sim_loopback", "--json", str(js), "--set", "codec=webp"]) == 2
    assert "--set applies to .grc flowgraphs" in capsys.readouterr().err
