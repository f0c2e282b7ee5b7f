"""The separate-coding envelope: for each SNR, every (codec, quality, modulation, code rate)
whose frame fits the JSCC's channel-use budget, evaluated on the whole test set, and the best
per SNR (by classifier accuracy, and separately by PSNR).

Why it is fast enough for 10,000 images per SNR: the configuration space factorises.
* The codec side does not depend on the channel: each image is encoded and decoded once per
  (codec, quality) (``CodecTable``; payloads are cached on disk, HEVC encoding being slow), and
  the classifier verdict, PSNR and SSIM of every decoded image are computed once.
* The channel side does not depend on the codec: per (modulation, rate, SNR) one PHY run
  (``simulate_phy``) sends frames of scrambled random bits — which is what the scrambler makes
  real payloads look like — through the LDPC encoder, modem, the project's torch channel and the
  receiver, and records per image which codewords passed their syndrome check and, for any that
  passed with wrong bits (undetected errors), the exact error pattern.
* A configuration then costs array look-ups: image i is delivered iff its bitstream fits and
  every codeword carrying its frame passed. Images hit by an undetected error are *really*
  decoded: their true frame XOR the recorded error pattern goes through the frame parser and the
  codec, and whatever comes out (or the fallback, on a codec error) is classified. For BPSK/QPSK
  (symmetric channels and a linear code) this is the exact outcome the same noise would give the
  real frame; for 16/64-QAM it has the same distribution (the scrambler makes the real frame's
  coded bits uniformly random). ``SeparateScheme`` runs the literal end-to-end chain and the tests
  check the two agree.

Fallbacks (bitstream too big, LDPC failure, codec error) output the mean test image and are
counted, never skipped. Per-image PSNR is capped at 100 dB before averaging (a codec can return
a flat image exactly).
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semjscc.data.imaging import to_float_nchw
from semjscc.data.metrics import capped_psnr_db, ssim
from semjscc.phy.symbols import from_pairs, symbols_for_ratio, to_pairs
from semjscc.separate.codecs import Codec, CodecError, available_codecs, make_codec
from semjscc.separate.modem import MODULATIONS
from semjscc.separate.scheme import (
    FrameLayout,
    codewords_used,
    fits,
    length_field_bits,
    pack_frame,
    phy_decode,
    phy_encode,
    plan_frame,
    unpack_frame,
)
from semjscc.separate.wifi_ldpc_tables import RATES
from semjscc.util.files import text_writer, write_together
from semjscc.util.paths import cache_dir

Classify = Callable[[np.ndarray], np.ndarray]  # float NCHW images -> logits (B, 10)
AUTO = "auto"  # per-image quality: the highest that fits, its index sent in the frame


def _metrics(classify: Classify, ref: np.ndarray, test: np.ndarray, labels: np.ndarray,
             batch: int = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correct, capped PSNR, SSIM) per image."""
    correct = np.empty(len(ref), bool)
    for s in range(0, len(ref), batch):
        correct[s : s + batch] = np.asarray(classify(test[s : s + batch])).argmax(1) == labels[s : s + batch]
    return correct, capped_psnr_db(ref, test), ssim(ref, test)


# --- codec side -----------------------------------------------------------------------------

@dataclass
class CodecTable:
    """Per image and quality: payload size (-1: the codec failed) and the delivered image's scores."""

    codec: Codec
    payloads: list[list[bytes | None]]  # [quality][image]
    sizes: np.ndarray  # (N, Q) int
    correct: np.ndarray  # (N, Q) bool
    psnr: np.ndarray  # (N, Q)
    ssim: np.ndarray  # (N, Q)
    encode_s: float = 0.0
    decode_s: float = 0.0

    @property
    def qualities(self) -> tuple[int, ...]:
        return self.codec.qualities


def _cache_path(codec: Codec, images: np.ndarray) -> Path:
    from PIL import __version__ as pil_version


    h = hashlib.sha1(images.tobytes())
    h.update(repr((codec.name, codec.qualities, pil_version)).encode())
    if codec.name == "heif":
        import pillow_heif

        h.update(repr(pillow_heif.libheif_info()).encode())
    return cache_dir() / "separate" / f"{codec.name}-{h.hexdigest()[:16]}.npz"


