"""``semjscc ota``: an over-the-air experiment on a radio (or the simulated one).

For each sweep point (a target SNR, turned into a TX attenuation by the calibration profile, or a TX
attenuation given directly) the same N images are deep-JSCC encoded, framed and sent in cyclic
batches (see :mod:`semjscc.experiments.ota.decode`); every capture is decoded, classified and recorded:

    OUT/frames.csv          one row per frame sent (status received | lost | corrupt)
    OUT/recording.sigmf-*   the received IQ with a capture per batch and an annotation per frame
    OUT/summary.json        the run keys (frames_sent ... snr_est_db) in total and per point,
                            the simulated curve, settings, radio and calibration
    OUT/accuracy_vs_snr.png accuracy and PSNR versus the measured channel SNR beside the simulated curve

Ctrl-C or SIGTERM stops after the batch in progress is committed or dropped whole: everything before
it stays in the CSV and the recording, and the summary and plot are written from it
(``interrupted: true``, ``meta.stopped_by``: ``Ctrl-C`` or ``SIGTERM``); then the interrupt goes on
(``semjscc ota`` exits 130 for Ctrl-C, 143 for SIGTERM).
"""

from __future__ import annotations

import datetime as _dt
import getpass
import hashlib
import logging
import math
import os
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from semjscc import __version__
from semjscc.data.sources import IMAGE_ORDERS, load_images
from semjscc.experiments.ota.decode import CaptureResult, FrameResult, Models, TxFrame, decode_capture, summarize
from semjscc.experiments.ota.recording import RecordingWriter, utc_now
from semjscc.experiments.ota.report import FrameLog, plot, point_summaries, totals, write_json
from semjscc.link.ledger import clean_accuracy as accuracy_before_transmission
from semjscc.phy.channel_model import MAX_CFO_SUBCARRIERS, SAMPLE_RATE
from semjscc.phy.frame import DEFAULT_FRAME_FORMAT, MAX_FRAME_NUMBER
from semjscc.phy.numerology import DEFAULT_NUMEROLOGY
from semjscc.phy.tx import modulate_stream
from semjscc.radio import Radio, RadioConfig, SimAir, open_radio
from semjscc.radio.calib.profile import CalibrationProfile, calibration_dir, profile_path_for
from semjscc.radio.capture import TX_RMS_DBFS, CyclicBatch, build_batch, spectral_offset, tx_scale
from semjscc.radio.limits import TX_ATTEN_RANGE_DB
from semjscc.util.errors import OutputError, SemJSCCError, UsageError
from semjscc.util.paths import default_data_source
from semjscc.util.stopping import RunOutcome, deferred_signals, interrupt_for, run_until_done
from semjscc.zoo import load_classifier, load_jscc_pair
from semjscc.zoo.card import sha256_file
from semjscc.zoo.locate import resolve_classifier
from semjscc.zoo.shipped import JSCC_SEMANTIC

RECORDING = "recording"


