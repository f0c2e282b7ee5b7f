"""``semjscc bench``: benchmarks, one subcommand each, every one writing JSON and a Markdown table.

A new benchmark (``bench throughput``, ``bench soak``) is one ``_add_<name>`` function that
adds its subparser and handler, listed in ``_BENCHMARKS``; ``_write_report`` gives them all
the same output conventions (JSON with ``meta`` and ``rows``, Markdown on stdout).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from semjscc.commands.common import finite_float, positive_float, positive_int
from semjscc.phy.channel_model import check_cfo_hz, check_doppler
from semjscc.phy.impairments import MAX_CFO_HZ


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks: ONNX Runtime vs torch, ... (JSON + Markdown)",
                       description="Benchmarks that write a JSON report (--json) and print a Markdown table.")
    what = p.add_subparsers(dest="what", metavar="BENCHMARK", required=True)
    for add in _BENCHMARKS:
        add(what)


def _write_report(path: Path, doc: dict[str, Any], table: str, args: argparse.Namespace) -> None:
    # the parsed options, not sys.argv: main() may have been called with another argv
    doc.setdefault("meta", {})["args"] = {k: v if isinstance(v, (int, float, bool, list)) or v is None else str(v)
                                          for k, v in vars(args).items() if k != "func"}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)
    print(table)
    print(f"\nwrote {path}")


# --- bench runtime ---------------------------------------------------------------------------------

def _add_runtime(what: argparse._SubParsersAction) -> None:
    from semjscc.runtime.session import DEFAULT_THREADS
    from semjscc.shipped import JSCC_MSE

    r = what.add_parser("runtime", help="per-stage latency and images/s: ONNX Runtime vs torch eager",
                        description="Latency (median per call) and images/s of the encoder, decoder, classifier and "
                                    "the chain encoder -> AWGN -> decoder -> classifier, in ONNX Runtime and in torch "
                                    "eager, at each --batch, same inputs and threads, calls interleaved. Torch "
                                    "weights come from --jscc-ckpt/--classifier-ckpt, else the checkpoint the card "
                                    "names when still present and unchanged, else random (timing only, no parity).")
    r.add_argument("--json", type=Path, required=True, metavar="PATH", help="report to write")
    r.add_argument("--model", default=JSCC_MSE, metavar="NAME_OR_DIR", help="deep JSCC model (default %(default)s)")
    r.add_argument("--classifier", default=None, metavar="NAME_OR_DIR",
                   help="classifier model (default: the one the model's card names)")
    r.add_argument("--repeat", type=positive_int, default=30, help="timed calls per stage and batch (default %(default)s)")
    r.add_argument("--warmup", type=int, default=3, help="untimed calls first (default %(default)s)")
    r.add_argument("--batch", type=positive_int, nargs="+", default=[1, 32], help="batch sizes (default 1 32)")
    r.add_argument("--threads", type=positive_int, default=DEFAULT_THREADS,
                   help="threads for both ONNX Runtime (intra-op) and torch (default %(default)s, as in a flowgraph)")
    r.add_argument("--device", default="auto", help="ONNX Runtime device: auto, cpu, cuda, cuda:N (torch: CPU)")
    r.add_argument("--snr", type=finite_float, default=10.0, metavar="DB", help="channel SNR (default %(default)s)")
    r.add_argument("--jscc-ckpt", type=Path, default=None, metavar="CKPT", help="torch weights for the JSCC model")
    r.add_argument("--classifier-ckpt", type=Path, default=None, metavar="CKPT", help="torch weights for the classifier")
    r.set_defaults(func=_run_runtime)


def _run_runtime(args: argparse.Namespace) -> int:
    from semjscc.bench.runtime import bench_runtime, markdown_table

    doc = bench_runtime(args.model, classifier=args.classifier, batches=tuple(args.batch), repeat=args.repeat,
                        warmup=args.warmup, threads=args.threads, device=args.device, jscc_ckpt=args.jscc_ckpt,
                        classifier_ckpt=args.classifier_ckpt, snr_db=args.snr)
    _write_report(args.json, doc, markdown_table(doc), args)
    return 0


# --- bench throughput ------------------------------------------------------------------------------

def _add_throughput(what: argparse._SubParsersAction) -> None:
    t = what.add_parser("throughput", help="complex samples/s of the analog OFDM PHY vs GNU Radio's own OFDM chain",
                        description="Runs TX -> channel_model -> RX for the SemJSCC analog-payload OFDM blocks and for "
                                    "GNU Radio's digital.ofdm_tx/ofdm_rx (QPSK, bursts of the same length and padding), "
                                    "one after the other, and reports samples and frames per second of each and their "
                                    "ratio (semjscc.bench.throughput).")
    t.add_argument("--json", type=Path, required=True, metavar="PATH", help="report to write")
    t.add_argument("--frames", type=positive_int, default=2000, help="frames per chain (default %(default)s)")
    t.add_argument("--symbols", type=positive_int, default=512,
                   help="JSCC symbols per frame, at most 2256 (GNU Radio's chain stalls on longer bursts; default "
                        "%(default)s: one 32x32 image at k/n = 1/6)")
    t.add_argument("--snr", type=finite_float, default=20.0, metavar="DB",
                   help="Es/N0 per subcarrier (default %(default)s)")
    t.add_argument("--cfo", type=finite_float, default=0.0, metavar="HZ",
                   help="carrier frequency offset, |HZ| < 46875 (3 subcarriers; default %(default)s)")
    t.add_argument("--seed", type=int, default=1)
    t.set_defaults(func=_run_throughput)


def _run_throughput(args: argparse.Namespace) -> int:
    from semjscc.bench.throughput import run_throughput

    r = run_throughput(n_frames=args.frames, n_symbols=args.symbols, snr_db=args.snr, cfo_hz=args.cfo, seed=args.seed)
    rows = [{"chain": name, "samples_per_s": r[f"{key}_samples_per_s"], "samples_per_cpu_s": r[f"{key}_samples_per_cpu_s"],
             "frames_per_s": r[f"{key}_frames_per_s"], "frames_ok": r[f"{key}_frames_ok"], "frames_sent": args.frames,
             "wall_s": r[f"{key}_wall_s"]}
            for name, key in (("semjscc analog OFDM", "ours"), ("GNU Radio digital OFDM (QPSK)", "gr_ofdm"))]
    doc = {**r, "meta": {"benchmark": "throughput", "ofdm_symbols_per_frame": r["ofdm_symbols_per_frame"],
                         "gr_packet_bytes": r["gr_packet_bytes"]}, "rows": rows}
    lines = ["| chain | Msamples/s | Msamples/CPU-s | frames/s | frames ok | wall s |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {x['chain']} | {x['samples_per_s'] / 1e6:.2f} | {x['samples_per_cpu_s'] / 1e6:.2f} | "
              f"{x['frames_per_s']:.0f} | {x['frames_ok']}/{x['frames_sent']} | {x['wall_s']:.2f} |" for x in rows]
    lines.append(f"\nratio (semjscc / GNU Radio, samples per wall second): {r['ratio']:.2f}; "
                 f"{r['ofdm_symbols_per_frame']} OFDM symbols per frame in both chains")
    _write_report(args.json, doc, "\n".join(lines), args)
    return 0


# --- bench soak ------------------------------------------------------------------------------------

def _add_soak(what: argparse._SubParsersAction) -> None:
    s = what.add_parser("soak", help="long run of the simulated flowgraph under random impairments",
                        description="Sends --frames frames through one long-lived simulated flowgraph (sim_loopback) "
                                    "whose channel draws a new random impairment for every frame: SNR in "
                                    "[--snr-min, --snr-max] dB, CFO within +-(--max-cfo) Hz, a fractional timing "
                                    "offset, 1-8 multipath taps; plus one sample clock offset for the whole run. "
                                    "Reports frames sent/received/lost, header CRC failures, accuracy (overall and "
                                    "per SNR bin), exceptions, and resident memory at start, at frame 1000 and at "
                                    "the end, and checks sent == received + lost (semjscc.soak). Exit status 1 when "
                                    "the invariant fails or anything raised; Ctrl-C writes what was measured.")
    s.add_argument("--json", type=Path, required=True, metavar="PATH", help="report to write")
    s.add_argument("--csv", type=Path, default=None, metavar="PATH", help="per-frame CSV to keep (default: none)")
    s.add_argument("--frames", type=positive_int, default=1000, help="frames in all (default %(default)s)")
    s.add_argument("--seed", type=int, default=0, help="seed of the impairment draws, noise and image order")
    s.add_argument("--snr-min", type=float, default=0.0, metavar="DB", help="lowest SNR drawn (default %(default)s)")
    s.add_argument("--snr-max", type=float, default=20.0, metavar="DB", help="highest SNR drawn (default %(default)s)")
    s.add_argument("--max-cfo", type=float, default=MAX_CFO_HZ, metavar="HZ",
                   help="largest |CFO| drawn, at 1 MS/s (default %(default)g)")
    s.add_argument("--max-doppler", type=float, default=0.0, metavar="F",
                   help="largest normalised Doppler drawn (Doppler frequency / sample rate; 1e-4 = 100 Hz at 1 MS/s): "
                        "each frame's taps then fade within it (default 0: static channels, as before)")
    s.add_argument("--clock-ppm", type=float, default=None, metavar="PPM",
                   help="sample clock offset for the run (default: drawn within +-20 ppm)")
    s.add_argument("--stall-timeout", type=positive_float, default=30.0, metavar="S",
                   help="stop and report when no frame is accounted for in S seconds (default %(default)s)")
    s.add_argument("--model", default="", metavar="NAME_OR_DIR", help="deep JSCC model (default: the semantic one)")
    s.add_argument("--classifier", default="", metavar="NAME_OR_DIR",
                   help="classifier model (default: the one the model's card names)")
    s.add_argument("--source", default="", metavar="PATH", help="images to send (default: the CIFAR-10 test split)")
    s.add_argument("--device", default="cpu", help="ONNX Runtime device (default %(default)s)")
    s.set_defaults(func=_run_soak)


def _run_soak(args: argparse.Namespace) -> int:
    import sys

    from semjscc.bench.soak import run_soak
    from semjscc.errors import UsageError
    from semjscc.stopping import interrupt_for

    if not args.snr_min <= args.snr_max or not all(map(math.isfinite, (args.snr_min, args.snr_max))):
        raise UsageError(f"--snr-min {args.snr_min:g} must be finite and <= --snr-max {args.snr_max:g}")
    if args.max_cfo < 0:
        raise UsageError(f"--max-cfo must be >= 0 (offsets are drawn in +-MAX_CFO), got {args.max_cfo:g}")
    check_cfo_hz(args.max_cfo, "--max-cfo")
    check_doppler(args.max_doppler, "--max-doppler")
    if args.clock_ppm is not None and not abs(args.clock_ppm) <= 1000:
        raise UsageError(f"--clock-ppm must lie within +-1000, got {args.clock_ppm:g}")
    r = run_soak(args.frames, seed=args.seed, model=args.model, classifier=args.classifier, source=args.source,
                 device=args.device, snr_db=(args.snr_min, args.snr_max), max_cfo_hz=args.max_cfo,
                 max_doppler=args.max_doppler,
                 clock_ppm=args.clock_ppm, stall_timeout_s=args.stall_timeout, csv_path=args.csv,
                 progress=lambda m: print(m, file=sys.stderr, flush=True))
    keys = ("frames_sent", "frames_received", "frames_lost", "header_crc_failures", "accuracy", "exceptions",
            "invariant_ok", "rss_kib_start", "rss_kib_reference", "rss_kib_end", "rss_growth_pct", "elapsed_s")
    rows = [{k: r[k] for k in keys}]
    doc = {**r, "meta": {"benchmark": "soak"}, "rows": rows}
    x = rows[0]

    def f(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    table = [
        f"| sent | received | lost | header CRC fail | accuracy | exceptions | sent = rx + lost | RSS MiB start / "
        f"frame {r['rss_reference_frame']} / end | growth | wall s |", "|---:|---:|---:|---:|---:|---:|---|---|---:|---:|",
        f"| {x['frames_sent']} | {x['frames_received']} | {x['frames_lost']} | {x['header_crc_failures']} | "
        f"{f(x['accuracy'], '.3f')} | {x['exceptions']} | {'yes' if x['invariant_ok'] else 'NO'} | "
        f"{x['rss_kib_start'] / 1024:.0f} / {x['rss_kib_reference'] / 1024:.0f} / {x['rss_kib_end'] / 1024:.0f} | "
        f"{f(x['rss_growth_pct'], '+.1f')} % | {x['elapsed_s']:.1f} |", "",
        "| drawn SNR dB | frames | received | accuracy |", "|---|---:|---:|---:|"]
    table += [f"| {b['snr_db_from']:g}-{b['snr_db_to']:g} | {b['frames']} | {b['received_fraction']:.3f} | "
              f"{f(b['accuracy'], '.3f')} |" for b in r["by_snr"]]
    if r["exception_messages"]:
        table += ["", *[f"exception: {m}" for m in r["exception_messages"]]]
    _write_report(args.json, doc, "\n".join(table), args)
    if r["interrupted"]:  # the report is written; the CLI reports the interruption
        raise interrupt_for(signal.SIGTERM if r["stopped_by"] == "SIGTERM" else signal.SIGINT)
    return 0 if r["invariant_ok"] and not r["exceptions"] else 1


# --- bench garbage ---------------------------------------------------------------------------------

def _add_garbage(what: argparse._SubParsersAction) -> None:
    from semjscc.bench.soak import GARBAGE_KINDS

    g = what.add_parser("garbage", help="false frames and exceptions of the receiver on signal-free input",
                        description="Feeds --samples samples of each kind of signal-free input (white noise, loud "
                                    "noise, a tone, two tones, DC, zeros, huge values, NaN, inf, a mix) to the OFDM "
                                    "receiver (the numpy one the GNU Radio RX block wraps) and reports false frames "
                                    "(any reported frame, and frames whose header CRC passed) per frame slot (one "
                                    "burst of a 512-symbol frame) and exceptions. Exit status 1 on any exception.")
    g.add_argument("--json", type=Path, required=True, metavar="PATH", help="report to write")
    g.add_argument("--samples", type=positive_int, default=10_000_000, help="samples per kind (default %(default)s)")
    g.add_argument("--kinds", default=",".join(GARBAGE_KINDS), metavar="K1,K2",
                   help="comma-separated kinds (default: all of %(default)s)")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=_run_garbage)


def _run_garbage(args: argparse.Namespace) -> int:
    from semjscc.bench.soak import GARBAGE_KINDS, noise_false_frames
    from semjscc.errors import UsageError

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in GARBAGE_KINDS]
    if bad or not kinds:
        raise UsageError(f"--kinds {args.kinds!r}: choose from {', '.join(GARBAGE_KINDS)}")
    rows = [noise_false_frames(args.samples, seed=args.seed, kind=k) for k in kinds]
    table = ["| input | samples | frame slots | false frames | per slot | per slot, 95 % upper bound | header CRC passed "
             "| exceptions | wall s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    table += [f"| {r['kind']} | {r['samples']:,} | {r['slots']:,.0f} | {r['false_frames']} | "
              f"{r['false_frames_per_slot']:.2e} | {r['false_frames_per_slot_upper95']:.1e} | {r['false_header_ok']} | "
              f"{r['exceptions']} | {r['elapsed_s']:.1f} |" for r in rows]
    _write_report(args.json, {"meta": {"benchmark": "garbage"}, "rows": rows}, "\n".join(table), args)
    return 1 if any(r["exceptions"] for r in rows) else 0


_BENCHMARKS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_runtime, _add_throughput, _add_soak,
                                                                        _add_garbage)
