"""Whole-chain throughput: images in, classes out, through one ``sim_loopback`` flowgraph.

    image_source -> jscc_encoder -> OFDM TX -> [throttle] -> channel_model -> OFDM RX -> jscc_decoder
                 -> classifier -> metrics_sink (acks pace the source)

:func:`run_chain` sends ``frames`` images as fast as the machine goes and reports complex samples
per second through the channel, frames per second, latency (source to sink) percentiles, the CPU
the process used (cores = CPU seconds per wall second) and where it went (per block, per frame),
the batch sizes the model blocks reached, the source's window, the models and the ONNX Runtime
session options.

:func:`run_realtime` puts GNU Radio's ``blocks.throttle`` after the TX at ``rate`` samples/s (what a
radio's sample clock does) and sends ``duration_s`` worth of frames back to back. Every second it
records how many samples passed the throttle and the backlogs: frames sent but not yet through the
throttle (the TX queue, bounded by the window) and frames through the throttle but not yet
accounted for by the sink (the receive side's backlog). The chain keeps up when the throttle is
fed at its rate (a radio would otherwise underrun), the receive backlog does not grow, and no frame
is lost.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

import numpy as np

from semjscc.gr.batched import DEFAULT_MAX_WAIT_S
from semjscc.gr.image_source import DEFAULT_MAX_IN_FLIGHT
from semjscc.phy.frame import DEFAULT_FRAME_FORMAT
from semjscc.util.errors import UsageError
from semjscc.zoo.card import ModelCard
from semjscc.zoo.locate import resolve_model_dir
from semjscc.zoo.shipped import JSCC_SEMANTIC


def samples_per_frame(model: str) -> int:
    """Channel samples of one frame of ``model`` (burst plus padding)."""
    card = ModelCard.load(resolve_model_dir(model))
    return DEFAULT_FRAME_FORMAT.burst_samples(int(card.n_symbols or 0))


def _config(frames: int, snr_db: float, model: str, classifier: str, seed: int, device: str, source: str,
            max_in_flight: int, adaptive_window: bool, max_wait_s: float, rate: float = 0.0) -> Any:
    from semjscc.gr.sim_loopback import SimConfig

    return SimConfig(snr_db=snr_db, frames=frames, model=model, classifier=classifier, seed=seed, device=device,
                     source=source, max_in_flight=max_in_flight, adaptive_window=adaptive_window,
                     max_wait_s=max_wait_s, sample_rate_limit=rate, n_samples=0)


def _block_report(tb: Any) -> dict[str, Any]:
    """Per-block CPU per frame and batches, the models and their ONNX Runtime settings."""
    blocks = {"encoder": tb.link_tx.enc, "decoder": tb.link_rx.dec, "classifier": tb.link_rx.clf}
    out: dict[str, Any] = {name: b.batch_stats() for name, b in blocks.items()}
    rx = tb.link_rx.rx
    out["ofdm_rx"] = {"frames": rx.frames_ok + rx.frames_failed,
                      "cpu_ms_per_frame": 1e3 * rx.cpu_s / max(rx.frames_ok + rx.frames_failed, 1)}
    sessions = {"encoder": tb.link_tx.enc.encoder, "decoder": tb.link_rx.dec.decoder, "classifier": tb.link_rx.clf.model}
    s = tb.sink.summary()
    # where frames went: the sink's loss causes and the receiver's own counters
    losses = {k: s[k] for k in ("lost_by_gap", "lost_by_timeout", "lost_at_stop", "corrupt", "late_frames",
                                "header_crc_failures")}
    losses.update({f"rx_{k}": v for k, v in vars(rx.rx.stats).items()})
    return {"blocks": out, "models": {name: x.settings() for name, x in sessions.items()}, "losses": losses}


class _Clock:
    """Process CPU and wall time from the first call on (the flowgraph started), for utilisation."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.c0 = 0.0

    def __call__(self, _tb: Any = None) -> None:
        if self.t0 is None:
            self.t0, self.c0 = time.monotonic(), time.process_time()

    def cores(self) -> float | None:
        if self.t0 is None:
            return None
        wall = time.monotonic() - self.t0
        return (time.process_time() - self.c0) / wall if wall > 0 else None