def _encode_all(codec: Codec, images: np.ndarray, use_cache: bool) -> tuple[list[list[bytes | None]], float]:
    """Payloads [quality][image] (None: the encoder failed) and the encoding time (0 if cached)."""
    n, nq = len(images), len(codec.qualities)
    path = _cache_path(codec, images) if use_cache else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as z:
            blob, lengths = z["blob"].tobytes(), z["lengths"]
        ends = np.cumsum(np.maximum(lengths, 0))
        flat = [None if ln < 0 else blob[e - ln : e] for ln, e in zip(lengths, ends, strict=True)]
        return [flat[j * n : (j + 1) * n] for j in range(nq)], 0.0
    t0 = time.perf_counter()
    out: list[list[bytes | None]] = []
    for q in codec.qualities:
        row: list[bytes | None] = []
        for im in images:
            try:
                row.append(codec.encode(im, q))
            except CodecError:
                row.append(None)
        out.append(row)
    seconds = time.perf_counter() - t0
    if path is not None:
        flat = [p for row in out for p in row]
        lengths = np.array([-1 if p is None else len(p) for p in flat], dtype=np.int64)
        blob = np.frombuffer(b"".join(p or b"" for p in flat), dtype=np.uint8)
        write_together({path: lambda f: np.savez(f, blob=blob, lengths=lengths)})
    return out, seconds


def build_codec_table(codec: Codec, images_u8: np.ndarray, labels: np.ndarray, classify: Classify,
                      fallback: np.ndarray, use_cache: bool = True) -> CodecTable:
    """Encode every image at every quality, decode, and score what the receiver would show."""
    ref = to_float_nchw(images_u8)
    payloads, enc_s = _encode_all(codec, images_u8, use_cache)
    n, nq = len(images_u8), len(codec.qualities)
    sizes = np.full((n, nq), -1, dtype=np.int64)
    correct = np.zeros((n, nq), bool)
    ps = np.zeros((n, nq), np.float64)
    ss = np.zeros((n, nq), np.float64)
    t0 = time.perf_counter()
    for j, q in enumerate(codec.qualities):
        dec = np.empty_like(ref)
        for i, p in enumerate(payloads[j]):
            try:
                if p is None:
                    raise CodecError("encode failed")
                dec[i] = to_float_nchw(codec.decode(p, q))[0]
                sizes[i, j] = len(p)
            except CodecError:
                dec[i] = fallback
        correct[:, j], ps[:, j], ss[:, j] = _metrics(classify, ref, dec, labels)
    return CodecTable(codec, payloads, sizes, correct, ps, ss, enc_s, time.perf_counter() - t0)


# --- channel side -----------------------------------------------------------------------------

@dataclass
class PhyOutcome:
    layout: FrameLayout
    cw_ok: np.ndarray  # (N, n_cw) syndrome satisfied
    cw_wrong: np.ndarray  # (N, n_cw) decoded information bits differ from the sent ones
    error_frames: dict[int, np.ndarray] = field(default_factory=dict)  # image -> frame error pattern, where
    seconds: float = 0.0  # an ok codeword is wrong (undetected error)


def simulate_phy(layout: FrameLayout, n_images: int, snr_db: float, channel: str, seed: int,
                 batch: int = 1000, channel_kwargs: dict | None = None) -> PhyOutcome:
    """One PHY run of ``n_images`` frames of random bits at ``snr_db`` over the project's channel."""
    import torch

    from semjscc.nn.channels import make_channel

    gen = torch.Generator().manual_seed(seed + round(snr_db * 100))  # the JSCC sweep's convention
    chan = make_channel(channel, gen, **(channel_kwargs or {}))
    equalizer = getattr(chan, "equalizer", None) if channel == "ofdm" else None
    if channel not in ("awgn", "ofdm"):
        raise ValueError(f"separate coding is evaluated over 'awgn' and 'ofdm', not {channel!r}")
    rng = np.random.default_rng(seed * 7919 + round(snr_db * 100))
    ok = np.zeros((n_images, layout.n_cw), bool)
    wrong = np.zeros((n_images, layout.n_cw), bool)
    errors: dict[int, np.ndarray] = {}
    t0 = time.perf_counter()
    for s in range(0, n_images, batch):
        b = min(batch, n_images - s)
        frames = rng.integers(0, 2, (b, layout.info_bits), dtype=np.uint8)
        z = to_pairs(phy_encode(frames, layout))
        snr = np.full(b, snr_db, np.float32)
        with torch.no_grad():
            y, snr_seen = chan(torch.from_numpy(z), torch.from_numpy(snr))
        rx, cw_ok = phy_decode(from_pairs(y.numpy()), snr_seen.numpy(), layout, equalizer)
        err = rx ^ frames
        cw_wrong = err.reshape(b, layout.n_cw, layout.k_cw).any(-1)
        ok[s : s + b], wrong[s : s + b] = cw_ok, cw_wrong
        for i in np.nonzero((cw_ok & cw_wrong).any(1))[0]:
            errors[s + int(i)] = err[i]
    return PhyOutcome(layout, ok, wrong, errors, time.perf_counter() - t0)


