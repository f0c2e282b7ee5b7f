"""Random-weight stand-ins of the next models, for timing only: their predictions mean nothing.

    .venv/bin/python scripts/timing_standins.py OUT_DIR
    semjscc bench throughput --chain full --model OUT_DIR/jscc-standin-kn6 --classifier OUT_DIR/classifier-standin ...

The networks that replace the shipped ones have the shipped recipes' full sizes: the fast-CIFAR
classifier at width 64 (2x2 whitening conv, conv groups of 64, 256, 256 channels; ~118 M MACs per
image) and the deep JSCC encoder/decoder at width 32 (GDN + residual blocks, k/n = 1/6, SNR
adaptive). Exported like any model (``semjscc.nn.export``), so a flowgraph loads them as it will load
the trained ones, and docs/results.md ("Throughput") can say what the chain sustains with them
before they are trained."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import asdict
from pathlib import Path


def main(out_dir: Path) -> None:
    import torch
    from semjscc.nn.classifier import Classifier
    from semjscc.nn.config import ClassifierConfig, JSCCConfig
    from semjscc.nn.export import export_classifier, export_jscc
    from semjscc.nn.jscc import JSCC
    from semjscc.nn.training import save_checkpoint

    torch.manual_seed(0)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp)
        save_checkpoint(ck / "clf.pt", kind="classifier", config=asdict(ClassifierConfig(width=64)),
                        model=Classifier(width=64).eval().state_dict(), epoch=0, history=[])
        export_classifier(ck / "clf.pt", "classifier-standin", out_dir=out_dir, force=True)
        cfg = JSCCConfig(kn=1 / 6, width=32, snr_adaptive=True)
        save_checkpoint(ck / "jscc.pt", kind="jscc", config=asdict(cfg),
                        model=JSCC(cfg.kn, cfg.width, cfg.snr_adaptive).eval().state_dict(), epoch=0, history=[])
        export_jscc(ck / "jscc.pt", "jscc-standin-kn6", classifier="classifier-standin", out_dir=out_dir, force=True)
    print(f"wrote {out_dir / 'classifier-standin'} and {out_dir / 'jscc-standin-kn6'} (random weights: timing only)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
