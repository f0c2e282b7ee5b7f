"""``semjscc replay``: decode a recording offline through the same receiver, decoder and classifier.

Each capture is decoded by :func:`semjscc.ota.link.decode_capture`, the function the experiment runner
used on the same samples, with the frames sent listed in the capture's metadata and the images
reloaded from the source the recording names. With the same model files (checked by sha256) the
result is identical to the experiment's summary.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from semjscc.ota.link import FrameResult, TxFrame, decode_capture
from semjscc.ota.recording import capture_samples, open_recording
from semjscc.ota.report import point_summaries, totals

log = logging.getLogger("semjscc.ota")


def replay(path: str | Path, model: str | None = None, classifier: str | None = None,
           data: str | None = None) -> dict[str, Any]:
    from semjscc.errors import ModelError, UsageError
    from semjscc.modelcard import sha256_file
    from semjscc.ota.runner import load_models
    from semjscc.sources import load_images

    rec = open_recording(path)
    g = rec.get_global_info()
    exp = g.get("semjscc:experiment")
    points = g.get("semjscc:points")
    if not isinstance(exp, dict) or not isinstance(points, list):
        raise UsageError(f"{path}: not a semjscc ota recording (no semjscc:experiment metadata)")
    recorded = exp["models"]
    clf_ref = classifier
    if clf_ref is None and Path(recorded["classifier"]).parent.is_dir():
        clf_ref = str(Path(recorded["classifier"]).parent)
    models = load_models(model or exp["model"], clf_ref)
    recorded_symbols = recorded.get("n_symbols")
    if recorded_symbols is not None and models.n_symbols != int(recorded_symbols):
        # every frame would decode as corrupt: refuse before reading a sample
        raise ModelError(f"{path} holds frames of {int(recorded_symbols)} symbols (recorded with {exp['model']}) but "
                         f"model {model or exp['model']} decodes {models.n_symbols}: pass a model with "
                         f"{int(recorded_symbols)} symbols per image, or leave out --model to use the recorded one")
    mismatch = [role for role in ("decoder", "classifier")
                if sha256_file(getattr(models, role).path) != recorded.get(f"{role}_sha256")]
    if mismatch:
        log.warning("replay uses a different %s than the recording did: results will differ", " and ".join(mismatch))
    img = exp["images"]
    images, _labels = load_images(data if data is not None else img["source"], img["split"], img["count"],
                                 img["start"], img["shuffle_seed"])
    frames_by_point: dict[int, list[FrameResult]] = {}
    failures_by_point: dict[int, int] = {}
    for i, cap in enumerate(rec.get_captures()):
        sent = [TxFrame(**f) for f in cap["semjscc:frames"]]
        res = decode_capture(capture_samples(rec, i), tuple(cap["semjscc:window"]), sent, images, models)
        k = int(cap["semjscc:point"])
        frames_by_point.setdefault(k, []).extend(res.frames)
        failures_by_point[k] = failures_by_point.get(k, 0) + len(res.header_failures)
    return {**totals(frames_by_point, failures_by_point),
            "points": point_summaries(points, frames_by_point, failures_by_point),
            "replayed_from": str(path), "captures": len(rec.get_captures()), "models_match": not mismatch}
