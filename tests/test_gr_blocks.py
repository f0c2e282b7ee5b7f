"""QA tests of the SemJSCC message blocks, one (or two) per block, each in a running flowgraph.

Models are tiny untrained exports (tests/gr_tiny_zoo.py): the tests compare the blocks with the
ONNX Runtime sessions they wrap and check ports, metadata and accounting, never quality.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("gnuradio.gr")

import pmt
from conftest import fake_split, write_pickles
from gnuradio import blocks, gr
from semjscc.data.imaging import to_float_nchw
from semjscc.gr import classifier, image_display, image_source, jscc_decoder, jscc_encoder, metrics_sink
from semjscc.gr.pdus import c32_vector, f32_vector, u8_vector
from semjscc.util.errors import ModelError
from semjscc.zoo import load_classifier, load_decoder, load_encoder

pytestmark = pytest.mark.gnuradio


@pytest.fixture(autouse=True)
def _tmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # GNU Radio and ONNX Runtime write under ~


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pickles(tmp_path_factory.mktemp("cifar"), fake_split(2, 1), fake_split(2, 2))


def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            return False
        time.sleep(0.01)
    return True


def post(block: Any, port: str, msg: Any) -> None:
    block._post(pmt.intern(port), msg)


def pdu(meta: dict[str, Any], vec: Any) -> Any:
    return pmt.cons(pmt.to_pmt(meta), vec)


def stored(dbg: Any) -> list[tuple[dict[str, Any], Any]]:
    out = []
    for i in range(dbg.num_messages()):
        m = dbg.get_message(i)
        out.append((pmt.to_python(pmt.car(m)), pmt.cdr(m)))
    return out


class _IdleSource(gr.basic_block):
    """A message output that never publishes (message_strobe with a long period hangs tb.wait())."""

    def __init__(self) -> None:
        gr.basic_block.__init__(self, name="idle_source", in_sig=None, out_sig=None)
        self.message_port_register_out(pmt.intern("out"))


def rx_images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


# --- PDU conventions (semjscc.gr.pdus) ------------------------------------------------------------

def test_pdu_vectors_and_metadata_convert_like_pmts_own_functions() -> None:
    """The whole-buffer conversions give exactly what pmt's element-wise ones give (the fast path is
    on in this GNU Radio), for every type, length and special value; metadata reads one key at a
    time and adds keys without touching the PDU it came from."""
    from semjscc.gr import pdus

    assert pdus._U8.fast and pdus._F32.fast and pdus._C32.fast
    rng = np.random.default_rng(5)
    for n in (0, 1, 3, 512, 3072):
        u8 = rng.integers(0, 256, n).astype(np.uint8)
        f32 = np.where(rng.random(n) < 0.1, np.nan, rng.standard_normal(n)).astype(np.float32)
        c32 = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
        for arr, make, init, read, elements in (
                (u8, u8_vector, pmt.init_u8vector, pdus.u8_array, pmt.u8vector_elements),
                (f32, f32_vector, pmt.init_f32vector, pdus.f32_array, pmt.f32vector_elements),
                (c32, c32_vector, pmt.init_c32vector, pdus.c32_array, pmt.c32vector_elements)):
            vec = make(arr)
            assert pmt.equal(vec, init(n, arr.tolist())) or np.isnan(arr.real).any()  # NaN != NaN in pmt.equal
            back = read(init(n, arr.tolist()))
            assert back.dtype == arr.dtype
            np.testing.assert_array_equal(back, arr)
            np.testing.assert_array_equal(np.asarray(elements(vec), dtype=arr.dtype), arr)
    original = pmt.to_pmt({"frame_number": 7, "snr_est_db": 9.5, "header_ok": True, "name": "x"})
    meta, _ = pdus.split_pdu(pmt.cons(original, u8_vector(np.zeros(3, np.uint8))))
    assert (meta.get("frame_number"), meta.get("snr_est_db"), meta.get("header_ok"), meta.get("name")) == (7, 9.5, True, "x")
    assert meta.get("absent", -1) == -1 and "frame_number" in meta and "absent" not in meta
    assert dict(meta) == {"frame_number": 7, "snr_est_db": 9.5, "header_ok": True, "name": "x"}
    out = pmt.to_python(pmt.car(pdus.make_pdu(meta, u8_vector(np.zeros(3, np.uint8)), pred=np.int64(3), confidence=0.5)))
    assert out == {"frame_number": 7, "snr_est_db": 9.5, "header_ok": True, "name": "x", "pred": 3, "confidence": 0.5}
    assert pmt.to_python(original) == {"frame_number": 7, "snr_est_db": 9.5, "header_ok": True, "name": "x"}


# --- image_source --------------------------------------------------------------------------------

def test_image_source_window_flush_and_finish(data: Path) -> None:
    from semjscc.data.sources import load_images

    images, labels = load_images(str(data), "test", 5, 0, 7)
    tb = gr.top_block()
    tb.src = image_source(source=str(data), count=5, shuffle_seed=7, max_in_flight=2, flush_frames=2,
                          ack_timeout_s=30.0)
    tb.dbg = blocks.message_debug()
    tb.msg_connect(tb.src, "pdus", tb.dbg, "store")
    tb.start()
    try:
        assert wait_for(lambda: tb.dbg.num_messages() >= 2)
        time.sleep(0.2)
        assert tb.dbg.num_messages() == 2 and tb.src.frames_sent == 2  # the window holds without acks
        post(tb.src, "ack", pmt.to_pmt({"accounted": 3, "done": False}))
        assert wait_for(lambda: tb.dbg.num_messages() >= 5 + 2)  # 5 frames + 2 flush frames
        time.sleep(0.1)
        post(tb.src, "ack", pmt.to_pmt({"accounted": 5, "done": True}))
        t0 = time.monotonic()
        tb.wait()  # the source finishes itself once the sink says done, and the flowgraph with it
        assert time.monotonic() - t0 < 5
    finally:
        tb.stop()
        tb.wait()
    msgs = stored(tb.dbg)
    assert tb.src.frames_sent == 5
    for i, (meta, vec) in enumerate(msgs[:5]):
        assert meta["frame_number"] == i and meta["label"] == labels[i]
        assert meta.get("last", False) == (i == 4)
        np.testing.assert_array_equal(np.asarray(pmt.u8vector_elements(vec), np.uint8).reshape(32, 32, 3), images[i])
    for j, (meta, vec) in enumerate(msgs[5:]):
        assert meta["flush"] is True and meta["frame_number"] == 5 + j and meta["frames_sent"] == 5
        assert pmt.length(vec) == 32 * 32 * 3


def test_image_source_rate_and_ack_timeout(data: Path) -> None:
    tb = gr.top_block()
    # no sink acks at all: the ack timeout must keep it going; frames/s paces it
    tb.src = image_source(source=str(data), count=6, frames_per_second=40.0, max_in_flight=1, ack_timeout_s=0.05,
                          flush_frames=0, end_timeout_s=0.2)
    tb.dbg = blocks.message_debug()
    tb.msg_connect(tb.src, "pdus", tb.dbg, "store")
    t0 = time.monotonic()
    tb.run()  # finishes on its own: end_timeout_s without any ack
    elapsed = time.monotonic() - t0
    assert tb.dbg.num_messages() == 6 and tb.src.frames_sent == 6
    assert elapsed >= 5 / 40.0  # 6 frames at 40/s take at least 125 ms
    assert tb.src.ack_timeouts >= 5


# --- jscc_encoder / jscc_decoder / classifier -----------------------------------------------------

def _run_message_block(block: Any, msgs: list[Any], expect: int) -> list[tuple[dict[str, Any], Any]]:
    """Queue ``msgs`` on the block's ``in`` port before starting (so they arrive as one batch)."""
    tb = gr.top_block()
    tb.blk = block
    tb.dbg = blocks.message_debug()
    tb.msg_connect(tb.blk, "out", tb.dbg, "store")
    for m in msgs:
        post(tb.blk, "in", m)
    tb.start()
    try:
        assert wait_for(lambda: tb.dbg.num_messages() >= expect)
        time.sleep(0.05)
    finally:
        tb.stop()
        tb.wait()
    return stored(tb.dbg)


