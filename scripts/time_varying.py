#!/usr/bin/env python3
"""The measurements behind docs/results.md, "Time-varying channels" (issue 13).

    scripts/time_varying.py phy      --json docs/results/time-varying-phy.json
    scripts/time_varying.py static   --json docs/results/time-varying-static.json
    scripts/time_varying.py accuracy --json docs/results/time-varying-accuracy.json

phy: the numpy PHY over Rayleigh fading (GNU Radio's selective fading model with its GRC defaults,
and the numpy model of semjscc.phy.impairments), SNR x normalised Doppler x pilot pattern: frames
decoded, payload SNR against the symbols sent (mean over frames of each frame's, and per OFDM
symbol), the reported SNR's error per frame (semjscc.experiments.bench.fading).

static: the static-link figures that must not regress: frames decoded at -1, 0 and 2 dB (1,000
frames per SNR, each with its own channel: CFO uniform in +-20 kHz, a fractional timing offset and
a multipath profile taken in turn from none, two-ray, indoor and 1-12 random Rayleigh taps), 300
frames at 10 and 20 dB, and frames under a CW interferer (200 frames at 20 dB, tone 10, 6 and 3 dB
below the signal, flat and random multipath + CFO).

accuracy: the shipped models through the numpy PHY (as semjscc eval --channel phy) at 20 and 5 dB,
static vs Doppler 1e-4 and 5e-4 (Rayleigh fading, three paths or flat, an independent realisation
per frame), with 95 % intervals.

"Before" figures come from running the same script with PYTHONPATH pointing at a checkout of the
commit before issue 13 (cd66b4c) into which semjscc/experiments/bench/fading.py, phy/impairments.py,
phy/channel_model.py, phy/sim_channel.py and evaluation.py of this commit were copied: the old
receiver, the same channels. Pass --quick for a smaller run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np


def _cn(rng: np.random.Generator, n: int) -> np.ndarray:
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)


def phy(args: argparse.Namespace) -> dict:
    from semjscc.experiments.bench.fading import fading_link

    frames = 100 if args.quick else 300
    rows = []
    patterns = [0]
    try:
        from semjscc.phy.frame import MIDAMBLE_INTERVALS, FrameFormat  # noqa: F401 (absent before issue 13)

        patterns.append(4)
    except ImportError:
        pass
    for channel, midamble, snr, doppler in itertools.product(("gnuradio", "numpy"), patterns, (5.0, 10.0, 15.0, 20.0),
                                                           (0.0, 1e-5, 1e-4, 5e-4)):
        kw = {}
        if midamble:
            from semjscc.phy.frame import FrameFormat

            kw["fmt"] = FrameFormat(midamble=midamble)
        t0 = time.monotonic()
        r = fading_link(snr, doppler, frames=frames, seed=args.seed, channel=channel, **kw)
        e = np.asarray(r["frame_reported_db"]) - np.asarray(r["frame_snr_db"])
        row = {k: r[k] for k in ("channel", "snr_db", "doppler", "frames_sent", "frames_decoded", "frames_lost",
                                 "header_failed", "frame_mean_snr_db", "payload_snr_db", "reported_snr_db",
                                 "symbol_snr_db")}
        row |= {"midamble": midamble, "symbol_mean_snr_db": float(np.mean(r["symbol_snr_db"])),
                "snr_error_mean_db": float(e.mean()), "snr_error_abs_p90_db": float(np.percentile(np.abs(e), 90)),
                "snr_error_within_1p5": float(np.mean(np.abs(e) <= 1.5)), "seconds": time.monotonic() - t0}
        rows.append(row)
        print(f"{channel:8s} mid {midamble} {snr:4.0f} dB {doppler:6g}: decoded {r['frames_decoded']}/{frames}, "
              f"payload {row['frame_mean_snr_db']:.2f} dB/frame, {row['symbol_mean_snr_db']:.2f} over symbols "
              f"({row['symbol_snr_db'][0]:.1f} .. {row['symbol_snr_db'][-1]:.1f}), reported - true "
              f"{row['snr_error_mean_db']:+.2f} dB (p90 |.| {row['snr_error_abs_p90_db']:.2f})", flush=True)
    return {"rows": rows, "frames": frames, "seed": args.seed}


def _static_channel(rng: np.random.Generator, i: int, max_cfo: float = 20e3) -> tuple[np.ndarray, float]:
    """Frame i's channel: a unit-energy FIR (profile by turn, fractional delay folded in) and a CFO."""
    from semjscc.phy.channel_model import multipath_taps
    from semjscc.phy.impairments import fractional_delay_taps

    kind = i % 4
    if kind < 3:
        taps = np.asarray(multipath_taps(("none", "two-ray", "indoor")[kind]))
    else:
        n = int(rng.integers(1, 13))
        taps = np.sqrt(np.exp(-np.arange(n) / rng.uniform(0.5, 3.0)) / 2) * (rng.standard_normal(n)
                                                                            + 1j * rng.standard_normal(n))
    h = np.convolve(taps, fractional_delay_taps(float(rng.uniform(0, 1)), 4))
    return h / np.sqrt(np.sum(np.abs(h) ** 2)), float(rng.uniform(-max_cfo, max_cfo))


