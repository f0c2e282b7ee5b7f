"""Separate source-channel coding baseline: codecs, 802.11 LDPC, modem, budget, fallbacks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from semjscc.data import Dataset
from semjscc.data.imaging import to_float_nchw
from semjscc.data.metrics import psnr_db
from semjscc.experiments.eval.separate import AUTO, envelope, run_separate_sweep
from semjscc.nn.channels import make_channel
from semjscc.phy.symbols import from_pairs, to_pairs
from semjscc.separate.codecs import available_codecs, make_codec
from semjscc.separate.ldpc import _numba_kernel, rate_value, wifi_code
from semjscc.separate.modem import MODULATIONS, constellation, demap, hard_bits, modulate
from semjscc.separate.scheme import (
    SeparateScheme,
    fits,
    pack_frame,
    phy_decode,
    phy_encode,
    plan_frame,
    unpack_frame,
)
from semjscc.separate.wifi_ldpc_tables import LENGTHS, RATES


def smooth_images(n: int, seed: int = 0) -> np.ndarray:
    """Compressible 32x32 pictures: colour gradients, a rectangle, mild noise (uint8 NHWC)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:32, 0:32] / 31.0
    out = []
    for _ in range(n):
        c0, c1, c2 = rng.uniform(0, 1, (3, 3))
        img = c0 + np.outer(x.ravel(), c1).reshape(32, 32, 3) + np.outer(y.ravel(), c2).reshape(32, 32, 3)
        r0, c_0 = rng.integers(0, 20, 2)
        img[r0 : r0 + 10, c_0 : c_0 + 10] = rng.uniform(0, 1, 3)
        img = img / img.max() + rng.normal(0, 0.02, img.shape)
        out.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    return np.stack(out)


def awgn(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    n0 = 10 ** (-snr_db / 10)
    return (x + np.sqrt(n0 / 2) * (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape))).astype(np.complex64)


# --- codecs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["jpeg", "webp", "heif"])
def test_codec_round_trip_every_quality(name: str) -> None:
    if name not in available_codecs():
        pytest.skip(f"{name} encoder not installed")
    codec = make_codec(name)
    imgs = smooth_images(3 if name == "heif" else 6)
    ref = to_float_nchw(imgs)
    mean_psnr, mean_size = [], []
    for q in codec.qualities:
        payloads = [codec.encode(im, q) for im in imgs]
        dec = np.stack([codec.decode(p, q) for p in payloads])
        assert dec.shape == imgs.shape and dec.dtype == np.uint8
        assert codec.decode(payloads[0], q).tobytes() == dec[0].tobytes()  # deterministic
        mean_psnr.append(float(np.minimum(psnr_db(ref, to_float_nchw(dec)), 100).mean()))
        mean_size.append(np.mean([len(p) for p in payloads]))
        assert codec.header_bytes_saved(q) > 0
    assert mean_psnr[-1] > mean_psnr[0] + 5  # quality buys fidelity...
    assert mean_size[-1] > mean_size[0]  # ...and costs bytes
    assert all(b >= a - 1.0 for a, b in itertools.pairwise(mean_psnr))  # ~monotone
    assert mean_psnr[0] > 15  # even the lowest quality is a picture, not garbage


def test_jpeg_header_is_shared_and_stripped() -> None:
    codec = make_codec("jpeg")
    imgs = smooth_images(4)
    assert codec.header_bytes_saved(20) > 500  # SOI/APP0/DQT/SOF0/DHT/SOS/EOI of a 32x32 baseline JPEG
    import io

    from PIL import Image

    for im in imgs:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, "JPEG", quality=20, optimize=False, subsampling=2)
        assert len(codec.encode(im, 20)) == len(buf.getvalue()) - codec.header_bytes_saved(20)


