"""``semjscc replay``: decode a recording offline through the same receiver, decoder and classifier.

Each capture is decoded by :func:`semjscc.experiments.ota.decode.decode_capture`, the function the experiment runner
used on the same samples, with the frames sent listed in the capture's metadata and the images
reloaded from the source the recording names. With the same model files (checked by sha256) the
result is identical to the experiment's summary.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from semjscc.data.sources import load_images
from semjscc.experiments.ota.decode import FrameResult, TxFrame, decode_capture
from semjscc.experiments.ota.recording import capture_length, capture_samples, open_recording
from semjscc.experiments.ota.report import point_summaries, totals
from semjscc.experiments.ota.runner import images_digest, load_models
from semjscc.util.errors import ModelError, UsageError
from semjscc.zoo.card import sha256_file

log = logging.getLogger("semjscc.ota")


def replay(path: str | Path, model: str | None = None, classifier: str | None = None,
           data: str | None = None, force: bool = False) -> dict[str, Any]:
    """Decode a recording again. The images must be the ones sent (sha256 checked) and the decoder the
    one trained with the encoder that sent the frames (export ids checked): otherwise the result is no
    comparison, and it is refused unless ``force``."""
    rec = open_recording(path)
    g = rec.get_global_info()
    exp = g.get("semjscc:experiment")
    points = g.get("semjscc:points")
    if not isinstance(exp, dict) or not isinstance(points, list):
        raise UsageError(f"{path}: not a semjscc ota recording (no semjscc:experiment metadata)")
    try:
        recorded = exp["models"]
        img = exp["images"]
        caps = [(int(c["semjscc:point"]), [TxFrame(**f) for f in c["semjscc:frames"]], tuple(c["semjscc:window"]))
                for c in rec.get_captures()]
        source, split, count, start = img["source"], img["split"], int(img["count"]), int(img["start"])
        recorded_symbols = None if recorded.get("n_symbols") is None else int(recorded["n_symbols"])
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{path}: semjscc metadata incomplete or malformed ({type(e).__name__}: {e}); it was not "
                         f"written by `semjscc ota`, or was edited") from None
    clf_ref = classifier
    if clf_ref is None and Path(recorded["classifier"]).parent.is_dir():
        clf_ref = str(Path(recorded["classifier"]).parent)
    models = load_models(model or exp["model"], clf_ref)
    if recorded_symbols is not None and models.n_symbols != recorded_symbols:
        # every frame would decode as corrupt: refuse before reading a sample
        raise ModelError(f"{path} holds frames of {int(recorded_symbols)} symbols (recorded with {exp['model']}) but "
                         f"model {model or exp['model']} decodes {models.n_symbols}: pass a model with "
                         f"{int(recorded_symbols)} symbols per image, or leave out --model to use the recorded one")
    sent_by = recorded.get("encoder_export_id")
    if sent_by is not None and models.decoder.card.export_id != sent_by and not force:
        raise ModelError(f"decoder {models.decoder.path} was not trained with the encoder that sent these frames "
                         f"(export {models.decoder.card.export_id} vs {sent_by}): its results would be no comparison; "
                         f"leave out --model to use the recorded model, or pass --force to decode anyway")
    mismatch = [role for role in ("decoder", "classifier")
                if sha256_file(getattr(models, role).path) != recorded.get(f"{role}_sha256")]
    if mismatch:
        log.warning("replay uses a different %s than the recording did: results will differ", " and ".join(mismatch))
    # recordings from before "order" was recorded: None keeps their rule (a seed meant shuffled)
    images, labels = load_images(data if data is not None else source, split, count, start, img.get("shuffle_seed"),
                                  img.get("order"))
    if img.get("sha256") and images_digest(images) != img["sha256"] and not force:
        raise UsageError(f"the images loaded from {data or source} are not the ones this recording sent (sha256 "
                         f"differs): give --data the source the recording was made with, or --force to go on")
    for i, (k, sent, window) in enumerate(caps):
        bad = [f.image_index for f in sent if not 0 <= f.image_index < len(images)]
        if bad or not 0 <= k < len(points):
            raise UsageError(f"{path}: a capture names image {bad[0] if bad else ''} / point {k} outside the "
                             f"{len(images)} images and {len(points)} points recorded; the metadata was edited")
        length = capture_length(rec, i)
        if not (len(window) == 2 and all(isinstance(w, int) and not isinstance(w, bool) for w in window)
                and 0 <= window[0] < window[1] <= length):
            raise UsageError(f"{path}: capture {i}'s analysis window {list(window)!r} is not inside its {length} "
                             f"samples; the metadata was edited")
        relabelled = [f for f in sent if int(labels[f.image_index]) != f.label]
        if relabelled and not force:  # the accuracy would be scored against labels the images do not have
            f = relabelled[0]
            raise UsageError(f"{path}: frame {f.frame} is labelled {f.label} but image {f.image_index} is class "
                             f"{int(labels[f.image_index])}; the metadata was edited (--force scores it anyway)")
    frames_by_point: dict[int, list[FrameResult]] = {}
    failures_by_point: dict[int, int] = {}
    for i, (k, sent, window) in enumerate(caps):
        res = decode_capture(capture_samples(rec, i), window, sent, images, models)
        frames_by_point.setdefault(k, []).extend(res.frames)
        failures_by_point[k] = failures_by_point.get(k, 0) + len(res.header_failures)
    return {**totals(frames_by_point, failures_by_point),
            "points": point_summaries(points, frames_by_point, failures_by_point),
            "replayed_from": str(path), "captures": len(caps), "models_match": not mismatch}