# --- one configuration --------------------------------------------------------------------------

@dataclass
class ConfigResult:
    accuracy: float
    psnr_db: float
    ssim: float
    fallback_rate: float
    too_big: float
    ldpc_fail: float
    codec_error: float
    undetected: int
    bits_per_image: float  # mean frame bits (header + payload) of the images that fit
    correct: np.ndarray | None = field(default=None, repr=False)  # per image (not in the JSON rows)

    def row(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "correct"}


def evaluate_config(table: CodecTable, quality: int | str, phy: PhyOutcome, fallback_scores: tuple,
                    classify: Classify, ref: np.ndarray, labels: np.ndarray, fallback: np.ndarray) -> ConfigResult:
    """Combine a codec table and a PHY outcome into one configuration's scores."""
    lay = phy.layout
    n = len(labels)
    if quality == AUTO:
        qb = max(1, (len(table.qualities) - 1).bit_length())
        fit_all = fits(table.sizes, lay, qb)
        any_fit = fit_all.any(1)
        qidx = np.where(any_fit, table.sizes.shape[1] - 1 - np.argmax(fit_all[:, ::-1], axis=1), 0)
    else:
        qb = 0
        qidx = np.full(n, table.qualities.index(int(quality)))
        any_fit = fits(table.sizes[np.arange(n), qidx], lay, 0)
    size = table.sizes[np.arange(n), qidx]
    used = codewords_used(np.where(any_fit, size, 0), lay, qb)
    first_fail = np.where(phy.cw_ok.all(1), lay.n_cw, np.argmin(phy.cw_ok, axis=1))
    ok = any_fit & (used <= first_fail)
    fb_correct, fb_psnr, fb_ssim = fallback_scores
    correct = np.where(ok, table.correct[np.arange(n), qidx], fb_correct).astype(float)
    ps = np.where(ok, table.psnr[np.arange(n), qidx], fb_psnr)
    ss = np.where(ok, table.ssim[np.arange(n), qidx], fb_ssim)
    codec_err = 0
    undetected = 0
    # images whose used codewords include an undetected error: really decode the corrupted frame
    for i, err in phy.error_frames.items():
        if not ok[i]:
            continue
        used_i = int(used[i])
        if not (phy.cw_ok[i, :used_i] & phy.cw_wrong[i, :used_i]).any():
            continue
        undetected += 1
        q = table.qualities[qidx[i]]
        frame = pack_frame(table.payloads[qidx[i]][i], lay, int(qidx[i]), qb) ^ err
        length, qi, payload = unpack_frame(frame, lay, qb)
        try:
            if length <= 0:
                raise CodecError("corrupted length")
            img = to_float_nchw(table.codec.decode(payload, table.qualities[qi] if qb else q))
        except (CodecError, IndexError):
            codec_err += 1
            ok[i] = False
            img = fallback[None]
        c, p, s = _metrics(classify, ref[i : i + 1], img, labels[i : i + 1])
        correct[i], ps[i], ss[i] = float(c[0]), p[0], s[0]
    bits = np.where(any_fit, length_field_bits(lay, qb) + qb + 8 * size, 0)
    return ConfigResult(
        accuracy=float(correct.mean()), psnr_db=float(ps.mean()), ssim=float(ss.mean()),
        fallback_rate=float(1.0 - ok.mean()), too_big=float(1.0 - any_fit.mean()),
        ldpc_fail=float((any_fit & (used > first_fail)).mean()), codec_error=codec_err / n,
        undetected=undetected, bits_per_image=float(bits[any_fit].mean()) if any_fit.any() else 0.0,
        correct=correct.astype(bool),
    )