def test_jscc_encoder_block(zoo: Path) -> None:
    rng = np.random.default_rng(0)
    imgs = rx_images(rng, 6)
    msgs = [pdu({"frame_number": i, "label": i % 10}, u8_vector(imgs[i])) for i in range(5)]
    msgs.insert(2, pdu({"frame_number": 99}, u8_vector(np.zeros(100, np.uint8))))  # not an image: dropped
    chw = to_float_nchw(imgs[5])[0]
    msgs.append(pdu({"frame_number": 5, "label": 5}, f32_vector(chw)))  # float CHW input works too
    enc = jscc_encoder(str(zoo / "jscc-kn6"), snr_db=7.0)
    out = _run_message_block(enc, msgs, 6)
    assert len(out) == 6 and enc.dropped == 1
    assert enc.batches < 6  # frames that were waiting went through in one ONNX Runtime call
    ref = load_encoder(str(zoo / "jscc-kn6")).run(to_float_nchw(imgs), 7.0)
    for i, (meta, vec) in enumerate(out):
        assert meta == {"frame_number": i, "label": i % 10}
        sym = np.asarray(pmt.c32vector_elements(vec), np.complex64)
        assert len(sym) == enc.n_symbols == 512
        assert abs(np.mean(np.abs(sym) ** 2) - 1.0) < 1e-3  # unit average power per image
        np.testing.assert_allclose(sym, ref[i, :, 0] + 1j * ref[i, :, 1], atol=1e-5)


