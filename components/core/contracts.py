"""Names shared by the components, the pipeline and the tools that read what the pipeline made."""

# The output of every model Blueprint exports, in every signature (serving, raw features, device targets).
PREDICTIONS_KEY = "predictions"