# --- the sweep ---------------------------------------------------------------------------------

def channel_uses(kn: float) -> int:
    """Complex channel uses per 32x32x3 image at bandwidth ratio k/n (the JSCC's count)."""
    return symbols_for_ratio(kn)


def run_separate_sweep(classify: Classify, data: object, snrs: Sequence[float], channel: str = "awgn",
                       kn: float = 1 / 6, codecs: Sequence[str] | None = None,
                       modulations: Sequence[str] = tuple(MODULATIONS), rates: Sequence[str] = RATES,
                       qualities: dict[str, Sequence[int]] | None = None, seed: int = 2024, batch: int = 1000,
                       use_cache: bool = True, progress: bool = True,
                       timings: dict | None = None) -> list[dict]:
    """Every fitting configuration at every SNR -> rows {snr_db, codec, quality, modulation,
    code_rate, accuracy, psnr_db, ssim, fallback_rate, bits_per_image, ...}.

    ``data``: a ``semjscc.data.Dataset`` (uint8 NHWC ``images``, ``labels``). ``timings``, if
    given, is filled with seconds per 1,000 images for the codec tables and each PHY run."""
    images, labels = data.images, np.asarray(data.labels)  # type: ignore[attr-defined]
    n = len(labels)
    n_cu = channel_uses(kn)
    ref = to_float_nchw(images)
    fallback = ref.mean(0)  # the dataset mean image: what a receiver shows when it has nothing
    fb_scores = _metrics(classify, ref, np.broadcast_to(fallback, ref.shape).copy(), labels)
    timings = {} if timings is None else timings
    tables = []
    for name in codecs or available_codecs():
        codec = make_codec(name, (qualities or {}).get(name))
        t0 = time.perf_counter()
        tables.append(build_codec_table(codec, images, labels, classify, fallback, use_cache))
        timings[f"codec {name} (all qualities)"] = 1000 * (time.perf_counter() - t0) / n
        if progress:
            print(f"[separate] {name}: {len(codec.qualities)} qualities, {time.perf_counter() - t0:.1f} s", flush=True)
    layouts = [lay for m in modulations for r in rates if (lay := plan_frame(n_cu, m, r)) is not None]
    rows = []
    for snr in snrs:
        for lay in layouts:
            phy = simulate_phy(lay, n, float(snr), channel, seed, batch)
            timings.setdefault("phy", []).append({"snr_db": float(snr), "config": lay.label(),
                                                 "s_per_1000": 1000 * phy.seconds / n})
            for table in tables:
                for q in (*table.qualities, AUTO):
                    if q != AUTO and not fits(table.sizes[:, table.qualities.index(q)], lay).any():
                        continue  # no image fits at this quality: not a configuration within budget
                    r = evaluate_config(table, q, phy, fb_scores, classify, ref, labels, fallback)
                    rows.append({
                        "snr_db": float(snr), "channel": channel, "kn": kn, "channel_uses": n_cu,
                        "codec": table.codec.name, "quality": q, "modulation": lay.modulation,
                        "code_rate": lay.rate, "effective_rate": round(lay.effective_rate, 4),
                        "ldpc_n": lay.n, "codewords": lay.n_cw, "frame_bits": lay.info_bits,
                        **r.row(), "n": n,
                    })
            if progress:
                print(f"[separate] {channel} {snr:g} dB {lay.label()}: PHY {phy.seconds:.1f} s, "
                      f"codewords ok {phy.cw_ok.mean():.3f}", flush=True)
    return rows


