"""The rules of the link, each defined once (semjscc.link, phy.symbols, util.stats, zoo.locate, util.stopping):
the AWGN at our SNR convention, the SNR a model is given, which classifier judges its images, model names versus paths, the frame ledger, the
one run loop, the intervals every accuracy carries."""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from semjscc.link.ledger import FrameLedger, SentFrame, StreamLedger, clean_accuracy
from semjscc.link.snr import decoder_snr, encoder_snr
from semjscc.phy.numerology import DEFAULT_NUMEROLOGY
from semjscc.phy.symbols import awgn, awgn_pairs, from_pairs, noise_power, to_pairs
from semjscc.util.errors import ModelError
from semjscc.util.stats import paired_difference, relative_gain, wilson, wilson_rate
from semjscc.util.stopping import run_until_done
from semjscc.zoo.locate import resolve_classifier

ADAPTIVE = SimpleNamespace(snr_adaptive=True, snr_db=[0.0, 20.0])
FIXED = SimpleNamespace(snr_adaptive=False, snr_db=[10.0, 10.0])


def test_one_awgn_rule() -> None:
    """The PHY's per-sample noise (GNU Radio's noise voltage) and the complex and pair AWGN of evaluation
    and separate coding all add E|n|^2 = phy.symbols.noise_power = 10^(-snr/10) to unit-power symbols."""
    snr = np.array([-3.0, 0.0, 7.5, 20.0])
    np.testing.assert_allclose(noise_power(snr), 10 ** (-snr / 10), rtol=1e-12)
    assert [DEFAULT_NUMEROLOGY.noise_std_for_snr(float(s)) ** 2 for s in snr] == pytest.approx(noise_power(snr), rel=1e-12)
    rng = np.random.default_rng(0)
    y = awgn(np.zeros((4, 20000), np.complex64), snr, rng)
    np.testing.assert_allclose((np.abs(y) ** 2).mean(1), noise_power(snr), rtol=0.03)
    pairs = awgn_pairs(np.zeros((4, 20000, 2), np.float32), snr.astype(np.float32), rng)
    np.testing.assert_allclose((pairs ** 2).sum(-1).mean(1), noise_power(snr), rtol=0.03)


def test_model_snr_rules() -> None:
    assert encoder_snr(ADAPTIVE, 7.5) == 7.5 and encoder_snr(FIXED, 3.0) == 10.0
    assert decoder_snr(ADAPTIVE, 25.0, 5.0) == 20.0  # clipped to the training range: no extrapolation
    assert decoder_snr(ADAPTIVE, -3.0, 5.0) == 0.0
    assert decoder_snr(ADAPTIVE, float("nan"), 5.0) == 5.0 and decoder_snr(ADAPTIVE, None, 6.0) == 6.0
    assert decoder_snr(ADAPTIVE, 12.0, 5.0, mode="fixed") == 5.0
    assert decoder_snr(FIXED, 3.0, 5.0) == 10.0
    assert decoder_snr(SimpleNamespace(snr_adaptive=True, snr_db=None), 42.0, 5.0) == 42.0


def test_complex_pairs_round_trip() -> None:
    z = (np.arange(6) + 1j * np.arange(6, 12)).astype(np.complex64).reshape(2, 3)
    p = to_pairs(z)
    assert p.shape == (2, 3, 2) and p.dtype == np.float32 and p[1, 2, 1] == 11
    assert np.array_equal(from_pairs(p), z)


def _card(directory: Path, **fields: object) -> None:
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "card.yaml").write_text(yaml.safe_dump({"name": directory.name, "kind": "jscc", "kn": 1 / 6,
                                                          "n_symbols": 512, **fields}))


def test_classifier_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMJSCC_MODELS", str(tmp_path / "models"))
    for name in ("clean", "adapted"):
        (tmp_path / "models" / name).mkdir(parents=True)
    _card(tmp_path / "models" / "both", classifier="../clean", receiver="../adapted")
    _card(tmp_path / "models" / "only-clean", classifier="../clean")
    _card(tmp_path / "models" / "none")
    _card(tmp_path / "models" / "dangling", receiver="../gone")
    assert resolve_classifier("both") == str((tmp_path / "models" / "adapted").resolve())  # the receiver first
    assert resolve_classifier("only-clean") == str((tmp_path / "models" / "clean").resolve())
    assert resolve_classifier("none") == "classifier"  # the shipped clean one
    assert resolve_classifier("both", "my-classifier") == "my-classifier"
    with pytest.raises(ModelError, match=r"names receiver \.\./gone, which is not there"):
        resolve_classifier("dangling")


