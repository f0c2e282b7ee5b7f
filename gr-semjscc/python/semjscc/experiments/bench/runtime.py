"""``semjscc bench runtime``: ONNX Runtime against torch eager, stage by stage.

Stages: encoder, decoder, classifier and the whole chain (encoder -> AWGN -> decoder ->
classifier), each at several batch sizes. Both frameworks get the same inputs, the same
noise and the same thread count, and their calls alternate (torch, ORT, torch, ORT, ...) so
that load from other processes hits both alike. Latencies are medians over ``repeat`` calls.

Torch modules: from ``--jscc-ckpt``/``--classifier-ckpt`` when given, else from the checkpoint
the card's ``source`` names when it is still there with the same sha256; otherwise the
architecture is rebuilt from the card with random weights. Timing does not depend on the
weight values, but then no parity is reported (``max_abs_diff`` is null). Weights are not
rebuilt from the ONNX initializers: the exporter folds BatchNorm into the convolutions and
reshapes PReLU slopes, so they do not map back onto the torch modules.

torch is imported inside the functions: ``semjscc.zoo`` itself never needs it.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from semjscc.phy.symbols import noise_power
from semjscc.util.errors import ModelError
from semjscc.util.paths import REPO_ROOT
from semjscc.zoo.card import ModelCard, sha256_file
from semjscc.zoo.load import load_classifier, load_decoder, load_encoder, load_jscc_pair
from semjscc.zoo.locate import resolve_classifier, resolve_model_dir
from semjscc.zoo.session import DEFAULT_THREADS, RuntimeOptions

STAGES = ("encoder", "decoder", "classifier", "chain")


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on (shared by every ``semjscc bench`` report)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
        "cpu_count": os.cpu_count(), "numpy": np.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if hasattr(os, "getloadavg"):
        info["loadavg_1_5_15"] = [round(v, 2) for v in os.getloadavg()]
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
        info["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        pass
    return info


def time_calls(fns: dict[str, Callable[[], Any]], repeat: int, warmup: int = 3) -> dict[str, list[float]]:
    """Seconds per call of each function, calls interleaved round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def _torch_jscc(card: ModelCard, model_dir: Path, ckpt: Path | None) -> tuple[Any, str, bool]:
    from semjscc.nn.jscc import JSCC
    from semjscc.nn.train_jscc import load_jscc

    path, how = _checkpoint_for(card, model_dir, ckpt)
    if path is not None:
        model, ck = load_jscc(path)
        c = ck["config"]
        if round(float(c["kn"]), 9) != round(float(card.kn or 0), 9) or int(c["width"]) != card.width:
            raise ModelError(f"--jscc-ckpt {path} (k/n {c['kn']:.4g}, width {c['width']}) is not the model in "
                             f"{model_dir} (k/n {card.kn:.4g}, width {card.width}); pass the matching checkpoint")
        return model, how, True
    if card.width is None:
        raise ModelError(f"{model_dir}: card has no width, so the torch model cannot be rebuilt; pass --jscc-ckpt")
    return JSCC(float(card.kn or 0), card.width, bool(card.snr_adaptive)).eval(), how, False


def _torch_classifier(card: ModelCard, model_dir: Path, ckpt: Path | None) -> tuple[Any, str, bool]:
    from semjscc.nn.classifier import Classifier
    from semjscc.nn.train_classifier import load_classifier as load_torch_classifier

    path, how = _checkpoint_for(card, model_dir, ckpt)
    if path is not None:
        return load_torch_classifier(path), how, True
    if card.width is None:
        raise ModelError(f"{model_dir}: card has no width, so the torch model cannot be rebuilt; pass --classifier-ckpt")
    return Classifier(num_classes=card.num_classes or 10, width=card.width).eval(), how, False


def _checkpoint_for(card: ModelCard, model_dir: Path, explicit: Path | None) -> tuple[Path | None, str]:
    if explicit is not None:
        if not Path(explicit).is_file():
            raise ModelError(f"checkpoint {explicit} not found")
        return Path(explicit), f"checkpoint {explicit}"
    if card.weights and (model_dir / card.weights).is_file():  # the weights-only .pt shipped beside the ONNX files
        return model_dir / card.weights, f"checkpoint {model_dir / card.weights} (the card's weights)"
    src = card.source or {}
    p = Path(src["checkpoint"]) if src.get("checkpoint") else None
    if p is not None and not p.is_absolute() and not p.is_file():
        p = REPO_ROOT / p  # cards record the path as given to `semjscc export`, usually from the checkout
    if p is not None and p.is_file() and sha256_file(p) == src.get("sha256"):
        return p, f"checkpoint {p} (from {model_dir}/card.yaml)"
    return None, "random init, architecture from card.yaml (timing only: no parity)"


