"""Separate coding's decoded images, literally: each image through its codec, LDPC and QAM, an AWGN
channel at its own SNR, and back (:class:`~semjscc.separate.scheme.SeparateScheme` end to end).

The receiver classifier is fine-tuned on what every scheme delivers (``semjscc train receiver``);
this module gives it separate coding's share: images whose configuration is the one a transmitter
designing for a grid SNR at or below the channel's would use (``configs``: grid SNR -> the
configuration chosen there on validation images, from ``semjscc eval --separate``'s envelope).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semjscc.data.imaging import to_float_nchw, to_uint8_nhwc
from semjscc.phy.symbols import awgn, from_pairs, to_pairs
from semjscc.separate.codecs import make_codec
from semjscc.separate.scheme import SeparateScheme
from semjscc.util.errors import UsageError
from semjscc.util.files import save_npy


@dataclass(frozen=True)
class Config:
    codec: str
    quality: str  # "auto" or an integer as text
    modulation: str
    code_rate: str

    @property
    def name(self) -> str:
        return f"{self.codec} q{self.quality} {self.modulation} r{self.code_rate}"


def load_configs(path: str | Path) -> dict[float, Config]:
    """Grid SNR -> configuration, from an ``eval --separate`` JSON (its ``envelope_accuracy`` rows)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
        rows = doc["envelope_accuracy"]
        return {float(r["snr_db"]): Config(str(r["codec"]), str(r["quality"]), str(r["modulation"]),
                                           str(r["code_rate"])) for r in rows}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{p}: not a separate-coding envelope from `semjscc eval --separate` "
                         f"({type(e).__name__}); run that first (its STEM-separate.json)") from None


def config_for(configs: dict[float, Config], snr_db: float) -> Config:
    """The configuration of the highest grid SNR at or below ``snr_db`` (the lowest when below all)."""
    grid = sorted(configs)
    below = [g for g in grid if g <= snr_db + 1e-9]
    return configs[below[-1] if below else grid[0]]


def decode_bank(images_u8: np.ndarray, snr_db: np.ndarray, configs: dict[float, Config], n_cu: int, seed: int = 0,
                fallback: np.ndarray | None = None, cache: Path | None = None) -> np.ndarray:
    """uint8 NHWC images as separate coding delivers them over AWGN at ``snr_db`` (one per image)."""
    if cache is not None:
        h = hashlib.sha256(images_u8.tobytes())
        h.update(np.asarray(snr_db, np.float64).tobytes())
        h.update(repr((sorted((k, v.name) for k, v in configs.items()), n_cu, seed)).encode())
        path = cache / f"separate-bank-{h.hexdigest()[:16]}.npy"
        if path.is_file():
            return np.load(path)
    fb = to_float_nchw(images_u8).mean(0) if fallback is None else fallback
    out = np.empty_like(images_u8)
    rng = np.random.default_rng(seed)
    chosen = [config_for(configs, float(s)) for s in snr_db]
    for cfg in sorted(set(chosen), key=lambda c: c.name):
        idx = np.array([i for i, c in enumerate(chosen) if c == cfg])
        scheme = SeparateScheme(make_codec(cfg.codec), None if cfg.quality == "auto" else int(cfg.quality),
                                cfg.modulation, cfg.code_rate, n_cu, fallback=fb)
        for s in range(0, len(idx), 256):
            part = idx[s : s + 256]
            z = from_pairs(scheme.encode(to_float_nchw(images_u8[part]), snr_db[part]))
            y = awgn(z, snr_db[part], rng)
            out[part] = to_uint8_nhwc(scheme.decode(to_pairs(y), np.asarray(snr_db[part], np.float32)))
    if cache is not None:
        with contextlib.suppress(OSError):  # a read-only or full cache only costs time
            save_npy(path, out)
    return out
