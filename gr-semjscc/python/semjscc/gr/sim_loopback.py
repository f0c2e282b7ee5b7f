"""The simulated over-the-air link as a top block: the engine of ``semjscc run sim_loopback`` and
``semjscc demo``, and the helpers the shipped ``flowgraphs/sim_loopback*.grc`` use.

    image_source -> jscc_encoder -> ofdm_tx -> channels.channel_model -> ofdm_rx
        -> jscc_decoder -> classifier -> metrics_sink (+ sent images from the source, ack back)

It builds the same chain as ``flowgraphs/sim_loopback.grc`` (same blocks, parameters and
defaults). Channel: GNU Radio's ``channel_model`` with

* noise voltage ``noise_voltage(snr_db)``: the project's SNR is Es/N0 per subcarrier
  (:mod:`semjscc.phy.numerology`). The TX's IFFT is unitary and every data carrier has Es = 1, so
  per-sample noise variance = per-subcarrier noise variance, and the noise std is
  ``noise_std_for_snr(snr_db)`` with signal power 1. (The time-domain power inside a burst is
  ``time_signal_power()`` = 52/64 of that, since 12 of the 64 bins are empty: scaling the noise
  by it would make the link 0.9 dB better than the SNR it claims.)
* frequency offset ``cfo_hz / sample_rate`` (normalised to the sample rate, 1 MS/s);
* ``epsilon``: sample clock ratio (1.0 = none);
* taps: a multipath profile (:data:`MULTIPATH_PROFILES`) or a list of complex taps, normalised to
  unit energy so the mean per-subcarrier SNR stays ``snr_db``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from gnuradio import channels, gr

from semjscc.errors import ModelError, UsageError
from semjscc.gr.classifier import classifier
from semjscc.gr.image_source import image_source
from semjscc.gr.jscc_decoder import jscc_decoder
from semjscc.gr.jscc_encoder import jscc_encoder
from semjscc.gr.metrics_sink import metrics_sink
from semjscc.gr.rx import ofdm_rx
from semjscc.gr.tx import ofdm_tx
from semjscc.phy.numerology import DEFAULT_NUMEROLOGY
from semjscc.phy.rx import CFO_SEARCH_HZ
from semjscc.shipped import CLASSIFIER, JSCC_SEMANTIC

SAMPLE_RATE = DEFAULT_NUMEROLOGY.sample_rate
# Tap delays in samples (1 us at 1 MS/s), all well inside the 16-sample cyclic prefix.
MULTIPATH_PROFILES: dict[str, tuple[complex, ...]] = {
    "none": (1.0,),
    "two-ray": (1.0, 0, 0, 0.5 * complex(math.cos(2.0), math.sin(2.0))),
    # exponential power delay profile (about 2 us rms), fixed pseudo-random phases
    "indoor": tuple(math.exp(-d / 2.5) * complex(math.cos(1.7 * d * d + 0.4), math.sin(1.7 * d * d + 0.4))
                    for d in range(8)),
}


def multipath_taps(spec: str) -> list[complex]:
    """Channel taps for a profile name or a comma-separated list of complex numbers ("1, 0.3j"),
    normalised to unit energy. Taps beyond the cyclic prefix are refused (inter-symbol interference
    the receiver is not built for)."""
    text = str(spec).strip() or "none"
    if text in MULTIPATH_PROFILES:
        taps = [complex(t) for t in MULTIPATH_PROFILES[text]]
    else:
        try:
            taps = [complex(t.strip().replace(" ", "")) for t in text.split(",") if t.strip()]
        except ValueError:
            raise UsageError(f"multipath {spec!r}: give a profile ({', '.join(MULTIPATH_PROFILES)}) or complex taps "
                             f"like '1, 0.3j, 0.1'") from None
    energy = sum(abs(t) ** 2 for t in taps)
    if not taps or energy == 0 or not math.isfinite(energy):
        raise UsageError(f"multipath {spec!r}: the taps have no energy")
    if len(taps) > DEFAULT_NUMEROLOGY.cp_len:
        raise UsageError(f"multipath {spec!r}: {len(taps)} taps exceed the {DEFAULT_NUMEROLOGY.cp_len}-sample cyclic prefix")
    return [t / math.sqrt(energy) for t in taps]


def noise_voltage(snr_db: float) -> float:
    """channel_model noise voltage for ``snr_db`` Es/N0 per subcarrier (see the module docstring)."""
    return DEFAULT_NUMEROLOGY.noise_std_for_snr(float(snr_db))


def freq_offset(cfo_hz: float) -> float:
    """channel_model frequency offset: the CFO normalised to the sample rate."""
    return float(cfo_hz) / SAMPLE_RATE


def resolve_classifier(model: str, classifier_ref: str) -> str:
    """The classifier to use: ``classifier_ref`` if given, else the one the deep JSCC model's card
    names, else the shipped one."""
    if classifier_ref:
        return classifier_ref
    from semjscc.modelcard import CARD_FILE, ModelCard
    from semjscc.runtime import classifier_dir_for, resolve_model_dir

    directory = resolve_model_dir(model)
    if (directory / CARD_FILE).is_file():
        found = classifier_dir_for(directory, ModelCard.load(directory))
        if found is not None:
            return str(found)
    return CLASSIFIER


@dataclass
class SimConfig:
    """Parameters of the simulated link (the .grc's parameters carry the same names)."""

    snr_db: float = 10.0
    cfo_hz: float = 0.0
    frames: int = 200
    model: str = JSCC_SEMANTIC
    classifier: str = ""  # '' = the one the model's card names
    decoder_model: str = ""  # '' = the model's own decoder
    multipath: str = "none"
    epsilon: float = 1.0
    seed: int = 0  # channel noise, and the order images are drawn in
    source: str = ""  # '' = CIFAR-10 test split
    start: int = 0
    snr_mode: str = "estimate"
    max_in_flight: int = 32
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
        if not math.isfinite(self.snr_db):
            raise UsageError("the SNR must be a finite number of dB")
        if abs(self.cfo_hz) >= CFO_SEARCH_HZ:
            raise UsageError(f"|cfo| must stay below 3 subcarriers ({CFO_SEARCH_HZ:.0f} Hz),"
                             f" the receiver's search range; got {self.cfo_hz:g} Hz")
        if not 0.9 < self.epsilon < 1.1:
            raise UsageError(f"epsilon is a sample clock ratio near 1.0, got {self.epsilon}")
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
        self.classifier_ref = resolve_classifier(cfg.model, cfg.classifier)
        # models first: a bad model is reported before the dataset is decoded
        self.enc = jscc_encoder(cfg.model, snr_db=cfg.snr_db, device=cfg.device)
        self.dec = jscc_decoder(cfg.decoder_model or cfg.model, snr_mode=cfg.snr_mode, snr_db=cfg.snr_db,
                                device=cfg.device)
        if self.dec.n_symbols != self.enc.n_symbols:
            raise ModelError(f"encoder {self.enc.encoder.path} sends {self.enc.n_symbols} symbols per frame but decoder "
                             f"{self.dec.decoder.path} expects {self.dec.n_symbols}: use one model for both")
        self.clf = classifier(self.classifier_ref, device=cfg.device)
        self.src = image_source(source=cfg.source, count=cfg.frames, start=cfg.start, shuffle_seed=cfg.seed,
                                loop=True, max_frames=cfg.frames, frames_per_second=cfg.frames_per_second,
                                max_in_flight=cfg.max_in_flight)
        params = cfg.params()
        params["classifier"] = self.classifier_ref
        self.sink = metrics_sink(json_path=cfg.json_path, csv_path=cfg.csv_path, loss_timeout_s=cfg.loss_timeout_s,
                                 n_samples=cfg.n_samples, run_info=params)
        self.tx = ofdm_tx(input_type="pdu")
        self.rx = ofdm_rx()
        if channel is None:
            self.channel = channels.channel_model(noise_voltage(cfg.snr_db), freq_offset(cfg.cfo_hz), cfg.epsilon,
                                                  multipath_taps(cfg.multipath), cfg.seed)
            self.connect(self.tx, self.channel, self.rx)
        else:
            self.clock = channels.channel_model(0.0, 0.0, cfg.epsilon, [1.0], cfg.seed)
            self.channel = channel
            self.connect(self.tx, self.clock, self.channel, self.rx)
        self.msg_connect(self.src, "pdus", self.enc, "in")
        self.msg_connect(self.src, "pdus", self.sink, "sent")
        self.msg_connect(self.enc, "out", self.tx, "pdus")
        self.msg_connect(self.rx, "pdus", self.dec, "in")
        self.msg_connect(self.dec, "out", self.clf, "in")
        self.msg_connect(self.clf, "out", self.sink, "received")
        self.msg_connect(self.sink, "ack", self.src, "ack")

    def rx_stats(self) -> dict[str, int]:
        return {"rx_frames_ok": self.rx.frames_ok, "rx_frames_failed": self.rx.frames_failed,
                "decoder_corrupt": self.dec.corrupt, "block_errors": self.enc.errors + self.dec.errors + self.clf.errors}


def run_sim(cfg: SimConfig, timeout_s: float | None = None, progress: Any = None,
            progress_interval_s: float = 5.0) -> tuple[dict[str, Any], sim_loopback]:
    """Run the link until every frame is accounted for (or ``timeout_s`` passes: frames still in
    flight then count as lost and ``done`` is False). Returns (summary, the finished top block).

    ``progress``: called with the sink's summary as soon as the first frame is accounted for, then
    at most every ``progress_interval_s`` while frames keep being accounted for.

    Ctrl-C / SIGTERM (once the flowgraph is built) stop the flowgraph the same way: frames in flight
    count as lost, the JSON is written with ``interrupted: true`` and ``stopped_by``, and then the
    signal is delivered (``KeyboardInterrupt`` under ``semjscc``). Signals that arrive while it
    wraps up are held until the JSON is on disk."""
    from semjscc.stopping import deferred_signals, stopped_by

    tb = sim_loopback(cfg)
    deadline = time.monotonic() + timeout_s if timeout_s else math.inf
    with deferred_signals() as held:
        tb.start()
        try:
            shown, last = 0, -math.inf
            while not held and not tb.sink.done_event.wait(0.05) and time.monotonic() < deadline:
                if progress is None:
                    continue
                s = tb.sink.summary()
                accounted = s["frames_received"] + s["frames_lost"]
                if accounted > shown and time.monotonic() - last >= progress_interval_s:
                    shown, last = accounted, time.monotonic()
                    progress(s)
        finally:
            tb.stop()  # everything is accounted for: no need to wait for "done" to travel down the chain
            tb.wait()
        extra: dict[str, Any] = {**tb.rx_stats(), "interrupted": bool(held)}
        if held:
            extra["stopped_by"] = stopped_by(held[0])
        summary = tb.sink.finalize()
        summary.update(extra)
        tb.sink.write_json(extra=extra)
    return summary, tb
