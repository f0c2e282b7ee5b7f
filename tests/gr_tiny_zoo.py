"""Tiny untrained ONNX models for the flowgraph tests, exported once per pytest session.

Both test_gr_blocks.py and test_sim_loopback.py need a classifier and deep JSCC models; the
dynamo exporter takes a few seconds per file, so the zoo is built once under the session's
base temp directory and reused (a marker file says it is complete). The numbers these models
produce are meaningless: the tests check accounting, shapes and plumbing, not quality.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

WIDTH = 4
_DONE = ".complete"


def tiny_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/ directory with ``classifier``, ``jscc-kn6`` (SNR-adaptive, 512 symbols) and
    ``jscc-kn12`` (fixed 10 dB, 256 symbols)."""
    root = tmp_path_factory.getbasetemp() / "semjscc-tiny-zoo"
    if (root / _DONE).is_file():
        return root
    import torch
    from semjscc.nn.classifier import Classifier
    from semjscc.nn.config import ClassifierConfig, JSCCConfig
    from semjscc.nn.export import export_classifier, export_jscc
    from semjscc.nn.jscc import JSCC
    from semjscc.nn.training import save_checkpoint

    ck = root.parent / "semjscc-tiny-ckpt"
    ck.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_checkpoint(ck / "clf.pt", kind="classifier", config=asdict(ClassifierConfig(width=WIDTH)),
                    model=Classifier(width=WIDTH).eval().state_dict(), epoch=1, history=[])
    export_classifier(ck / "clf.pt", "classifier", out_dir=root, force=True)
    for name, kn, adaptive in (("jscc-kn6", 1 / 6, True), ("jscc-kn12", 1 / 12, False)):
        cfg = JSCCConfig(kn=kn, width=WIDTH, snr_adaptive=adaptive, snr_min=0.0 if adaptive else 10.0,
                         snr_max=20.0 if adaptive else 10.0)
        save_checkpoint(ck / f"{name}.pt", kind="jscc", config=asdict(cfg),
                        model=JSCC(kn, WIDTH, adaptive).eval().state_dict(), epoch=1, history=[])
        export_jscc(ck / f"{name}.pt", name, classifier="classifier", out_dir=root, force=True)
    (root / _DONE).write_text("ok\n")
    return root
