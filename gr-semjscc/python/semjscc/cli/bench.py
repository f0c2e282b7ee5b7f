"""``semjscc bench``: benchmarks, one subcommand each, every one writing JSON and a Markdown table.

A new benchmark (``bench throughput``, ``bench soak``) is one ``_add_<name>`` function that
adds its subparser and handler, listed in ``_BENCHMARKS``; ``_write_report`` gives them all
the same output conventions (JSON with ``meta`` and ``rows``, Markdown on stdout).
"""

from __future__ import annotations

import argparse
import math
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from semjscc.cli.common import cfo_hz, nonnegative_int, positive_float, positive_int, snr_db
from semjscc.phy.channel_model import CFO_SEARCH_HZ, check_cfo_hz, check_doppler
from semjscc.phy.impairments import MAX_CFO_HZ
from semjscc.util.files import write_json


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
    write_json(path, doc)
    print(table)
    print(f"\nwrote {path}")


# --- bench runtime ---------------------------------------------------------------------------------

def _add_runtime(what: argparse._SubParsersAction) -> None:
    from semjscc.zoo.session import DEFAULT_THREADS
    from semjscc.zoo.shipped import JSCC_MSE

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
    r.add_argument("--warmup", type=nonnegative_int, default=3, help="untimed calls first (default %(default)s)")
    r.add_argument("--batch", type=positive_int, nargs="+", default=[1, 32], help="batch sizes (default 1 32)")
    r.add_argument("--threads", type=positive_int, default=DEFAULT_THREADS,
                   help="threads for both ONNX Runtime (intra-op) and torch (default %(default)s, as in a flowgraph)")
    r.add_argument("--device", default="auto",
                   help="ONNX Runtime device: auto, cpu, cuda, cuda:N; torch runs on the CPU (default %(default)s)")
    r.add_argument("--snr", type=snr_db, default=10.0, metavar="DB", help="channel SNR (default %(default)s)")
    r.add_argument("--jscc-ckpt", type=Path, default=None, metavar="CHECKPOINT", help="torch weights for the JSCC model")
    r.add_argument("--classifier-ckpt", type=Path, default=None, metavar="CHECKPOINT", help="torch weights for the classifier")
    r.add_argument("--session-sweep", action="store_true",
                   help="instead of torch: time each ONNX Runtime model under every session option set (intra-op "
                        "threads 1/2, inter-op 2 in parallel execution, graph optimisation all/extended/basic), "
                        "calls interleaved; the figures behind the defaults")
    r.set_defaults(func=_run_runtime)


def _run_runtime(args: argparse.Namespace) -> int:
    from semjscc.experiments.bench.runtime import (
        bench_runtime,
        bench_session_options,
        markdown_table,
        session_options_table,
    )

    if args.session_sweep:
        doc = bench_session_options(args.model, classifier=args.classifier, batches=tuple(args.batch),
                                    repeat=args.repeat, warmup=args.warmup, device=args.device)
        _write_report(args.json, doc, session_options_table(doc), args)
        return 0

    doc = bench_runtime(args.model, classifier=args.classifier, batches=tuple(args.batch), repeat=args.repeat,
                        warmup=args.warmup, threads=args.threads, device=args.device, jscc_ckpt=args.jscc_ckpt,
                        classifier_ckpt=args.classifier_ckpt, snr_db=args.snr)
    _write_report(args.json, doc, markdown_table(doc), args)
    return 0


# --- bench throughput ------------------------------------------------------------------------------

