"""Names shared by the components, the pipeline and the tools that read what the pipeline made."""

# The output of every model Blueprint exports, in every signature (serving, raw features, device targets).
PREDICTIONS_KEY = "predictions"


def target_name(target: dict) -> str:
    """`serving` for the SavedModel, `<target>-<variant>` for a device model (tflite-int8, tfjs-uint8)."""
    return target["target"] if target["target"] == "serving" else f"{target['target']}-{target['variant']}"
