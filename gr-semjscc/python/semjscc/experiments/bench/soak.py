"""Reliability measurements: a long soak of the simulated flowgraph under random impairments, and
the false-frame rate of the receiver on noise-only input (``semjscc bench soak``).

The soak runs *one* long-lived simulated flowgraph (:mod:`semjscc.gr.sim_loopback`) whose channel
is a :class:`~semjscc.gr.burst_channel.burst_channel`: every frame meets a fresh random SNR, CFO,
timing offset and multipath profile (:mod:`semjscc.phy.impairments`), and a sample clock offset
drawn once per soak runs through the whole stream. That is what a researcher's hours-long
experiment looks like, so resident memory is sampled as frames are accounted for and its growth
from frame 1,000 to the end is reported; a chain that stops moving (no frame accounted for
``stall_timeout_s``) is stopped and counted as an exception.
"""

from __future__ import annotations

import csv
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from semjscc.phy.frame import DEFAULT_FRAME_FORMAT
from semjscc.phy.impairments import MAX_CFO_HZ
from semjscc.phy.numerology import DEFAULT_NUMEROLOGY
from semjscc.phy.rx import OFDMReceiver
from semjscc.util.errors import UsageError
from semjscc.util.stopping import RunOutcome, run_until_done, stopped_by
from semjscc.zoo.shipped import JSCC_SEMANTIC

MAX_CLOCK_PPM = 20.0  # sample clock offset, a cheap TCXO pair
RSS_REFERENCE_FRAME = 1000  # memory growth is measured from here (start-up and warm-up excluded)
SNR_BIN_DB = 4.0
COUNTERS = ("frames_sent", "frames_received", "frames_lost", "header_crc_failures", "corrupt", "late_frames",
            "rx_frames_ok", "rx_frames_failed", "decoder_corrupt", "block_errors")


class _Stalled(Exception):  # noqa: N818 (a condition the soak reports, not a program error)
    """No frame accounted for in ``stall_timeout_s``: the soak stops and counts it as an exception."""


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