def test_corrupted_payload_is_a_codec_error_or_an_image() -> None:
    from semjscc.separate.codecs import CodecError

    for name in [c for c in available_codecs() if c != "heif"]:
        codec = make_codec(name)
        q = codec.qualities[3]
        p = bytearray(codec.encode(smooth_images(1)[0], q))
        p[1:] = bytes(len(p) - 1)  # wreck everything after the first byte
        try:
            out = codec.decode(bytes(p), q)
        except CodecError:
            continue
        assert out.shape == (32, 32, 3)


# --- modem ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mod", list(MODULATIONS))
def test_modem_unit_power_gray_and_llr_signs(mod: str) -> None:
    m = MODULATIONS[mod]
    pts = constellation(mod)
    assert abs(np.mean(np.abs(pts) ** 2) - 1.0) < 1e-6
    if m > 1:  # Gray: nearest neighbours differ in exactly one bit
        d = np.abs(pts[:, None] - pts[None, :])
        dmin = d[d > 1e-9].min()
        for i, j in zip(*np.nonzero(np.abs(d - dmin) < 1e-6), strict=True):
            assert bin(i ^ j).count("1") == 1
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, (4, 120 * m), dtype=np.uint8)
    x = modulate(bits, mod)
    llr = demap(x, mod, 0.1)
    assert np.array_equal(hard_bits(llr), bits) and np.all(np.abs(llr) > 0)
    # BER at high SNR is 0
    assert np.array_equal(hard_bits(demap(awgn(x, 30.0, rng), mod, 10 ** -3)), bits)


# --- LDPC -------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("rate", RATES)
def test_ldpc_codes_are_what_the_standard_says(n: int, rate: str) -> None:
    code = wifi_code(n, rate)
    assert code.k == round(n * rate_value(rate)) and code.z == n // 24
    h = code.parity_check_matrix()
    u = np.random.default_rng(2).integers(0, 2, (5, code.k), dtype=np.uint8)
    cw = code.encode(u)
    assert np.array_equal(cw[:, : code.k], u)  # systematic
    assert not ((h.astype(int) @ cw.T.astype(int)) % 2).any()  # H c = 0
    assert code.syndrome_ok(cw).all()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_ldpc_corrects_below_threshold_and_fails_detectably_above(backend: str) -> None:
    if backend == "numba" and _numba_kernel() is None:
        pytest.skip("numba not installed")
    code = wifi_code(648, "1/2")
    rng = np.random.default_rng(3)
    u = rng.integers(0, 2, (200, code.k), dtype=np.uint8)
    x = modulate(code.encode(u), "qpsk")
    # 4 dB Es/N0 (Eb/N0 4 dB at rate 1/2): the channel flips ~1 % of bits, the code fixes them all
    n0 = 10 ** (-4 / 10)
    llr = demap(awgn(x, 4.0, rng), "qpsk", n0)
    assert (hard_bits(llr)[:, : code.k] != u).sum() > 100
    bits, ok = code.decode(llr, backend=backend)
    assert ok.all() and np.array_equal(bits[:, : code.k], u)
    # -3 dB: far below threshold; every codeword fails and says so
    llr = demap(awgn(x[:50], -3.0, rng), "qpsk", 10 ** 0.3)
    bits, ok = code.decode(llr, backend=backend)
    assert not ok.any()
    assert (bits[:, : code.k] != u[:50]).any(1).all()


def test_ldpc_backends_agree() -> None:
    if _numba_kernel() is None:
        pytest.skip("numba not installed")
    code = wifi_code(1296, "2/3")
    rng = np.random.default_rng(4)
    x = modulate(code.encode(rng.integers(0, 2, (60, code.k), dtype=np.uint8)), "qpsk")
    llr = demap(awgn(x, 3.0, rng), "qpsk", 10 ** -0.3)  # in the waterfall: some pass, some fail
    b1, ok1 = code.decode(llr, backend="numpy")
    b2, ok2 = code.decode(llr, backend="numba")
    assert 0 < ok1.sum() < len(ok1)
    assert np.array_equal(ok1, ok2) and np.array_equal(b1, b2)