@dataclass
class Experiment:
    out: Path
    uri: str = "sim"
    tx_uri: str | None = None  # a second radio transmitting; None: loopback on ``uri``
    freq_hz: float = 2.45e9
    sample_rate: float = SAMPLE_RATE
    rf_bandwidth: float | None = None
    rx_gain_mode: str = "manual"
    rx_gain_db: float = 40.0
    snrs: Sequence[float] | None = None
    attens: Sequence[float] | None = None
    n_images: int = 100
    batch: int = 16
    model: str = JSCC_SEMANTIC
    classifier: str | None = None
    data: str | None = None
    split: str = "test"
    start: int = 0
    shuffle_seed: int | None = None  # the order's seed (None: 0)
    order: str = "stratified"  # semjscc.data.sources.IMAGE_ORDERS: class-balanced by default, so every class is measured
    connect_timeout_s: float | None = None  # None: semjscc.radio.pluto.CONNECT_TIMEOUT_S
    calibration: str = "auto"  # a profile path, "auto" (calibration/<serial>.yaml if present) or "none"
    tx_calibration: str = "auto"
    design_snr_db: float = 10.0  # encoder SNR when sweeping attenuation without a profile
    simulate: bool = True
    seed: int = 0
    progress: bool = True
    overwrite: bool = False  # results already in ``out`` may be replaced (claim_out_dir)

    def validate(self) -> None:
        """Everything that can be checked before a radio is opened or a model loaded: the sweep values
        and the radio settings (the Pluto's ranges; a sample rate the SigMF writer or the radio would
        refuse only after the first capture)."""
        if (self.snrs is None) == (self.attens is None):
            raise UsageError("give either target SNRs (--snr) or TX attenuations (--tx-atten), not both or neither")
        if self.n_images <= 0 or self.batch <= 0:
            raise UsageError("--images and --batch must be > 0")
        for v in self.snrs or ():
            if not math.isfinite(v):
                raise UsageError(f"target SNR {v:g} dB is not a finite number: give --snr values such as 5 10 20")
        if self.order not in IMAGE_ORDERS:
            raise UsageError(f"image order {self.order!r}: expected one of {', '.join(IMAGE_ORDERS)}")
        if self.connect_timeout_s is not None and not (math.isfinite(self.connect_timeout_s)
                                                       and self.connect_timeout_s > 0):
            raise UsageError(f"--connect-timeout {self.connect_timeout_s:g} must be a number of seconds > 0")
        if not math.isfinite(self.design_snr_db):
            raise UsageError(f"--design-snr {self.design_snr_db:g} is not a finite number of dB")
        for a in self.attens or ():
            if not TX_ATTEN_RANGE_DB[0] <= a <= TX_ATTEN_RANGE_DB[1]:
                raise UsageError(f"TX attenuation {a:g} dB is outside 0 .. 89.75 dB")
        RadioConfig(lo_hz=self.freq_hz, sample_rate=self.sample_rate,
                    rf_bandwidth=self.sample_rate if self.rf_bandwidth is None else self.rf_bandwidth,
                    rx_gain_mode=self.rx_gain_mode, rx_gain_db=self.rx_gain_db).validate()

    @property
    def image_seed(self) -> int:
        """The seed of the image order (stratified or shuffled)."""
        return 0 if self.shuffle_seed is None else int(self.shuffle_seed)


def resolve_profile(spec: str | None, radio: Radio, freq_hz: float | None = None,
                    sample_rate: float | None = None) -> tuple[CalibrationProfile | None, str | None]:
    """(profile, its path) for ``auto`` / ``none`` / a path; a profile of another radio is refused, one
    measured at another frequency or rate is used with a warning (:meth:`CalibrationProfile.fit_problems`)."""
    if spec is None or spec == "none":
        return None, None
    serial = radio.info().serial
    if spec == "auto":
        p = profile_path_for(serial, calibration_dir())
        if not p.is_file():
            return None, None
        prof, path = CalibrationProfile.load(p), str(p)
    else:
        prof, path = CalibrationProfile.load(spec), str(spec)
    refuse, warn = prof.fit_problems(serial, prof.center_freq_hz if freq_hz is None else freq_hz,
                                     prof.sample_rate if sample_rate is None else sample_rate)
    if refuse:
        raise UsageError(f"calibration profile {path}: {refuse}")
    for w in warn:
        logging.getLogger("semjscc.ota").warning("calibration profile %s: %s", path, w)
    return prof, path


def load_models(model: str, classifier: str | None) -> Models:
    """The experiment's models; the classifier as :func:`semjscc.zoo.locate.resolve_classifier` picks it."""
    enc, dec, _card = load_jscc_pair(model)
    return Models(enc, dec, load_classifier(resolve_classifier(model, classifier)))


def _model_info(models: Models, model: str) -> dict[str, Any]:
    """Which files decoded the recording (replay checks the hashes before claiming identical results)."""
    info: dict[str, Any] = {"model": model, "n_symbols": models.n_symbols}
    for role in ("encoder", "decoder", "classifier"):
        m = getattr(models, role)
        info[role] = str(m.path)
        info[f"{role}_sha256"] = sha256_file(m.path)
        info[f"{role}_export_id"] = m.card.export_id
    return info


def images_digest(images: np.ndarray) -> str:
    """sha256 of the images sent (uint8 NHWC): replay checks it reloads the same pictures."""
    return hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes()).hexdigest()