def run_soak(frames: int, seed: int = 0, model: str = "", classifier: str = "", source: str = "",
             device: str = "cpu", snr_db: tuple[float, float] = (0.0, 20.0), max_cfo_hz: float = MAX_CFO_HZ,
             max_doppler: float = 0.0,
             clock_ppm: float | None = None, stall_timeout_s: float = 30.0, report_every: int = 1000,
             csv_path: str | Path | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``frames`` frames through one simulated flowgraph, a random channel per frame.

    Returns the sink's and receiver's counters, ``exceptions`` (block errors, a stall, or an
    exception around the run, with messages), accuracy, ``checkpoints`` (counters, RSS and time every
    ``report_every`` accounted frames), RSS at start / at frame ``RSS_REFERENCE_FRAME`` (or half of a
    shorter soak) / at the end, per-SNR-bin results (``by_snr``: the drawn SNR of each frame) and
    ``invariant_ok``: sent == received + lost. ``clock_ppm`` None draws it in +-``MAX_CLOCK_PPM``.
    Ctrl-C stops the run early with what was measured (``interrupted``)."""
    from semjscc.gr.burst_channel import burst_channel
    from semjscc.gr.sim_loopback import SimConfig, sim_loopback
    if frames <= 0:
        raise ValueError("frames must be > 0")
    if not (math.isfinite(stall_timeout_s) and stall_timeout_s > 0):  # 0 would end the soak at once as "stalled"
        raise UsageError(f"--stall-timeout must be a number of seconds > 0, got {stall_timeout_s:g}")
    rng = np.random.default_rng(seed)
    ppm = float(rng.uniform(-MAX_CLOCK_PPM, MAX_CLOCK_PPM)) if clock_ppm is None else float(clock_ppm)
    tmp = None
    if csv_path is None:
        tmp = tempfile.TemporaryDirectory(prefix="semjscc-soak-")
        csv_path = Path(tmp.name) / "frames.csv"
    rss_start = rss_kib()
    ref_frame = min(RSS_REFERENCE_FRAME, max(1, frames // 2))
    cfg = SimConfig(frames=frames, model=model or JSCC_SEMANTIC, seed=seed, classifier=classifier, source=source,
                    loss_timeout_s=1.0, device=device, n_samples=0, epsilon=1.0 + ppm * 1e-6, csv_path=str(csv_path))
    channel = burst_channel(seed=seed + 1, snr_min_db=snr_db[0], snr_max_db=snr_db[1], max_cfo_hz=max_cfo_hz,
                            max_doppler=max_doppler)
    tb = sim_loopback(cfg, channel=channel)
    errors: list[str] = []
    checkpoints: list[dict[str, Any]] = []
    rss_ref: int | None = None
    t0 = time.monotonic()
    next_report = 0

    def poll() -> int:
        """Sample the counters; RSS at the reference frame; a checkpoint every ``report_every``."""
        nonlocal rss_ref, next_report
        s = tb.sink.summary()
        accounted = s["frames_received"] + s["frames_lost"]
        if rss_ref is None and accounted >= ref_frame:
            rss_ref = rss_kib()
        while accounted >= next_report + report_every:
            next_report += report_every
            c = {"frames_accounted": accounted, "frames_received": s["frames_received"],
                 "frames_lost": s["frames_lost"], "header_crc_failures": s["header_crc_failures"],
                 "rss_kib": rss_kib(), "elapsed_s": time.monotonic() - t0}
            checkpoints.append(c)
            if progress:
                progress(f"{accounted}/{frames} frames: {c['frames_received']} received, {c['frames_lost']} lost, "
                         f"rss {c['rss_kib'] // 1024} MiB, {c['elapsed_s']:.0f} s")
        return accounted

    stall = {"accounted": 0, "since": t0}
    summary: dict[str, Any] = {}

    def step() -> None:
        accounted, now = poll(), time.monotonic()
        if accounted != stall["accounted"]:
            stall.update(accounted=accounted, since=now)
        elif now - stall["since"] > stall_timeout_s:
            raise _Stalled(f"stalled: no frame accounted for in {stall_timeout_s:g} s after {accounted} frames")

    def stop(_held: list[int]) -> None:
        tb.stop()
        tb.wait()

    def finalize(outcome: RunOutcome) -> None:
        poll()
        if outcome.error:  # the soak reports a failure rather than losing what it measured
            errors.append(outcome.error.removeprefix("_Stalled: "))
        summary.update(tb.sink.finalize())
        summary.update(tb.rx_stats())

    # Ctrl-C / SIGTERM are held (and end the loop) so that the report is always complete
    outcome = run_until_done(tb.start, tb.sink.done_event.wait, stop, poll=step, finalize=finalize, deliver=False,
                             catch=(Exception,), poll_s=0.2)
    elapsed = outcome.elapsed_s
    held = outcome.held
    interrupted = stopped_by(held[0]) if held else ""  # what stopped the soak early, '' if nothing did
    rss_end = rss_kib()
    if rss_ref is None:
        rss_ref = rss_end
    n_errors = len(errors) + summary["block_errors"]
    if summary["block_errors"]:
        errors.append(f"{summary['block_errors']} exceptions caught inside blocks (see the log)")
    totals = {k: int(summary.get(k) or 0) for k in COUNTERS}
    by_snr, no_channel = _by_snr(Path(csv_path), channel.draws())
    if tmp is not None:
        tmp.cleanup()
    return {**totals, "frames_requested": frames, "seed": seed, "clock_ppm": ppm, "snr_range_db": list(snr_db),
            "max_cfo_hz": max_cfo_hz, "max_doppler": max_doppler, "bursts": channel.bursts,
            "accuracy": summary.get("accuracy"), "accuracy_sent": summary.get("accuracy_sent"),
            "exceptions": n_errors,
            "exception_messages": errors, "interrupted": bool(interrupted), "stopped_by": interrupted or None,
            "done": bool(summary.get("done")),
            "invariant_ok": totals["frames_sent"] == totals["frames_received"] + totals["frames_lost"],
            "rss_kib_start": rss_start, "rss_reference_frame": ref_frame, "rss_kib_reference": rss_ref,
            "rss_kib_end": rss_end, "rss_growth_kib": rss_end - rss_ref,
            "rss_growth_pct": 100.0 * (rss_end - rss_ref) / rss_ref if rss_ref else None,
            "elapsed_s": elapsed, "frames_per_s": totals["frames_sent"] / elapsed if elapsed > 0 else None,
            "checkpoints": checkpoints, "by_snr": by_snr, "frames_before_channel": no_channel}


def _by_snr(csv_path: Path, draws: np.ndarray) -> tuple[list[dict[str, Any]], int]:
    """Frames, received and correct per bin of the SNR each frame was drawn (frame k met burst k),
    and the number of frames that never reached the channel (in flight when a run was stopped)."""
    if not csv_path.is_file():
        return [], 0
    bins: dict[float, dict[str, int]] = {}
    unsent = 0
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            k = int(row["frame"])
            if k >= len(draws):
                unsent += 1
                continue
            lo = math.floor(draws[k, 0] / SNR_BIN_DB) * SNR_BIN_DB
            b = bins.setdefault(lo, {"frames": 0, "received": 0, "correct": 0})
            b["frames"] += 1
            if row["status"] == "received":
                b["received"] += 1
                b["correct"] += row["pred"] != "" and int(row["pred"]) == int(row["label"])
    return [{"snr_db_from": lo, "snr_db_to": lo + SNR_BIN_DB, **b,
             "received_fraction": b["received"] / b["frames"],
             "accuracy": b["correct"] / b["received"] if b["received"] else None} for lo, b in sorted(bins.items())], unsent


GARBAGE_KINDS = ("noise", "loud-noise", "tone", "two-tone", "dc", "zeros", "huge", "nan", "inf", "mixed")


def garbage_samples(kind: str, start: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Samples ``start`` .. ``start + n`` of a signal-free input stream (complex64): unit-power white
    ``noise``, ``loud-noise`` (+60 dB), a CW ``tone`` off any subcarrier, a ``two-tone``, a ``dc``
    offset, ``zeros``, ``huge`` values (1e20), ``nan``, ``inf``, or ``mixed`` (noise with 2 % each of
    NaN, inf and huge samples). Tones keep their phase across calls."""
    t = np.arange(start, start + n)
    if kind in ("noise", "loud-noise", "mixed"):
        x = (rng.standard_normal(2 * n).view(np.complex128) / math.sqrt(2)).astype(np.complex64)
        if kind == "loud-noise":
            x *= 1e3
        elif kind == "mixed":
            idx = rng.integers(0, n, size=(3, max(1, n // 50)))
            x[idx[0]], x[idx[1]], x[idx[2]] = np.nan, np.inf, 1e20
        return x
    if kind == "tone":
        return np.exp(2j * np.pi * 0.0123 * t).astype(np.complex64)
    if kind == "two-tone":
        return (0.5 * np.exp(2j * np.pi * 0.0123 * t) + 0.5 * np.exp(-2j * np.pi * 0.171 * t)).astype(np.complex64)
    fill = {"dc": 0.7 - 0.2j, "zeros": 0.0, "huge": 1e20 + 1e20j, "nan": complex(np.nan, np.nan),
            "inf": complex(np.inf, -np.inf)}
    if kind not in fill:
        raise ValueError(f"kind must be one of {', '.join(GARBAGE_KINDS)}; got {kind!r}")
    return np.full(n, fill[kind], np.complex64)


def poisson_upper(k: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence limit of a Poisson mean after observing ``k`` events (k = 0: about
    3.0 at 95 %, the "rule of three")."""
    def cdf(lam: float) -> float:  # P(X <= k), summed in a numerically safe order
        term = total = math.exp(-lam)
        for i in range(1, k + 1):
            term *= lam / i
            total += term
        return total

    lo, hi = 0.0, 10.0 + 10.0 * k
    for _ in range(100):  # bisection on the decreasing cdf
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 1 - confidence else (lo, mid)
    return hi


def noise_false_frames(n_samples: int = 10_000_000, block: int = 65_536, snr_ref_symbols: int = 512,
                       seed: int = 0, kind: str = "noise") -> dict[str, Any]:
    """Feed ``n_samples`` of signal-free input (``kind``, see :func:`garbage_samples`) to the
    receiver (the numpy one the GNU Radio RX block wraps) in ``block``-sample chunks and count what
    it reports, and any exception (the receiver is then rebuilt and the stream goes on).

    A frame slot is one burst of a ``snr_ref_symbols``-symbol frame (the shipped models' length),
    padding included: the rate is the chance that a slot's worth of input yields a reported frame
    (``false_frames``, header passed or not) or a frame with a passing header CRC
    (``false_header_ok``, what would reach the decoder); ``false_frames_per_slot_upper95`` bounds
    the rate at 95 % confidence."""
    if kind not in GARBAGE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(GARBAGE_KINDS)}; got {kind!r}")
    rng = np.random.default_rng(seed)
    rx = OFDMReceiver(DEFAULT_FRAME_FORMAT)
    slot = DEFAULT_FRAME_FORMAT.burst_samples(snr_ref_symbols)
    reported = header_ok = candidates = validated = 0
    errors: list[str] = []
    t0 = time.monotonic()
    fed = 0
    while fed <= n_samples:
        n = min(block, n_samples - fed)
        try:
            frames = rx.process(garbage_samples(kind, fed, n, rng)) if n else rx.flush()
        except Exception as e:  # counted, never fatal: the point is to find them
            errors.append(f"{type(e).__name__}: {e}".splitlines()[0])
            frames = []
            candidates, validated = candidates + rx.stats.candidates, validated + rx.stats.validated
            rx = OFDMReceiver(DEFAULT_FRAME_FORMAT)
        reported += len(frames)
        header_ok += sum(f.header_ok for f in frames)
        if not n:
            break
        fed += n
    elapsed = time.monotonic() - t0
    slots = n_samples / slot
    return {"kind": kind, "samples": n_samples, "slot_samples": slot, "slots": slots,
            "false_frames": reported, "false_header_ok": header_ok,
            "false_frames_per_slot": reported / slots, "false_header_ok_per_slot": header_ok / slots,
            "false_frames_per_slot_upper95": poisson_upper(reported) / slots,
            "exceptions": len(errors), "exception_messages": errors[:10],
            "sc_candidates": candidates + rx.stats.candidates, "validated": validated + rx.stats.validated,
            "elapsed_s": elapsed, "samples_per_s": n_samples / elapsed if elapsed > 0 else None,
            "noise_std_at_0db": DEFAULT_NUMEROLOGY.noise_std_for_snr(0.0)}