def bench_runtime(model: str | Path, *, classifier: str | Path | None = None, batches: tuple[int, ...] = (1, 32),
                  repeat: int = 30, warmup: int = 3, threads: int = DEFAULT_THREADS, device: str = "auto",
                  jscc_ckpt: Path | None = None, classifier_ckpt: Path | None = None, snr_db: float = 10.0,
                  seed: int = 0) -> dict[str, Any]:
    """Run the benchmark; returns the report document (``rows`` + ``meta``)."""
    import torch

    model_dir = resolve_model_dir(model)
    enc, dec, card = load_jscc_pair(model_dir, device=device, threads=threads)
    cdir = resolve_model_dir(resolve_classifier(model_dir, classifier))
    clf = load_classifier(cdir, device=device, threads=threads)

    jscc_t, jscc_how, jscc_real = _torch_jscc(card, model_dir, jscc_ckpt)
    clf_t, clf_how, clf_real = _torch_classifier(clf.card, cdir, classifier_ckpt)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)  # the same thread budget as ONNX Runtime's intra-op pool
    try:
        rows = _measure(enc, dec, clf, jscc_t, clf_t, jscc_real, clf_real, batches, repeat, warmup, snr_db, seed)
    finally:
        torch.set_num_threads(torch_threads)  # a process-wide setting: leave it as found
    meta = {
        **machine_info(),
        "loadavg_before": [round(v, 2) for v in load_before] if load_before else None,
        "torch": torch.__version__, "threads": threads, "device": device,
        "ort_providers": {"encoder": enc.provider, "decoder": dec.provider, "classifier": clf.provider},
        "model": str(model_dir), "classifier": str(cdir), "kn": card.kn, "n_symbols": card.n_symbols,
        "snr_db": snr_db, "repeat": repeat, "warmup": warmup, "batches": list(batches),
        "torch_weights": {"jscc": jscc_how, "classifier": clf_how},
        "units": "torch_ms/ort_ms: median latency of one call on a whole batch; *_per_image = that / batch; "
                 "speedup = torch_ms / ort_ms; chain = encoder -> AWGN -> decoder -> classifier",
    }
    return {"benchmark": "runtime", "meta": meta, "rows": rows}


def _measure(enc: Any, dec: Any, clf: Any, jscc_t: Any, clf_t: Any, jscc_real: bool, clf_real: bool,
             batches: tuple[int, ...], repeat: int, warmup: int, snr_db: float, seed: int) -> list[dict[str, Any]]:
    import torch

    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for b in batches:
        x = rng.random((b, 3, 32, 32), dtype=np.float32)
        snr = np.full(b, snr_db, dtype=np.float32)
        std = np.float32(np.sqrt(noise_power(snr_db) / 2))  # per real dimension
        noise = (rng.standard_normal((b, enc.n_symbols, 2)) * std).astype(np.float32)
        z = enc.run(x, snr)
        xt, st, zt, nt = (torch.from_numpy(a) for a in (x, snr, z, noise))

        ort_fns: dict[str, Callable[[], np.ndarray]] = {
            "encoder": lambda x=x, snr=snr: enc.run(x, snr),
            "decoder": lambda z=z, snr=snr: dec.run(z, snr),
            "classifier": lambda x=x: clf.run(x),
            "chain": lambda x=x, snr=snr, noise=noise: clf.run(dec.run(enc.run(x, snr) + noise, snr)),
        }
        torch_fns: dict[str, Callable[[], Any]] = {
            "encoder": lambda xt=xt, st=st: jscc_t.encoder(xt, st),
            "decoder": lambda zt=zt, st=st: jscc_t.decoder(zt, st),
            "classifier": lambda xt=xt: clf_t(xt),
            "chain": lambda xt=xt, st=st, nt=nt: clf_t(jscc_t.decoder(jscc_t.encoder(xt, st) + nt, st)),
        }
        real = {"encoder": jscc_real, "decoder": jscc_real, "classifier": clf_real,
                "chain": jscc_real and clf_real}
        with torch.inference_mode():
            for stage in STAGES:
                diff = None
                if real[stage]:
                    diff = float(np.abs(torch_fns[stage]().numpy() - ort_fns[stage]()).max())
                t = time_calls({"torch": torch_fns[stage], "ort": ort_fns[stage]}, repeat, warmup)
                tm, om = statistics.median(t["torch"]), statistics.median(t["ort"])
                rows.append({
                    "stage": stage, "batch": b,
                    "torch_ms": round(tm * 1e3, 4), "ort_ms": round(om * 1e3, 4), "speedup": round(tm / om, 3),
                    "torch_ms_p90": round(_pct(t["torch"], 0.9) * 1e3, 4),
                    "ort_ms_p90": round(_pct(t["ort"], 0.9) * 1e3, 4),
                    "torch_ms_per_image": round(tm * 1e3 / b, 4), "ort_ms_per_image": round(om * 1e3 / b, 4),
                    "torch_images_per_s": round(b / tm, 1), "ort_images_per_s": round(b / om, 1),
                    "max_abs_diff": diff,
                })
    return rows