def run_chain(frames: int = 10_000, snr_db: float = 10.0, model: str = JSCC_SEMANTIC, classifier: str = "",
              seed: int = 0, device: str = "cpu", source: str = "", max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
              adaptive_window: bool = True, max_wait_s: float = DEFAULT_MAX_WAIT_S,
              timeout_s: float = 3600.0) -> dict[str, Any]:
    """The whole chain as fast as it goes (see the module docstring)."""
    from semjscc.gr.sim_loopback import run_sim

    if frames < 1:
        raise UsageError(f"--frames must be >= 1, got {frames}")
    cfg = _config(frames, snr_db, model, classifier, seed, device, source, max_in_flight, adaptive_window, max_wait_s)
    clock = _Clock()
    summary, tb = run_sim(cfg, timeout_s=timeout_s, monitor=clock)
    cores = clock.cores()
    wall = summary["elapsed_s"]
    samples = tb.link_rx.rx.samples_in
    lat = tb.sink.latency_percentiles((50.0, 99.0))
    return {
        "frames_sent": summary["frames_sent"], "frames_received": summary["frames_received"],
        "frames_lost": summary["frames_lost"], "accuracy": summary["accuracy"], "psnr_db": summary["psnr_db"],
        "done": summary["done"], "wall_s": wall, "samples": samples,
        "samples_per_s": samples / wall if wall else None,
        "frames_per_s": summary["frames_received"] / wall if wall else None,
        "latency_p50_s": lat["p50"], "latency_p99_s": lat["p99"], "cpu_cores": cores,
        "cpu_ms_per_frame": 1e3 * cores * wall / summary["frames_sent"] if cores and summary["frames_sent"] else None,
        "window": tb.src.window_stats(), "model": model, "classifier": tb.classifier_ref, "snr_db": snr_db,
        "samples_per_frame": samples_per_frame(model), **_block_report(tb),
    }


def run_realtime(duration_s: float = 60.0, rate: float = 1e6, snr_db: float = 20.0, model: str = JSCC_SEMANTIC,
                 classifier: str = "", seed: int = 0, device: str = "cpu", source: str = "",
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT, adaptive_window: bool = True,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S, sample_every_s: float = 1.0) -> dict[str, Any]:
    """Frames back to back through a throttle at ``rate`` for ``duration_s`` of air time (module docstring)."""
    from semjscc.gr.sim_loopback import run_sim

    if not (duration_s > 0 and math.isfinite(duration_s)) or not (rate > 0 and math.isfinite(rate)):
        raise UsageError(f"the real-time check needs a duration > 0 s and a rate > 0 samples/s, got {duration_s}, {rate}")
    spf = samples_per_frame(model)
    frames = max(1, int(duration_s * rate / spf))
    cfg = _config(frames, snr_db, model, classifier, seed, device, source, max_in_flight, adaptive_window,
                  max_wait_s, rate=rate)
    series: list[dict[str, Any]] = []
    clock = _Clock()

    def sample(tb: Any, last: bool = False) -> None:
        clock()
        now = time.monotonic()
        if series and now - series[-1]["_t"] < sample_every_s and not last:
            return
        s = tb.sink.summary()
        through = int(tb.throttle.nitems_written(0))
        row = {"_t": now, "t_s": now - (clock.t0 or now), "frames_sent": tb.src.frames_sent,
               "samples_through_throttle": through, "frames_accounted": s["frames_received"] + s["frames_lost"],
               "window": tb.src.window.size}
        # the throttle also passes what the transmitter puts between bursts (padding, idle fill), so its
        # count in frames can run ahead of the frames sent: a frame is on the air at most once it was sent
        on_air = min(float(row["frames_sent"]), through / spf)
        row["tx_backlog_frames"] = row["frames_sent"] - on_air  # sent, not yet on the air
        row["rx_backlog_frames"] = on_air - row["frames_accounted"]  # on the air, not yet accounted for
        series.append(row)

    summary, tb = run_sim(cfg, timeout_s=duration_s * 3 + 60, monitor=sample)
    sample(tb, last=True)
    for a, b in itertools.pairwise(series):
        b["throttle_rate"] = (b["samples_through_throttle"] - a["samples_through_throttle"]) / (b["_t"] - a["_t"])
    for r in series:
        del r["_t"]
    # the steady part: after the first 2 s (the pipe filling), before the source's last frame
    steady = [r for r in series[1:] if r["t_s"] >= 2.0 and r["frames_sent"] < frames]
    rates = [r["throttle_rate"] for r in steady if "throttle_rate" in r]
    backlog = [r["rx_backlog_frames"] for r in steady]
    slope = float(np.polyfit([r["t_s"] for r in steady], backlog, 1)[0]) if len(steady) >= 3 else None
    lat = tb.sink.latency_percentiles((50.0, 99.0))
    air_s = frames * spf / rate
    return {
        "rate": rate, "duration_s": duration_s, "air_time_s": air_s, "frames_sent": summary["frames_sent"],
        "frames_received": summary["frames_received"], "frames_lost": summary["frames_lost"],
        "header_crc_failures": summary["header_crc_failures"], "accuracy": summary["accuracy"],
        "wall_s": summary["elapsed_s"], "wall_over_air": summary["elapsed_s"] / air_s,
        "steady_rate_mean": float(np.mean(rates)) if rates else None,
        "steady_rate_min": float(np.min(rates)) if rates else None,
        "rx_backlog_max_frames": float(np.max(backlog)) if backlog else None,
        "rx_backlog_slope_frames_per_s": slope,
        "latency_p50_s": lat["p50"], "latency_p99_s": lat["p99"], "cpu_cores": clock.cores(),
        "samples_per_frame": spf, "snr_db": snr_db, "model": model, "window": tb.src.window_stats(),
        "series": series, **_block_report(tb),
    }
