"""StrictExampleValidator executor: validate as ExampleValidator does, then fail on anomalies."""

from __future__ import annotations

import os
from typing import Any

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.components.example_validator import executor as example_validator_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils


class DataAnomaliesError(RuntimeError):
    """The data breaks the schema; the message lists each anomaly with its split and column."""


def describe_anomalies(anomalies_by_split: dict[str, anomalies_pb2.Anomalies]) -> list[str]:
    """One line per anomaly: split, column, and TFDV's description of the problem."""
    lines = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        for column, info in sorted(anomalies.anomaly_info.items()):
            reasons = "; ".join(r.description or r.short_description for r in info.reason)
            lines.append(f"split '{split}', column '{column}': {reasons or info.description}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            reasons = "; ".join(r.description or r.short_description for r in info.reason)
            lines.append(f"split '{split}', whole dataset: {reasons or info.description}")
    return lines


class Executor(example_validator_executor.Executor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> Any:
        result = super().Do(input_dict, output_dict, exec_properties)
        anomalies_artifact = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.ANOMALIES_KEY]
        )
        found = {}
        for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
            path = os.path.join(
                artifact_utils.get_split_uri([anomalies_artifact], split),
                example_validator_executor.DEFAULT_FILE_NAME,
            )
            anomalies = anomalies_pb2.Anomalies()
            anomalies.ParseFromString(io_utils.read_bytes_file(path))
            found[split] = anomalies
        lines = describe_anomalies(found)
        if lines:
            raise DataAnomaliesError(
                "The data does not match the schema; the run stops before Transform, nothing is "
                "trained or pushed, and the served model is unchanged. Anomalies:\n  - "
                + "\n  - ".join(lines)
            )
        return result