def test_shortened_code_round_trip() -> None:
    code = wifi_code(648, "3/4")
    u = np.random.default_rng(5).integers(0, 2, (4, code.k - 100), dtype=np.uint8)
    tx = code.encode_shortened(u, 100)
    assert tx.shape == (4, code.n - 100)
    info, ok = code.decode_shortened(np.where(tx == 0, 5.0, -5.0).astype(np.float32), 100)
    assert ok.all() and np.array_equal(info, u)


# --- budget -----------------------------------------------------------------------------------

@pytest.mark.parametrize("n_cu", [256, 512])
def test_budget_accounting(n_cu: int) -> None:
    for mod, m in MODULATIONS.items():
        for rate in RATES:
            lay = plan_frame(n_cu, mod, rate)
            if lay is None:
                continue
            assert lay.info_bits <= n_cu * m * rate_value(rate)  # bits per image <= uses x bits/sym x rate
            assert lay.n_cw * lay.n_tx <= n_cu * m
            frames = np.random.default_rng(6).integers(0, 2, (3, lay.info_bits), dtype=np.uint8)
            sym = phy_encode(frames, lay)
            assert sym.shape == (3, n_cu)  # exactly the JSCC's channel uses
            assert abs(float(np.mean(np.abs(sym) ** 2)) - 1.0) < 0.1


def test_frame_pack_unpack_and_fit() -> None:
    lay = plan_frame(512, "qpsk", "1/2")
    assert lay is not None
    payload = bytes(range(30))
    n, qi, out = unpack_frame(pack_frame(payload, lay, 5, 4), lay, 4)
    assert (n, qi, out) == (30, 5, payload)
    max_bytes = lay.info_bits // 8
    assert not fits(max_bytes, lay) and fits(max_bytes - 2, lay)
    assert unpack_frame(pack_frame(bytes(max_bytes), lay), lay)[0] == 0  # too big: sent as "no image"


# --- scheme: fallback counted, end to end ---------------------------------------------------------

def test_too_big_and_ldpc_failures_fall_back_and_are_counted() -> None:
    x = to_float_nchw(smooth_images(4))
    mean = x.mean(0)
    big = SeparateScheme(make_codec("jpeg"), 90, "bpsk", "5/6", 256, fallback=mean)
    out = big.decode(big.encode(x, np.full(4, 30.0)), np.full(4, 30.0))
    assert out.shape == x.shape and np.allclose(out, mean)
    assert big.stats["images"] == 4 and big.stats["fallback"] == 4 and big.stats["too_big"] == 4
    s = SeparateScheme(make_codec("jpeg"), None, "qpsk", "1/2", 512, fallback=mean)
    z = s.encode(x, np.full(4, -10.0))
    y = to_pairs(awgn(from_pairs(z), -10.0, np.random.default_rng(7)))
    out = s.decode(y, np.full(4, -10.0, np.float32))
    assert s.stats["ldpc"] == 4 and s.stats["fallback"] == 4 and np.allclose(out, mean)


@pytest.mark.parametrize("channel, snr", [("awgn", 8.0), ("ofdm", 25.0)])
def test_end_to_end_over_the_jscc_channel(channel: str, snr: float) -> None:
    x = to_float_nchw(smooth_images(8))
    s = SeparateScheme(make_codec("jpeg"), None, "qpsk", "1/2", 512,
                       equalizer="mmse" if channel == "ofdm" else None)
    snr_v = np.full(len(x), snr, np.float32)
    z = s.encode(x, snr_v)
    assert z.shape == (8, 512, 2) and z.dtype == np.float32
    with torch.no_grad():
        y, seen = make_channel(channel, torch.Generator().manual_seed(0))(torch.from_numpy(z), torch.from_numpy(snr_v))
    out = s.decode(y.numpy(), seen.numpy())
    assert s.stats["images"] == 8 and s.stats["fallback"] <= 1
    delivered = ~np.all(np.isclose(out, s.fallback), axis=(1, 2, 3))
    assert psnr_db(x[delivered], out[delivered]).min() > 18