def run_experiment(exp: Experiment) -> dict[str, Any]:
    """Run the sweep; returns the summary document (also written to OUT/summary.json)."""
    exp.validate()
    exp.out = claim_out_dir(exp.out, exp.overwrite)  # before the radio: a taken folder costs no air time
    try:
        return _open_and_run(exp)
    finally:
        (Path(exp.out) / CLAIM).unlink(missing_ok=True)  # the folder is free again


def _open_and_run(exp: Experiment) -> dict[str, Any]:
    air = SimAir()
    # first: a missing radio is reported in seconds, before loading anything
    rx = open_radio(exp.uri, air, exp.connect_timeout_s)
    tx = rx
    try:
        tx = open_radio(exp.tx_uri, air, exp.connect_timeout_s) if exp.tx_uri else rx
        images, labels = load_images(exp.data, exp.split, exp.n_images, exp.start, exp.image_seed, exp.order)
        models = load_models(exp.model, exp.classifier)
        return _run(exp, rx, tx, images, labels, models)
    finally:
        if tx is not rx:
            tx.close()
        rx.close()


def _plan_points(exp: Experiment, rx_profile: CalibrationProfile | None, rx_profile_path: str | None,
                 tx_profile: CalibrationProfile | None) -> list[dict[str, Any]]:
    rx_lo = rx_profile.lo_hz(exp.freq_hz) if rx_profile else exp.freq_hz
    tx_lo = tx_profile.lo_hz(exp.freq_hz) if tx_profile else exp.freq_hz
    points = []
    values = list(exp.snrs) if exp.snrs is not None else list(exp.attens or [])
    for i, v in enumerate(values):
        p: dict[str, Any] = {"index": i, "rx_gain_db": exp.rx_gain_db, "rx_lo_hz": round(rx_lo),
                             "tx_lo_hz": round(tx_lo), "note": ""}
        if exp.snrs is not None:
            if rx_profile is None:
                raise UsageError("sweeping target SNRs needs a calibration profile of the receiving radio: run "
                                 f"`semjscc calibrate --uri {exp.uri}` first, pass --calibration PATH, or sweep "
                                 "--tx-atten instead")
            choice = rx_profile.atten_for_snr(float(v), exp.rx_gain_db)
            p.update(target_snr_db=float(v), tx_atten_db=choice.tx_atten_db,
                     predicted_snr_db=choice.predicted_snr_db, reachable=choice.reachable, note=choice.note,
                     design_snr_db=float(v))
        else:
            pred = None
            if rx_profile is not None:
                pts = [q for q in rx_profile.snr_table if q.tx_atten_db == float(v) and q.snr_db is not None]
                pred = pts[0].snr_db if pts else None
            p.update(target_snr_db=None, tx_atten_db=float(v), predicted_snr_db=pred, reachable=True,
                     design_snr_db=exp.design_snr_db if pred is None else float(pred))
        p["flowgraph_args"] = _flowgraph_args(exp, p, rx_profile_path)
        if is_sim_uri(exp.uri):
            p["flowgraph_note"] = SIM_FLOWGRAPH_NOTE
        points.append(p)
    return points


DEFAULT_PLUTO_URI = "ip:192.168.2.1"
SIM_FLOWGRAPH_NOTE = ("simulated run (--uri sim): the Pluto flowgraphs drive a real radio through gr-iio, which "
                      f"cannot open sim; flowgraph_args name the Pluto's default address {DEFAULT_PLUTO_URI}: give "
                      "your radio's URI, and its own calibration profile")


def is_sim_uri(uri: str) -> bool:
    return uri.partition(":")[0] == "sim"


def _flowgraph_args(exp: Experiment, p: dict[str, Any], profile_path: str | None) -> str:
    """The same point as command-line options of flowgraphs/pluto_loopback.py (grcc output)."""
    # (the flowgraphs run the RX in manual gain, the mode the calibration's SNR table is measured in)
    # a simulated radio is no URI gr-iio can open: the options name the Pluto's default address
    # instead (and the point says so in flowgraph_note)
    uri = DEFAULT_PLUTO_URI if is_sim_uri(exp.uri) else exp.uri
    args = [f"--uri {uri}", f"--freq {exp.freq_hz:.0f}", f"--samp-rate {exp.sample_rate:.0f}",
            f"--rf-bw {(exp.rf_bandwidth or exp.sample_rate):.0f}", f"--rx-gain {exp.rx_gain_db:g}",
            f"--model {exp.model}", f"--frames {exp.n_images}", f"--order {exp.order}", f"--seed {exp.image_seed}"]
    if exp.data:
        args.append(f"--source {shlex.quote(str(exp.data))}")
    if profile_path:
        args.append(f"--calibration {shlex.quote(profile_path)}")
    if p.get("target_snr_db") is not None:
        args.append(f"--target-snr {p['target_snr_db']:g}")
    else:
        args.append(f"--tx-atten {p['tx_atten_db']:g}")
    return " ".join(args)


