"""GNU Radio blocks: TX equals the numpy reference, TX -> channel_model -> RX flowgraphs, benchmark."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gnuradio.gr")

import pmt
from gnuradio import blocks, channels, gr
from semjscc.gr import ofdm_rx, ofdm_tx
from semjscc.gr.pdus import c32_vector, u8_vector
from semjscc.phy import DEFAULT_NUMEROLOGY as NUM
from semjscc.phy.frame import DEFAULT_FRAME_FORMAT as FMT
from semjscc.phy.frame import FrameFormat
from semjscc.phy.rx import receive
from semjscc.phy.tx import modulate_burst

pytestmark = pytest.mark.gnuradio


@pytest.fixture(autouse=True)
def _tmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # GNU Radio writes prefs/logs under ~


def cn(rng: np.random.Generator, n: int) -> np.ndarray:
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)


def stream_tags(lengths: list[int], frame_numbers: list[int] | None = None) -> list[gr.tag_t]:
    tags, off = [], 0
    for i, n in enumerate(lengths):
        tags.append(gr.tag_utils.python_to_tag((off, pmt.intern("packet_len"), pmt.from_long(n), pmt.PMT_NIL)))
        if frame_numbers is not None:
            tags.append(gr.tag_utils.python_to_tag(
                (off, pmt.intern("frame_number"), pmt.from_long(frame_numbers[i]), pmt.PMT_NIL)))
        off += n
    return tags


def wait_for(pred: object, timeout: float = 10.0) -> None:
    t0 = time.monotonic()
    while not pred() and time.monotonic() - t0 < timeout:  # type: ignore[operator]
        time.sleep(0.02)


@pytest.mark.parametrize("midamble", [0, 4, 2])
def test_tx_block_matches_numpy_reference(midamble: int) -> None:
    """Sample for sample, with and without mid-ambles (which the framer inserts as data for GNU
    Radio's own carrier allocator); 96 = exactly two payload symbols: no mid-amble at the end."""
    rng = np.random.default_rng(0)
    sent = [cn(rng, n) for n in (512, 256, 100, 96, 512)]
    fns = [1000, 1001, 7, 8, 65535]
    tb = gr.top_block()
    tb.src = blocks.vector_source_c(np.concatenate(sent).tolist(), False, 1,
                                    stream_tags([len(s) for s in sent], fns))
    tb.tx = ofdm_tx(input_type="stream", midamble=midamble)
    tb.snk = blocks.vector_sink_c()
    tb.connect(tb.src, tb.tx, tb.snk)
    tb.run()
    out = np.asarray(tb.snk.data(), dtype=np.complex64)
    fmt = FrameFormat(midamble=midamble)
    ref = np.concatenate([modulate_burst(s, fn, fmt) for s, fn in zip(sent, fns, strict=True)])
    # burst_shaper_cc writes a burst's trailing padding when the next burst arrives: at the end of
    # a finite stream the last burst's padding is missing, its samples are all there.
    assert len(out) == len(ref) - FMT.pad_after
    assert np.max(np.abs(out - ref[:len(out)])) < 1e-5
    assert tb.tx.frames_framed == 5
    frames = receive(out)  # the header tells the receiver the pattern
    assert [f.frame_number for f in frames] == fns and all(f.header_ok for f in frames)
    assert max(np.max(np.abs(f.payload - s)) for f, s in zip(frames, sent, strict=True)) < 1e-3


def test_pdu_tx_frames_a_queued_batch_like_the_numpy_reference() -> None:
    """PDUs that arrive together (an encoder's batch) are all framed, in order, sample for sample as
    modulate_burst makes them; a PDU without frame_number takes the counter's next number, and a
    message that is not a PDU of complex symbols is counted, not sent."""
    rng = np.random.default_rng(4)
    n = 120
    sent = [cn(rng, 512 if i % 7 else 100) for i in range(n)]
    fns = [(65500 + i) % 65536 for i in range(n)]
    tb = gr.top_block()
    tb.tx = ofdm_tx(input_type="pdu", max_payload_len=512)
    tb.snk = blocks.vector_sink_c()
    tb.connect(tb.tx, tb.snk)
    port = pmt.intern("pdus")
    for i, (s, fn) in enumerate(zip(sent, fns, strict=True)):  # queued before start: one batch
        meta = {} if i == 5 else {"frame_number": fn}
        tb.tx.framer.to_basic_block()._post(port, pmt.cons(pmt.to_pmt(meta), c32_vector(s)))
        if i == 50:
            tb.tx.framer.to_basic_block()._post(port, pmt.cons(pmt.to_pmt({"frame_number": 1}), u8_vector([1, 2])))
    tb.start()
    try:
        wait_for(lambda: tb.tx.frames_framed == n)
        wait_for(lambda: len(tb.snk.data()) >= sum(len(modulate_burst(s, 0)) for s in sent) - FMT.pad_after)
    finally:
        tb.stop()
        tb.wait()
    assert tb.tx.frames_framed == n and tb.tx.framer.frames_not_symbols == 1
    out = np.asarray(tb.snk.data(), dtype=np.complex64)
    ref = np.concatenate([modulate_burst(s, fn) for s, fn in zip(sent, fns, strict=True)])  # 5: the counter's fns[5]
    assert len(out) == len(ref) - FMT.pad_after
    assert np.max(np.abs(out - ref[:len(out)])) < 1e-5


def test_channel_model_noise_convention() -> None:
    """channel_model's noise_voltage is the std of the complex noise per sample (E|n|^2 = v^2)."""
    v = NUM.noise_std_for_snr(10.0)
    tb = gr.top_block()
    tb.src = blocks.vector_source_c([0j] * 200_000)
    tb.ch = channels.channel_model(v, 0.0, 1.0, [1.0 + 0j], 3)
    tb.snk = blocks.vector_sink_c()
    tb.connect(tb.src, tb.ch, tb.snk)
    tb.run()
    n = np.asarray(tb.snk.data())
    assert abs(np.mean(np.abs(n) ** 2) / v**2 - 1.0) < 0.02


def _pdu_flowgraph(snr_db: float, cfo_hz: float, taps: list[complex]) -> gr.top_block:
    tb = gr.top_block()
    tb.tx = ofdm_tx(input_type="pdu")
    tb.ch = channels.channel_model(NUM.noise_std_for_snr(snr_db), cfo_hz / NUM.sample_rate, 1.0, taps, 11)
    tb.rx = ofdm_rx(latency_s=0.05)
    tb.dbg = blocks.message_debug()
    tb.connect(tb.tx, tb.ch, tb.rx)
    tb.msg_connect(tb.rx, "pdus", tb.dbg, "store")
    return tb


def test_pdu_tx_channel_rx_flowgraph() -> None:
    rng = np.random.default_rng(1)
    sent = {300 + i: cn(rng, 512) for i in range(8)}
    taps = [0.95 + 0j, 0.25j, 0.1 + 0j]
    tb = _pdu_flowgraph(20.0, 15e3, taps)
    tb.start()
    try:
        for fn, sym in sent.items():
            meta = pmt.to_pmt({"frame_number": fn})
            tb.tx.framer.to_basic_block()._post(pmt.intern("pdus"),
                                                pmt.cons(meta, pmt.init_c32vector(512, sym.tolist())))
        wait_for(lambda: tb.dbg.num_messages() >= len(sent))
    finally:
        tb.stop()
        tb.wait()
    assert tb.dbg.num_messages() == len(sent)
    H = np.fft.fft(np.asarray(taps), NUM.fft_len)[NUM.data_bins]
    true_snr = 20.0 + 10 * np.log10(np.mean(np.abs(H) ** 2))
    n0 = NUM.noise_std_for_snr(20.0) ** 2
    mmse_bound_db = -10 * np.log10(np.mean(n0 / (np.abs(H) ** 2 + n0)))  # perfect channel knowledge
    for i in range(tb.dbg.num_messages()):
        msg = tb.dbg.get_message(i)
        meta = pmt.to_python(pmt.car(msg))
        assert set(meta) >= {"frame_number", "snr_est_db", "cfo_hz", "header_ok"}
        assert meta["header_ok"] is True
        payload = np.asarray(pmt.c32vector_elements(pmt.cdr(msg)), dtype=np.complex64)
        ref = sent[meta["frame_number"]]
        assert len(payload) == 512
        snr = -10 * np.log10(np.mean(np.abs(payload - ref) ** 2))
        assert snr > mmse_bound_db - 1.0
        assert abs(meta["snr_est_db"] - true_snr) < 1.5
        assert abs(meta["cfo_hz"] - 15e3) < 300
    assert tb.rx.frames_ok == len(sent) and tb.rx.frames_lost == 0


def test_rx_block_noise_only_publishes_nothing() -> None:
    rng = np.random.default_rng(2)
    tb = gr.top_block()
    tb.src = blocks.vector_source_c(cn(rng, 150_000).tolist())
    tb.rx = ofdm_rx(latency_s=0.0)
    tb.dbg = blocks.message_debug()
    tb.connect(tb.src, tb.rx)
    tb.msg_connect(tb.rx, "pdus", tb.dbg, "store")
    tb.run()
    assert tb.rx.samples_in == 150_000
    assert tb.dbg.num_messages() == 0 and tb.rx.frames_ok == 0 and tb.rx.frames_failed == 0


def test_stream_flowgraph_accounting() -> None:
    """Stream input, finite run: every frame counted once (received + lost == sent)."""
    rng = np.random.default_rng(3)
    sent = [cn(rng, 256) for _ in range(12)]
    tb = gr.top_block()
    tb.src = blocks.vector_source_c(np.concatenate(sent).tolist(), False, 1, stream_tags([256] * 12))
    tb.tx = ofdm_tx(input_type="stream", first_frame_number=65530)
    tb.ch = channels.channel_model(NUM.noise_std_for_snr(12.0), -20e3 / NUM.sample_rate, 1.0, [1.0 + 0j], 5)
    tb.rx = ofdm_rx(latency_s=0.0)
    tb.connect(tb.src, tb.tx, tb.ch, tb.rx)
    tb.run()  # the end-of-stream flush happens in the RX block's stop()
    assert tb.rx.frames_ok + tb.rx.frames_lost == 12 - 0
    assert tb.rx.frames_ok == 12 and tb.rx.counter.last == (65530 + 11) % 65536


def test_throughput_benchmark_runs() -> None:
    from semjscc.experiments.bench.throughput import run_throughput

    r = run_throughput(n_frames=60)
    for key in ("ours_samples_per_s", "gr_ofdm_samples_per_s", "ratio", "ours_frames_per_s"):
        assert r[key] > 0
    assert r["ours_frames_ok"] == 60
    assert r["gr_ofdm_frames_ok"] >= 55
    assert r["ours_samples"] == r["gr_ofdm_samples"]  # same air time per frame


@pytest.mark.parametrize("remove_dc", [True, False])
def test_rx_block_removes_the_radios_dc_offset_under_a_carrier_offset(remove_dc: bool) -> None:
    """Two uncalibrated Plutos: the burst arrives 122.5 kHz (7.8 carriers) off the LO, while the receiver's
    own DC offset stays at the LO; once the CFO is corrected that DC sits on data carriers. With the
    block's DC tracker the payload SNR is the channel's (once the first 4 ms have given the first
    estimate: a live receiver streams long before frames come); without it (the control) it falls far
    short."""
    rng = np.random.default_rng(4)
    sent = [cn(rng, 512) for _ in range(30)]
    tb = gr.top_block()
    tb.src = blocks.vector_source_c(np.concatenate(sent).tolist(), False, 1, stream_tags([512] * 30))
    tb.tx = ofdm_tx(input_type="stream")
    noise = NUM.noise_std_for_snr(25.0)
    tb.ch = channels.channel_model(noise, 122.5e3 / NUM.sample_rate, 1.0, [1.0 + 0j], 6)
    tb.dc = blocks.add_const_cc(10 * noise * np.exp(0.5j))  # 20 dB above the noise floor
    tb.rx = ofdm_rx(latency_s=0.0, remove_dc=remove_dc)
    frames, publish = [], tb.rx._publish
    tb.rx._publish = lambda fs: (frames.extend(fs), publish(fs))  # the end-of-run flush publishes after run()
    tb.connect(tb.src, tb.tx, tb.ch, tb.dc, tb.rx)
    tb.run()
    good = [f.metadata() for f in frames if f.header_ok]
    if remove_dc:
        assert len(good) == 30 and tb.rx.frames_lost == 0
        settled = good[3:]  # the first three frames lie within the first 4096 samples, before the first estimate
        assert all(abs(m["cfo_hz"] - 122.5e3) < 300 for m in settled)
        assert min(m["snr_est_db"] for m in settled) > 25.0 - 1.5
    else:
        assert not good or np.median([m["snr_est_db"] for m in good]) < 25.0 - 6.0
