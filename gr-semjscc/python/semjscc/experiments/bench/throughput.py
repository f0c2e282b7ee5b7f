"""Throughput of the analog OFDM PHY in GNU Radio, against GNU Radio's own OFDM chain.

Both chains run in the same call, one after the other, on the same air time per frame:

* ours: tagged stream of JSCC symbols -> ``semjscc.gr.ofdm_tx`` -> ``channels.channel_model`` ->
  ``semjscc.gr.ofdm_rx``: ``n_symbols`` complex symbols per frame (512 = one 32x32 image at
  k/n = 1/6) -> 2 sync + 2 header + 11 payload OFDM symbols.
* GNU Radio: tagged byte stream -> ``digital.ofdm_tx`` (QPSK payload, BPSK header) ->
  ``digital.burst_shaper_cc`` -> ``channels.channel_model`` -> ``digital.ofdm_rx``, with the packet
  size chosen so each burst has the same number of OFDM symbols as ours (140 bytes + CRC-32 for 512
  symbols: 2 sync + 1 header + 12 payload).

Same padding around every burst, same per-subcarrier SNR (GNU Radio's IFFT is not unitary, so its
noise voltage is scaled by sqrt(fft_len)), same 64/16 numerology. Throughput = channel samples
(padding included) / wall time from start to the last sample through the receiver.

Limits (:func:`check_args`, before any flowgraph is built): GNU Radio's chain is made of
tagged-stream blocks, each of which writes a whole burst at once into at most half of its default
8192-sample output buffer. A burst of more than 51 OFDM symbols (4096 / 80 samples) does not fit:
the block's thread stops with "Buffer too small for min_noutput_items" and the others wait for it
forever, so ``tb.run()`` never returns. That caps a frame at 2,256 JSCC symbols (47 payload OFDM
symbols of 48 carriers), well below what this PHY's frame header (65,535) or the OFDM TX's
default ``max_payload_len`` (8,192, which drops longer packets) would carry. The CFO must stay
inside the receiver's search range (``channel_model.CFO_SEARCH_HZ``) and the SNR must be a number.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pmt
from gnuradio import blocks, channels, digital, gr

from semjscc.gr import ofdm_rx, ofdm_tx
from semjscc.phy.channel_model import check_cfo_hz
from semjscc.phy.frame import DEFAULT_FRAME_FORMAT
from semjscc.util.errors import UsageError

_LEN_KEY = "packet_len"
GR_BUFFER_ITEMS = 8192  # GNU Radio's default buffer (64 KiB of complex samples)
# a tagged-stream block writes a whole burst into at most half its output buffer
GR_MAX_OFDM_SYMBOLS = (GR_BUFFER_ITEMS // 2) // DEFAULT_FRAME_FORMAT.numerology.symbol_len  # 51
MAX_SYMBOLS = (GR_MAX_OFDM_SYMBOLS - DEFAULT_FRAME_FORMAT.n_overhead) * DEFAULT_FRAME_FORMAT.numerology.n_data  # 2256


def _gr_ofdm_symbols(packet_bytes: int) -> int:
    """OFDM symbols of one burst of GNU Radio's chain: 2 sync + 1 header + QPSK payload with CRC-32."""
    return 3 + -(-(packet_bytes + 4) * 4 // DEFAULT_FRAME_FORMAT.numerology.n_data)


def check_args(n_frames: int, n_symbols: int, snr_db: float, cfo_hz: float, gr_packet_bytes: int | None = None) -> None:
    """UsageError (naming the ``semjscc bench throughput`` option) for what the chains cannot run:
    see the module docstring's limits."""
    if not n_frames >= 1:
        raise UsageError(f"--frames must be >= 1, got {n_frames!r}")
    if not 1 <= n_symbols <= MAX_SYMBOLS:
        raise UsageError(f"--symbols must lie in 1..{MAX_SYMBOLS}, got {n_symbols!r}: GNU Radio's reference OFDM chain "
                         f"fits at most {GR_MAX_OFDM_SYMBOLS} OFDM symbols per burst in its buffers (and stalls on "
                         f"longer ones)")
    if not math.isfinite(snr_db):
        raise UsageError(f"--snr must be a finite number of dB, got {snr_db}")
    check_cfo_hz(cfo_hz, "--cfo")
    if gr_packet_bytes is not None and not (gr_packet_bytes >= 1
                                            and _gr_ofdm_symbols(gr_packet_bytes) <= GR_MAX_OFDM_SYMBOLS):
        raise UsageError(f"gr_packet_bytes must give GNU Radio bursts of at most {GR_MAX_OFDM_SYMBOLS} OFDM symbols, "
                         f"got {gr_packet_bytes}")


def _len_tags(lengths: list[int], key: str = _LEN_KEY) -> list[gr.tag_t]:
    tags, off = [], 0
    for n in lengths:
        tags.append(gr.tag_utils.python_to_tag((off, pmt.intern(key), pmt.from_long(n), pmt.PMT_NIL)))
        off += n
    return tags


def _run_ours(n_frames: int, n_symbols: int, noise: float, cfo: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    sym = ((rng.standard_normal(n_symbols) + 1j * rng.standard_normal(n_symbols)) / math.sqrt(2)).astype(np.complex64)
    tb = gr.top_block()
    tb.src = blocks.vector_source_c(np.tile(sym, n_frames).tolist(), False, 1, _len_tags([n_symbols] * n_frames))
    tb.tx = ofdm_tx(input_type="stream", pad_before=DEFAULT_FRAME_FORMAT.pad_before,
                    pad_after=DEFAULT_FRAME_FORMAT.pad_after)
    tb.ch = channels.channel_model(noise, cfo, 1.0, [1.0 + 0j], seed)
    tb.rx = ofdm_rx(latency_s=0.0)  # the end-of-stream flush happens in stop()
    tb.connect(tb.src, tb.tx, tb.ch, tb.rx)
    t0, c0 = time.perf_counter(), time.process_time()
    tb.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall_s": wall, "cpu_s": cpu, "samples": tb.rx.samples_in, "frames_sent": n_frames, "frames_ok": tb.rx.frames_ok,
            "frames_failed": tb.rx.frames_failed}


def _run_gnuradio(n_frames: int, packet_bytes: int, noise: float, cfo: float, pad: tuple[int, int],
                  seed: int) -> dict:
    rng = np.random.default_rng(seed)
    payload = rng.integers(0, 256, packet_bytes, dtype=np.uint8)
    tb = gr.top_block()
    tb.src = blocks.vector_source_b(np.tile(payload, n_frames).tolist(), False, 1,
                                    _len_tags([packet_bytes] * n_frames))
    tb.tx = digital.ofdm_tx(fft_len=64, cp_len=16, packet_length_tag_key=_LEN_KEY, bps_header=1, bps_payload=2,
                            rolloff=0, scramble_bits=True)
    tb.shaper = digital.burst_shaper_cc([], pad[0], pad[1], False, _LEN_KEY)
    tb.ch = channels.channel_model(noise, cfo, 1.0, [1.0 + 0j], seed)
    tb.count = blocks.probe_rate(gr.sizeof_gr_complex, 1e9, 0.0)  # counts items; output unused
    tb.rx = digital.ofdm_rx(fft_len=64, cp_len=16, packet_length_tag_key=_LEN_KEY, bps_header=1, bps_payload=2,
                            scramble_bits=True)
    tb.snk = blocks.vector_sink_b()
    tb.connect(tb.src, tb.tx, tb.shaper, tb.ch, tb.rx, tb.snk)
    tb.connect(tb.ch, tb.count)
    t0, c0 = time.perf_counter(), time.process_time()
    tb.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall_s": wall, "cpu_s": cpu, "samples": int(tb.count.nitems_read(0)), "frames_sent": n_frames,
            "frames_ok": len(tb.snk.data()) // packet_bytes}


def run_throughput(n_frames: int = 2000, n_symbols: int = 512, snr_db: float = 20.0, cfo_hz: float = 0.0,
                   gr_packet_bytes: int | None = None, seed: int = 1) -> dict:
    """Frames/s and complex samples/s of both chains (see the module docstring).

    ``gr_packet_bytes`` defaults to the size that gives GNU Radio's bursts our OFDM symbol count.
    Returns ours_* and gr_ofdm_* figures (wall and process CPU time, samples and frames per second),
    ``ratio`` = ours / GNU Radio samples per wall second, and the frame counts (so a "fast" receiver
    that drops frames is visible). Arguments the chains cannot run are refused first (:func:`check_args`)."""
    check_args(n_frames, n_symbols, snr_db, cfo_hz, gr_packet_bytes)
    fmt = DEFAULT_FRAME_FORMAT
    num = fmt.numerology
    n_ofdm = fmt.n_overhead + fmt.n_payload_symbols(n_symbols)
    if gr_packet_bytes is None:  # 2 sync + 1 header symbol, QPSK payload incl. 4 CRC bytes
        gr_packet_bytes = max(1, (n_ofdm - 3) * num.n_data * 2 // 8 - 4)
    noise = num.noise_std_for_snr(snr_db)
    cfo = cfo_hz / num.sample_rate
    ours = _run_ours(n_frames, n_symbols, noise, cfo, seed)
    ref = _run_gnuradio(n_frames, gr_packet_bytes, noise * math.sqrt(num.fft_len), cfo,
                        (fmt.pad_before, fmt.pad_after), seed)
    out = {
        "n_frames": n_frames, "n_symbols": n_symbols, "snr_db": snr_db, "cfo_hz": cfo_hz,
        "ofdm_symbols_per_frame": n_ofdm, "gr_packet_bytes": gr_packet_bytes,
        "ours_wall_s": ours["wall_s"], "ours_cpu_s": ours["cpu_s"], "ours_samples": ours["samples"],
        "ours_samples_per_s": ours["samples"] / ours["wall_s"], "ours_frames_per_s": ours["frames_ok"] / ours["wall_s"],
        "ours_frames_ok": ours["frames_ok"], "ours_frames_failed": ours["frames_failed"],
        "gr_ofdm_wall_s": ref["wall_s"], "gr_ofdm_cpu_s": ref["cpu_s"], "gr_ofdm_samples": ref["samples"],
        "gr_ofdm_samples_per_s": ref["samples"] / ref["wall_s"], "gr_ofdm_frames_per_s": ref["frames_ok"] / ref["wall_s"],
        "gr_ofdm_frames_ok": ref["frames_ok"],
    }
    out["ratio"] = out["ours_samples_per_s"] / out["gr_ofdm_samples_per_s"]
    # CPU time of the whole process (all flowgraph threads): less sensitive to other load on the
    # machine than wall time
    out["ours_samples_per_cpu_s"] = ours["samples"] / max(ours["cpu_s"], 1e-9)
    out["gr_ofdm_samples_per_cpu_s"] = ref["samples"] / max(ref["cpu_s"], 1e-9)
    return out