def _experiment_meta(exp: Experiment, rx: Radio, tx: Radio, models: Models, tx_rms: float,
                     profiles: dict[str, str | None], ppm: dict[str, float | None]) -> dict[str, Any]:
    """What the summary and the recording say about the experiment."""
    rx_info = rx.info()
    meta: dict[str, Any] = {
        "command": "semjscc ota", "version": __version__, "date": utc_now(),
        "radio": f"{rx_info.driver} {rx_info.serial}", "rx": rx_info.to_dict(),
        "tx": tx.info().to_dict() if tx is not rx else "same radio (loopback)",
        "model": exp.model, "models": _model_info(models, exp.model),
        "images": {"source": _source_record(exp.data), "split": exp.split, "start": exp.start,
                   "count": exp.n_images, "order": exp.order,
                   "shuffle_seed": None if exp.order == "dataset" else exp.image_seed},
        "freq_hz": exp.freq_hz, "sample_rate": exp.sample_rate, "rf_bandwidth": exp.rf_bandwidth or exp.sample_rate,
        "rx_gain_mode": exp.rx_gain_mode, "tx_rms_dbfs": tx_rms, "batch": exp.batch,
        "calibration": {**profiles, "rx_ppm": ppm["rx"], "tx_ppm": ppm["tx"]},
        "snr_convention": "Es/N0 per subcarrier (receiver estimate from preamble and header)",
        # two SNRs are measured per frame; each key says which (console, JSON and figure alike)
        "snr_keys": {"channel_snr_db": "channel SNR: Es/N0 of the received signal, what a simulation's SNR "
                                       "means and the figure's x axis; compare it with the target",
                     "snr_est_db": "payload SNR after equalisation (pilots and tracking help it): what the "
                                   "decoder is told; higher than the channel SNR at low SNR"},
    }
    for r in (rx, tx):
        if hasattr(r, "describe"):
            meta.setdefault("simulated_truth", {})[r.uri] = r.describe()
    return meta


def _recording_globals(exp: Experiment, rx: Radio, tx: Radio, meta: dict[str, Any], points: list[dict[str, Any]],
                       scale: float) -> dict[str, Any]:
    rx_info, tx_info = rx.info(), tx.info()
    return {
        "core:sample_rate": exp.sample_rate, "core:author": _author(),
        "core:hw": f"{rx_info.model} serial {rx_info.serial} firmware {rx_info.firmware}"
                   + ("" if tx is rx else f"; TX {tx_info.model} serial {tx_info.serial}"),
        "core:recorder": f"gr-semjscc {__version__} (semjscc ota)",
        "core:description": f"deep JSCC images ({exp.model}) over the analog-payload OFDM PHY, received IQ "
                            f"of cyclic batches; full scale 1.0 = 2048 ADC counts",
        "semjscc:experiment": meta, "semjscc:points": points,
        "semjscc:phy": {**DEFAULT_FRAME_FORMAT.numerology.to_dict(), "pad_before": DEFAULT_FRAME_FORMAT.pad_before,
                        "pad_after": DEFAULT_FRAME_FORMAT.pad_after, "tx_scale": scale},
    }


