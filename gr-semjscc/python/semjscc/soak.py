"""Reliability measurements: a long soak of the simulated flowgraph under random impairments, and
the false-frame rate of the receiver on noise-only input (``semjscc bench soak``).

The simulated flowgraph (:mod:`semjscc.gr.sim_loopback`) fixes its channel when it is built, so
the soak runs it in chunks: each chunk is a fresh top block with a new random draw of SNR, CFO,
sample clock offset and multipath, and the chunks' counters are summed. Building a fresh top block
per chunk also exercises setup/teardown, where leaks (threads, sessions, buffers) would show up
as resident memory growing from chunk to chunk.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from semjscc.errors import UsageError
from semjscc.phy.frame import DEFAULT_FRAME_FORMAT
from semjscc.phy.numerology import DEFAULT_NUMEROLOGY

MAX_SOAK_CFO_HZ = 20_000.0  # +-20 kHz at 1 MS/s: well inside the receiver's 3-subcarrier search range
MAX_CLOCK_PPM = 20.0  # sample clock offset, a cheap TCXO pair
COUNTERS = ("frames_sent", "frames_received", "frames_lost", "header_crc_failures", "corrupt", "late_frames",
            "rx_frames_ok", "rx_frames_failed", "decoder_corrupt", "block_errors")


def rss_kib() -> int:
    """Resident set size of this process in KiB (VmRSS from /proc/self/status; 0 where absent)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def random_impairments(rng: np.random.Generator) -> dict[str, Any]:
    """One random channel: SNR U(0, 20) dB, CFO U(+-20 kHz), clock offset U(+-20 ppm) (a timing
    drift across the burst), 1-8 random complex taps with decaying power (inside the cyclic prefix)."""
    n_taps = int(rng.integers(1, 9))
    power = np.exp(-np.arange(n_taps) / rng.uniform(0.5, 3.0))
    taps = np.sqrt(power / 2) * (rng.standard_normal(n_taps) + 1j * rng.standard_normal(n_taps))
    return {"snr_db": float(rng.uniform(0.0, 20.0)), "cfo_hz": float(rng.uniform(-MAX_SOAK_CFO_HZ, MAX_SOAK_CFO_HZ)),
            "epsilon": 1.0 + float(rng.uniform(-MAX_CLOCK_PPM, MAX_CLOCK_PPM)) * 1e-6,
            "multipath": ",".join(f"({t.real:.5f}{t.imag:+.5f}j)" for t in taps)}