def _link(n: int, snr_db: float, seed: int, channel: str = "mixed", tone_db: float | None = None) -> int:
    """Frames of 512 symbols decoded with the right frame number (``channel``: 'mixed' as in
    :func:`_static_channel`, 'flat' = AWGN only)."""
    from semjscc.phy.channel_model import noise_voltage
    from semjscc.phy.frame import DEFAULT_FRAME_FORMAT as FMT
    from semjscc.phy.rx import receive
    from semjscc.phy.tx import modulate_stream

    rng = np.random.default_rng(seed)
    sent = [_cn(rng, 512) for _ in range(n)]
    x, starts = modulate_stream(sent)
    y = np.zeros(len(x) + 64, np.complex64)
    bounds = [*(starts - FMT.pad_before).tolist(), len(x)]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        if channel == "flat":
            h, cfo = np.ones(1), 0.0
        else:
            h, cfo = _static_channel(rng, i)
        seg = np.convolve(x[a:b], h)
        seg = seg * np.exp(2j * np.pi * cfo / 1e6 * np.arange(len(seg)) + 1j * rng.uniform(0, 2 * np.pi))
        y[a:a + len(seg)] += seg.astype(np.complex64)
    if tone_db is not None:
        power = np.mean(np.abs(x[x != 0]) ** 2)
        y += (np.sqrt(power * 10 ** (tone_db / 10)) * np.exp(2j * np.pi * 0.1733 * np.arange(len(y)) + 0.4j)).astype(
            np.complex64)
    y = (y + noise_voltage(snr_db) * _cn(rng, len(y))).astype(np.complex64)
    got = {f.frame_number for f in receive(y) if f.header_ok}
    return len(got & set(range(n)))


def static(args: argparse.Namespace) -> dict:
    n_low, n_high, n_tone = (200, 100, 100) if args.quick else (1000, 300, 200)
    out: dict = {"low_snr": {}, "high_snr": {}, "cw_interferer": {}}
    for snr in (-1.0, 0.0, 2.0):
        out["low_snr"][f"{snr:g}"] = {"frames": n_low, "decoded": _link(n_low, snr, args.seed + 1)}
    for snr in (10.0, 20.0):
        out["high_snr"][f"{snr:g}"] = {"frames": n_high, "decoded": _link(n_high, snr, args.seed + 2)}
    for tone, ch in itertools.product((-10.0, -6.0, -3.0), ("flat", "mixed")):
        out["cw_interferer"][f"{tone:g} dB {ch}"] = {"frames": n_tone,
                                                     "decoded": _link(n_tone, 20.0, args.seed + 3, ch, tone)}
    print(json.dumps(out, indent=1))
    return out


def accuracy(args: argparse.Namespace) -> dict:
    from semjscc.data import load_cifar10
    from semjscc.experiments.eval.schemes import load_classifier_fn, load_scheme
    from semjscc.experiments.eval.sweep import sweep
    from semjscc.zoo.locate import card_classifiers
    from semjscc.zoo.shipped import JSCC_MSE, JSCC_SEMANTIC

    n = 200 if args.quick else args.images
    data = load_cifar10(None, "test").subset(n)
    schemes = [load_scheme("mse", JSCC_MSE), load_scheme("semantic", JSCC_SEMANTIC)]
    clf = {"clean": load_classifier_fn(card_classifiers(JSCC_SEMANTIC)["classifier"])}
    from semjscc.experiments.bench.fading import THREE_PATH

    rows = []
    for (profile, taps), doppler, snr in itertools.product((("three-path", THREE_PATH), ("flat", (1.0,))),
                                                           (0.0, 1e-4, 5e-4), (20.0, 5.0)):
        t0 = time.monotonic()
        sw = sweep(schemes, clf, data, [snr], "phy", seed=args.seed, progress=False,
                   channel_kwargs={"doppler": doppler, "taps": taps})
        for r in sw.rows:
            k = int(sw.correct[("clean", r.scheme, f"{snr:g}")].sum())
            row = {"scheme": r.scheme, "profile": profile, "snr_db": r.snr_db, "doppler": doppler, "images": r.n,
                   "correct": k, "accuracy": r.accuracy, "ci95": [r.ci_low, r.ci_high], "psnr_db": r.psnr_db,
                   "frames_lost": r.frames_lost}
            rows.append(row)
            print(row, f"{time.monotonic() - t0:.0f} s", flush=True)
    return {"rows": rows, "images": n, "seed": args.seed,
            "channel": "phy (numpy PHY, 3 kHz CFO): Rayleigh fading, three paths (0, 1, 3 samples) or flat"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("phy", "static", "accuracy"))
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    doc = {"phy": phy, "static": static, "accuracy": accuracy}[args.what](args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