class _Sweep:
    """The batches of an experiment, one per :meth:`step`: transmit, capture, decode, and commit the
    capture to the recording and the CSV together (or not at all)."""

    def __init__(self, exp: Experiment, rx: Radio, tx: Radio, points: list[dict[str, Any]], images: np.ndarray,
                 labels: np.ndarray, models: Models, scale: float, writer: RecordingWriter, log: FrameLog) -> None:
        self.exp, self.rx, self.tx, self.points = exp, rx, tx, points
        self.images, self.labels, self.models, self.scale = images, labels, models, scale
        self.writer, self.log = writer, log
        self.frames_by_point: dict[int, list[FrameResult]] = {}
        self.hints: dict[int, str] = {}  # point -> why a whole batch may have been lost
        self.failures_by_point: dict[int, int] = {}
        self.jobs = [(p, b0) for p in points for b0 in range(0, len(labels), exp.batch)]
        self.done_jobs = 0
        self.frame = 0
        self.symbols: np.ndarray | None = None
        self.bar = tqdm(total=len(points) * len(labels), desc="ota", unit="frame", disable=not exp.progress)

    def finished(self, _wait_s: float) -> bool:
        return self.done_jobs == len(self.jobs)

    def step(self) -> None:
        exp, labels = self.exp, self.labels
        p, b0 = self.jobs[self.done_jobs]
        if b0 == 0:
            self._configure(p)
        idx = np.arange(b0, min(b0 + exp.batch, len(labels)))
        sent = [TxFrame(self.frame + j, int(i), int(labels[i])) for j, i in enumerate(idx)]
        batch = build_batch([self.symbols[i] for i in idx], self.frame, self.scale)
        self.tx.transmit(batch.waveform, cyclic=True)
        iq = self.rx.receive(batch.capture_len)
        self.tx.stop_transmit()
        res = decode_capture(iq, batch.window, sent, self.images, self.models)
        k = p["index"]
        if not any(f.status == "received" for f in res.frames) and k not in self.hints:
            self.hints[k] = _no_frames_hint(iq, exp.sample_rate, self.tx is not self.rx, p)
        with deferred_signals():  # a batch is committed to CSV and recording together, or not at all
            start = self.writer.append(iq, _capture_meta(exp, p, batch, sent, self.rx),
                                       _annotations(res, batch.window, self.models.n_symbols,
                                                    occupied_band_hz(exp.freq_hz, exp.sample_rate)))
            self.log.write(p, res.frames, start)
            self.frames_by_point.setdefault(k, []).extend(res.frames)
            self.failures_by_point[k] = self.failures_by_point.get(k, 0) + len(res.header_failures)
        self.frame += len(idx)
        self.done_jobs += 1
        self.bar.update(len(idx))
        s = summarize(self.frames_by_point[k], self.failures_by_point[k])
        self.bar.set_postfix(point=k, payload_snr=_short(s["snr_est_db"]), acc=_short(s["accuracy"]))

    def _configure(self, p: dict[str, Any]) -> None:
        """Tune the radios for sweep point ``p`` and encode its images at its design SNR."""
        exp = self.exp
        tx_cfg = RadioConfig(lo_hz=p["tx_lo_hz"], sample_rate=exp.sample_rate,
                             rf_bandwidth=exp.rf_bandwidth or exp.sample_rate, tx_atten_db=p["tx_atten_db"],
                             rx_gain_mode=exp.rx_gain_mode, rx_gain_db=exp.rx_gain_db)
        self.tx.configure(tx_cfg)
        if self.tx is not self.rx:
            self.rx.configure(tx_cfg.with_(lo_hz=p["rx_lo_hz"], tx_atten_db=TX_ATTEN_RANGE_DB[1]))
        self.symbols = self.models.encode(self.images, p["design_snr_db"])

    def close(self, _held: list[int] | None = None) -> None:
        with deferred_signals(deliver=False):  # a second Ctrl-C must not cut the files short
            self.bar.close()
            self.writer.close()
            self.log.close()