def markdown_table(doc: dict[str, Any]) -> str:
    m = doc["meta"]
    lines = [
        f"ONNX Runtime ({', '.join(sorted(set(m['ort_providers'].values())))}) vs torch {m['torch']} eager, "
        f"{m['threads']} thread(s), {m['cpu']} ({m['cpu_count']} cores, load {m.get('loadavg_1_5_15')}), "
        f"median of {m['repeat']}",
        "",
        "| stage | batch | torch ms | ORT ms | speedup | torch ms/img | ORT ms/img | torch img/s | ORT img/s | max abs diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["rows"]:
        diff = f"{r['max_abs_diff']:.1e}" if r["max_abs_diff"] is not None else "n/a"
        lines.append(f"| {r['stage']} | {r['batch']} | {r['torch_ms']:.3f} | {r['ort_ms']:.3f} | {r['speedup']:.2f}x | "
                     f"{r['torch_ms_per_image']:.3f} | {r['ort_ms_per_image']:.3f} | {r['torch_images_per_s']:.0f} | "
                     f"{r['ort_images_per_s']:.0f} | {diff} |")
    return "\n".join(lines)


# --- session options ----------------------------------------------------------------------------------

# (label, intra-op threads, inter-op threads, graph optimisation, execution mode); the first is the default
SESSION_GRID = tuple(
    (f"{opt}/{mode}/intra{intra}" + (f"+inter{inter}" if inter > 1 else ""), intra, inter, opt, mode)
    for opt in ("all", "extended", "basic")
    for intra, inter, mode in ((1, 1, "sequential"), (2, 1, "sequential"), (1, 2, "parallel"))
)


def bench_session_options(model: str | Path, *, classifier: str | Path | None = None,
                          batches: tuple[int, ...] = (1, 32), repeat: int = 30, warmup: int = 3,
                          device: str = "auto", seed: int = 0) -> dict[str, Any]:
    """Wall and process-CPU time per image of each model under every ONNX Runtime session option set
    of :data:`SESSION_GRID` (threads, graph optimisation, execution mode), calls interleaved across
    the option sets so that other load hits them alike; ``vs_default`` is each set's median wall
    time over the default's. CPU time counts every thread of the process (a second intra-op
    thread's work shows there even when the wall time gains nothing)."""
    model_dir = resolve_model_dir(model)
    cdir = resolve_model_dir(resolve_classifier(model_dir, classifier))
    sessions: dict[str, dict[str, Any]] = {}
    for label, intra, inter, opt, mode in SESSION_GRID:
        o = RuntimeOptions.make(device, intra, inter, graph_optimization=opt, execution_mode=mode)
        sessions[label] = {"encoder": load_encoder(model_dir, options=o), "decoder": load_decoder(model_dir, options=o),
                           "classifier": load_classifier(cdir, options=o)}
    default = SESSION_GRID[0][0]
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for b in batches:
        x = rng.random((b, 3, 32, 32), dtype=np.float32)
        snr = np.full(b, 10.0, dtype=np.float32)
        z = sessions[default]["encoder"].run(x, snr)
        args = {"encoder": (x, snr), "decoder": (z, snr), "classifier": (x,)}
        for stage in ("encoder", "decoder", "classifier"):
            cpu: dict[str, list[float]] = {k: [] for k in sessions}

            def call(label: str, stage: str = stage, inputs: tuple[np.ndarray, ...] = args[stage],
                     cpu: dict[str, list[float]] = cpu) -> Any:
                c0 = time.process_time()
                out = sessions[label][stage].run(*inputs)
                cpu[label].append(time.process_time() - c0)
                return out

            t = time_calls({label: (lambda label=label: call(label)) for label in sessions}, repeat, warmup)
            base = statistics.median(t[default])
            for label, intra, inter, opt, mode in SESSION_GRID:
                wall = statistics.median(t[label])
                rows.append({"stage": stage, "batch": b, "options": label, "intra_op_threads": intra,
                             "inter_op_threads": inter, "graph_optimization": opt, "execution_mode": mode,
                             "ms_per_image": round(wall * 1e3 / b, 4),
                             "cpu_ms_per_image": round(statistics.median(cpu[label][warmup:]) * 1e3 / b, 4),
                             "vs_default": round(wall / base, 3)})
    meta = {**machine_info(), "model": str(model_dir), "classifier": str(cdir), "device": device,
            "repeat": repeat, "warmup": warmup, "batches": list(batches), "default": default,
            "providers": sorted({s.provider for d in sessions.values() for s in d.values()}),
            "units": "ms_per_image: median wall time of a call / batch; cpu_ms_per_image: the same in process CPU "
                     "time (all threads); vs_default: median wall time over the default option set's"}
    return {"benchmark": "runtime-session-options", "meta": meta, "rows": rows}


def session_options_table(doc: dict[str, Any]) -> str:
    m = doc["meta"]
    lines = [f"ONNX Runtime session options ({', '.join(m['providers'])}), {m['cpu']} ({m['cpu_count']} cores, load "
             f"{m.get('loadavg_1_5_15')}), median of {m['repeat']}, default {m['default']}", "",
             "| stage | batch | graph opt / execution / intra-op threads | ms/img | CPU ms/img | vs default |",
             "|---|---:|---|---:|---:|---:|"]
    lines += [f"| {r['stage']} | {r['batch']} | {r['options']} | {r['ms_per_image']:.3f} | {r['cpu_ms_per_image']:.3f} | "
              f"{r['vs_default']:.2f} |" for r in doc["rows"]]
    return "\n".join(lines)