def run_soak(frames: int, seed: int = 0, chunk: int = 50, model: str = "", classifier: str = "", source: str = "",
             device: str = "cpu", chunk_timeout_s: float = 60.0, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``frames`` frames through the simulated flowgraph, ``chunk`` frames per random channel.

    Returns totals of the sink's and receiver's counters, ``exceptions`` (chunks that raised, with
    the first line of each), accuracy over received frames, RSS at start / after the chunk holding
    frame ~10% / at the end, elapsed time, the per-chunk rows, and ``invariant_ok``:
    sent == received + lost for the totals and every chunk."""
    from semjscc.gr.sim_loopback import SimConfig, run_sim
    from semjscc.shipped import JSCC_SEMANTIC

    if frames <= 0 or chunk <= 0:
        raise ValueError("frames and chunk must be > 0")
    rng = np.random.default_rng(seed)
    totals = dict.fromkeys(COUNTERS, 0)
    correct = 0.0
    errors: list[str] = []
    rows: list[dict[str, Any]] = []
    rss_start = rss_kib()
    rss_10pct: int | None = None
    t0 = time.monotonic()
    done = 0
    while done < frames:
        n = min(chunk, frames - done)
        imp = random_impairments(rng)
        cfg = SimConfig(frames=n, model=model or JSCC_SEMANTIC, seed=int(rng.integers(2**31)),
                        classifier=classifier, source=source, loss_timeout_s=1.0, device=device, n_samples=0, **imp)
        row: dict[str, Any] = {"first_frame": done, **imp}
        try:
            summary, _ = run_sim(cfg, timeout_s=chunk_timeout_s)
        except UsageError:
            raise  # a missing model or bad option is the user's to fix, not a reliability failure
        except Exception as e:  # the soak counts every failure rather than stopping
            errors.append(f"chunk at frame {done}: {type(e).__name__}: {e}".splitlines()[0])
            row["exception"] = traceback.format_exception_only(e)[-1].strip()
            # frames of a chunk that never ran are sent-and-lost, so the accounting still closes
            summary = {"frames_sent": n, "frames_received": 0, "frames_lost": n}
        for k in COUNTERS:
            totals[k] += int(summary.get(k) or 0)
        if summary.get("accuracy") is not None:
            correct += summary["accuracy"] * summary["frames_received"]
        row.update({k: summary.get(k) for k in (*COUNTERS, "accuracy", "done")})
        row["invariant_ok"] = summary["frames_sent"] == summary["frames_received"] + summary["frames_lost"]
        rows.append(row)
        done += n
        if rss_10pct is None and done >= frames / 10:
            rss_10pct = rss_kib()
        if progress:
            progress(f"{done}/{frames} frames, snr {imp['snr_db']:.1f} dB, cfo {imp['cfo_hz']:.0f} Hz: "
                     f"{summary['frames_received']}/{summary['frames_sent']} received, rss {rss_kib()} KiB")
    elapsed = time.monotonic() - t0
    rss_end = rss_kib()
    return {**totals, "frames_requested": frames, "chunk": chunk, "seed": seed,
            "accuracy": correct / totals["frames_received"] if totals["frames_received"] else None,
            "exceptions": len(errors), "exception_messages": errors,
            "invariant_ok": totals["frames_sent"] == totals["frames_received"] + totals["frames_lost"]
            and all(r["invariant_ok"] for r in rows),
            "rss_kib_start": rss_start, "rss_kib_10pct": rss_10pct, "rss_kib_end": rss_end,
            "rss_growth_kib_after_10pct": rss_end - (rss_10pct or rss_start),
            "elapsed_s": elapsed, "frames_per_s": totals["frames_sent"] / elapsed if elapsed > 0 else None,
            "chunks": rows}


def noise_false_frames(n_samples: int = 10_000_000, block: int = 65_536, snr_ref_symbols: int = 512,
                       seed: int = 0, kind: str = "noise") -> dict[str, Any]:
    """Feed ``n_samples`` of signal-free input (``kind``: unit-power complex white ``noise`` or a
    ``tone``) to the numpy receiver in ``block``-sample chunks and count what it reports.

    A frame slot is one burst of a ``snr_ref_symbols``-symbol frame (the shipped models' length),
    padding included: the rate is the chance that a slot's worth of noise yields a reported frame
    (``false_frames``, header passed or not) or a frame with a passing header CRC
    (``false_header_ok``, what would reach the decoder)."""
    from semjscc.phy.rx import OFDMReceiver

    rng = np.random.default_rng(seed)
    rx = OFDMReceiver(DEFAULT_FRAME_FORMAT)
    slot = DEFAULT_FRAME_FORMAT.burst_samples(snr_ref_symbols)
    reported = header_ok = 0
    t0 = time.monotonic()
    fed = 0
    while fed < n_samples:
        n = min(block, n_samples - fed)
        if kind == "noise":
            x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / math.sqrt(2)).astype(np.complex64)
        elif kind == "tone":
            x = np.exp(2j * np.pi * 0.013 * np.arange(fed, fed + n)).astype(np.complex64)
        else:
            raise ValueError(f"kind must be 'noise' or 'tone', got {kind!r}")
        frames = rx.process(x)
        reported += len(frames)
        header_ok += sum(f.header_ok for f in frames)
        fed += n
    frames = rx.flush()
    reported += len(frames)
    header_ok += sum(f.header_ok for f in frames)
    elapsed = time.monotonic() - t0
    slots = n_samples / slot
    return {"kind": kind, "samples": n_samples, "slot_samples": slot, "slots": slots,
            "false_frames": reported, "false_header_ok": header_ok,
            "false_frames_per_slot": reported / slots, "false_header_ok_per_slot": header_ok / slots,
            "sc_candidates": rx.stats.candidates, "validated": rx.stats.validated,
            "elapsed_s": elapsed, "samples_per_s": n_samples / elapsed if elapsed > 0 else None,
            "noise_std_at_0db": DEFAULT_NUMEROLOGY.noise_std_for_snr(0.0)}
