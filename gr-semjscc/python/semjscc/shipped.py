"""Names of the models that ship in models/ (the defaults of eval, run and the demo)."""

from pathlib import Path

CLASSIFIER = "classifier"
JSCC_MSE = "jscc-mse-kn6"
JSCC_SEMANTIC = "jscc-semantic-kn6"
DEFAULT_EVAL_MODELS = (("mse", JSCC_MSE), ("semantic", JSCC_SEMANTIC))


def classifier_checkpoint(ref: str) -> Path:
    """The weights-only torch checkpoint of a classifier given as a name, directory or .pt path."""
    from semjscc.paths import model_checkpoint

    return model_checkpoint(ref, "classifier.pt")
