"""Adapters giving every kind of trained model the same numpy interface for evaluation:
ONNX model directories (via ``semjscc.zoo``) and torch checkpoints (``*.pt``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from semjscc.util.errors import ModelError
from semjscc.zoo import OnnxScheme, load_classifier

# Offline evaluation owns the machine, unlike a flowgraph: let ONNX Runtime use every core.
_EVAL_THREADS = os.cpu_count() or 1


class TorchScheme:
    """A deep JSCC torch checkpoint behind the numpy ``Scheme`` interface."""

    def __init__(self, name: str, path: Path) -> None:
        import torch

        from semjscc.nn.train_jscc import load_jscc

        self.name = name
        self.model, ck = load_jscc(path)
        self.kn = float(ck["config"]["kn"])
        self.classifier_ref = ck.get("classifier")
        self._torch = torch

    def encode(self, images: np.ndarray, snr_db: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            return self.model.encoder(self._torch.from_numpy(images), self._torch.from_numpy(snr_db)).numpy()

    def decode(self, symbols: np.ndarray, snr_db: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            return self.model.decoder(self._torch.from_numpy(symbols), self._torch.from_numpy(snr_db)).numpy()


def load_scheme(name: str, model: str, precision: str = "fp32"):
    if model.endswith(".pt"):
        p = Path(model)
        if not p.is_file():
            raise ModelError(f"checkpoint {p} not found")
        return TorchScheme(name, p)

    return OnnxScheme(name, model, threads=_EVAL_THREADS, precision=precision)


def load_classifier_fn(ref: str | Path, precision: str = "fp32"):
    ref = str(ref)
    if ref.endswith(".pt"):
        import torch

        from semjscc.nn.train_classifier import load_classifier as load_torch_classifier

        model = load_torch_classifier(Path(ref))

        def classify(images: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(images)).numpy()

        return classify

    session = load_classifier(ref, threads=_EVAL_THREADS, precision=precision)
    return session.run
