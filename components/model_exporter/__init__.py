"""ModelExporter: TFLite and TF.js models from a blessed SavedModel, each checked for parity."""

from components.model_exporter.component import ModelExporter

__all__ = ["ModelExporter"]
