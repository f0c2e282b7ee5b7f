"""int8 against fp32, paired on the same images and the same channel noise (``semjscc eval --int8-parity``).

For each deep JSCC model and SNR the images go through the fp32 and the int8 encoder; both symbol sets get
the *same* noise draw; each is decoded by the fp32 and the int8 decoder. Each protocol's classifier (clean,
receiver) judges the decodes in fp32 and int8. One model is swapped at a time against the all-fp32 chain,
so every difference is that model's own:

* encoder: int8 encoder, fp32 decoder and classifier;  decoder: int8 decoder, fp32 elsewhere;
* classifier / receiver: the all-fp32 decodes (and the clean images) judged by its int8 file;

plus the chains the runtime can end up running (int8 classifier with int8 encoder and/or decoder). A role
holds the tolerance when ``|int8 - fp32| <= TOLERANCE_PP`` (the point estimate) at every SNR and protocol it
was measured at; the paired 95 % interval of every difference is reported beside it
(:func:`semjscc.util.stats.paired_difference`). The verdict is per role and written into the card only
by ``semjscc export --model DIR --record-parity`` (which checks the files' sha256 against this report).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from semjscc.data import Dataset
from semjscc.data.imaging import to_float_nchw
from semjscc.phy.symbols import awgn_pairs
from semjscc.util.files import text_writer, write_together
from semjscc.util.stats import paired_difference, wilson
from semjscc.zoo.card import ModelCard
from semjscc.zoo.precision import TOLERANCE_PP, cpu_flags

# chain name -> (encoder, decoder, classifier) precision; "fp32" is the reference every other is paired with
CHAINS = {
    "fp32": ("fp32", "fp32", "fp32"),
    "encoder": ("int8", "fp32", "fp32"),
    "decoder": ("fp32", "int8", "fp32"),
    "classifier": ("fp32", "fp32", "int8"),
    "encoder+classifier": ("int8", "fp32", "int8"),
    "decoder+classifier": ("fp32", "int8", "int8"),
    "all int8": ("int8", "int8", "int8"),
}


def _sessions(ref: str | Path, loader: Any, threads: int) -> dict[str, Any]:
    return {p: loader(ref, precision=p, threads=threads) for p in ("fp32", "int8")}


def chains_without(skip: tuple[str, ...]) -> dict[str, tuple[str, str, str]]:
    """CHAINS less those that run any role in ``skip`` in int8 (roles already ruled out on validation)."""
    return {name: pr for name, pr in CHAINS.items()
            if not any(p == "int8" and role in skip for role, p in zip(("encoder", "decoder", "classifier"), pr,
                                                                        strict=True))}


def measure(jscc: dict[str, str], classifiers: dict[str, str], data: Dataset, snrs: list[float], *,
            seed: int = 2024, batch: int = 500, threads: int = 2, progress: bool = True,
            skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Per-image correctness of every chain in CHAINS (less those with a role in ``skip``) for each JSCC
    model (label -> directory), protocol (-> classifier directory) and SNR; returns {"correct": {(label, protocol, snr, chain): bool array},
    "clean": {(protocol, precision): bool array}}."""
    from semjscc.zoo import load_classifier, load_decoder, load_encoder

    chains = chains_without(skip)
    clf = {p: _sessions(ref, load_classifier, threads) for p, ref in classifiers.items()}
    labels = data.labels
    out: dict[str, Any] = {"correct": {}, "clean": {}}
    for p, s in clf.items():
        for prec, sess in s.items():
            out["clean"][(p, prec)] = np.concatenate(
                [sess.predict(to_float_nchw(data.images[i : i + batch])) == labels[i : i + batch]
                 for i in range(0, len(labels), batch)])
    total = len(jscc) * len(snrs) * -(-len(labels) // batch)
    bar = tqdm(total=total, desc="int8 parity", disable=not progress, leave=False)
    for label, ref in jscc.items():
        enc, dec = _sessions(ref, load_encoder, threads), _sessions(ref, load_decoder, threads)
        for snr in snrs:
            rng = np.random.default_rng(seed + round(snr * 100))  # as `semjscc eval` draws it
            acc: dict[tuple[str, str], list[np.ndarray]] = {}
            for i in range(0, len(labels), batch):
                x = to_float_nchw(data.images[i : i + batch])
                y = labels[i : i + batch]
                snr_vec = np.full(len(x), snr, np.float32)
                z = {p: enc[p].run(x, snr_vec) for p in {c[0] for c in chains.values()}}
                noise = awgn_pairs(np.zeros_like(z["fp32"]), snr_vec, rng)  # one draw for both encoders
                decodes: dict[tuple[str, str], np.ndarray] = {}
                for name, (pe, pd, pc) in chains.items():
                    if (pe, pd) not in decodes:
                        decodes[(pe, pd)] = dec[pd].run(z[pe] + noise, snr_vec)
                    for protocol, s in clf.items():
                        acc.setdefault((protocol, name), []).append(s[pc].predict(decodes[(pe, pd)]) == y)
                bar.update()
            for (protocol, name), parts in acc.items():
                out["correct"][(label, protocol, f"{snr:g}", name)] = np.concatenate(parts)
    bar.close()
    return out


def _row(a: np.ndarray, b: np.ndarray, **where: Any) -> dict[str, Any]:
    """int8 (a) against fp32 (b) on the same images: both accuracies with Wilson intervals and the paired
    difference with its interval, in percentage points."""
    d, lo, hi = paired_difference(a, b)
    n = int(a.size)
    return {**where, "n": n, "fp32": 100 * float(b.mean()), "fp32_ci": [100 * v for v in wilson(int(b.sum()), n)],
            "int8": 100 * float(a.mean()), "int8_ci": [100 * v for v in wilson(int(a.sum()), n)],
            "diff_pp": 100 * d, "diff_ci_pp": [100 * lo, 100 * hi], "disagree": int(np.sum(a != b)),
            "within": bool(abs(100 * d) <= TOLERANCE_PP)}


def report(measured: dict[str, Any], jscc: dict[str, str], classifiers: dict[str, str],
           meta: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON document: per model directory the rows that decide each of its roles and the verdict
    (``use``), the sha256 of the files measured, and the combined chains."""
    from semjscc.zoo.locate import resolve_model_dir

    correct, clean = measured["correct"], measured["clean"]
    models: dict[str, Any] = {}

    def entry(ref: str) -> dict[str, Any]:
        directory = resolve_model_dir(ref)
        if directory.name not in models:
            card = ModelCard.load(directory)
            models[directory.name] = {
                "directory": str(directory), "accuracy": {}, "use": {},
                "sha256": {r: {"fp32": f.sha256, "int8": card.int8_files[r].sha256 if r in card.int8_files else None}
                           for r, f in card.files.items()}}
        return models[directory.name]

    for label, ref in jscc.items():
        m = entry(ref)
        for role in ("encoder", "decoder"):
            if role in skip:
                continue
            m["accuracy"][role] = [_row(c, correct[(lb, p, s, "fp32")], model=label, protocol=p, snr_db=float(s))
                                   for (lb, p, s, name), c in correct.items() if lb == label and name == role]
    for protocol, ref in classifiers.items():
        m = entry(ref)
        rows = [_row(clean[(protocol, "int8")], clean[(protocol, "fp32")], model="clean images", protocol=protocol,
                     snr_db=None)]
        rows += [_row(c, correct[(lb, p, s, "fp32")], model=lb, protocol=p, snr_db=float(s))
                 for (lb, p, s, name), c in correct.items() if p == protocol and name == "classifier"]
        m["accuracy"].setdefault("classifier", []).extend(rows)
    for m in models.values():
        m["use"] = {role: all(r["within"] for r in rows) for role, rows in m["accuracy"].items()}
        m["not_measured"] = [r for r in skip if r in m["sha256"]]
        for role in m["not_measured"]:  # ruled out on validation images: stays fp32
            m["use"][role] = False
        m["max_abs_diff_pp"] = {role: max(abs(r["diff_pp"]) for r in rows) for role, rows in m["accuracy"].items()}
    chains = [_row(c, correct[(lb, p, s, "fp32")], model=lb, protocol=p, snr_db=float(s), chain=name)
              for (lb, p, s, name), c in correct.items() if "+" in name or name == "all int8"]
    return {"meta": {**meta, "tolerance_pp": TOLERANCE_PP, "skipped_roles": list(skip), "python": platform.python_version(),
                     "date": time.strftime("%Y-%m-%d"),
                     "rule": f"a role runs int8 under `auto` when |int8 - fp32| <= {TOLERANCE_PP} pp (point estimate) "
                             "at every SNR and protocol; paired 95 % intervals reported",
                     "cpu_vnni": sorted(f for f in cpu_flags() if "vnni" in f)},
            "models": models, "chains": chains}


def markdown(doc: dict[str, Any]) -> str:
    m = doc["meta"]
    lines = [f"int8 - fp32 accuracy, paired: {m['n_images']} {m['split']} images, AWGN, same noise for both; "
             f"points with the paired 95 % interval (`{m.get('command', '')}`). Tolerance: |difference| <= "
             f"{m['tolerance_pp']} pp at every SNR and protocol.", ""]
    for name, mod in doc["models"].items():
        for role in mod.get("not_measured", []):
            lines += [f"**{name} / {role}**: not measured on these images ({m.get('skip_reason', 'ruled out before')}); "
                      f"stays fp32.", ""]
        for role, rows in mod["accuracy"].items():
            verdict = "holds: `auto` runs int8" if mod["use"][role] else "does NOT hold: stays fp32"
            lines += [f"**{name} / {role}** ({verdict}; largest |difference| "
                      f"{mod['max_abs_diff_pp'][role]:.2f} pp)", "",
                      "| judged on | protocol | SNR | fp32 % | int8 % | int8 - fp32 (pp) | images that differ |",
                      "|---|---|---:|---:|---:|---:|---:|"]
            for r in rows:
                snr = "clean" if r["snr_db"] is None else f"{r['snr_db']:g} dB"
                lines.append(f"| {r['model']} | {r['protocol']} | {snr} | {r['fp32']:.2f} | {r['int8']:.2f} | "
                             f"{r['diff_pp']:+.2f} [{r['diff_ci_pp'][0]:+.2f}, {r['diff_ci_pp'][1]:+.2f}] | "
                             f"{r['disagree']} |")
            lines.append("")
    lines += ["**Chains with several int8 models** (against the all-fp32 chain)", "",
              "| chain | model | protocol | SNR | fp32 % | int8 % | difference (pp) |", "|---|---|---|---:|---:|---:|---:|"]
    for r in doc["chains"]:
        lines.append(f"| {r['chain']} | {r['model']} | {r['protocol']} | {r['snr_db']:g} dB | {r['fp32']:.2f} | "
                     f"{r['int8']:.2f} | {r['diff_pp']:+.2f} [{r['diff_ci_pp'][0]:+.2f}, {r['diff_ci_pp'][1]:+.2f}] |")
    return "\n".join(lines)


def write(doc: dict[str, Any], out: Path) -> None:
    write_together({out.with_suffix(".json"): text_writer(json.dumps(doc, indent=2) + "\n"),
                    out.with_suffix(".md"): text_writer(markdown(doc) + "\n")})
