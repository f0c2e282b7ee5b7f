"""The live radio path's flowgraph rules (issue 22): the Stream TX in a plain GNU Radio top block with
a throttle standing in for the DAC, the RX monitor and overload gate, the gr-iio sink rules every
shipped flowgraph must keep, the AD9363 limits, the stratified image order."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
IIO_SINKS = ("iio_pluto_sink", "iio_fmcomms2_sink")


# --- gr-iio's sink rules, checked on every shipped .grc --------------------------------------------------
def sink_rule_violations(doc: dict) -> list[str]:
    """What in a parsed .grc breaks gr-iio 3.10's sink: a length tag key (the sink then wants a tag equal
    to its buffer size on every buffer, stops with "Invalid packet size" otherwise), or a feed other than
    the Stream TX (the one block that writes an untagged continuous stream, never a cut burst)."""
    blocks = {b["name"]: b for b in doc.get("blocks", [])}
    problems = []
    for name, b in blocks.items():
        if b.get("id") not in IIO_SINKS or b.get("states", {}).get("state") == "disabled":
            continue
        key = str(b["parameters"].get("len_tag_key", "")).strip()
        if key not in ("", "''", '""'):
            problems.append(f"{name}: len_tag_key {key}")
        feeds = [c[0] for c in doc.get("connections", []) if c[2] == name]
        for f in feeds:
            if blocks[f]["id"] != "semjscc_stream_tx":
                problems.append(f"{name}: fed by {f} ({blocks[f]['id']}), not a Stream TX")
    return problems


def test_every_shipped_flowgraph_keeps_gr_iio_sink_rules() -> None:
    grcs = sorted((REPO / "flowgraphs").glob("*.grc"))
    with_sink = 0
    for grc in grcs:
        doc = yaml.safe_load(grc.read_text())
        assert sink_rule_violations(doc) == [], grc.name
        with_sink += any(b.get("id") in IIO_SINKS for b in doc["blocks"])
    assert with_sink == 3  # pluto_tx, pluto_loopback and pluto_loopback_gui


def test_a_flowgraph_breaking_the_sink_rules_fails() -> None:
    """The check above catches what issue 22 found: the shipped flowgraphs as they were (a packet_len
    length tag key and the bursts fed straight in)."""
    doc = yaml.safe_load((REPO / "flowgraphs" / "pluto_loopback.grc").read_text())
    sink = next(b for b in doc["blocks"] if b["id"] == "iio_pluto_sink")
    sink["parameters"]["len_tag_key"] = "packet_len"
    doc["connections"] = [c if c[2] != sink["name"] else ["blocks_multiply_const_vxx_0", "0", sink["name"], "0"]
                          for c in doc["connections"]]
    problems = sink_rule_violations(doc)
    assert any("len_tag_key packet_len" in p for p in problems)
    assert any("not a Stream TX" in p for p in problems)


def test_midamble_is_an_int_parameter_with_the_frame_formats_choices() -> None:
    """An enum parameter made GRC replace a variable with its default '0' (--midamble did nothing)."""
    from semjscc.phy.frame import MIDAMBLE_INTERVALS

    for name in ("jscc_tx", "separate_tx", "ofdm_tx"):
        doc = yaml.safe_load((REPO / "gr-semjscc" / "grc" / f"semjscc_{name}.block.yml").read_text())
        p = next(p for p in doc["parameters"] if p["id"] == "midamble")
        assert p["dtype"] == "int" and "options" not in p, name
        assert f"${{ midamble in {tuple(MIDAMBLE_INTERVALS)} }}" in doc["asserts"], name


# --- the Stream TX ---------------------------------------------------------------------------------------
def _bursts(n: int) -> list[np.ndarray]:
    """Bursts of distinct lengths, each filled with its own number (1, 2, ...): nonzero, recognisable."""
    return [np.full(700 + 53 * i, i + 1, np.complex64) for i in range(n)]


def _tagged_source(bursts: list[np.ndarray]):
    import pmt
    from gnuradio import blocks, gr

    tags, off = [], 0
    for b in bursts:
        t = gr.tag_t()
        t.offset, t.key, t.value = off, pmt.intern("packet_len"), pmt.from_long(len(b))
        tags.append(t)
        off += len(b)
    return blocks.vector_source_c(np.concatenate(bursts).tolist(), False, 1, tags)


def _run(tb, timeout_s: float = 60.0) -> None:
    done = threading.Event()
    tb.start()
    threading.Thread(target=lambda: (tb.wait(), done.set()), daemon=True).start()
    try:
        assert done.wait(timeout_s), "the flowgraph did not finish"
    finally:
        tb.stop()
        tb.wait()


@pytest.mark.gnuradio
def test_stream_tx_sends_bursts_whole_then_flushes_and_ends() -> None:
    from gnuradio import blocks, gr
    from semjscc.gr import stream_tx

    fs = 400e3
    bursts = _bursts(30)
    tb = gr.top_block()
    src = _tagged_source(bursts)
    tx = stream_tx(samp_rate=fs, tail=4096, late_tolerance=int(fs))
    dac = blocks.throttle(gr.sizeof_gr_complex, fs)  # stands in for the DAC: consumes at the sample rate
    sink = blocks.vector_sink_c()
    tb.connect(src, tx, dac, sink)
    _run(tb)
    out = np.array(sink.data())
    s = tx.stats()
    assert s["bursts_in"] == s["bursts_out"] == 30 and s["upstream_done"]
    assert len(out) == s["samples_out"] == s["burst_samples"] + s["idle_samples"] + s["tail_samples"]
    assert s["burst_samples"] == sum(len(b) for b in bursts)
    assert s["tail_samples"] == 4096 and np.all(out[-4096:] == 0)  # the tail of zeros, last
    for i, b in enumerate(bursts):  # each burst whole, in one piece: no zero (gap) inside it
        where = np.flatnonzero(out == i + 1)
        assert len(where) == len(b) and where[-1] - where[0] == len(b) - 1, i
    assert np.array_equal(out[out != 0].real, np.concatenate(bursts).real)  # in order
    assert len(sink.tags()) == 0  # no length tag reaches the radio's sink


@pytest.mark.gnuradio
def test_stream_tx_writes_zeros_when_idle_and_never_runs_ahead_of_the_dac() -> None:
    """With nothing queued the output is zeros at exactly the pace the sink takes them: after T seconds
    no more than fs*T plus what the buffers between them hold."""
    from gnuradio import blocks, gr
    from semjscc.gr.stream_tx import burst_streamer

    fs = 200e3
    tb = gr.top_block()
    tx = burst_streamer(samp_rate=fs, tail=0, late_tolerance=int(fs))  # no upstream: never told "done"
    dac = blocks.throttle(gr.sizeof_gr_complex, fs)
    sink = blocks.null_sink(gr.sizeof_gr_complex)
    tb.connect(tx, dac, sink)
    t0 = time.monotonic()
    tb.start()
    time.sleep(1.5)
    elapsed = time.monotonic() - t0
    tb.stop()
    tb.wait()
    s = tx.stats()
    # buffers between the streamer and the DAC: its output buffer (a few pages) and the throttle's chunk
    slack = 1 << 16
    assert s["bursts_in"] == 0 and s["samples_out"] == s["idle_samples"] > 0.5 * fs
    assert s["samples_out"] <= fs * elapsed + slack, (s["samples_out"], fs * elapsed)
    assert s["late_events"] == 0  # matched to the DAC: never behind its clock by a second


@pytest.mark.gnuradio
def test_stream_tx_counts_a_sink_that_ran_dry() -> None:
    """A streamer that believes the DAC runs 4x faster than the sink consumes falls behind that clock:
    the late calls are counted (what a real DAC starved by a slow flowgraph looks like from the block)."""
    from gnuradio import blocks, gr
    from semjscc.gr.stream_tx import burst_streamer

    fs = 100e3
    tb = gr.top_block()
    tx = burst_streamer(samp_rate=4 * fs, tail=0, late_tolerance=1000)
    tb.connect(tx, blocks.throttle(gr.sizeof_gr_complex, fs), blocks.null_sink(gr.sizeof_gr_complex))
    tb.start()
    time.sleep(1.0)
    tb.stop()
    tb.wait()
    s = tx.stats()
    assert s["late_events"] > 0 and s["late_samples"] > 0


# --- the RX side -----------------------------------------------------------------------------------------
@pytest.mark.gnuradio
def test_rx_monitor_measures_missing_samples_and_ends_with_the_source() -> None:
    """Samples arriving at half the rate the monitor is told are overflows; the "done" input (the image
    source's end) finishes the monitor and with it the never-ending radio source upstream."""
    import pmt
    from gnuradio import blocks, gr
    from semjscc.gr import rx_monitor

    class _Finisher(gr.basic_block):
        """A message source that finishes after ``after_s``, as the image source does."""

        def __init__(self, after_s: float) -> None:
            gr.basic_block.__init__(self, "finisher", None, None)
            self.message_port_register_out(pmt.intern("pdus"))
            self.after_s = after_s

        def start(self) -> bool:
            threading.Timer(self.after_s, lambda: self._post(pmt.intern("system"),
                                                              pmt.cons(pmt.intern("done"), pmt.from_long(1)))).start()
            return True

    fs = 200e3
    tb = gr.top_block()
    radio = blocks.throttle(gr.sizeof_gr_complex, fs / 2)  # a radio read at half its rate: the rest overflows
    mon = rx_monitor(samp_rate=fs, tolerance=4096)
    fin = _Finisher(1.5)
    tb.connect(blocks.null_source(gr.sizeof_gr_complex), radio, mon, blocks.null_sink(gr.sizeof_gr_complex))
    tb.msg_connect(fin, "pdus", mon, "done")
    t0 = time.monotonic()
    _run(tb, timeout_s=30)
    assert time.monotonic() - t0 < 15  # it ended by itself, soon after the source
    s = mon.stats()
    assert s["overflow_events"] > 0 and s["overflow_samples"] > 0.2 * fs and s["measured_s"] > 1.0

    tb = gr.top_block()
    mon = rx_monitor(samp_rate=fs, tolerance=int(fs / 2))
    fin = _Finisher(1.0)
    tb.connect(blocks.null_source(gr.sizeof_gr_complex), blocks.throttle(gr.sizeof_gr_complex, fs), mon,
               blocks.null_sink(gr.sizeof_gr_complex))
    tb.msg_connect(fin, "pdus", mon, "done")
    _run(tb, timeout_s=30)
    assert mon.stats()["overflow_events"] == 0 and mon.stats()["samples_in"] > 0.5 * fs


@pytest.mark.gnuradio
def test_overload_gate_drops_whole_frames_and_the_ledger_accounts_them() -> None:
    """Past max_backlog the gate turns a frame into an empty dropped_overload PDU (header failures pass);
    the decoder's triage passes it on untouched; the ledger counts it, and sent = received + lost."""
    import pmt
    from gnuradio import blocks, gr
    from semjscc.gr.batched import triage_received
    from semjscc.gr.overload_gate import overload_gate
    from semjscc.gr.pdus import c32_vector, make_pdu, split_pdu
    from semjscc.link.ledger import StreamLedger

    backlog = {"n": 0}
    gate = overload_gate(lambda: backlog["n"], max_backlog=4)
    dbg = blocks.message_debug()
    tb = gr.top_block()
    tb.msg_connect(gate, "out", dbg, "store")
    frames = [make_pdu({"frame_number": fn, "header_ok": True, "snr_est_db": 10.0}, c32_vector(np.ones(8, np.complex64)))
              for fn in range(6)]
    frames.insert(4, make_pdu({"frame_number": -1, "header_ok": False}, c32_vector(np.zeros(0, np.complex64))))
    tb.start()
    try:
        for i, m in enumerate(frames):
            backlog["n"] = 2 if i < 3 else 9  # the decoder falls behind from the fourth message on
            gate._handle(m)
        deadline = time.monotonic() + 10
        while dbg.num_messages() < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        tb.stop()
        tb.wait()
    out = [split_pdu(dbg.get_message(i)) for i in range(dbg.num_messages())]
    assert len(out) == 7
    assert [bool(m.get("dropped_overload")) for m, _ in out] == [False] * 3 + [True, False, True, True]
    assert all(pmt.length(v) == 0 for m, v in out if m.get("dropped_overload"))
    assert gate.stats()["dropped_overload"] == 3 and gate.stats()["max_backlog_seen"] == 9

    class _Counts:
        header_failures = corrupt = length_mismatch = 0

        def name(self) -> str:
            return "decoder"

    items = [(dbg.get_message(i), m, v) for i, (m, v) in enumerate(out)]
    passed, rows, _ys = triage_received(_Counts(), items, 8)
    assert rows == [0, 1, 2]  # only the frames that were let through reach the model
    assert all(passed[i] is not None for i in range(3, 7))

    ledger = StreamLedger()
    for fn in range(6):
        ledger.on_sent({"frame_number": fn, "label": 1, "last": fn == 5}, None, 0.0)
    for m, _v in out:
        image = None if m.get("dropped_overload") or not m.get("header_ok", True) else np.zeros((32, 32, 3), np.uint8)
        ledger.on_received(dict(m.items()) | {"pred": 1}, image, 1.0)
    s = ledger.summary()
    assert s["frames_sent"] == 6 == s["frames_received"] + s["frames_lost"]
    assert s["frames_received"] == 3 and s["dropped_overload"] == 3 and ledger.done


# --- settings ---------------------------------------------------------------------------------------------
def test_ad9363_limits_are_checked_per_band() -> None:
    from semjscc.radio.limits import check_flowgraph, check_pluto, rx_gain_range_db
    from semjscc.util.errors import UsageError

    assert rx_gain_range_db(2.45e9) == (-3.0, 71.0) and rx_gain_range_db(433e6) == (-1.0, 73.0)
    assert check_pluto(2.45e9, 1e6, 1e6, 40.0, 71.0) and check_pluto(868e6, rx_gain_db=73.0)
    for kwargs, text in ((dict(lo_hz=2.45e9, rx_gain_db=72.0), "RX gain (dB) 72 is outside the Pluto's range -3 .. 71"),
                         (dict(lo_hz=5.8e9), "LO frequency (Hz) 5.8e+09 is outside"),
                         (dict(lo_hz=100e6), "LO frequency (Hz) 1e+08 is outside")):
        with pytest.raises(UsageError, match=text.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
            check_pluto(**kwargs)
    with pytest.raises(UsageError, match="gr-iio, which cannot open the simulated radio"):
        check_flowgraph("sim:seed=1", 2.45e9, 1e6, 1e6)


def test_rx_rf_bandwidth_helper_refuses_what_no_pluto_takes_and_names_a_silent_uri() -> None:
    pytest.importorskip("iio")
    from semjscc.radio.iio_attrs import write_rx_rf_bandwidth
    from semjscc.util.errors import UsageError

    with pytest.raises(UsageError, match="RF bandwidth"):
        write_rx_rf_bandwidth("ip:127.0.0.1", 100e6)
    t0 = time.monotonic()
    with pytest.raises(UsageError, match=r"127\.0\.0\.1"):  # nothing listens there: one line, in time
        write_rx_rf_bandwidth("ip:127.0.0.1", 1e6, timeout_s=3.0)
    assert time.monotonic() - t0 < 10


def test_stratified_order_balances_every_prefix() -> None:
    from semjscc.data.sources import stratified_order

    labels = np.repeat(np.arange(10), 100)  # sorted by class, as CIFAR-10's test split
    order = stratified_order(labels, 3)
    assert sorted(order) == list(range(1000))
    for n in (10, 37, 50, 250, 999):
        counts = np.bincount(labels[order[:n]], minlength=10)
        assert counts.max() - counts.min() <= 1, (n, counts)
    assert not np.array_equal(order, stratified_order(labels, 4))  # seeded
    assert np.array_equal(order, stratified_order(labels, 3))
