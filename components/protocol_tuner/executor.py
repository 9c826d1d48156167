"""ProtocolTuner executor: TFX's Tuner search, then the protocol's records next to its results."""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
from tfx import types
from tfx.components.tuner import executor as tuner_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils

from components.core.artifacts import PROTOCOL_FILE

BEST_HYPERPARAMETERS_FILE = "best_hyperparameters.txt"


class Executor(tuner_executor.Executor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        tuner = tuner_executor.search(input_dict, exec_properties, self._get_tmp_dir())
        tuner_executor.write_best_hyperparameters(tuner, output_dict)
        add_final_training(tuner, output_dict)
        write_protocol(tuner, output_dict)


def _uri(output_dict: dict[str, list[types.Artifact]], key: str) -> str:
    return artifact_utils.get_single_uri(output_dict[key])


def add_final_training(tuner, output_dict: dict[str, list[types.Artifact]]) -> None:
    """Adds the final model's network and training budget to the best hyperparameters' values."""
    path = os.path.join(
        _uri(output_dict, standard_component_specs.BEST_HYPERPARAMETERS_KEY), BEST_HYPERPARAMETERS_FILE
    )
    config = json.loads(io_utils.read_string_file(path))
    config["values"].update(tuner.final_training_values())
    io_utils.write_string_file(path, json.dumps(config))
    logging.info("Final training: %s", config["values"])


def write_protocol(tuner, output_dict: dict[str, list[types.Artifact]]) -> None:
    path = os.path.join(_uri(output_dict, standard_component_specs.TUNER_RESULTS_KEY), PROTOCOL_FILE)
    io_utils.write_string_file(path, json.dumps(tuner.protocol_report(), indent=1))
