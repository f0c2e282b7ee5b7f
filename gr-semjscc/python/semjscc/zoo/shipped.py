"""Names of the models that ship in models/ (the defaults of eval, run and the demo)."""

CLASSIFIER = "classifier"
JSCC_MSE = "jscc-mse-kn6"
JSCC_SEMANTIC = "jscc-semantic-kn6"
DEFAULT_EVAL_MODELS = (("mse", JSCC_MSE), ("semantic", JSCC_SEMANTIC))