def _no_frames_hint(iq: np.ndarray, sample_rate: float, two_radios: bool, point: dict[str, Any]) -> str:
    """Why a batch may have been lost entirely, logged once per point: no signal above the noise, a
    signal far off the LO (two radios' oscillators, beyond the receiver's search range), or neither."""
    search = MAX_CFO_SUBCARRIERS * sample_rate / DEFAULT_NUMEROLOGY.fft_len
    offset, excess_db = spectral_offset(iq, sample_rate)
    where = f"no frame found at point {point['index']}"
    if excess_db < 1.0:
        hint = (f"{where}: nothing stands above the noise floor ({excess_db:.1f} dB in the OFDM band): is the "
                f"transmitter on, on the same LO frequency, and the TX attenuation / RX gain / cabling right?")
    elif abs(offset) > search:
        hint = (f"{where}: the signal ({excess_db:.0f} dB above the floor) is centred {offset / 1e3:+.1f} kHz off "
                f"the LO, beyond the receiver's +-{search / 1e3:.1f} kHz search range"
                + ("; the two radios' oscillators differ: calibrate the receiver against the transmitter "
                   "(`semjscc calibrate --uri RX --peer TX`, or on two hosts see docs/hardware.md) and pass "
                   "--calibration/--tx-calibration" if two_radios else "; re-calibrate the radio"))
    else:
        hint = (f"{where} though a signal stands {excess_db:.0f} dB above the floor, {offset / 1e3:+.1f} kHz "
                f"from the LO: check for clipping (lower the RX gain / raise the TX attenuation) and multipath")
    logging.getLogger("semjscc.ota").warning("%s", hint)
    return hint


def _run(exp: Experiment, rx: Radio, tx: Radio, images: np.ndarray, labels: np.ndarray,
         models: Models) -> dict[str, Any]:
    """The sweep (:class:`_Sweep`) in the one run loop; Ctrl-C / SIGTERM or a radio failure stop it after the
    batch in progress, and the summary of what was recorded is written before the stop goes on."""
    out = Path(exp.out)
    out.mkdir(parents=True, exist_ok=True)
    rx_profile, rx_profile_path = resolve_profile(exp.calibration, rx, exp.freq_hz, exp.sample_rate)
    tx_profile, tx_profile_path = ((rx_profile, rx_profile_path) if tx is rx
                                   else resolve_profile(exp.tx_calibration, tx, exp.freq_hz, exp.sample_rate))
    points = _plan_points(exp, rx_profile, rx_profile_path, tx_profile)
    tx_rms = rx_profile.tx_rms_dbfs if rx_profile else TX_RMS_DBFS
    scale = tx_scale(tx_rms)
    meta = _experiment_meta(exp, rx, tx, models, tx_rms, {"rx": rx_profile_path, "tx": tx_profile_path},
                            {"rx": rx_profile.ppm if rx_profile else None, "tx": tx_profile.ppm if tx_profile else None})
    meta["images"]["count"] = len(labels)
    meta["images"]["sha256"] = images_digest(images)
    writer = RecordingWriter(out / RECORDING, _recording_globals(exp, rx, tx, meta, points, scale))
    sweep = _Sweep(exp, rx, tx, points, images, labels, models, scale, writer, FrameLog(out / "frames.csv"))
    doc: dict[str, Any] = {}

    def finalize(outcome: RunOutcome) -> None:
        interrupted = outcome.interrupted or outcome.error is not None
        if interrupted:
            meta["stopped_by"] = outcome.stopped_by or outcome.error
        if sweep.hints:
            meta["hints"] = {str(k): v for k, v in sweep.hints.items()}
        doc.update(_summary(exp, meta, points, sweep.frames_by_point, sweep.failures_by_point, interrupted, images,
                            labels, models, stop_requested=lambda: bool(outcome.held)))

    outcome = run_until_done(lambda: None, sweep.finished, sweep.close, poll=sweep.step, finalize=finalize,
                             catch=(SemJSCCError,), poll_s=0.0)
    if outcome.exception is not None:
        raise outcome.exception  # a radio failure: the summary of what was recorded is written
    if outcome.interrupted:  # a signal that was held and not turned into an exception on delivery
        raise interrupt_for(outcome.held[0])
    return doc