def _add_throughput(what: argparse._SubParsersAction) -> None:
    from semjscc.gr.batched import DEFAULT_MAX_WAIT_S
    from semjscc.gr.image_source import DEFAULT_MAX_IN_FLIGHT
    from semjscc.zoo.shipped import JSCC_SEMANTIC

    t = what.add_parser("throughput", help="complex samples/s of the analog OFDM PHY vs GNU Radio's own OFDM chain, "
                                           "and of the whole link (--chain full)",
                        description="--chain phy: runs TX -> channel_model -> RX for the SemJSCC analog-payload OFDM "
                                    "blocks and for GNU Radio's digital.ofdm_tx/ofdm_rx (QPSK, bursts of the same "
                                    "length and padding), one after the other, and reports samples and frames per "
                                    "second of each and their ratio (semjscc.experiments.bench.throughput). --chain full: that, "
                                    "then the whole link in one flowgraph (image source -> JSCC encoder -> OFDM TX -> "
                                    "channel -> OFDM RX -> decoder -> classifier -> metrics sink) as fast as it goes: "
                                    "samples/s, frames/s, latency p50/p99, CPU used and per block; then the real-time "
                                    "check: a blocks.throttle at --rate after the TX for --realtime-s seconds of frames "
                                    "back to back, with the backlogs every second (semjscc.experiments.bench.chain).")
    t.add_argument("--json", type=Path, required=True, metavar="PATH", help="report to write")
    t.add_argument("--chain", choices=("phy", "full"), default="phy",
                   help="phy: the PHY against GNU Radio's; full: also the whole link and the real-time check "
                        "(default %(default)s)")
    t.add_argument("--frames", type=positive_int, default=None,
                   help="frames per chain (default 2000; with --chain full 10000 for the whole link, 3000 for the "
                        "PHY comparison)")
    t.add_argument("--symbols", type=positive_int, default=512,
                   help="JSCC symbols per frame, at most 2256 (GNU Radio's chain stalls on longer bursts; default "
                        "%(default)s: one 32x32 image at k/n = 1/6)")
    t.add_argument("--snr", type=snr_db, default=20.0, metavar="DB",
                   help="Es/N0 per subcarrier (default %(default)s)")
    t.add_argument("--cfo", type=cfo_hz, default=0.0, metavar="HZ",
                   help=f"carrier frequency offset, |HZ| < {CFO_SEARCH_HZ:.0f} (the receiver's search range; "
                        "default %(default)s)")
    t.add_argument("--seed", type=nonnegative_int, default=1, help="channel noise and payloads (default %(default)s)")
    full = t.add_argument_group("--chain full")
    full.add_argument("--model", default=JSCC_SEMANTIC, metavar="NAME_OR_DIR", help="deep JSCC model (default %(default)s)")
    full.add_argument("--classifier", default="", metavar="NAME_OR_DIR",
                      help="classifier (default: the one the model's card names)")
    full.add_argument("--source", default="", metavar="PATH", help="images (default: the CIFAR-10 test split)")
    full.add_argument("--device", default="cpu", help="ONNX Runtime device (default %(default)s)")
    full.add_argument("--realtime-s", type=float, default=60.0, metavar="S",
                      help="air time of the throttled real-time check, 0 = skip it (default %(default)s)")
    full.add_argument("--rate", type=positive_float, default=1e6, metavar="SPS",
                      help="the throttle's sample rate (default %(default)g: the PHY's)")
    full.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT, metavar="N",
                      help="the image source's window cap (default %(default)s)")
    full.add_argument("--fixed-window", action="store_true", help="a window of --max-in-flight frames, not adaptive")
    full.add_argument("--max-wait", type=float, default=DEFAULT_MAX_WAIT_S, metavar="S",
                      help="the model blocks' batch wait cap, 0 = never wait (default %(default)s)")
    t.set_defaults(func=_run_throughput)


def _phy_rows(r: dict[str, Any], frames: int) -> list[dict[str, Any]]:
    return [{"chain": name, "samples_per_s": r[f"{key}_samples_per_s"], "samples_per_cpu_s": r[f"{key}_samples_per_cpu_s"],
             "frames_per_s": r[f"{key}_frames_per_s"], "frames_ok": r[f"{key}_frames_ok"], "frames_sent": frames,
             "wall_s": r[f"{key}_wall_s"]}
            for name, key in (("semjscc analog OFDM", "ours"), ("GNU Radio digital OFDM (QPSK)", "gr_ofdm"))]


def _run_throughput(args: argparse.Namespace) -> int:
    from semjscc.experiments.bench.throughput import run_throughput

    if args.chain == "full":
        return _run_full_chain(args)
    frames = args.frames or 2000
    r = run_throughput(n_frames=frames, n_symbols=args.symbols, snr_db=args.snr, cfo_hz=args.cfo, seed=args.seed)
    rows = _phy_rows(r, frames)
    doc = {**r, "meta": {"benchmark": "throughput", "ofdm_symbols_per_frame": r["ofdm_symbols_per_frame"],
                         "gr_packet_bytes": r["gr_packet_bytes"]}, "rows": rows}
    lines = ["| chain | Msamples/s | Msamples/CPU-s | frames/s | frames ok | wall s |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {x['chain']} | {x['samples_per_s'] / 1e6:.2f} | {x['samples_per_cpu_s'] / 1e6:.2f} | "
              f"{x['frames_per_s']:.0f} | {x['frames_ok']}/{x['frames_sent']} | {x['wall_s']:.2f} |" for x in rows]
    lines.append(f"\nratio (semjscc / GNU Radio, samples per wall second): {r['ratio']:.2f}; "
                 f"{r['ofdm_symbols_per_frame']} OFDM symbols per frame in both chains")
    _write_report(args.json, doc, "\n".join(lines), args)
    return 0


