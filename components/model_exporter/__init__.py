"""ModelExporter: TFLite and TF.js models from a blessed SavedModel, each checked for parity.

The component is imported when it is first asked for: the exporter's worker processes import modules of
this package (workers, targets, converters) and need neither TFX's component machinery nor the executor.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ModelExporter"]


def __getattr__(name: str) -> Any:
    if name == "ModelExporter":
        from components.model_exporter.component import ModelExporter

        return ModelExporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