def _summary(exp: Experiment, meta: dict[str, Any], points: list[dict[str, Any]],
             frames_by_point: dict[int, list[FrameResult]], failures_by_point: dict[int, int], interrupted: bool,
             images: np.ndarray, labels: np.ndarray, models: Models,
             stop_requested: Any = lambda: False) -> dict[str, Any]:
    """Summary JSON and plot of what was recorded; the simulated reference curve only for a run that
    finished (a stop during it skips the curve and marks the run interrupted)."""
    out = Path(exp.out)
    per_point = point_summaries(points, frames_by_point, failures_by_point)
    doc: dict[str, Any] = {**totals(frames_by_point, failures_by_point), "points": per_point,
                           "interrupted": interrupted}
    if exp.simulate and not interrupted:
        measured = [p.get("channel_snr_db") or p["snr_est_db"] for p in per_point if p.get("snr_est_db") is not None]
        wanted = [p["target_snr_db"] for p in points if p.get("target_snr_db") is not None]
        curve = simulate_curve(models, images, labels, _sim_grid(measured + wanted), exp.batch, exp.seed,
                               stop_requested)
        if stop_requested():
            doc["interrupted"] = True
            meta["stopped_by"] = "signal during the simulated curve"
        else:
            doc["simulated"] = curve
            doc["clean_accuracy"] = clean_accuracy(models, images, labels)
    doc["meta"] = meta
    doc["files"] = {"csv": "frames.csv", "recording": f"{RECORDING}.sigmf-meta", "plot": "accuracy_vs_snr.png"}
    write_json(out / "summary.json", doc)
    plot(doc, out / "accuracy_vs_snr.png")
    return doc


def _capture_meta(exp: Experiment, p: dict[str, Any], batch: CyclicBatch, sent: list[TxFrame],
                  rx: Radio) -> dict[str, Any]:
    meta = {
        "core:frequency": exp.freq_hz, "core:datetime": utc_now(),
        "semjscc:point": p["index"], "semjscc:target_snr_db": p.get("target_snr_db"),
        "semjscc:tx_atten_db": p["tx_atten_db"], "semjscc:rx_gain_db": exp.rx_gain_db,
        "semjscc:rx_lo_hz": p["rx_lo_hz"], "semjscc:tx_lo_hz": p["tx_lo_hz"],
        "semjscc:design_snr_db": p["design_snr_db"], "semjscc:period": batch.period,
        "semjscc:window": list(batch.window),
        "semjscc:frames": [asdict(s) for s in sent],
    }
    gain = getattr(rx, "last_gain_db", None)
    if exp.rx_gain_mode != "manual" and gain is not None:
        meta["semjscc:agc_gain_db"] = gain
    return meta


def occupied_band_hz(freq_hz: float, sample_rate: float) -> dict[str, float]:
    """SigMF ``core:freq_lower_edge``/``core:freq_upper_edge`` of a frame: the outermost occupied
    subcarriers' edges (the numerology's carriers, scaled to the sample rate) around ``freq_hz``."""
    num = DEFAULT_FRAME_FORMAT.numerology
    carriers = [*num.data_carriers, *num.pilot_carriers]
    spacing = sample_rate / num.fft_len
    return {"core:freq_lower_edge": freq_hz + (min(carriers) - 0.5) * spacing,
            "core:freq_upper_edge": freq_hz + (max(carriers) + 0.5) * spacing}


def _annotations(res: CaptureResult, window: tuple[int, int], n_symbols: int,
                 band: dict[str, float]) -> list[tuple[int, int | None, dict]]:
    """One annotation per frame and header failure, with the signal's frequency edges (viewers such
    as inspectrum draw annotations from them). A lost frame was somewhere in the capture's window (one
    cyclic period holds every frame once): its annotation covers the window."""
    frame_len = DEFAULT_FRAME_FORMAT.frame_samples(n_symbols)
    ann: list[tuple[int, int | None, dict]] = []
    for r in res.frames:
        meta = {**band, "core:label": f"frame {r.frame} {r.status}", "semjscc:frame": r.frame,
                "semjscc:air_frame_number": r.air_frame_number, "semjscc:status": r.status,
                "semjscc:label": r.label, "semjscc:image_index": r.image_index}
        if r.status == "received":
            meta.update({"semjscc:pred": r.pred, "semjscc:snr_est_db": r.snr_est_db, "semjscc:psnr_db": r.psnr_db,
                         "semjscc:cfo_hz": r.cfo_hz})
            meta["core:label"] = f"frame {r.frame}: label {r.label} pred {r.pred}"
        if r.sample_start is None:
            meta["semjscc:position"] = "not found: somewhere in this capture's period"
            ann.append((window[0], window[1] - window[0], meta))
        else:
            ann.append((r.sample_start, frame_len, meta))
    for f in res.header_failures:
        ann.append((f.start, DEFAULT_FRAME_FORMAT.n_overhead * DEFAULT_FRAME_FORMAT.numerology.symbol_len,
                    {**band, "core:label": "header CRC failure", "semjscc:status": "header_crc_failure",
                     "semjscc:snr_est_db": f.snr_est_db}))
    return ann


