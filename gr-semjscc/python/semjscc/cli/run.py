"""``semjscc run``: run a flowgraph headless to completion and write its metrics JSON.

Ctrl-C or SIGTERM stops the flowgraph (in-process, or the generated .grc script, which is passed
the signal) and still writes the JSON: frames in flight count as lost, so frames_sent ==
frames_received + frames_lost, with ``interrupted: true`` and ``stopped_by``; the summary is
printed and the exit status is 130 (Ctrl-C) or 143 (SIGTERM)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from semjscc.cli.common import cfo_hz, nonnegative_int, positive_float, positive_int, snr_db
from semjscc.util.errors import DataError, OutputError, UsageError
from semjscc.util.files import output_kind, write_json
from semjscc.util.stats import wilson_rate

ENGINE = "sim_loopback"  # shipped flowgraph run in-process by semjscc.gr.sim_loopback
# CLI option -> GRC parameter of the shipped flowgraphs
_GRC_PARAMS = {"snr": "snr_db", "cfo": "cfo_hz", "frames": "frames", "model": "model", "classifier": "classifier",
               "multipath": "multipath", "doppler": "doppler", "midamble": "midamble", "epsilon": "epsilon",
               "seed": "seed", "source": "source", "device": "device", "json": "json_path", "csv": "csv_path"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a flowgraph headless to completion and write its metrics (JSON)",
                       description="Run FLOWGRAPH until N frames are accounted for and write frames sent/received/"
                                   "lost, header CRC failures, accuracy, PSNR and estimated SNR (+ the parameters) "
                                   "to --json. FLOWGRAPH: 'sim_loopback' (the simulated link, run in-process), the "
                                   "name of another shipped flowgraph, or a path to a .grc (compiled with grcc and "
                                   "run with this Python; its GRC parameters snr_db, cfo_hz, frames, ... take the "
                                   "options below). Ctrl-C or SIGTERM stops the run and writes what was measured "
                                   "(interrupted: true; exit status 130 or 143).")
    p.add_argument("flowgraph", metavar="FLOWGRAPH", help="sim_loopback, a shipped flowgraph name, or a .grc path")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="metrics JSON to write (default: none; the summary is printed either way)")
    p.add_argument("--csv", type=Path, default=None, metavar="PATH", help="per-frame CSV to write")
    p.add_argument("--snr", type=snr_db, default=None, metavar="DB", help="channel SNR, Es/N0 per subcarrier (default 10)")
    p.add_argument("--cfo", type=cfo_hz, default=None, metavar="HZ", help="carrier frequency offset (default 0)")
    p.add_argument("--frames", type=positive_int, default=None, metavar="N", help="frames to send (default 200)")
    p.add_argument("--model", default=None, metavar="NAME_OR_DIR", help="deep JSCC model (default jscc-semantic-kn6)")
    p.add_argument("--classifier", default=None, metavar="NAME_OR_DIR",
                   help="classifier (default: the one the model's card names)")
    p.add_argument("--multipath", default=None, metavar="SPEC",
                   help="none, two-ray, indoor, or complex taps '1,0.3j,0.1' (default none)")
    p.add_argument("--doppler", type=float, default=None, metavar="F",
                   help="normalised Doppler (Doppler frequency / sample rate, e.g. 1e-4 = 100 Hz at 1 MS/s): the "
                        "multipath taps fade in GNU Radio's selective fading model (Rayleigh; 'none' = flat "
                        "fading); default 0, the static channel")
    p.add_argument("--midamble", type=int, default=None, metavar="N",
                   help="a known mid-amble symbol after every N payload symbols (8, 4 or 2; default 0 = none)")
    p.add_argument("--epsilon", type=float, default=None, help="sample clock ratio (default 1.0)")
    p.add_argument("--seed", type=nonnegative_int, default=None, help="channel noise and image order seed (default 0)")
    p.add_argument("--source", default=None, metavar="PATH", help="images (default: the CIFAR-10 test split)")
    p.add_argument("--device", default=None, help="ONNX Runtime device: auto, cpu, cuda, cuda:N (default auto)")
    p.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE", dest="set_params",
                   help="any other GRC parameter of a .grc flowgraph, by its id (repeatable; default none), e.g. "
                        "--set codec=webp --set code_rate=1/2 for flowgraphs/sim_separate.grc")
    p.add_argument("--timeout", type=positive_float, default=900.0, metavar="S", help="give up after S seconds (default %(default)s)")
    p.set_defaults(func=run)


def _set_params(items: list[str]) -> dict[str, str]:
    """``--set`` items as {GRC parameter id: value}."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise UsageError(f"--set {item!r}: expected PARAM=VALUE with a GRC parameter id, e.g. --set codec=webp")
        if name in _GRC_PARAMS.values():
            option = next(k for k, v in _GRC_PARAMS.items() if v == name)
            raise UsageError(f"--set {name}=...: use --{option} for that parameter")
        out[name] = value
    return out