@dataclass
class ChoiceCache:
    """What :func:`evaluate_choice` reuses across SNRs for one image set and one classifier: each
    codec's table and the scores of the fallback (mean) image."""
    tables: dict[str, CodecTable] = field(default_factory=dict)
    fallback_scores: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def evaluate_choice(classify: Classify, data: object, snr_db: float, channel: str, kn: float, codec: str,
                    quality: str, modulation: str, code_rate: str, seed: int = 2024,
                    use_cache: bool = True, reuse: ChoiceCache | None = None) -> ConfigResult:
    """One configuration (chosen beforehand, e.g. on validation images) at one SNR, with the
    per-image outcome (``correct``) for paired comparisons. Same noise convention as the sweep.
    ``reuse``: what the calls for these images and this ``classify`` share, filled on first use
    (decoding and classifying every quality is the slow part, not the channel)."""
    images, labels = data.images, np.asarray(data.labels)  # type: ignore[attr-defined]
    reuse = ChoiceCache() if reuse is None else reuse
    ref = to_float_nchw(images)
    fallback = ref.mean(0)
    if reuse.fallback_scores is None:
        reuse.fallback_scores = _metrics(classify, ref, np.broadcast_to(fallback, ref.shape).copy(), labels)
    fb_scores = reuse.fallback_scores
    table = reuse.tables.get(codec)
    if table is None:
        table = reuse.tables[codec] = build_codec_table(make_codec(codec), images, labels, classify, fallback,
                                                        use_cache)
    lay = plan_frame(channel_uses(kn), modulation, code_rate)
    if lay is None:
        raise ValueError(f"{modulation} rate {code_rate} does not fit {channel_uses(kn)} channel uses")
    phy = simulate_phy(lay, len(labels), float(snr_db), channel, seed)
    q: int | str = AUTO if quality == AUTO else int(quality)
    return evaluate_config(table, q, phy, fb_scores, classify, ref, labels, fallback)


def envelope(rows: list[dict], key: str = "accuracy") -> list[dict]:
    """Best configuration per SNR by ``key`` (ties: PSNR, then accuracy)."""
    best: dict[float, dict] = {}
    for r in rows:
        cur = best.get(r["snr_db"])
        if cur is None or (r[key], r["psnr_db"], r["accuracy"]) > (cur[key], cur["psnr_db"], cur["accuracy"]):
            best[r["snr_db"]] = r
    return [best[s] for s in sorted(best)]


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"Separate coding envelope: channel {meta.get('channel')}, k/n = {meta.get('kn')} "
             f"({meta.get('channel_uses')} channel uses per image), {meta.get('n_images')} images.", ""]
    for key, title in (("accuracy", "best by classifier accuracy"), ("psnr_db", "best by PSNR")):
        lines += [f"**{title}**", "",
                  "| SNR (dB) | acc (%) | PSNR (dB) | SSIM | codec | quality | modulation | rate (eff.) | fallback (%) |",
                  "|---:|---:|---:|---:|---|---|---|---|---:|"]
        for r in envelope(rows, key):
            lines.append(f"| {r['snr_db']:g} | {100 * r['accuracy']:.2f} | {r['psnr_db']:.2f} | {r['ssim']:.3f} | "
                         f"{r['codec']} | {r['quality']} | {r['modulation']} | {r['code_rate']} ({r['effective_rate']:.3f}) | "
                         f"{100 * r['fallback_rate']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def run_separate_eval(classify: Classify, data: object, snrs: Sequence[float], channel: str, kn: float,
                      out: Path | None = None, seed: int = 2024, **kwargs: object) -> dict:
    """CLI-ready: sweep, then write ``out``.json (all rows, envelopes, timings) and ``out``.md."""
    timings: dict = {}
    t0 = time.perf_counter()
    rows = run_separate_sweep(classify, data, snrs, channel, kn, seed=seed, timings=timings, **kwargs)  # type: ignore[arg-type]
    n = len(data.labels)  # type: ignore[attr-defined]
    meta = {"channel": channel, "kn": f"1/{round(1 / kn)}", "channel_uses": channel_uses(kn), "n_images": n,
            "seed": seed, "seconds": round(time.perf_counter() - t0, 1), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}
    doc = {"meta": meta, "timings_s_per_1000_images": timings, "envelope_accuracy": envelope(rows, "accuracy"),
           "envelope_psnr": envelope(rows, "psnr_db"), "rows": rows}
    if out is not None:
        write_together({out.with_suffix(".json"): text_writer(json.dumps(doc, indent=1) + "\n"),
                        out.with_suffix(".md"): text_writer(markdown(rows, meta) + "\n")})
    return doc


__all__ = ["AUTO", "ChoiceCache", "CodecTable", "PhyOutcome", "build_codec_table", "envelope", "evaluate_config",
           "run_separate_eval", "run_separate_sweep", "simulate_phy"]