def _run_full_chain(args: argparse.Namespace) -> int:
    from semjscc.experiments.bench.chain import run_chain, run_realtime
    from semjscc.experiments.bench.runtime import machine_info
    from semjscc.experiments.bench.throughput import run_throughput
    from semjscc.util.errors import UsageError

    if not (math.isfinite(args.realtime_s) and args.realtime_s >= 0):
        raise UsageError(f"--realtime-s must be >= 0 seconds (0 = skip the real-time check), got {args.realtime_s:g}")
    if not (math.isfinite(args.max_wait) and 0 <= args.max_wait <= 1):
        raise UsageError(f"--max-wait must lie in 0..1 s, got {args.max_wait:g}")
    window = {"max_in_flight": args.max_in_flight, "adaptive_window": not args.fixed_window, "max_wait_s": args.max_wait}
    chain_kw = {"model": args.model, "classifier": args.classifier, "seed": args.seed, "device": args.device,
                "source": args.source, **window}
    load_before = machine_info().get("loadavg_1_5_15")
    phy_frames = min(args.frames, 3000) if args.frames else 3000
    phy = run_throughput(n_frames=phy_frames, snr_db=args.snr, cfo_hz=args.cfo, seed=args.seed)
    chain = run_chain(frames=args.frames or 10_000, snr_db=args.snr, **chain_kw)
    rt = run_realtime(duration_s=args.realtime_s, rate=args.rate, snr_db=args.snr, **chain_kw) if args.realtime_s else None
    rows = _phy_rows(phy, phy_frames)
    for x in rows:
        x["chain"] += " (PHY only)"
    label = f"whole chain ({Path(chain['model']).name} + {Path(chain['classifier']).name})"
    rows.append({"chain": label, "samples_per_s": chain["samples_per_s"], "frames_per_s": chain["frames_per_s"],
                 "latency_p50_s": chain["latency_p50_s"], "latency_p99_s": chain["latency_p99_s"],
                 "cpu_cores": chain["cpu_cores"], "frames_ok": chain["frames_received"],
                 "frames_sent": chain["frames_sent"], "wall_s": chain["wall_s"]})
    if rt is not None:
        rows.append({"chain": f"whole chain, throttled to {args.rate / 1e6:g} MS/s", "samples_per_s": rt["steady_rate_mean"],
                     "frames_per_s": rt["frames_received"] / rt["wall_s"] if rt["wall_s"] else None,
                     "latency_p50_s": rt["latency_p50_s"], "latency_p99_s": rt["latency_p99_s"],
                     "cpu_cores": rt["cpu_cores"], "frames_ok": rt["frames_received"], "frames_sent": rt["frames_sent"],
                     "wall_s": rt["wall_s"]})
    meta = {"benchmark": "throughput-full", **machine_info(), "loadavg_before": load_before,
            "ofdm_symbols_per_frame": phy["ofdm_symbols_per_frame"], "gr_packet_bytes": phy["gr_packet_bytes"],
            "models": chain["models"], **window}
    doc = {"meta": meta, "rows": rows, "phy": phy, "chain": chain, "realtime": rt}
    _write_report(args.json, doc, _full_table(rows, phy, chain, rt), args)
    return 0


def _losses(losses: dict[str, int]) -> str:
    """The loss causes that are not zero, e.g. 'lost_by_timeout 3, late_frames 3', or 'none'."""
    keys = ("lost_by_gap", "lost_by_timeout", "lost_at_stop", "corrupt", "late_frames", "header_crc_failures",
            "rx_cut_short")
    return ", ".join(f"{k} {losses[k]}" for k in keys if losses.get(k)) or "no loss causes"