def _sim_grid(snrs: list[float]) -> list[float]:
    if not snrs:
        return [0.0, 5.0, 10.0, 15.0, 20.0]
    lo, hi = math.floor(min(snrs)) - 2, math.ceil(max(snrs)) + 2
    step = max(1.0, math.ceil((hi - lo) / 15))
    return [float(v) for v in np.arange(lo, hi + 1e-9, step)]


def simulate_curve(models: Models, images: np.ndarray, labels: np.ndarray, snrs: Sequence[float], batch: int,
                   seed: int = 0, stop_requested: Any = lambda: False) -> list[dict[str, Any]]:
    """The same images, models and PHY over an ideal AWGN channel at each SNR (Es/N0 per subcarrier):
    the curve an over-the-air point should sit on if the radio adds nothing but noise."""
    num = DEFAULT_FRAME_FORMAT.numerology
    rows: list[dict[str, Any]] = []
    for snr in snrs:
        if stop_requested():
            break
        rng = np.random.default_rng([seed, round(snr * 100) & 0xFFFFFFFF])
        symbols = models.encode(images, snr)
        frames: list[FrameResult] = []
        failures = 0
        for b0 in range(0, len(labels), batch):
            idx = np.arange(b0, min(b0 + batch, len(labels)))
            wave, _ = modulate_stream([symbols[i] for i in idx], b0 % (MAX_FRAME_NUMBER + 1))
            sigma = num.noise_std_for_snr(snr)
            iq = wave + sigma * (rng.standard_normal(len(wave)) + 1j * rng.standard_normal(len(wave))) / math.sqrt(2)
            sent = [TxFrame(b0 + j, int(i), int(labels[i])) for j, i in enumerate(idx)]
            res = decode_capture(iq.astype(np.complex64), (0, len(wave)), sent, images, models)
            frames += res.frames
            failures += len(res.header_failures)
        s = summarize(frames, failures)
        rows.append({"snr_db": float(snr), **{k: s[k] for k in ("accuracy", "accuracy_sent", "psnr_db", "frames_sent",
                                                                  "frames_received")}})
    return rows


def clean_accuracy(models: Models, images: np.ndarray, labels: np.ndarray) -> float | None:
    return accuracy_before_transmission(models.classifier.run, images, labels)


def _source_record(data: str | None) -> str:
    """Where the images came from, as a path a replay can reload: the default source resolved now
    ($SEMJSCC_DATA or the shared archive), not null."""
    return str(Path(data).resolve() if data and "," not in data else data or default_data_source().resolve())


def _author() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "semjscc"


def _short(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def timestamped_dir(root: str | Path = "results") -> Path:
    base = Path(root) / f"ota-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return next(p for p in (base, *(base.with_name(f"{base.name}-{k}") for k in range(2, 1000))) if not p.exists())


CLAIM = ".ota-run"  # present while a run writes into the folder


def claim_out_dir(out: str | Path, overwrite: bool = False) -> Path:
    """Make ``out`` this run's folder: it must be new or empty (``overwrite`` allows a folder of earlier
    results, whose files this run then replaces) and not claimed by another run at the same time (a
    claim file created exclusively: of two runs started together, one is refused). The run's summary
    step removes the claim."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a results folder")
    if out.is_dir() and not overwrite:
        held = sorted(p.name for p in out.iterdir())
        if held:
            raise UsageError(f"--out {out} already holds {', '.join(held[:4])}{', ...' if len(held) > 4 else ''}: give a "
                             f"new folder, or --overwrite to replace those results")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        if not overwrite:
            raise UsageError(f"--out {out}: another ota run is writing there (or one was killed: {out / CLAIM}); "
                             f"give a new folder, or --overwrite") from None
        fd = os.open(out / CLAIM, os.O_WRONLY | os.O_TRUNC)
    except OSError as e:
        raise OutputError(f"--out {out} cannot be created ({e.strerror})", e.errno, e.strerror) from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
    except OSError as e:  # a full disk: nothing could be recorded there
        (out / CLAIM).unlink(missing_ok=True)
        raise OutputError(f"--out {out}: not written ({e.strerror}); nothing was recorded", e.errno, e.strerror) from None
    return out
