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
    """Run the benchmark; returns the report document (``rows`` + ``meta``).

    Stages: encoder, decoder, each classifier the model's card names (``classifier``, the clean one, and
    ``receiver``, the adapted one; or ``--classifier`` alone) and the chain through the link's classifier.
    torch, ONNX Runtime fp32 and, where the model ships one, its int8 file are timed interleaved; parity is
    ORT fp32 against torch (``max_abs_diff``) and int8 against ORT fp32 (``int8_max_abs_diff``). The chain's
    int8 column runs each stage at the precision ``auto`` picks on this CPU (``int8_precisions``)."""
    import torch

    from semjscc.zoo.load import load_decoder, load_encoder
    from semjscc.zoo.locate import card_classifiers
    from semjscc.zoo.precision import choose, int8_support

    model_dir = resolve_model_dir(model)
    enc, dec, card = load_jscc_pair(model_dir, device=device, threads=threads, precision="fp32")
    if classifier is not None or (jscc_ckpt is not None and classifier_ckpt is not None):
        cdirs = {"classifier": resolve_model_dir(resolve_classifier(model_dir, classifier))}
    else:
        named = card_classifiers(model_dir)
        cdirs = {k: Path(v) for k, v in named.items() if v}
        if not cdirs:
            cdirs = {"classifier": resolve_model_dir(resolve_classifier(model_dir))}
    link = "receiver" if "receiver" in cdirs else "classifier"  # the chain: what the link's classifier block runs
    clfs = {k: load_classifier(d, device=device, threads=threads, precision="fp32") for k, d in cdirs.items()}
    # the card.yaml cards: a session's embedded card does not carry the sibling weights file's name
    clf_cards = {k: ModelCard.load(d) for k, d in cdirs.items()}

    support = int8_support()
    int8: dict[str, Any] = {}
    auto: dict[str, str] = {}
    if support.runs:
        for role, loader in (("encoder", load_encoder), ("decoder", load_decoder)):
            if role in card.int8_files:
                int8[role] = loader(model_dir, device=device, threads=threads, precision="int8")
            auto[role] = choose(card, role, "auto", f"{role} {model_dir}")
        for k, d in cdirs.items():
            if "classifier" in clf_cards[k].int8_files:
                int8[k] = load_classifier(d, device=device, threads=threads, precision="int8")
            auto[k] = choose(clf_cards[k], "classifier", "auto", f"{k} {d}")
    chain_sessions = {"encoder": int8["encoder"] if auto.get("encoder") == "int8" else enc,
                      "decoder": int8["decoder"] if auto.get("decoder") == "int8" else dec,
                      "classifier": int8[link] if auto.get(link) == "int8" else clfs[link]}

    jscc_t, jscc_how, jscc_real = _torch_jscc(card, model_dir, jscc_ckpt)
    torch_clf: dict[str, tuple[Any, str, bool]] = {}
    for k, d in cdirs.items():
        torch_clf[k] = _torch_classifier(clf_cards[k], d, classifier_ckpt if len(cdirs) == 1 else None)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)  # the same thread budget as ONNX Runtime's intra-op pool
    try:
        rows = _measure(enc, dec, clfs, jscc_t, torch_clf, jscc_real, int8, chain_sessions, link, batches, repeat,
                        warmup, snr_db, seed)
    finally:
        torch.set_num_threads(torch_threads)  # a process-wide setting: leave it as found
    meta = {
        **machine_info(),
        "loadavg_before": [round(v, 2) for v in load_before] if load_before else None,
        "torch": torch.__version__, "threads": threads, "device": device,
        "ort_providers": {"encoder": enc.provider, "decoder": dec.provider,
                          **{k: c.provider for k, c in clfs.items()}},
        "model": str(model_dir), "classifiers": {k: str(d) for k, d in cdirs.items()}, "chain_classifier": link,
        "classifier": str(cdirs[link]), "kn": card.kn, "n_symbols": card.n_symbols,
        "snr_db": snr_db, "repeat": repeat, "warmup": warmup, "batches": list(batches),
        "torch_weights": {"jscc": jscc_how, **{k: v[1] for k, v in torch_clf.items()}},
        "int8": {"cpu": support.why, "files": sorted(int8), "auto_precision": auto},
        "units": "torch_ms/ort_ms/int8_ms: median latency of one call on a whole batch; *_per_image = that / batch; "
                 "speedup = torch_ms / ort_ms; int8_vs_fp32 = ort_ms / int8_ms; chain = encoder -> AWGN -> decoder "
                 "-> the link's classifier (int8 column: each stage at the precision auto picks)",
    }
    return {"benchmark": "runtime", "meta": meta, "rows": rows}


