"""Classifier block: image PDUs in, the same PDUs out with the predicted class in the metadata."""

from __future__ import annotations

from typing import Any

import numpy as np

from semjscc.data.imaging import IMAGE_SHAPE
from semjscc.gr.batched import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_S, BatchedPduBlock, ort_threads
from semjscc.gr.params import as_float, as_int
from semjscc.gr.pdus import empty_like_u8, image_from_vector, make_pdu
from semjscc.util.errors import ModelError
from semjscc.zoo import load_classifier


class classifier(BatchedPduBlock):  # noqa: N801 (GNU Radio block naming)
    """Input ``in``: image PDUs (u8vector HWC or f32vector CHW). Output ``out``: the same vector
    with ``pred`` (class index) and ``confidence`` (softmax probability of it) added to the
    metadata. PDUs without an image (header failures, corrupt frames) pass through unchanged.
    ``max_batch`` / ``max_wait_s``: batching (see :mod:`semjscc.gr.batched`; 0 s: never wait).
    ``precision``: auto, fp32 or int8 ('' = $SEMJSCC_PRECISION, else auto: :mod:`semjscc.zoo.precision`)."""

    def __init__(self, model: str = "classifier", device: str = "auto", threads: int = 0,
                 max_batch: int = DEFAULT_MAX_BATCH, max_wait_s: float = DEFAULT_MAX_WAIT_S, precision: str = "") -> None:
        super().__init__("semjscc_classifier", as_int("classifier", "max_batch", max_batch, 1),
                         as_float("classifier", "max_wait_s", max_wait_s, 0.0, 1.0))
        self.model = load_classifier(model, device=device or None,
                                     threads=ort_threads(as_int("classifier", "threads", threads)),
                                     precision=precision or None)
        if tuple(self.model.card.image_shape) != IMAGE_SHAPE:
            raise ModelError(f"classifier {self.model.path} takes images of shape {tuple(self.model.card.image_shape)}, "
                             f"not the {IMAGE_SHAPE} the decoder produces")
        self.classified = 0

    def process(self, items: list[tuple[Any, dict[str, Any], Any]]) -> list[Any]:
        out: list[Any] = [msg for msg, _meta, _vec in items]  # pass-through unless classified below
        rows, images = [], []
        for i, (_msg, _meta, vec) in enumerate(items):
            img = image_from_vector(vec)
            if img is not None:
                rows.append(i)
                images.append(img)
        if rows:
            logits = self.model.run(np.stack(images)).astype(np.float64)
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            pred = p.argmax(axis=1)
            for i, k, conf, bad in zip(rows, pred, p[np.arange(len(rows)), pred], self.model.last_nonfinite,
                                       strict=True):
                _msg, meta, vec = items[i]
                if bad:  # NaN / inf logits: argmax would name class 0; the frame counts as corrupt instead
                    self.corrupt += 1
                    out[i] = make_pdu(meta, empty_like_u8(), corrupt=True, nonfinite=True)
                    continue
                out[i] = make_pdu(meta, vec, pred=int(k), confidence=float(conf))
            self.classified += len(rows)
        return out