def _full_table(rows: list[dict[str, Any]], phy: dict[str, Any], chain: dict[str, Any], rt: dict[str, Any] | None) -> str:
    def f(v: Any, spec: str, scale: float = 1.0) -> str:
        return "-" if v is None else format(v * scale, spec)

    lines = ["| chain | Msamples/s | frames/s | latency p50 / p99 ms | CPU cores | frames ok | wall s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {x['chain']} | {f(x['samples_per_s'], '.2f', 1e-6)} | {f(x['frames_per_s'], '.0f')} | "
              f"{f(x.get('latency_p50_s'), '.0f', 1e3)} / {f(x.get('latency_p99_s'), '.0f', 1e3)} | "
              f"{f(x.get('cpu_cores'), '.2f')} | {x['frames_ok']}/{x['frames_sent']} | {f(x['wall_s'], '.1f')} |"
              for x in rows]
    lines.append(f"\nPHY ratio (semjscc / GNU Radio, samples per wall second, same run): {phy['ratio']:.2f}")
    lines += ["", "| block (whole chain) | precision | frames | mean batch | CPU ms/frame |", "|---|---|---:|---:|---:|"]
    for name, b in chain["blocks"].items():
        prec = chain["models"].get(name, {}).get("precision", "")  # what each model block runs (fp32 / int8)
        lines.append(f"| {name} | {prec} | {b['frames']} | {f(b.get('mean_batch'), '.1f')} | "
                     f"{b['cpu_ms_per_frame']:.3f} |")
    lines.append(f"| whole process | {chain['frames_sent']} | | {f(chain['cpu_ms_per_frame'], '.3f')} |")
    lines.append(f"\nwhole chain: {chain['frames_lost']} frames lost ({_losses(chain['losses'])})")
    m = chain["models"]["classifier"]
    lines.append(f"\nONNX Runtime: {m['provider']}, intra-op threads {m['intra_op_threads']}, inter-op "
                 f"{m['inter_op_threads']}, graph optimisation {m['graph_optimization']}, {m['execution_mode']} "
                 f"execution; window at the end {chain['window']['window']} frames (delivery "
                 f"{f(chain['window']['delivery_rate_fps'], '.0f')} frames/s, min latency "
                 f"{f(chain['window']['min_latency_s'], '.0f', 1e3)} ms)")
    if rt is not None:
        lines.append(f"\nreal time: throttle fed at {f(rt['steady_rate_mean'], '.0f')} samples/s on average "
                     f"(lowest 1 s: {f(rt['steady_rate_min'], '.0f')}), receive backlog at most "
                     f"{f(rt['rx_backlog_max_frames'], '.0f')} frames, trend {f(rt['rx_backlog_slope_frames_per_s'], '+.2f')} "
                     f"frames/s; {rt['frames_lost']} of {rt['frames_sent']} frames lost ({_losses(rt['losses'])}); "
                     f"wall / air time {rt['wall_over_air']:.3f}")
        lines += ["", "| t s | frames sent | Msamples through throttle | TX backlog frames | RX backlog frames | window |",
                  "|---:|---:|---:|---:|---:|---:|"]
        step = max(1, len(rt["series"]) // 12)
        lines += [f"| {r['t_s']:.0f} | {r['frames_sent']} | {r['samples_through_throttle'] / 1e6:.2f} | "
                  f"{r['tx_backlog_frames']:.0f} | {r['rx_backlog_frames']:.0f} | {r['window']} |"
                  for r in rt["series"][::step]]
    return "\n".join(lines)


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
    s.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the impairment draws, noise and image order")
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

    from semjscc.experiments.bench.soak import run_soak
    from semjscc.util.errors import UsageError
    from semjscc.util.stopping import interrupt_for

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
    from semjscc.experiments.bench.soak import GARBAGE_KINDS

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
    g.add_argument("--seed", type=nonnegative_int, default=0, help="of the random input (default %(default)s)")
    g.set_defaults(func=_run_garbage)


def _run_garbage(args: argparse.Namespace) -> int:
    from semjscc.experiments.bench.soak import GARBAGE_KINDS, noise_false_frames
    from semjscc.util.errors import UsageError

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


# --- bench pluto -----------------------------------------------------------------------------------

def _add_pluto(what: argparse._SubParsersAction) -> None:
    g = what.add_parser("pluto", help="the shipped Pluto flowgraphs live through gr-iio on emulated Plutos",
                        description="Issue 22's goals on emulated Plutos (semjscc emulate-pluto), through gr-iio's "
                                    "blocks: (a) pluto_loopback at --snr (a calibration profile picks the TX "
                                    "attenuation) against sim_loopback on the same images; (b) pluto_tx -> pluto_rx "
                                    "on two radios at +25 / -25 ppm, 2.45 GHz, no calibration, then calibrate --peer "
                                    "--write-xo and its residual offset; (c) a default semjscc ota run's images per "
                                    "class. Exit status 1 when a run shows a problem (no end, Invalid packet size, "
                                    "frames not accounted).")
    g.add_argument("--json", type=Path, required=True, metavar="PATH", help="report to write")
    g.add_argument("--out", type=Path, default=Path("results/bench-pluto"), help="run folder (default %(default)s)")
    g.add_argument("--frames", type=positive_int, default=1000, help="pluto_loopback frames (default %(default)s)")
    g.add_argument("--pair-frames", type=positive_int, default=200, help="pluto_tx -> pluto_rx frames (default %(default)s)")
    g.add_argument("--ota-images", type=positive_int, default=100, help="images of the ota run (default %(default)s)")
    g.add_argument("--snr", type=snr_db, default=20.0, metavar="DB", help="target SNR (default %(default)s)")
    g.add_argument("--model", default="jscc-semantic-kn6", help="deep JSCC model (default %(default)s)")
    g.add_argument("--seed", type=nonnegative_int, default=1, help="image order (default %(default)s)")
    g.add_argument("--timeout", type=positive_float, default=1200.0, metavar="S",
                   help="per flowgraph run (default %(default)s)")
    g.set_defaults(func=_run_pluto)


def _run_pluto(args: argparse.Namespace) -> int:
    from semjscc.experiments.bench.pluto import bench_pluto

    doc = bench_pluto(args.out, args.frames, args.snr, args.model, args.pair_frames, args.ota_images, args.seed,
                      args.timeout)
    write_json(args.json, doc)  # before the table: a table that cannot be drawn loses nothing
    a, b, xo, c = doc["rows"]

    def num(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    def pct(acc: dict[str, Any]) -> str:
        return (f"{100 * acc['accuracy']:.2f} % [{100 * acc['ci95'][0]:.2f}, {100 * acc['ci95'][1]:.2f}] (n={acc['n']})"
                if acc["accuracy"] is not None else "-")

    p = a["paired"]
    table = ["| goal | measured |", "|---|---|",
             f"| (a) frames sent = received + lost | {a['frames_sent']} = {a['frames_received']} + {a['frames_lost']} "
             f"(dropped_overload {a['dropped_overload']}) |",
             f"| (a) underruns after start-up: radio U / Stream TX late | {a['radio']['underflows_after_startup']} / "
             f"{a['stream_tx_late_events']} in all (radio U in all {a['radio']['underflows']}) |",
             f"| (a) overflows: radio O after start-up / in all; RX monitor | {a['radio']['overflows_after_startup']} / "
             f"{a['radio']['overflows']}; {a['rx_monitor'].get('overflow_events')} |",
             f"| (a) frame rate, payload SNR | {num(a['frames_per_s'], '.1f')} frames/s, {num(a['snr_est_db'], '.1f')} dB |",
             f"| (a) accuracy live / sim_loopback | {pct(a['accuracy_live'])} / {pct(a['accuracy_sim'])} |",
             f"| (a) live - sim, paired by frame | {100 * p['difference']:+.2f} pp [{100 * p['ci95'][0]:+.2f}, "
             f"{100 * p['ci95'][1]:+.2f}] (n={p['n']}, same image {p['same_label']}) |",
             f"| (b) two radios, no calibration: received | {b['frames_received']}/{b['frames_sent']} "
             f"(CFO {num(b['cfo_est_hz'], '.0f')} Hz, payload SNR {num(b['snr_est_db'], '.1f')} dB) |",
             f"| (b) calibrate --peer --write-xo: residual | {num(xo['residual_hz'], '.1f')} Hz ({xo['residual_ppm']} ppm) |",
             f"| (c) ota default: images per class (N={c['images']}) | {c['per_class']} (max deviation "
             f"{c['max_deviation']:g}) |"]
    problems = a["problems"] + b["problems"]
    if problems:
        table.append("\nproblems: " + "; ".join(problems))
    _write_report(args.json, doc, "\n".join(table), args)
    return 1 if problems else 0


_BENCHMARKS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_runtime, _add_throughput, _add_soak,
                                                                        _add_garbage, _add_pluto)