def _measure(enc: Any, dec: Any, clfs: dict[str, Any], jscc_t: Any, torch_clf: dict[str, tuple[Any, str, bool]],
             jscc_real: bool, int8: dict[str, Any], chain8: dict[str, Any], link: str, batches: tuple[int, ...],
             repeat: int, warmup: int, snr_db: float, seed: int) -> list[dict[str, Any]]:
    import torch

    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    stages = ["encoder", "decoder", *clfs, "chain"]
    for b in batches:
        x = rng.random((b, 3, 32, 32), dtype=np.float32)
        snr = np.full(b, snr_db, dtype=np.float32)
        std = np.float32(np.sqrt(noise_power(snr_db) / 2))  # per real dimension
        noise = (rng.standard_normal((b, enc.n_symbols, 2)) * std).astype(np.float32)
        z = enc.run(x, snr)
        xt, st, zt, nt = (torch.from_numpy(a) for a in (x, snr, z, noise))
        inp = {"x": x, "snr": snr, "z": z, "noise": noise, "xt": xt, "st": st, "zt": zt, "nt": nt}
        models = {"enc": enc, "dec": dec, "clfs": clfs, "jscc_t": jscc_t, "torch_clf": torch_clf, "int8": int8,
                  "chain8": chain8, "link": link}
        real = {"encoder": jscc_real, "decoder": jscc_real, "chain": jscc_real and torch_clf[link][2],
                **{k: v[2] for k, v in torch_clf.items()}}
        with torch.inference_mode():
            for stage in stages:
                f = _stage_fns(stage, inp, models)
                diff = diff8 = None
                ort_out = f["ort"]()
                if real[stage]:
                    diff = float(np.abs(f["torch"]().numpy() - ort_out).max())
                if "int8" in f:
                    diff8 = float(np.abs(f["int8"]() - ort_out).max())
                t = time_calls(f, repeat, warmup)
                tm, om = statistics.median(t["torch"]), statistics.median(t["ort"])
                row = {
                    "stage": stage, "batch": b,
                    "torch_ms": round(tm * 1e3, 4), "ort_ms": round(om * 1e3, 4), "speedup": round(tm / om, 3),
                    "torch_ms_p90": round(_pct(t["torch"], 0.9) * 1e3, 4),
                    "ort_ms_p90": round(_pct(t["ort"], 0.9) * 1e3, 4),
                    "torch_ms_per_image": round(tm * 1e3 / b, 4), "ort_ms_per_image": round(om * 1e3 / b, 4),
                    "torch_images_per_s": round(b / tm, 1), "ort_images_per_s": round(b / om, 1),
                    "max_abs_diff": diff,
                }
                if "int8" in t:
                    im = statistics.median(t["int8"])
                    row.update(int8_ms=round(im * 1e3, 4), int8_ms_per_image=round(im * 1e3 / b, 4),
                               int8_vs_fp32=round(om / im, 3), int8_vs_torch=round(tm / im, 3),
                               int8_max_abs_diff=diff8)
                    if stage == "chain":
                        row["int8_precisions"] = {k: getattr(m, "precision", "fp32") for k, m in chain8.items()}
                rows.append(row)
    return rows


def _stage_fns(stage: str, inp: dict[str, Any], m: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """The calls timed for one stage: torch, ORT fp32 and (where there is one) int8, on the same inputs."""
    x, snr, z, noise, xt, st, zt, nt = (inp[k] for k in ("x", "snr", "z", "noise", "xt", "st", "zt", "nt"))
    enc, dec, jscc_t, link = m["enc"], m["dec"], m["jscc_t"], m["link"]
    if stage == "chain":
        e8, d8, c8 = (m["chain8"][k] for k in ("encoder", "decoder", "classifier"))
        ct, c = m["torch_clf"][link][0], m["clfs"][link]
        out = {"torch": lambda: ct(jscc_t.decoder(jscc_t.encoder(xt, st) + nt, st)),
               "ort": lambda: c.run(dec.run(enc.run(x, snr) + noise, snr))}
        if any(getattr(s, "precision", "fp32") == "int8" for s in (e8, d8, c8)):  # else it is the fp32 chain again
            out["int8"] = lambda: c8.run(d8.run(e8.run(x, snr) + noise, snr))
        return out
    if stage == "encoder":
        out = {"torch": lambda: jscc_t.encoder(xt, st), "ort": lambda: enc.run(x, snr)}
    elif stage == "decoder":
        out = {"torch": lambda: jscc_t.decoder(zt, st), "ort": lambda: dec.run(z, snr)}
    else:
        ct, c = m["torch_clf"][stage][0], m["clfs"][stage]
        out = {"torch": lambda: ct(xt), "ort": lambda: c.run(x)}
    m8 = m["int8"].get(stage)
    if m8 is not None:
        out["int8"] = {"encoder": lambda: m8.run(x, snr), "decoder": lambda: m8.run(z, snr)}.get(
            stage, lambda: m8.run(x))
    return out


def markdown_table(doc: dict[str, Any]) -> str:
    m = doc["meta"]
    lines = [
        f"ONNX Runtime ({', '.join(sorted(set(m['ort_providers'].values())))}) vs torch {m['torch']} eager, "
        f"{m['threads']} thread(s), {m['cpu']} ({m['cpu_count']} cores, load {m.get('loadavg_1_5_15')}), "
        f"median of {m['repeat']}",
        "",
        "| stage | batch | torch ms | ORT ms | speedup | torch ms/img | ORT ms/img | torch img/s | ORT img/s | max abs diff "
        "| int8 ms/img | int8 vs fp32 ORT | int8 max abs diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["rows"]:
        diff = f"{r['max_abs_diff']:.1e}" if r["max_abs_diff"] is not None else "n/a"
        i8 = (f"{r['int8_ms_per_image']:.3f} | {r['int8_vs_fp32']:.2f}x | {r['int8_max_abs_diff']:.1e}"
              if "int8_ms" in r else "– | – | –")
        lines.append(f"| {r['stage']} | {r['batch']} | {r['torch_ms']:.3f} | {r['ort_ms']:.3f} | {r['speedup']:.2f}x | "
                     f"{r['torch_ms_per_image']:.3f} | {r['ort_ms_per_image']:.3f} | {r['torch_images_per_s']:.0f} | "
                     f"{r['ort_images_per_s']:.0f} | {diff} | {i8} |")
    chain = (m.get("int8") or {}).get("auto_precision")
    if chain:
        lines += ["", "int8 on this CPU: " + m["int8"]["cpu"] + "; auto picks "
                  + ", ".join(f"{k} {v}" for k, v in chain.items())]
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