def test_encoder_refuses_models_the_phy_cannot_carry(zoo: Path) -> None:
    with pytest.raises(ModelError, match="at most 256"):
        jscc_encoder(str(zoo / "jscc-kn6"), max_payload_len=256)
    with pytest.raises(ModelError, match="classifier model"):
        jscc_encoder(str(zoo / "classifier"))
    with pytest.raises(ModelError, match="not found"):
        jscc_encoder(str(zoo / "no-such-model"))


def test_jscc_decoder_block(zoo: Path) -> None:
    rng = np.random.default_rng(1)
    y = (rng.standard_normal((3, 512, 2)) / np.sqrt(2)).astype(np.float32)
    c = y[..., 0] + 1j * y[..., 1]
    msgs = [
        pdu({"frame_number": 0, "header_ok": True, "snr_est_db": 35.0, "cfo_hz": 1.0}, c32_vector(c[0])),
        pdu({"frame_number": -1, "header_ok": False, "snr_est_db": 1.0, "cfo_hz": 0.0}, c32_vector(np.zeros(0))),
        pdu({"frame_number": 1, "header_ok": True, "snr_est_db": 4.5, "cfo_hz": 0.0}, c32_vector(c[1])),
        pdu({"frame_number": 2, "header_ok": True, "snr_est_db": 4.5}, c32_vector(c[2, :100])),  # wrong length
        pdu({"frame_number": 3, "header_ok": True}, u8_vector(np.zeros(512, np.uint8))),  # wrong type
        pdu({"frame_number": 4, "header_ok": True}, c32_vector(c[2])),  # no estimate: the fixed SNR
    ]
    dec = jscc_decoder(str(zoo / "jscc-kn6"), snr_mode="estimate", snr_db=8.0)
    out = _run_message_block(dec, msgs, len(msgs))
    ref = load_decoder(str(zoo / "jscc-kn6"))
    assert [m["frame_number"] for m, _ in out] == [0, -1, 1, 2, 3, 4]  # order kept
    assert dec.corrupt == 2 and dec.header_failures == 1
    assert out[1][0]["header_ok"] is False and pmt.length(out[1][1]) == 0
    for k in (3, 4):
        assert out[k][0]["corrupt"] is True and pmt.length(out[k][1]) == 0
    # estimate clipped to the model's training range (0..20 dB); missing estimate -> snr_db
    for k, row, snr in ((0, 0, 20.0), (2, 1, 4.5), (5, 2, 8.0)):
        meta, vec = out[k]
        assert meta["decoder_snr_db"] == pytest.approx(snr)
        expect = np.clip(np.rint(ref.run(y[row:row + 1], snr)[0].transpose(1, 2, 0) * 255), 0, 255)
        np.testing.assert_array_equal(np.asarray(pmt.u8vector_elements(vec)).reshape(32, 32, 3), expect)
    # fixed mode and float output
    dec_f = jscc_decoder(str(zoo / "jscc-kn6"), snr_mode="fixed", snr_db=3.0, output="f32")
    (meta, vec), = _run_message_block(dec_f, msgs[:1], 1)
    np.testing.assert_allclose(np.asarray(pmt.f32vector_elements(vec)).reshape(3, 32, 32),
                               np.clip(ref.run(y[:1], 3.0)[0], 0, 1), atol=1e-6)