def test_phy_decode_detects_all_errors_at_low_snr() -> None:
    lay = plan_frame(512, "16qam", "3/4")
    assert lay is not None
    frames = np.random.default_rng(8).integers(0, 2, (6, lay.info_bits), dtype=np.uint8)
    y = awgn(phy_encode(frames, lay), 0.0, np.random.default_rng(9))
    rx, ok = phy_decode(y, np.zeros(6), lay)
    wrong = (rx ^ frames).reshape(6, lay.n_cw, lay.k_cw).any(-1)
    assert not ok.any() and wrong.all()


# --- the envelope sweep -------------------------------------------------------------------------

def test_sweep_rows_envelope_and_agreement_with_the_scheme() -> None:
    imgs = smooth_images(12, seed=3)
    labels = np.arange(12) % 10

    def classify(x: np.ndarray) -> np.ndarray:  # deterministic stand-in: brightness bins
        return np.eye(10)[np.clip((x.mean((1, 2, 3)) * 10).astype(int), 0, 9)]

    data = Dataset(imgs, labels)
    rows = run_separate_sweep(classify, data, [-5.0, 12.0], "awgn", 1 / 6, codecs=["jpeg"],
                              modulations=["qpsk"], rates=["1/2"], qualities={"jpeg": [5, 20, 90]},
                              progress=False, use_cache=False)
    assert {r["quality"] for r in rows} >= {5, 20, AUTO}
    for r in rows:
        assert r["frame_bits"] <= 512 * 2 * 0.5 and r["n"] == 12
        assert 0.0 <= r["fallback_rate"] <= 1.0
        if r["snr_db"] == -5.0:
            assert r["fallback_rate"] == 1.0  # nothing gets through, and nothing is skipped
    hi = {r["quality"]: r for r in rows if r["snr_db"] == 12.0}
    assert hi[5]["fallback_rate"] == 0.0 and hi[5]["psnr_db"] > 18
    best = envelope(rows)
    assert [b["snr_db"] for b in best] == [-5.0, 12.0]
    # the literal end-to-end scheme gives the same outcome at the same configuration
    s = SeparateScheme(make_codec("jpeg", [5, 20, 90]), 5, "qpsk", "1/2", 512)
    x = to_float_nchw(imgs)
    z = s.encode(x, np.full(12, 12.0))
    s.decode(to_pairs(awgn(from_pairs(z), 12.0, np.random.default_rng(10))), np.full(12, 12.0))
    assert s.fallback_rate == hi[5]["fallback_rate"]


def test_evaluate_choice_reuses_a_codec_table_across_snrs(monkeypatch: pytest.MonkeyPatch) -> None:
    """eval evaluates the chosen configuration at every SNR: the codec's table (every quality
    decoded and classified) and the fallback image's scores are built once and give the same outcome
    as fresh ones."""
    from semjscc.experiments.eval import separate as env

    imgs, labels = smooth_images(8, seed=5), np.arange(8) % 10

    def classify(x: np.ndarray) -> np.ndarray:
        return np.eye(10)[np.clip((x.mean((1, 2, 3)) * 10).astype(int), 0, 9)]

    data = Dataset(imgs, labels)
    built = []
    real = env.build_codec_table
    monkeypatch.setattr(env, "build_codec_table", lambda *a, **k: built.append(a[0].name) or real(*a, **k))
    reuse = env.ChoiceCache()
    runs = [env.evaluate_choice(classify, data, snr, "awgn", 1 / 6, "jpeg", AUTO, "qpsk", "1/2",
                                use_cache=False, reuse=reuse) for snr in (12.0, 15.0)]
    assert built == ["jpeg"] and set(reuse.tables) == {"jpeg"} and reuse.fallback_scores is not None
    fresh = env.evaluate_choice(classify, data, 15.0, "awgn", 1 / 6, "jpeg", AUTO, "qpsk", "1/2", use_cache=False)
    assert built == ["jpeg", "jpeg"]
    assert np.array_equal(fresh.correct, runs[1].correct) and fresh.psnr_db == runs[1].psnr_db
