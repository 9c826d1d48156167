"""StrictExampleValidator: TFX's ExampleValidator that stops the pipeline when it finds anomalies."""

from components.strict_example_validator.component import DataAnomaliesError, StrictExampleValidator

__all__ = ["DataAnomaliesError", "StrictExampleValidator"]