def test_classifier_block(zoo: Path) -> None:
    rng = np.random.default_rng(2)
    imgs = rx_images(rng, 4)
    msgs = [pdu({"frame_number": i, "header_ok": True}, u8_vector(imgs[i])) for i in range(4)]
    msgs.insert(1, pdu({"frame_number": -1, "header_ok": False}, c32_vector(np.zeros(0))))
    clf = classifier(str(zoo / "classifier"))
    out = _run_message_block(clf, msgs, 5)
    logits = load_classifier(str(zoo / "classifier")).run(to_float_nchw(imgs)).astype(np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert out[1][0] == {"frame_number": -1, "header_ok": False}  # passed through untouched
    for i, (meta, vec) in enumerate([o for k, o in enumerate(out) if k != 1]):
        assert meta["pred"] == int(p[i].argmax()) and meta["confidence"] == pytest.approx(p[i].max(), rel=1e-5)
        np.testing.assert_array_equal(np.asarray(pmt.u8vector_elements(vec)).reshape(32, 32, 3), imgs[i])
    assert clf.classified == 4


class _NaNOnRows:
    """An ORT session stand-in: the real model's output, NaN for the one input whose values sum to
    ``target`` (a model that passed its load-time probe but fails on some inputs), however the block
    batched its frames."""

    def __init__(self, session: Any, target: float) -> None:
        self.session, self.target = session, target

    def run(self, names: Any, feed: Any) -> list[np.ndarray]:
        out = self.session.run(names, feed)[0].copy()
        first = next(iter(feed.values()))
        sums = first.reshape(len(first), -1).astype(np.float64).sum(axis=1)
        out[np.isclose(sums, self.target, rtol=1e-5)] = np.nan
        return [out]


def test_nonfinite_model_outputs_count_their_frames_corrupt(zoo: Path) -> None:
    """Decoder and classifier: a row that comes out NaN goes on as corrupt (no image, no class 0 from
    argmax); the others as usual. Encoder: NaN symbols go out as silence, never as NaN samples."""
    rng = np.random.default_rng(3)
    y = (rng.standard_normal((3, 512)) + 1j * rng.standard_normal((3, 512))).astype(np.complex64) / np.sqrt(2)
    msgs = [pdu({"frame_number": i, "header_ok": True, "snr_est_db": 10.0}, c32_vector(y[i])) for i in range(3)]
    dec = jscc_decoder(str(zoo / "jscc-kn6"), max_wait_s=0.5)
    dec.decoder.session = _NaNOnRows(dec.decoder.session, float(y[1].real.sum() + y[1].imag.sum()))
    out = _run_message_block(dec, msgs, 3)
    assert [bool(m.get("corrupt")) for m, _ in out] == [False, True, False] and pmt.length(out[1][1]) == 0
    assert dec.corrupt == 1 and dec.decoder.nonfinite == 1

    imgs = rx_images(rng, 3)
    clf = classifier(str(zoo / "classifier"), max_wait_s=0.5)
    clf.model.session = _NaNOnRows(clf.model.session, float(to_float_nchw(imgs[:1]).astype(np.float64).sum()))
    out = _run_message_block(clf, [pdu({"frame_number": i, "header_ok": True}, u8_vector(imgs[i])) for i in range(3)], 3)
    assert out[0][0].get("corrupt") is True and "pred" not in out[0][0]
    assert all("pred" in m for m, _ in out[1:]) and clf.corrupt == 1

    enc = jscc_encoder(str(zoo / "jscc-kn6"), max_wait_s=0.5)
    enc.encoder.session = _NaNOnRows(enc.encoder.session, float(to_float_nchw(imgs[2:3]).astype(np.float64).sum()))
    out = _run_message_block(enc, [pdu({"frame_number": i}, u8_vector(imgs[i])) for i in range(3)], 3)
    sym = [np.asarray(pmt.c32vector_elements(v)) for _, v in out]
    assert all(np.isfinite(s).all() for s in sym) and not sym[2].any() and sym[0].any()
    assert enc.encoder.nonfinite == 1


# --- metrics_sink ---------------------------------------------------------------------------------

def test_metrics_sink_accounting(tmp_path: Path) -> None:
    """Frame numbers wrap on the air; gaps, header failures, corrupt payloads and a silent tail
    are all accounted for, and the sink says done once the last frame is decided."""
    rng = np.random.default_rng(3)
    first = 65533  # running numbers 65533..65542 are 65533, 65534, 65535, 0, 1, ... on the air
    n = 10
    imgs = rx_images(rng, n)
    tb = gr.top_block()
    tb.sink = metrics_sink(json_path=str(tmp_path / "m.json"), csv_path=str(tmp_path / "m.csv"), loss_timeout_s=0.3,
                           n_samples=4, run_info={"snr_db": 7.0})
    tb.acks = blocks.message_debug()
    tb.msg_connect(tb.sink, "ack", tb.acks, "store")
    tb.start()
    try:
        for i in range(n):
            meta = {"frame_number": first + i, "label": i % 3, "image_index": i}
            if i == n - 1:
                meta["last"] = True
            post(tb.sink, "sent", pdu(meta, u8_vector(imgs[i])))
        post(tb.sink, "sent", pdu({"frame_number": first + n, "flush": True, "frames_sent": n}, u8_vector(imgs[0])))
        assert wait_for(lambda: tb.sink.summary()["frames_sent"] == n)

        def rx(i: int, **extra: Any) -> None:
            meta = {"frame_number": (first + i) % 65536, "header_ok": True, "snr_est_db": 12.0, "cfo_hz": 100.0,
                    "pred": i % 3 if i != 1 else 2, "confidence": 0.5, **extra}
            post(tb.sink, "received", pdu(meta, u8_vector(imgs[i])))

        rx(0)
        rx(1)  # wrong prediction
        post(tb.sink, "received", pdu({"frame_number": -1, "header_ok": False, "snr_est_db": 1.0}, u8_vector([])))
        rx(4)  # 2 and 3 (air 65535 and 0) lost: a later frame came first
        post(tb.sink, "received", pdu({"frame_number": (first + 5) % 65536, "header_ok": True, "corrupt": True},
                                      u8_vector([])))
        rx(6, fallback=True)  # separate coding's fallback image: received, and counted as a fallback
        rx(7)
        rx(0)  # a duplicate: late, not counted again
        # 8 and 9 never come: the chain goes quiet and the loss timeout decides
        assert wait_for(lambda: tb.sink.done_event.is_set(), timeout=5.0)
        # the sink sets done just before it publishes the final ack: let that reach message_debug
        assert wait_for(lambda: tb.acks.num_messages() > 0 and pmt.to_python(
            tb.acks.get_message(tb.acks.num_messages() - 1)) == {"accounted": n, "done": True}, timeout=5.0)
    finally:
        tb.stop()
        tb.wait()
    s = tb.sink.summary()
    assert s["frames_sent"] == n == s["frames_received"] + s["frames_lost"]
    assert s["frames_received"] == 5 and s["frames_lost"] == 5 and s["frames_in_flight"] == 0
    assert s["lost_by_gap"] == 2 and s["corrupt"] == 1 and s["lost_by_timeout"] == 2
    assert s["header_crc_failures"] == 1 and s["late_frames"] == 1 and s["fallbacks"] == 1
    assert s["accuracy"] == pytest.approx(4 / 5) and s["accuracy_sent"] == pytest.approx(4 / 10)
    assert s["psnr_db"] == pytest.approx(100.0)  # identical images, capped
    assert s["snr_est_db"] == pytest.approx(12.0) and s["done"] is True
    last_ack = pmt.to_python(tb.acks.get_message(tb.acks.num_messages() - 1))
    assert last_ack == {"accounted": n, "done": True}
    doc = json.loads((tmp_path / "m.json").read_text())
    for key in ("frames_sent", "frames_received", "frames_lost", "header_crc_failures", "accuracy", "psnr_db",
                "snr_est_db"):
        assert key in doc
    assert doc["params"] == {"snr_db": 7.0}
    rows = (tmp_path / "m.csv").read_text().splitlines()
    assert len(rows) == 1 + n and rows[1].startswith(f"{first},{first},received")
    assert any(",lost:gap," in r for r in rows) and any(",lost:timeout," in r for r in rows)
    samples = tb.sink.samples()
    assert [x["status"] for x in samples] == ["received", "received", "lost", "lost"]
    np.testing.assert_array_equal(samples[0]["received"], imgs[0])


def test_metrics_sink_takes_sent_frames_first() -> None:
    """A sink that falls behind finds both ports' queues full, and GNU Radio empties "received" before
    "sent": frames then arrived before the sink knew they were sent, and counted as late, then lost
    (20 of 10,000 on a loaded machine). Whatever is queued on "sent" is now taken first."""
    tb = gr.top_block()
    tb.sink = metrics_sink(loss_timeout_s=60.0)
    tb.acks = blocks.message_debug()
    tb.msg_connect(tb.sink, "ack", tb.acks, "store")
    img = np.zeros(3072, np.uint8)
    for i in range(5):  # queued before start: the sink finds both ports full
        post(tb.sink, "received", pdu({"frame_number": i, "header_ok": True, "pred": 1}, u8_vector(img)))
    for i in range(5):
        post(tb.sink, "sent", pdu({"frame_number": i, "label": 1, **({"last": True} if i == 4 else {})}, u8_vector(img)))
    tb.start()
    try:
        assert wait_for(lambda: tb.sink.done_event.is_set(), timeout=5.0)
    finally:
        tb.stop()
        tb.wait()
    s = tb.sink.summary()
    assert (s["frames_sent"], s["frames_received"], s["frames_lost"], s["late_frames"]) == (5, 5, 0, 0)


def test_metrics_sink_loss_timeout_adapts_to_a_slow_link(monkeypatch: pytest.MonkeyPatch) -> None:
    """A link slower than the loss timeout (a starved CPU) had every frame counted lost. The timeout
    now stays >= LATENCY_MARGIN x the slowest latency seen, late arrivals of frames it gave up on
    included; it never shrinks, and stops at MAX_ADAPTED_TIMEOUT_S. Before the chain's first output
    it is at least STARTUP_GRACE_S (warm-up)."""
    import importlib

    ms = importlib.import_module("semjscc.gr.metrics_sink")  # the module; semjscc.gr.metrics_sink is the block
    monkeypatch.setattr(ms, "STARTUP_GRACE_S", 0.0)
    img = np.zeros(3072, np.uint8)

    @contextlib.contextmanager
    def running(timeout: float) -> Iterator[gr.top_block]:
        """A flowgraph of one sink (acks to a message_debug, or GNU Radio would not run it), stopped on exit."""
        tb = gr.top_block()
        tb.sink = metrics_sink(loss_timeout_s=timeout)
        tb.acks = blocks.message_debug()
        tb.msg_connect(tb.sink, "ack", tb.acks, "store")
        tb.start()
        try:
            yield tb
        finally:
            tb.stop()
            tb.wait()

    def sent(tb: gr.top_block, i: int) -> None:
        post(tb.sink, "sent", pdu({"frame_number": i, "label": 1}, u8_vector(img)))

    def rx(tb: gr.top_block, i: int) -> None:
        post(tb.sink, "received", pdu({"frame_number": i, "header_ok": True, "pred": 1}, u8_vector(img)))

    with running(0.2) as tb:
        t0 = time.monotonic()
        for i in range(2):
            sent(tb, i)
        assert wait_for(lambda: tb.sink.summary()["lost_by_timeout"] == 2)
        assert tb.sink.summary()["loss_timeout_s"] == pytest.approx(0.2)
        rx(tb, 0)  # given up on, and here after all, >= 0.2 s after it was sent
        assert wait_for(lambda: tb.sink.summary()["late_frames"] == 1)
        assert ms.LATENCY_MARGIN * 0.2 <= tb.sink.summary()["loss_timeout_s"] <= ms.LATENCY_MARGIN * (
            time.monotonic() - t0)
        sent(tb, 2)
        time.sleep(0.3)  # within the adapted >= 0.8 s: not lost (0.2 s would have lost it)
        rx(tb, 2)
        assert wait_for(lambda: tb.sink.summary()["frames_received"] == 1)
        s = tb.sink.summary()  # (the latency itself depends on when the block thread ran: not asserted)
        assert s["lost_by_timeout"] == 2 and s["loss_timeout_s"] >= ms.LATENCY_MARGIN * 0.2
        assert s["loss_timeout_s"] >= ms.LATENCY_MARGIN * s["latency_s"]
        adapted = s["loss_timeout_s"]
        rx(tb, 2)  # a duplicate of a received frame: late, but says nothing of the link's latency
        assert wait_for(lambda: tb.sink.summary()["late_frames"] == 2)
        assert tb.sink.summary()["loss_timeout_s"] == adapted

    monkeypatch.setattr(ms, "MAX_ADAPTED_TIMEOUT_S", 0.3)
    with running(0.1) as tb:
        sent(tb, 0)
        assert wait_for(lambda: tb.sink.summary()["lost_by_timeout"] == 1)
        time.sleep(0.1)
        rx(tb, 0)  # >= 0.2 s late: 4 x that is over the cap
        assert wait_for(lambda: tb.sink.summary()["late_frames"] == 1)
        assert tb.sink.summary()["loss_timeout_s"] == pytest.approx(0.3)

    monkeypatch.setattr(ms, "STARTUP_GRACE_S", 2.0)
    with running(0.1) as tb:
        t0 = time.monotonic()
        sent(tb, 0)
        assert tb.sink.summary()["loss_timeout_s"] == pytest.approx(2.0)  # nothing out of the chain yet
        assert wait_for(lambda: tb.sink.summary()["lost_by_timeout"] == 1)
        assert time.monotonic() - t0 >= 2.0  # the grace, not the 0.1 s timeout
        post(tb.sink, "received", pdu({"frame_number": -1, "header_ok": False}, u8_vector([])))  # the chain's first word
        assert wait_for(lambda: tb.sink.summary()["header_crc_failures"] == 1)
        assert tb.sink.summary()["loss_timeout_s"] == pytest.approx(0.1)
        t1 = time.monotonic()
        sent(tb, 1)
        assert wait_for(lambda: tb.sink.summary()["lost_by_timeout"] == 2)
        assert time.monotonic() - t1 < 2.0  # 0.1 s and the watchdog's tick; a loaded machine may add some


def test_metrics_sink_stop_counts_in_flight_as_lost(tmp_path: Path) -> None:
    tb = gr.top_block()
    tb.sink = metrics_sink(json_path=str(tmp_path / "m.json"), loss_timeout_s=60.0)
    tb.acks = blocks.message_debug()  # GNU Radio only runs blocks that are connected to something
    tb.msg_connect(tb.sink, "ack", tb.acks, "store")
    tb.start()
    try:
        for i in range(3):
            post(tb.sink, "sent", pdu({"frame_number": i, "label": 1}, u8_vector(np.zeros(3072, np.uint8))))
        assert wait_for(lambda: tb.sink.summary()["frames_in_flight"] == 3)
    finally:
        tb.stop()
        tb.wait()
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["frames_sent"] == 3 and doc["frames_lost"] == 3 and doc["lost_at_stop"] == 3
    assert doc["frames_received"] == 0 and doc["done"] is False


# --- image_display -----------------------------------------------------------------------------------

def test_image_display_offscreen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    from PyQt5 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    rng = np.random.default_rng(4)
    tx, rxi = rx_images(rng, 2)
    tb = gr.top_block()
    tb.disp = image_display(scale=3, update_hz=50.0, title="test")
    widget = tb.disp.widget()
    assert isinstance(widget, QtWidgets.QWidget)
    tb.idle = _IdleSource()  # GNU Radio only runs blocks that are connected to something
    tb.msg_connect(tb.idle, "out", tb.disp, "sent")
    tb.start()
    try:
        post(tb.disp, "sent", pdu({"frame_number": 70000, "label": 3}, u8_vector(tx)))  # air number 4464
        assert wait_for(lambda: len(tb.disp._sent) == 1)
        post(tb.disp, "received", pdu({"frame_number": 70000 % 65536, "header_ok": True, "pred": 3,
                                       "confidence": 0.9, "snr_est_db": 11.0}, u8_vector(rxi)))
        assert wait_for(lambda: tb.disp.shown == 1)
        t0 = time.monotonic()
        while tb.disp.repaints == 0 and time.monotonic() - t0 < 3.0:
            app.processEvents()  # the QTimer repaints from the GUI thread
            time.sleep(0.01)
    finally:
        tb.stop()
        tb.wait()
    assert tb.disp.repaints == 1 and tb.disp.correct == 1
    w = tb.disp._widget
    assert "cat" in w.captions[0].text() and "pred: cat" in w.captions[1].text() and "90%" in w.captions[1].text()
    pix = w.images[1].pixmap()
    assert pix is not None and pix.width() == 96
    img = pix.toImage()
    assert img.pixelColor(1, 1).red() == rxi[0, 0, 0]  # nearest-neighbour zoom: pixel (0, 0) survives
    assert os.environ["QT_QPA_PLATFORM"] == "offscreen"