def run(args: argparse.Namespace) -> int:
    # The flowgraph writes its metrics into a scratch folder; what it measured reaches --json only
    # when the run finished (or was stopped by the user), through the one writer that replaces a
    # regular file atomically and writes a device or a pipe (--json /dev/stdout) in place. A failed
    # or timed-out run leaves --json as it was.
    out = args.json
    if out is not None:
        output_kind(out)  # a directory or a block device: refused before anything runs
    with tempfile.TemporaryDirectory(prefix="semjscc-run-") as tmp:
        args.json = Path(tmp) / "run.json"
        return _run(args, out)


def _run(args: argparse.Namespace, out: Path | None) -> int:
    try:
        if args.flowgraph in (ENGINE, f"{ENGINE}.grc") and not Path(args.flowgraph).is_file():
            doc = _run_engine(args)
        else:
            doc = _run_grc(args)
    except KeyboardInterrupt as e:
        _report_interrupted(args, e, out)
        raise  # semjscc's main: "interrupted", exit 130 (Ctrl-C) or 143 (SIGTERM)
    print_summary(doc)
    if not doc.get("done", True):
        raise UsageError(f"stopped after --timeout {args.timeout:g} s with frames still in flight (the summary above "
                         f"counts them as lost): an incomplete run"
                         + (f", so {out} was left as it was" if out is not None else "")
                         + "; raise --timeout or send fewer --frames")
    if out is not None:
        write_json(out, doc)
        print(f"wrote {out}")
    if doc.get("csv_error"):  # the metrics sink gave up its CSV (a full disk) and carried on
        raise OutputError(f"the per-frame CSV stopped: {doc['csv_error']}"
                          + (f" (the summary is in {out})" if out is not None else ""))
    mismatched = int(doc.get("length_mismatch") or 0)
    if mismatched:  # every such frame is lost whatever the channel: a set-up error, not a measurement
        raise UsageError(f"{mismatched} of {doc['frames_sent']} frames carried another payload length than the "
                         f"receiver's model takes (length_mismatch): the transmitter uses another model; give both "
                         f"ends the same model" + (f" ({out} was written)" if out is not None else ""))
    return 0


def _report_interrupted(args: argparse.Namespace, e: KeyboardInterrupt, out: Path | None) -> None:
    """After Ctrl-C / SIGTERM: the summary of what this run measured, if it got as far as writing it,
    and that summary delivered to ``out``."""
    from semjscc.util.stopping import deferred_signals, stopped_by

    with deferred_signals(deliver=False):  # a second Ctrl-C must not cut the summary short
        path = Path(args.json)
        if not path.is_file():
            print(f"semjscc run: stopped by {stopped_by(e)} before the flowgraph ran: nothing measured"
                  + (f", no {out} written" if out is not None else ""), file=sys.stderr)
            return
        try:
            doc = json.loads(path.read_text())
            print_summary(doc)
        except (OSError, ValueError, KeyError, TypeError):
            print(f"semjscc run: stopped by {stopped_by(e)}; what it measured is unreadable", file=sys.stderr)
            return
        if out is not None:
            try:
                write_json(out, doc)
            except (OSError, DataError) as err:
                print(f"semjscc run: {out} not written: {err}", file=sys.stderr)
                return
            print(f"wrote {out} (stopped by {stopped_by(e)}: frames still in flight are counted as lost)")


def _given(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in _GRC_PARAMS if getattr(args, k) is not None}


def _run_engine(args: argparse.Namespace) -> dict[str, Any]:
    from semjscc.gr.sim_loopback import SimConfig, run_sim

    if args.set_params:
        raise UsageError(f"--set applies to .grc flowgraphs; the in-process {ENGINE} takes the options above "
                         f"(or run flowgraphs/{ENGINE}.grc with --set)")
    given = _given(args)
    cfg = SimConfig(**{_GRC_PARAMS[k]: str(v) if isinstance(v, Path) else v for k, v in given.items()})
    cfg.extra = {"flowgraph": ENGINE}
    run_sim(cfg, timeout_s=args.timeout, progress=_progress(cfg.frames))
    return json.loads(Path(args.json).read_text())


