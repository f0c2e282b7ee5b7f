"""Frame format: header bits, CRC-16, the tail-biting convolutional code, header symbols."""

from __future__ import annotations

import numpy as np
import pytest
from semjscc.phy import frame as F


def test_crc16_check_value() -> None:
    assert F.crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE catalogue check value


@pytest.mark.parametrize(("fn", "ln", "pat"), [(0, 0, 0), (1, 512, 0), (65535, 16383, 3), (12345, 256, 2)])
def test_header_bits_roundtrip(fn: int, ln: int, pat: int) -> None:
    bits = F.header_bits(fn, ln, pat)
    assert bits.shape == (48,) and set(np.unique(bits)) <= {0, 1}
    got_fn, got_ln, got_pat, ok = F.parse_header_bits(bits)
    assert (int(got_fn), int(got_ln), int(got_pat), bool(ok)) == (fn, ln, pat, True)
    if pat == 0:  # pattern 0 is the old 16-bit length field: recordings made before mid-ambles still read
        assert int("".join(map(str, bits[16:32])), 2) == ln
    # the CRC field is the byte-wise CRC of the 4 header bytes
    body = np.packbits(bits[:32]).tobytes()
    assert int("".join(map(str, bits[32:])), 2) == F.crc16(body)


def test_crc_detects_every_single_and_most_multi_bit_errors() -> None:
    bits = F.header_bits(4242, 512)
    flips = np.eye(48, dtype=np.uint8)
    *_, ok = F.parse_header_bits(bits[None] ^ flips)
    assert not ok.any()  # all 48 single-bit errors caught
    rng = np.random.default_rng(0)
    bursts = rng.integers(0, 2, size=(5000, 48), dtype=np.uint8)
    bursts[bursts.sum(axis=1) == 0, 0] = 1
    *_, ok = F.parse_header_bits(bits[None] ^ bursts)
    assert ok.mean() < 1e-3  # random corruption passes with ~2^-16


def test_header_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        F.header_bits(65536, 1)
    with pytest.raises(ValueError):
        F.header_bits(1, -1)
    with pytest.raises(ValueError):
        F.header_bits(1, F.MAX_PAYLOAD_LEN + 1)  # the top 2 bits of the field name the pilot pattern
    with pytest.raises(ValueError):
        F.header_bits(1, 512, 4)


def test_conv_code_noiseless_and_with_errors() -> None:
    rng = np.random.default_rng(1)
    u = rng.integers(0, 2, size=(64, 48), dtype=np.uint8)
    c = F.conv_encode(u)
    assert c.shape == (64, 96)
    llr = 1.0 - 2.0 * c
    assert np.array_equal(F.viterbi_decode(llr), u)
    # free distance 10: any 3 flipped coded bits are corrected
    bad = llr.copy()
    for row in bad:
        row[rng.choice(96, 3, replace=False)] *= -1
    assert np.array_equal(F.viterbi_decode(bad), u)


def test_conv_code_is_tail_biting() -> None:
    """Rotating the input rotates the codeword: no tail, no fixed start state."""
    u = np.random.default_rng(2).integers(0, 2, 48, dtype=np.uint8)
    assert np.array_equal(F.conv_encode(np.roll(u, 5)), np.roll(F.conv_encode(u), 10))


def test_header_symbols_and_layout() -> None:
    s = F.encode_header(np.arange(3), np.array([512, 256, 1]))
    assert s.shape == (3, 96)
    assert np.allclose(np.abs(s), 1.0) and np.allclose(s.imag, 0.0)
    assert sorted(F.HEADER_PERM.tolist()) == list(range(96))
    fmt = F.DEFAULT_FRAME_FORMAT
    assert fmt.n_header == 2 and fmt.n_overhead == 4
    assert fmt.frame_samples(512) == (4 + 11) * 80
    assert fmt.frame_samples(256) == (4 + 6) * 80
    assert fmt.burst_samples(512) == 1200 + fmt.pad_before + fmt.pad_after


def test_fast_path_matches_viterbi() -> None:
    s = F.encode_header(np.arange(50), np.full(50, 512))
    fn, ln, _, ok, bits = F.decode_header(s.real * 3.0)
    assert ok.all() and np.array_equal(fn, np.arange(50)) and (ln == 512).all()
    llr = (s.real * 3.0)[:, F.HEADER_PERM]
    assert np.array_equal(F.viterbi_decode(llr), bits)


def test_header_decodes_at_0db_awgn() -> None:
    """The reason for the K=7 code: at Es/N0 = 0 dB the header still decodes (ideal channel)."""
    rng = np.random.default_rng(3)
    k = 600
    fn, ln = rng.integers(0, 65536, k), rng.integers(0, 4097, k)
    s = F.encode_header(fn, ln)
    noise = (rng.standard_normal(s.shape) + 1j * rng.standard_normal(s.shape)) / np.sqrt(2)
    y = s + noise  # Es/N0 = 0 dB
    got_fn, got_ln, _, ok, _ = F.decode_header(y.real)
    good = ok & (got_fn == fn) & (got_ln == ln)
    assert good.mean() > 0.98
    assert not (ok & ~((got_fn == fn) & (got_ln == ln))).any()  # no undetected errors
    # uncoded BPSK at the same SNR would fail almost always: 48 bits at 8 % BER
    assert (1 - 0.0786) ** 48 < 0.05


def test_noise_never_passes_crc() -> None:
    y = np.random.default_rng(4).standard_normal((2000, 96))
    *_, ok, _ = F.decode_header(y)
    assert ok.sum() <= 1