def test_a_folder_here_never_shadows_a_shipped_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from semjscc.zoo.locate import resolve_model_dir

    monkeypatch.setenv("SEMJSCC_MODELS", str(tmp_path / "models"))
    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "here" / "m").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "here")
    assert resolve_model_dir("m") == (tmp_path / "models" / "m").resolve()
    assert resolve_model_dir("./m") == (tmp_path / "here" / "m").resolve()
    assert resolve_model_dir(str(tmp_path / "here" / "m")) == (tmp_path / "here" / "m").resolve()
    (tmp_path / "here" / "other").mkdir()
    with pytest.raises(ModelError, match=r"for the folder .other. here, write \./other"):
        resolve_model_dir("other")


def test_frame_ledger_accounts_for_every_frame() -> None:
    seen = []
    led = FrameLedger(seen.append)
    img = np.zeros((32, 32, 3), np.uint8)
    for r in range(4):
        led.send(SentFrame(r, label=r % 2, image=img, t_sent=1.0))
    led.receive(0, image=img, pred=0, snr_est_db=10.0, now=1.5)
    led.receive(1, image=img + 10, pred=0, snr_est_db=12.0)
    led.lose(2, "corrupt")
    led.header_failure()
    assert led.give_up() == 1
    s = led.summary()
    assert s["frames_sent"] == 4 == s["frames_received"] + s["frames_lost"]
    assert (s["corrupt"], s["header_crc_failures"], s["lost_at_stop"]) == (1, 1, 1)
    assert s["accuracy"] == 0.5 and s["accuracy_sent"] == 0.25  # lost and corrupt frames count as wrong
    assert s["psnr_db"] == pytest.approx((100.0 + 20 * math.log10(255 / 10)) / 2)  # identical: capped at 100
    assert s["snr_est_db"] == 11.0 and s["latency_s"] == 0.5
    assert [o.status for o in seen] == ["received", "received", "corrupt", "lost"]


def test_stream_ledger_maps_air_numbers_and_gaps() -> None:
    led = StreamLedger()
    img = np.zeros((32, 32, 3), np.uint8)
    for r in range(65534, 65539):  # across the 16-bit wrap
        led.on_sent({"frame_number": r, "label": 1, **({"last": True} if r == 65538 else {})}, img, 0.0)
    led.on_received({"frame_number": 65535, "pred": 1}, img, 0.1)  # 65534 never came: lost by gap
    led.on_received({"frame_number": 0, "corrupt": True, "length_mismatch": True}, None, 0.1)  # 65536
    led.on_received({"frame_number": 0}, img, 0.1)  # a duplicate: late
    led.on_received({"header_ok": False}, None, 0.1)
    assert not led.done
    assert led.expire(now=5.0, timeout_s=1.0) == 2  # 65537, 65538: the chain went quiet
    s = led.summary()
    assert led.done and s["frames_sent"] == 5 == s["frames_received"] + s["frames_lost"]
    assert (s["lost_by_gap"], s["lost_by_timeout"], s["corrupt"], s["length_mismatch"]) == (1, 2, 1, 1)
    assert (s["late_frames"], s["header_crc_failures"]) == (1, 1)


def test_stream_ledger_gives_the_same_account_whatever_order_frames_were_numbered_in() -> None:
    """The ledger skips its scans while frames are sent in order (a window of thousands of frames);
    a source that numbers out of order gets the scanning rules, and both account alike."""
    img = np.zeros((32, 32, 3), np.uint8)

    def account(order: list[int]) -> dict[str, object]:
        led = StreamLedger()
        for r in order:
            led.on_sent({"frame_number": r, "label": 1, **({"last": True} if r == 9 else {})}, img, 0.0)
        for r in (0, 1, 4, 5, 8):  # 2, 3 lost by gap; 6, 7 by gap when 8 arrives; 9 by the timeout
            led.on_received({"frame_number": r, "pred": 1}, img, 0.1)
        assert not led.done
        led.expire(now=5.0, timeout_s=1.0)
        assert led.done
        return led.summary()

    in_order, shuffled = account(list(range(10))), account([1, 0, 2, 3, 5, 4, 6, 7, 9, 8])
    assert in_order == shuffled
    assert (in_order["frames_received"], in_order["lost_by_gap"], in_order["lost_by_timeout"]) == (5, 4, 1)


