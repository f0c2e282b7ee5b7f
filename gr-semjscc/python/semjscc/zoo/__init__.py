"""Models: cards (:mod:`.card`), shipped names, finding a model and its classifier (:mod:`.locate`), and
ONNX Runtime inference (:mod:`.session`, :mod:`.load`), the one layer every consumer of a trained model
goes through (evaluation, benchmarks, the GNU Radio blocks). No torch here.

    from semjscc.zoo import load_jscc_pair, load_classifier
    enc, dec, card = load_jscc_pair("jscc-mse-kn6")          # a name under models/ or a directory
    clf = load_classifier(card_dir / card.classifier)          # or by name: load_classifier("classifier")
    z = enc.run(images, 10.0)                                  # (B,3,32,32) float32 in [0,1] -> (B,k,2)
    x_hat = dec.run(z + noise, 10.0)                           # -> (B,3,32,32)
    logits = clf.run(x_hat)                                    # -> (B,10)

Sessions log (logger ``semjscc.runtime``, the name users filter on) the execution provider they actually
use; device
"auto" takes CUDA when onnxruntime-gpu sees a GPU. Defaults can be set for a whole flowgraph
with $SEMJSCC_ORT_DEVICE and $SEMJSCC_ORT_THREADS.
"""

from semjscc.zoo.load import (
    OnnxScheme,
    list_models,
    load_classifier,
    load_decoder,
    load_encoder,
    load_jscc_pair,
    resolve_model_dir,
)
from semjscc.zoo.session import (
    DEFAULT_THREADS,
    ClassifierSession,
    DecoderSession,
    EncoderSession,
    OnnxModel,
    RuntimeOptions,
    check_pair,
)

__all__ = [
    "DEFAULT_THREADS",
    "ClassifierSession",
    "DecoderSession",
    "EncoderSession",
    "OnnxModel",
    "OnnxScheme",
    "RuntimeOptions",
    "check_pair",
    "list_models",
    "load_classifier",
    "load_decoder",
    "load_encoder",
    "load_jscc_pair",
    "resolve_model_dir",
]
