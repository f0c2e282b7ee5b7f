"""``semjscc bench``: benchmarks, one subcommand each, every one writing JSON and a Markdown table.

A new benchmark (``bench throughput``, ``bench soak``) is one ``_add_<name>`` function that
adds its subparser and handler, listed in ``_BENCHMARKS``; ``_write_report`` gives them all
the same output conventions (JSON with ``meta`` and ``rows``, Markdown on stdout).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from semjscc.commands.common import positive_int


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
    r.add_argument("--snr", type=float, default=10.0, metavar="DB", help="channel SNR (default %(default)s)")
    r.add_argument("--jscc-ckpt", type=Path, default=None, metavar="CKPT", help="torch weights for the JSCC model")
    r.add_argument("--classifier-ckpt", type=Path, default=None, metavar="CKPT", help="torch weights for the classifier")
    r.set_defaults(func=_run_runtime)


def _run_runtime(args: argparse.Namespace) -> int:
    from semjscc.runtime.bench import bench_runtime, markdown_table

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
                                    "ratio (semjscc.phy.bench_throughput).")
    t.add_argument("--json", type=Path, required=True, metavar="PATH", help="report to write")
    t.add_argument("--frames", type=positive_int, default=2000, help="frames per chain (default %(default)s)")
    t.add_argument("--symbols", type=positive_int, default=512,
                   help="JSCC symbols per frame (default %(default)s: one 32x32 image at k/n = 1/6)")
    t.add_argument("--snr", type=float, default=20.0, metavar="DB", help="Es/N0 per subcarrier (default %(default)s)")
    t.add_argument("--cfo", type=float, default=0.0, metavar="HZ", help="carrier frequency offset (default %(default)s)")
    t.add_argument("--seed", type=int, default=1)
    t.set_defaults(func=_run_throughput)


def _run_throughput(args: argparse.Namespace) -> int:
    from semjscc.phy.bench_throughput import run_throughput

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
                        description="Sends --frames frames through the simulated flowgraph (sim_loopback) in chunks "
                                    "of --chunk, each chunk with a new random channel: SNR 0-20 dB, CFO within +-20 "
                                    "kHz, sample clock offset within +-20 ppm, 1-8 random multipath taps. Reports "
                                    "frames sent/received/lost, header CRC failures, accuracy, exceptions, resident "
                                    "memory at start, ~10%% and end, and checks sent == received + lost "
                                    "(semjscc.soak). Exit status 1 when the invariant fails or a chunk raised.")
    s.add_argument("--json", type=Path, required=True, metavar="PATH", help="report to write")
    s.add_argument("--frames", type=positive_int, default=1000, help="frames in all (default %(default)s)")
    s.add_argument("--chunk", type=positive_int, default=50, help="frames per random channel (default %(default)s)")
    s.add_argument("--seed", type=int, default=0, help="seed of the impairment draws and channel noise")
    s.add_argument("--model", default="", metavar="NAME_OR_DIR", help="deep JSCC model (default: the semantic one)")
    s.add_argument("--classifier", default="", metavar="NAME_OR_DIR",
                   help="classifier model (default: the one the model's card names)")
    s.add_argument("--source", default="", metavar="PATH", help="images to send (default: the CIFAR-10 test split)")
    s.add_argument("--device", default="cpu", help="ONNX Runtime device (default %(default)s)")
    s.set_defaults(func=_run_soak)


def _run_soak(args: argparse.Namespace) -> int:
    from semjscc.soak import run_soak

    r = run_soak(args.frames, seed=args.seed, chunk=args.chunk, model=args.model,
                 classifier=args.classifier, source=args.source, device=args.device)
    rows = [{k: r[k] for k in ("frames_sent", "frames_received", "frames_lost", "header_crc_failures", "accuracy",
                               "exceptions", "invariant_ok", "rss_kib_start", "rss_kib_10pct", "rss_kib_end",
                               "elapsed_s")}]
    doc = {**r, "meta": {"benchmark": "soak"}, "rows": rows}
    x = rows[0]
    acc = "-" if x["accuracy"] is None else f"{x['accuracy']:.3f}"
    table = "\n".join([
        "| sent | received | lost | header CRC fail | accuracy | exceptions | sent = rx + lost | RSS MiB start / 10% / end "
        "| wall s |", "|---:|---:|---:|---:|---:|---:|---|---|---:|",
        f"| {x['frames_sent']} | {x['frames_received']} | {x['frames_lost']} | {x['header_crc_failures']} | {acc} | "
        f"{x['exceptions']} | {'yes' if x['invariant_ok'] else 'NO'} | {x['rss_kib_start'] / 1024:.0f} / "
        f"{(x['rss_kib_10pct'] or 0) / 1024:.0f} / {x['rss_kib_end'] / 1024:.0f} | {x['elapsed_s']:.1f} |"])
    _write_report(args.json, doc, table, args)
    return 0 if r["invariant_ok"] and not r["exceptions"] else 1


_BENCHMARKS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_runtime, _add_throughput, _add_soak)
