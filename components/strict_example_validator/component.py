"""StrictExampleValidator component: ExampleValidator with an executor that fails on anomalies."""

from tfx.components import ExampleValidator
from tfx.dsl.components.base import executor_spec

from components.strict_example_validator.executor import DataAnomaliesError, Executor

__all__ = ["DataAnomaliesError", "StrictExampleValidator"]


class StrictExampleValidator(ExampleValidator):
    """Validates statistics against the schema like ExampleValidator; any anomaly fails the run.

    Downstream components (Transform onwards) depend on it, so bad data stops the pipeline before
    anything is trained or pushed, and the error lists every anomaly by split and column.
    """

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