def test_clean_accuracy_counts_labelled_images_only() -> None:
    images = np.zeros((4, 32, 32, 3), np.uint8)
    logits = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    assert clean_accuracy(lambda x: logits[: len(x)], images, np.array([0, 1, 1, -1])) == pytest.approx(2 / 3)
    assert clean_accuracy(lambda x: logits[: len(x)], images, np.full(4, -1)) is None
    from semjscc.data.sources import UNKNOWN_LABEL, labelled

    assert labelled(np.array([0, 9, UNKNOWN_LABEL])).tolist() == [True, True, False]


def test_intervals() -> None:
    lo, hi = wilson(50, 100)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.19, abs=0.01)
    assert wilson(0, 10)[0] == 0.0 and 0 < wilson(0, 10)[1] < 0.35
    assert wilson_rate(0.885, 200) == wilson(177, 200) and wilson_rate(0.5, 0) == (0.0, 1.0)
    rng = np.random.default_rng(0)
    a = rng.random(10_000) < 0.60
    b = a.copy()
    flip = rng.random(10_000) < 0.02
    b[flip] = ~b[flip]  # b differs from a on 2 % of the images: a paired test sees it clearly
    d, dlo, dhi = paired_difference(a, b)
    assert dlo <= d <= dhi and dhi - dlo < 0.01
    g, glo, ghi = relative_gain(a, b)
    assert glo <= g <= ghi
    assert math.isnan(relative_gain(a, np.zeros(10_000, bool))[0])


def test_paired_interval_of_schemes_that_agree_on_a_small_set_is_not_zero_width() -> None:
    """30 images on which both schemes are right on the same 24: the difference is 0, but 30 images
    cannot rule out a few points either way (a normal interval of the differences said [0, 0])."""
    a = np.ones(30, bool)
    a[:6] = False
    d, lo, hi = paired_difference(a, a.copy())
    assert d == 0 and lo < -0.03 and hi > 0.03
    d, lo, hi = paired_difference(np.ones(5, bool), np.zeros(5, bool))
    assert d == 1 and 0 < lo < 1 and hi == 1  # inside [-1, 1]
    x = np.random.default_rng(1).random(10_000) < 0.7
    y = np.random.default_rng(2).random(10_000) < 0.7
    _, lo, hi = paired_difference(x, y)
    se = np.std(x.astype(float) - y, ddof=1) / 100
    assert abs((hi - lo) / 2 - 1.96 * se) < 0.05 * 1.96 * se  # many images: the normal interval's width


def test_run_until_done_stops_on_a_signal_and_finalizes_first() -> None:
    events: list[str] = []

    def finalize(outcome: object) -> None:
        events.append(f"finalize interrupted={outcome.interrupted}")

    def poll() -> None:
        signal.raise_signal(signal.SIGINT)  # Ctrl-C while running: held until finalize has run

    assert threading.current_thread() is threading.main_thread()
    # pytest started as a background job of a non-interactive shell inherits SIGINT ignored (and
    # run_until_done rightly keeps an ignored signal ignored): give this test Python's Ctrl-C handler
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_until_done(lambda: events.append("start"), lambda _t: False,
                           lambda held: events.append(f"stop {held}"), poll=poll, finalize=finalize, timeout_s=60)
    finally:
        signal.signal(signal.SIGINT, before)
    assert events == ["start", f"stop [{int(signal.SIGINT)}]", "finalize interrupted=True"]


def test_run_until_done_times_out_and_catches_what_it_is_told() -> None:
    out = run_until_done(lambda: None, lambda _t: False, lambda _h: None, timeout_s=0.05, poll_s=0.01)
    assert out.timed_out and not out.done and not out.interrupted

    def boom() -> None:
        raise ModelError("radio gone")

    out = run_until_done(lambda: None, lambda _t: False, lambda _h: None, poll=boom, catch=(ModelError,))
    assert out.error == "ModelError: radio gone" and isinstance(out.exception, ModelError)
    out = run_until_done(lambda: None, lambda _t: True, lambda _h: None)
    assert out.done