def _progress(frames: int) -> Any:
    def show(s: dict[str, Any]) -> None:
        accounted = s["frames_received"] + s["frames_lost"]
        print(f"semjscc run: {accounted}/{frames} frames accounted for ({s['frames_received']} received, "
              f"{s['frames_lost']} lost), {s['elapsed_s']:.0f} s", file=sys.stderr, flush=True)

    return show


def _run_grc(args: argparse.Namespace) -> dict[str, Any]:
    """Compile (cached) and run a .grc; its metrics sink writes a scratch JSON next to ``--json``, which
    replaces ``--json`` only once the run has produced it: a failed run never destroys an earlier
    result."""
    from semjscc.grc.run import compiled_script, find_grc, grc_options, run_script, script_options
    from semjscc.util.stopping import deferred_signals, stopped_by

    grc = find_grc(args.flowgraph)
    if grc_options(grc).get("generate_options") != "no_gui":
        raise UsageError(f"{grc} is a GUI flowgraph: open it with `semjscc grc {grc}` (semjscc run needs a no_gui one)")
    given = _given(args)
    extra = _set_params(args.set_params)
    script = compiled_script(grc)
    accepted = script_options(script)
    target = Path(args.json)  # run() made it a scratch file of its own
    scratch = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    cli = []
    for key, value in given.items():
        opt = "--" + _GRC_PARAMS[key].replace("_", "-")
        if opt not in accepted:
            if key == "json":
                raise UsageError(f"{grc} has no json_path parameter, so its metrics cannot be collected: add a "
                                 f"SemJSCC Metrics Sink whose JSON File is a json_path parameter")
            raise UsageError(f"{grc} has no {_GRC_PARAMS[key]} parameter (it takes {', '.join(sorted(accepted))})")
        cli.append(f"{opt}={scratch if key == 'json' else value}")  # '=': a value may start with '-'
    for name, value in extra.items():
        opt = "--" + name.replace("_", "-")
        if opt not in accepted:
            raise UsageError(f"{grc} has no parameter {name!r} (--set takes one of: "
                             f"{', '.join(sorted(o[2:].replace('-', '_') for o in accepted))})")
        cli.append(f"{opt}={value}")
    given.update(extra)
    try:
        try:
            run_script(script, cli, args.timeout)
        except KeyboardInterrupt as e:
            with deferred_signals(deliver=False):  # run_script held signals until the script had stopped
                if scratch.is_file():  # its metrics sink wrote what it had measured when it stopped
                    _annotate(scratch, grc, given, {"interrupted": True, "stopped_by": stopped_by(e)})
                    scratch.replace(target)
            raise
        if not scratch.is_file():
            raise UsageError(f"{grc} finished without writing its metrics JSON (--json left as it was)")
        doc = _annotate(scratch, grc, given, {"interrupted": False})
        scratch.replace(target)
        return doc
    finally:
        scratch.unlink(missing_ok=True)  # a failed run leaves no partial file, and --json as it was


def _annotate(path: Path, grc: Path, given: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Add the flowgraph, the options given and ``extra`` to the JSON the flowgraph wrote."""
    doc = json.loads(Path(path).read_text())
    doc.update(extra)
    doc["flowgraph"] = str(grc.resolve())
    doc["cli"] = {k: str(v) for k, v in given.items()}
    params = doc.get("params", {})
    if "json_path" in params:
        params["json_path"] = str(given.get("json", params["json_path"]))
    model = given.get("model") or params.get("model")
    if model:  # the directory the name resolved to: what the run used (a name never means a folder here)
        from semjscc.util.errors import ModelError
        from semjscc.zoo.locate import resolve_model_dir

        with contextlib.suppress(ModelError):
            params["model_path"] = str(resolve_model_dir(str(model)))
    write_json(path, doc)
    return doc


def print_summary(doc: dict[str, Any]) -> None:
    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    print(f"frames: {doc['frames_sent']} sent, {doc['frames_received']} received, {doc['frames_lost']} lost "
          f"({doc['header_crc_failures']} header CRC failures)")
    acc, n = doc.get("accuracy"), int(doc.get("frames_received") or 0)
    interval = ""
    if acc is not None and n:
        lo, hi = wilson_rate(acc, n)
        interval = f" [{lo:.3f}, {hi:.3f}] (95 %, n = {n})"
    print(f"accuracy {fmt(acc, '.3f')}{interval} over received frames, {fmt(doc.get('accuracy_sent'), '.3f')} "
          f"counting lost frames as wrong; PSNR {fmt(doc.get('psnr_db'), '.2f')} dB; estimated SNR "
          f"{fmt(doc.get('snr_est_db'), '.2f')} dB")
