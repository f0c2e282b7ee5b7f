#!/usr/bin/env python3
"""The measurements behind docs/results.md, "Carrier-offset acquisition" (issue 22, item 4).

    scripts/cfo_acquisition.py --json docs/results/cfo-acquisition.json
    scripts/cfo_acquisition.py --max-cfo-subcarriers 3 --json docs/results/cfo-acquisition-3.json

frames: the numpy PHY receiver (the one the GNU Radio OFDM RX block wraps) on a stream of 512-symbol
bursts (the shipped models' frames) with a carrier offset from --cfo-min to --cfo-max, AWGN at the
project's SNR (Es/N0 per subcarrier), a random carrier phase, and optionally a named multipath
profile. A frame counts as received when its header passes with the frame number sent, and the
payload's error against the symbols sent is reported (mean over received frames, in dB).

noise: --noise-samples of white noise in 65,536-sample blocks: Schmidl & Cox candidates, validated
preambles, header decodes (each one a 2^-16 chance for the CRC), reported frames and frames with a
passing header, per frame slot (one 512-symbol burst), and the receiver's speed (CPU time).

--max-cfo-subcarriers 3 is the receiver's search range before issue 22 (the code is otherwise the
same: the range only sets the number of integer shifts tried).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from semjscc.experiments.bench.soak import garbage_samples
from semjscc.phy.channel_model import MAX_CFO_SUBCARRIERS, multipath_taps
from semjscc.phy.frame import DEFAULT_FRAME_FORMAT as FMT
from semjscc.phy.rx import OFDMReceiver
from semjscc.phy.tx import modulate_stream

SYMBOLS = 512
BLOCK = 65_536


def frames_at(cfo_hz: float, snr_db: float, n_frames: int, max_cfo_subcarriers: float, multipath: str,
              seed: int) -> dict[str, float]:
    """Frames received of ``n_frames`` at one CFO and SNR (see the module docstring)."""
    rng = np.random.default_rng(seed)
    sent = ((rng.standard_normal((n_frames, SYMBOLS)) + 1j * rng.standard_normal((n_frames, SYMBOLS)))
            / np.sqrt(2)).astype(np.complex64)
    first = int(rng.integers(0, 60_000))
    x, _ = modulate_stream(list(sent), first)
    x = np.convolve(x, np.asarray(multipath_taps(multipath), dtype=np.complex64))[:len(x)]
    n = np.arange(len(x))
    num = FMT.numerology
    y = x * np.exp(1j * (2 * np.pi * cfo_hz / num.sample_rate * n + rng.uniform(0, 2 * np.pi)))
    std = num.noise_std_for_snr(snr_db)
    y = (y + std / np.sqrt(2) * (rng.standard_normal(len(x)) + 1j * rng.standard_normal(len(x)))).astype(np.complex64)
    rx = OFDMReceiver(FMT, max_cfo_subcarriers=max_cfo_subcarriers)
    got = [f for i in range(0, len(y), BLOCK) for f in rx.process(y[i:i + BLOCK])] + rx.flush()
    by_number = {f.frame_number: f for f in got if f.header_ok}
    received = [(k, by_number[first + k]) for k in range(n_frames) if first + k in by_number]
    wrong = sum(1 for f in got if f.header_ok) - len(received)
    err = [float(np.mean(np.abs(f.payload - sent[k]) ** 2)) for k, f in received]
    cfo_err = [abs(f.cfo_hz - cfo_hz) for _, f in received]
    return {"cfo_hz": cfo_hz, "snr_db": snr_db, "frames": n_frames, "received": len(received),
            "wrong_header": wrong, "payload_snr_db": -10 * float(np.log10(np.mean(err))) if err else None,
            "max_cfo_error_hz": max(cfo_err) if cfo_err else None}


def noise(n_samples: int, max_cfo_subcarriers: float, seed: int) -> dict[str, float]:
    """What the receiver makes of ``n_samples`` of white noise (see the module docstring)."""
    rng = np.random.default_rng(seed)
    rx = OFDMReceiver(FMT, max_cfo_subcarriers=max_cfo_subcarriers)
    frames = []
    t0 = time.process_time()
    for start in range(0, n_samples, BLOCK):
        frames += rx.process(garbage_samples("noise", start, min(BLOCK, n_samples - start), rng))
    frames += rx.flush()
    cpu = time.process_time() - t0
    slots = n_samples / FMT.burst_samples(SYMBOLS)
    s = rx.stats
    return {"samples": n_samples, "slots": slots, "sc_candidates": s.candidates, "validated": s.validated,
            "headers_decoded": s.headers_decoded, "false_frames": len(frames),
            "false_header_ok": sum(f.header_ok for f in frames),
            "headers_decoded_per_slot": s.headers_decoded / slots, "cpu_s": cpu,
            "samples_per_cpu_s": n_samples / cpu if cpu > 0 else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-cfo-subcarriers", type=float, default=MAX_CFO_SUBCARRIERS,
                    help=f"the receiver's search range (default {MAX_CFO_SUBCARRIERS:g}, the shipped one)")
    ap.add_argument("--cfo-min", type=float, default=-150e3)
    ap.add_argument("--cfo-max", type=float, default=150e3)
    ap.add_argument("--cfo-step", type=float, default=10e3)
    ap.add_argument("--snr", type=float, nargs="+", default=[5.0, 20.0])
    ap.add_argument("--frames", type=int, default=50, help="frames per CFO and SNR (default 50)")
    ap.add_argument("--multipath", default="none", help="a channel_model profile (default none)")
    ap.add_argument("--noise-samples", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    cfos = np.arange(a.cfo_min, a.cfo_max + a.cfo_step / 2, a.cfo_step)
    rows = []
    for i, cfo in enumerate(cfos):
        for j, snr in enumerate(a.snr):
            r = frames_at(float(cfo), snr, a.frames, a.max_cfo_subcarriers, a.multipath, a.seed + 100 * i + j)
            rows.append(r)
            print(f"CFO {cfo / 1e3:+7.1f} kHz  SNR {snr:4.1f} dB: {r['received']:3d}/{r['frames']} received, "
                  f"{r['wrong_header']} wrong headers, payload {r['payload_snr_db'] or float('nan'):.1f} dB", flush=True)
    nz = noise(a.noise_samples, a.max_cfo_subcarriers, a.seed) if a.noise_samples else None
    if nz:
        print(f"noise: {nz['samples']:,} samples ({nz['slots']:,.0f} slots): {nz['sc_candidates']} candidates, "
              f"{nz['validated']} validated, {nz['headers_decoded']} header decodes, {nz['false_frames']} false "
              f"frames ({nz['false_header_ok']} with a passing header), {nz['samples_per_cpu_s'] / 1e6:.2f} M "
              "samples per CPU second")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"max_cfo_subcarriers": a.max_cfo_subcarriers, "multipath": a.multipath,
                                      "frames": rows, "noise": nz}, indent=1) + "\n")


if __name__ == "__main__":
    main()
