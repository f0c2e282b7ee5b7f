"""Deep JSCC models, channels, importance maps and losses (tiny, synthetic, fast)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from semjscc.nn.channels import AWGN, OFDMMultipath, RayleighBlock, make_channel
from semjscc.nn.classifier import Classifier
from semjscc.nn.importance import ImportanceConfig, cached_importance, importance_maps, shape_map
from semjscc.nn.jscc import JSCC, Decoder, Encoder
from semjscc.nn.losses import mse_loss, semantic_loss, task_loss
from semjscc.phy.numerology import DEFAULT_NUMEROLOGY
from semjscc.phy.symbols import channels_for_ratio, symbols_for_ratio


@pytest.mark.parametrize(("kn", "k"), [(1 / 6, 512), (1 / 12, 256)])
@pytest.mark.parametrize("adaptive", [True, False])
def test_encoder_power_is_exactly_one_per_image(kn: float, k: int, adaptive: bool) -> None:
    torch.manual_seed(0)
    enc = Encoder(kn, width=8, snr_adaptive=adaptive)
    x = torch.rand(7, 3, 32, 32)
    x[0] = 0.0  # a flat image still gets unit power
    z = enc(x, torch.linspace(0, 20, 7))
    assert z.shape == (7, k, 2) and symbols_for_ratio(kn) == k
    power = z.square().sum(-1).mean(1)
    assert torch.allclose(power, torch.ones(7), atol=1e-5)
    dec = Decoder(kn, width=8, snr_adaptive=adaptive)
    out = dec(z, torch.full((7,), 10.0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


def test_bad_ratio_is_refused() -> None:
    assert channels_for_ratio(1 / 6) == 16
    with pytest.raises(ValueError, match="k/n"):
        channels_for_ratio(1 / 7)


def _unit_symbols(b: int, k: int) -> torch.Tensor:
    z = torch.randn(b, k, 2) / math.sqrt(2)
    return z / z.square().sum(-1).mean(1, keepdim=True).sqrt()[..., None]


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_awgn_measured_snr_within_0_2_db(snr: float) -> None:
    gen = torch.Generator().manual_seed(1)
    z = _unit_symbols(64, 4096)
    y, told = AWGN(gen)(z, torch.full((64,), snr))
    noise = (y - z).square().sum(-1).mean()
    measured = 10 * math.log10(1.0 / float(noise))
    assert abs(measured - snr) < 0.2
    assert torch.equal(told, torch.full((64,), snr))


def test_rayleigh_is_unit_gain_on_average_and_reports_instant_snr() -> None:
    gen = torch.Generator().manual_seed(2)
    z = _unit_symbols(4000, 64)
    y, told = RayleighBlock(gen)(z, torch.full((4000,), 30.0))
    # at high SNR the MMSE equaliser restores the symbols; the told SNR averages E[log|h|^2] below 30 dB
    assert float((y - z).square().sum(-1).mean()) < 0.05
    assert abs(float(told.mean()) - (30 - 2.5)) < 0.3  # E[10 log10 |h|^2] = -2.51 dB for Rayleigh


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_ofdm_channel_follows_the_snr_convention(snr: float) -> None:
    """A unit one-tap channel with known CSI is AWGN at the set per-subcarrier SNR."""
    gen = torch.Generator().manual_seed(3)
    ch = OFDMMultipath(n_taps=1, equalizer="zf", fading=False, perfect_csi=True, generator=gen)
    z = _unit_symbols(128, 512)
    y, told = ch(z, torch.full((128,), snr))
    measured = 10 * math.log10(1.0 / float((y - z).square().sum(-1).mean()))
    assert abs(measured - snr) < 0.2 and torch.equal(told, torch.full((128,), snr))


def test_ofdm_channel_estimated_csi_costs_about_3_db_with_zf() -> None:
    gen = torch.Generator().manual_seed(4)
    ch = OFDMMultipath(n_taps=1, equalizer="zf", fading=False, generator=gen)
    z = _unit_symbols(256, 512)
    y, _ = ch(z, torch.full((256,), 20.0))
    measured = 10 * math.log10(1.0 / float((y - z).square().sum(-1).mean()))
    assert 16.5 < measured < 17.5  # data noise + one-symbol LS estimate noise: 20 - 10 log10(2)


def test_ofdm_multipath_mmse_recovers_symbols_at_high_snr() -> None:
    gen = torch.Generator().manual_seed(5)
    ch = OFDMMultipath(n_taps=4, generator=gen)
    z = _unit_symbols(64, 512)
    y, _ = ch(z, torch.full((64,), 30.0))
    assert DEFAULT_NUMEROLOGY.payload_symbols(512) == 11
    assert float((y * z).sum() / z.square().sum()) > 0.9


def test_ofdm_channel_rejects_taps_longer_than_cp() -> None:
    with pytest.raises(ValueError, match="CP"):
        OFDMMultipath(n_taps=40)
    with pytest.raises(ValueError, match="unknown channel"):
        make_channel("carrier-pigeon")


def test_ofdm_clipping_limits_peaks() -> None:
    gen = torch.Generator().manual_seed(5)
    ch = OFDMMultipath(clip_ratio=1.5, generator=gen)
    y, _ = ch(_unit_symbols(8, 512), torch.full((8,), 40.0))
    assert torch.isfinite(y).all()


def test_importance_maps_shape_positive_mean_one() -> None:
    torch.manual_seed(0)
    clf = Classifier(width=4).eval()
    x = torch.rand(6, 3, 32, 32)
    y = torch.randint(0, 10, (6,))
    m = importance_maps(clf, x, y, ImportanceConfig(samples=2, clip=4.0), torch.Generator().manual_seed(0))
    assert m.shape == (6, 32, 32)
    assert (m >= 0).all() and (m <= 4.0 + 1e-4).all() is not None
    assert torch.allclose(m.mean(dim=(1, 2)), torch.ones(6), atol=1e-4)
    assert float(m.std()) > 0  # not uniform: gradients differ across pixels


def test_semantic_loss_reduces_to_mse() -> None:
    x, x_hat = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    uniform = torch.ones(4, 32, 32)
    assert torch.allclose(semantic_loss(x, x_hat, uniform, mix=0.0), mse_loss(x, x_hat))
    skewed = torch.rand(4, 32, 32) * 3
    assert torch.allclose(semantic_loss(x, x_hat, skewed, mix=1.0), mse_loss(x, x_hat))
    # weighting moves the loss towards errors on important pixels
    w = torch.zeros(4, 32, 32)
    w[:, :16] = 2.0
    err = torch.zeros_like(x)
    err[:, :, :16] = 0.5
    assert semantic_loss(x, x + err, w) > mse_loss(x, x + err)
    with pytest.raises(ValueError):
        semantic_loss(x, x_hat, uniform, mix=1.5)


def test_importance_power_steepens_the_map() -> None:
    torch.manual_seed(1)
    raw = torch.rand(3, 32, 32) ** 3  # skewed, like gradient magnitudes
    flat = shape_map(raw, ImportanceConfig(blur=1.0, clip=1e6))
    steep = shape_map(raw, ImportanceConfig(blur=1.0, clip=1e6, power=2.0))
    assert torch.allclose(steep.mean(dim=(1, 2)), torch.ones(3), atol=1e-4)
    # same ranking of pixels, wider spread: the important regions gain weight
    assert float(steep.std()) > 1.5 * float(flat.std())
    assert torch.equal(flat.flatten(1).argmax(1), steep.flatten(1).argmax(1))
    # the clip still applies to the steep map: a plateau at the top, well below the unclipped peak
    uncapped = shape_map(raw, ImportanceConfig(blur=1.0, clip=1e6, power=3.0))
    capped = shape_map(raw, ImportanceConfig(blur=1.0, clip=4.0, power=3.0))
    peak = capped.amax(dim=(1, 2), keepdim=True)
    assert ((capped >= peak - 1e-5).sum(dim=(1, 2)) > 1).all()
    assert (peak.flatten() < uncapped.amax(dim=(1, 2))).all()


def test_map_variants_share_one_cached_gradient_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMJSCC_CACHE", str(tmp_path))
    torch.manual_seed(0)
    clf = Classifier(width=4).eval()
    images = (np.random.default_rng(0).random((6, 32, 32, 3)) * 255).astype(np.uint8)
    labels = np.arange(6) % 10
    ck = tmp_path / "clf.pt"
    ck.write_bytes(b"the key hashes the classifier's bytes")
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    for cfg in (ImportanceConfig(samples=2), ImportanceConfig(samples=2, power=2.0, clip=32.0)):
        got = cached_importance(clf, ck, images, labels, cfg, tag="t")
        want = importance_maps(clf, x, torch.from_numpy(labels), cfg, torch.Generator().manual_seed(cfg.seed))
        assert got.dtype == np.float16 and got.shape == (6, 32, 32)
        assert np.allclose(got.astype(np.float32), want.numpy(), rtol=2e-2, atol=2e-2)
    assert len(list((tmp_path / "importance").glob("t-raw-*.npy"))) == 1  # one gradient pass for both shapes


def test_an_interrupted_gradient_pass_continues_where_it_stopped(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import semjscc.nn.importance as imp

    torch.manual_seed(0)
    clf = Classifier(width=4).eval()
    images = (np.random.default_rng(1).random((10, 32, 32, 3)) * 255).astype(np.uint8)
    labels = np.arange(10) % 10
    ck = tmp_path / "clf.pt"
    ck.write_bytes(b"classifier")
    cfg = ImportanceConfig(samples=2)
    monkeypatch.setenv("SEMJSCC_CACHE", str(tmp_path / "whole"))
    whole = cached_importance(clf, ck, images, labels, cfg, tag="t", batch=4)

    monkeypatch.setenv("SEMJSCC_CACHE", str(tmp_path / "stopped"))
    real, calls = imp.raw_importance, []

    def stop_on_second_batch(*a: object, **k: object) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(imp, "raw_importance", stop_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        cached_importance(clf, ck, images, labels, cfg, tag="t", batch=4)
    assert list((tmp_path / "stopped" / "importance").glob("*.progress.npz"))  # the first batch was kept
    calls.clear()
    monkeypatch.setattr(imp, "raw_importance", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    again = cached_importance(clf, ck, images, labels, cfg, tag="t", batch=4)
    assert len(calls) == 2  # batches 2 and 3 only: batch 1 was not computed again
    assert np.array_equal(again, whole)  # the same noise, so the same maps as a run never stopped
    left = {p.name for p in (tmp_path / "stopped" / "importance").iterdir()}
    assert len(left) == 1 and not any("partial" in n or "progress" in n for n in left)


def test_task_loss_is_a_kl_divergence() -> None:
    logits = torch.randn(5, 10)
    assert float(task_loss(logits, logits)) == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(5, 10)
    kl = task_loss(logits, other)
    p, q = torch.softmax(logits, 1), torch.softmax(other, 1)
    assert float(kl) == pytest.approx(float((p * (p / q).log()).sum(1).mean()), rel=1e-5)
    assert float(kl) > 0
    # gradients reach the decoded side only through its logits
    d = other.clone().requires_grad_(True)
    task_loss(logits, d).backward()
    assert d.grad is not None and float(d.grad.abs().sum()) > 0


@pytest.mark.slow  # a training run
def test_short_training_lowers_loss() -> None:
    torch.manual_seed(0)
    model = JSCC(1 / 12, width=8)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.rand(32, 3, 32, 32)
    x = torch.nn.functional.avg_pool2d(x, 5, 1, 2)  # smooth images, learnable quickly
    ch = AWGN(torch.Generator().manual_seed(0))
    snr = torch.full((32,), 15.0)
    losses = []
    for _ in range(40):
        loss = mse_loss(x, model(x, ch, snr))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_numpy_awgn_matches_the_torch_channel() -> None:
    """Evaluation's numpy AWGN (phy.symbols.awgn_pairs) adds the noise the torch AWGN channel
    used in training adds: same variance per image, for unit-power symbols, at each SNR."""
    from semjscc.phy.symbols import awgn_pairs

    z = np.zeros((4, 20000, 2), np.float32)
    snr = np.array([0.0, 5.0, 10.0, 20.0], np.float32)
    n_np = awgn_pairs(z, snr, np.random.default_rng(0))
    n_t = AWGN(torch.Generator().manual_seed(0))(torch.from_numpy(z), torch.from_numpy(snr))[0].numpy()
    want = 10 ** (-snr / 10)  # E|n|^2 per complex symbol
    for n in (n_np, n_t):
        np.testing.assert_allclose((n ** 2).sum(-1).mean(1), want, rtol=0.03)


def test_bf16_autocast_only_where_native(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """Emulated bfloat16 (a CPU without AVX512) is many times slower than float32: a run asking for
    it trains in float32 there and says so; where it is native the request stands."""
    from semjscc.nn import training

    rt = training.Runtime(torch.device("cpu"))
    monkeypatch.setattr(training, "bf16_native", lambda device: False)
    assert training.use_bf16(True, rt) is False
    assert "float32" in capsys.readouterr().out
    assert training.use_bf16(False, rt) is False
    monkeypatch.setattr(training, "bf16_native", lambda device: True)
    assert training.use_bf16(True, rt) is True
    assert capsys.readouterr().out == ""
    assert isinstance(training.bf16_native(torch.device("cpu")), bool)


def test_a_checkpoint_that_cannot_be_written_is_rescued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import contextlib
    import errno
    import tempfile

    import semjscc.util.files as files
    from semjscc.nn.training import load_checkpoint, rescue_path, save_checkpoint

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    full = tmp_path / "full"
    real = files.atomic_writer

    @contextlib.contextmanager
    def disk_full_under(path: object, mode: str = "w"):
        if str(path).startswith(str(full)):
            raise OSError(errno.ENOSPC, "No space left on device")
        with real(path, mode) as f:
            yield f

    monkeypatch.setattr(files, "atomic_writer", disk_full_under)
    out = full / "j.pt"
    where = save_checkpoint(out, epoch=3, model={"w": torch.ones(2)})
    assert where == rescue_path(out) and where.parent == tmp_path / "tmp" and not out.exists()
    said = capsys.readouterr().out
    assert f"could not write {out} (No space left on device): saved in {where} instead" in said
    assert load_checkpoint(where)["epoch"] == 3
    # nowhere to write at all: the state stays in memory, training goes on, and the line says so
    monkeypatch.setattr(tempfile, "tempdir", str(full))
    assert save_checkpoint(out, epoch=4) is None
    assert "training goes on with its state in memory" in capsys.readouterr().out
