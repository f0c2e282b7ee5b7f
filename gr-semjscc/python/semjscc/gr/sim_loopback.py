"""The simulated over-the-air link as a top block: the engine of ``semjscc run sim_loopback`` and
``semjscc demo``.

    image_source -> jscc_tx -+----------------------------+-> selector -> channels.channel_model -> jscc_rx -> metrics_sink
                             +-> selective_fading_model -+
    (the sink also takes the source's PDUs, and acks back to it)

It is built from the same blocks as ``flowgraphs/sim_loopback.grc`` (a test compares the two):
the link halves ``jscc_tx`` / ``jscc_rx`` (:mod:`semjscc.gr.link_tx`, :mod:`semjscc.gr.link_rx`)
and GNU Radio's channel blocks with the parameters of :mod:`semjscc.phy.channel_model`. With
``doppler`` 0 the selector passes the transmitter's stream as it is (the static channel model
applies the multipath); above 0 it takes GNU Radio's frequency-selective fading model, which then
carries the multipath profile as fading taps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from gnuradio import blocks, channels, gr

from semjscc.gr.batched import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_S
from semjscc.gr.image_source import DEFAULT_MAX_IN_FLIGHT, image_source
from semjscc.gr.link_rx import jscc_rx
from semjscc.gr.link_tx import jscc_tx
from semjscc.gr.metrics_sink import metrics_sink
from semjscc.gr.params import midamble_interval
from semjscc.phy.channel_model import (
    check_cfo_hz,
    check_doppler,
    fading_delays,
    fading_input,
    fading_mags,
    fading_ntaps,
    freq_offset,
    multipath_taps,
    noise_voltage,
    static_taps,
)
from semjscc.phy.symbols import check_snr_db
from semjscc.util.errors import ModelError, UsageError
from semjscc.util.stopping import RunOutcome, run_until_done
from semjscc.zoo.shipped import JSCC_SEMANTIC

# The top block's edges, (block, port, block, port) by attribute name, and the GRC block each
# attribute is: the same graph as flowgraphs/sim_loopback.grc (a test compares the two).
WIRING = (("src", "pdus", "link_tx", "in"), ("src", "pdus", "sink", "sent"), ("link_tx", "0", "select", "0"),
          ("link_tx", "0", "fading", "0"), ("fading", "0", "select", "1"), ("select", "0", "channel", "0"),
          ("channel", "0", "link_rx", "0"), ("link_rx", "out", "sink", "received"), ("sink", "ack", "src", "ack"))
GRC_BLOCKS = {"src": "semjscc_image_source", "link_tx": "semjscc_jscc_tx", "fading": "channels_selective_fading_model",
              "select": "blocks_selector", "channel": "channels_channel_model", "link_rx": "semjscc_jscc_rx",
              "sink": "semjscc_metrics_sink"}
FADING_SINUSOIDS = 8  # selective_fading_model's N (its GRC default)


class _Chain(gr.hier_block2):
    """Complex stream blocks in series, as one block (the channel model's clock, then a custom channel)."""

    def __init__(self, *blocks: gr.basic_block) -> None:
        sig = gr.io_signature(1, 1, gr.sizeof_gr_complex)
        gr.hier_block2.__init__(self, "semjscc_channel_chain", sig, sig)
        self.blocks = blocks
        self.connect(self, *blocks, self)


@dataclass
class SimConfig:
    """Parameters of the simulated link (the .grc's parameters carry the same names)."""

    snr_db: float = 10.0
    cfo_hz: float = 0.0
    frames: int = 200
    model: str = JSCC_SEMANTIC
    classifier: str = ""  # '' = the receiver the model's card names
    decoder_model: str = ""  # '' = the model's own decoder
    multipath: str = "none"
    doppler: float = 0.0  # normalised (Doppler Hz / sample rate): > 0 makes the multipath taps fade
    midamble: int = 0  # payload symbols between mid-ambles (0 = none)
    epsilon: float = 1.0
    seed: int = 0  # channel noise, and the order images are drawn in
    source: str = ""  # '' = CIFAR-10 test split
    start: int = 0
    snr_mode: str = "estimate"
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT  # the cap of the source's adaptive window
    adaptive_window: bool = True
    max_batch: int = DEFAULT_MAX_BATCH  # frames per model call at most (1: every frame on its own)
    max_wait_s: float = DEFAULT_MAX_WAIT_S  # the model blocks' latency cap for filling a batch
    sample_rate_limit: float = 0.0  # > 0: a blocks.throttle after the TX at this rate (a radio's sample clock)
    frames_per_second: float = 0.0
    loss_timeout_s: float = 2.0
    device: str = "auto"
    json_path: str = ""
    csv_path: str = ""
    n_samples: int = 16
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> SimConfig:
        if self.frames <= 0:
            raise UsageError(f"frames must be > 0, got {self.frames}")
        check_snr_db(self.snr_db, "--snr")
        check_cfo_hz(self.cfo_hz, "--cfo")
        check_doppler(self.doppler, "--doppler")
        midamble_interval("sim_loopback", self.midamble)
        if not 0.9 < self.epsilon < 1.1:
            raise UsageError(f"epsilon is a sample clock ratio near 1.0, got {self.epsilon}")
        if not (math.isfinite(self.sample_rate_limit) and self.sample_rate_limit >= 0):
            raise UsageError(f"the sample rate limit must be >= 0 samples/s (0 = none), got {self.sample_rate_limit}")
        if not (math.isfinite(self.max_wait_s) and self.max_wait_s >= 0):
            raise UsageError(f"max_wait_s must be >= 0 s, got {self.max_wait_s}")
        multipath_taps(self.multipath)
        return self

    def params(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("extra", "n_samples")}
        d.update(self.extra)
        d["noise_voltage"] = noise_voltage(self.snr_db)
        d["snr_convention"] = "Es/N0 per subcarrier"
        return d


class sim_loopback(gr.top_block):  # noqa: N801 (GNU Radio block naming)
    """The link of the module docstring; every block is an attribute (GNU Radio holds Python blocks
    only through their C++ wrappers)."""

    def __init__(self, cfg: SimConfig, channel: gr.basic_block | None = None) -> None:
        """``channel``: a complex-in, complex-out block (e.g. ``burst_channel``) put after the
        channel model, whose noise, CFO and multipath are then switched off (only ``epsilon`` stays)."""
        gr.top_block.__init__(self, "semjscc sim_loopback")
        self.cfg = cfg.check()
        # models first: a bad model is reported before the dataset is decoded
        self.link_tx = jscc_tx(cfg.model, snr_db=cfg.snr_db, device=cfg.device, max_batch=cfg.max_batch,
                               max_wait_s=cfg.max_wait_s, midamble=cfg.midamble)
        self.link_rx = jscc_rx(cfg.decoder_model or cfg.model, classifier=cfg.classifier, snr_mode=cfg.snr_mode,
                               snr_db=cfg.snr_db, device=cfg.device, max_batch=cfg.max_batch, max_wait_s=cfg.max_wait_s)
        if self.link_rx.n_symbols != self.link_tx.n_symbols:
            raise ModelError(f"encoder {self.link_tx.enc.encoder.path} sends {self.link_tx.n_symbols} symbols per "
                             f"frame but decoder {self.link_rx.dec.decoder.path} expects {self.link_rx.n_symbols}: use "
                             f"one model for both")
        self.classifier_ref = self.link_rx.classifier_ref
        self.src = image_source(source=cfg.source, count=cfg.frames, start=cfg.start, shuffle_seed=cfg.seed,
                                loop=True, max_frames=cfg.frames, frames_per_second=cfg.frames_per_second,
                                max_in_flight=cfg.max_in_flight, adaptive_window=cfg.adaptive_window)
        params = cfg.params()
        params["classifier"] = self.classifier_ref  # resolved: what actually judged the images
        params["model_path"] = str(self.link_tx.enc.encoder.path.parent)
        self.sink = metrics_sink(json_path=cfg.json_path, csv_path=cfg.csv_path, loss_timeout_s=cfg.loss_timeout_s,
                                 n_samples=cfg.n_samples, run_info=params)
        doppler = cfg.doppler if channel is None else 0.0
        self.fading = channels.selective_fading_model(FADING_SINUSOIDS, doppler, False, 4.0, cfg.seed,
                                                      fading_delays(cfg.multipath), fading_mags(cfg.multipath),
                                                      fading_ntaps(cfg.multipath))
        self.select = blocks.selector(gr.sizeof_gr_complex, fading_input(doppler), 0)
        if channel is None:
            model = channels.channel_model(noise_voltage(cfg.snr_db), freq_offset(cfg.cfo_hz), cfg.epsilon,
                                           static_taps(cfg.multipath, doppler), cfg.seed)
            parts: list[gr.basic_block] = [model]
        else:  # only the sample clock stays in the channel model
            parts = [channels.channel_model(0.0, 0.0, cfg.epsilon, [1.0], cfg.seed), channel]
        # a radio's sample clock: the channel sees samples at this rate at most (tags pass untouched)
        self.throttle = blocks.throttle(gr.sizeof_gr_complex, cfg.sample_rate_limit, True) if cfg.sample_rate_limit else None
        if self.throttle is not None:
            parts.insert(0, self.throttle)
        self.channel = parts[0] if len(parts) == 1 else _Chain(*parts)
        for a, pa, b, pb in WIRING:
            src, dst = getattr(self, a), getattr(self, b)
            if pa.isdigit():
                self.connect((src, int(pa)), (dst, int(pb)))
            else:
                self.msg_connect(src, pa, dst, pb)

    def rx_stats(self) -> dict[str, int]:
        stats = self.link_rx.stats()
        stats["block_errors"] += self.link_tx.enc.errors
        return stats


def run_sim(cfg: SimConfig, timeout_s: float | None = None, progress: Any = None, progress_interval_s: float = 5.0,
            channel: gr.basic_block | None = None,
            monitor: Callable[[sim_loopback], object] | None = None) -> tuple[dict[str, Any], sim_loopback]:
    """Run the link until every frame is accounted for (or ``timeout_s`` passes: frames still in
    flight then count as lost and ``done`` is False). Returns (summary, the finished top block).

    ``progress``: called with the sink's summary as soon as the first frame is accounted for, then
    at most every ``progress_interval_s`` while frames keep being accounted for. ``monitor``: called
    with the running top block every ~50 ms (benchmarks sample backlogs with it).

    Ctrl-C / SIGTERM / SIGHUP (once the flowgraph is built) stop the flowgraph the same way: frames
    in flight count as lost, the JSON is written with ``interrupted: true`` and ``stopped_by``, and
    then the signal is delivered (``KeyboardInterrupt`` under ``semjscc``)."""
    tb = sim_loopback(cfg, channel=channel)
    shown = {"accounted": 0, "at": -math.inf}
    summary: dict[str, Any] = {}

    def poll() -> None:
        if monitor is not None:
            monitor(tb)
        if progress is None:
            return
        s = tb.sink.summary()
        accounted = s["frames_received"] + s["frames_lost"]
        now = time.monotonic()
        if accounted > shown["accounted"] and now - shown["at"] >= progress_interval_s:
            shown.update(accounted=accounted, at=now)
            progress(s)

    def stop(_held: list[int]) -> None:
        tb.stop()  # everything is accounted for: no need to wait for "done" to travel down the chain
        tb.wait()

    def finalize(outcome: RunOutcome) -> None:
        final = tb.sink.summary()
        if progress is not None and final["frames_received"] + final["frames_lost"] > shown["accounted"]:
            progress(final)  # the last word: every frame accounted for, not the count of 5 s ago
        extra: dict[str, Any] = {**tb.rx_stats(), "interrupted": outcome.interrupted}
        if outcome.interrupted:
            extra["stopped_by"] = outcome.stopped_by
        summary.update(tb.sink.finalize())
        summary.update(extra)
        tb.sink.write_json(extra=extra)

    run_until_done(tb.start, tb.sink.done_event.wait, stop, poll=poll, timeout_s=timeout_s, finalize=finalize)
    return summary, tb

