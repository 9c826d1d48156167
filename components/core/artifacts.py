"""Blueprint's artifact contracts in one place, as TFX keeps its own in `tfx/types/standard_artifacts.py` and
`standard_component_specs.py`: our artifact types, the keys of our channels and execution properties, the
files each artifact holds, and the readers of those files.

A component reads what another component made through the readers here, never through its executor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.types.component_spec import ExecutionParameter

from components.core.spec import ProblemSpec, positive_of

# --- Execution properties of our components, and keys of the module code's `custom_config` ------------
PROBLEM_SPEC_KEY = "problem_spec"  # the spec as JSON (a dict in custom_config)
CODE_VERSION_KEY = "code_version"  # pipelines' code_version(): part of the cache key, never read
RUN_PARAMETERS_KEY = "run_parameters"  # per-run overrides (the Airflow trigger form)
SPEC_PARAMETERS = {
    PROBLEM_SPEC_KEY: ExecutionParameter(type=str),
    CODE_VERSION_KEY: ExecutionParameter(type=str),
}


def problem_spec(exec_properties: dict[str, Any]) -> ProblemSpec:
    """The spec a component was given (`SPEC_PARAMETERS`)."""
    return ProblemSpec.from_config(json.loads(exec_properties[PROBLEM_SPEC_KEY]))


# --- Channels -----------------------------------------------------------------------------------------
# Not "blessing": Airflow's launcher names artifacts "<output key>:<run id>", unique per type, and the
# Evaluator's ModelBlessing already takes "blessing".
BASELINE_BLESSING_KEY = "baseline_blessing"
TEST_PREDICTIONS_KEY = "test_predictions"
DEVICE_MODELS_KEY = "device_models"
REPORT_KEY = "report"

# --- The models Blueprint exports -------------------------------------------------------------------
PREDICTIONS_KEY = "predictions"  # the output of every signature and every device target
SERVING_SIGNATURE = "serving_default"  # serialized tf.Examples in (TF Serving, the Evaluator)
RAW_SIGNATURE = "serving_raw"  # one [None, 1] tensor per raw feature in (TFLite, TF.js, the gate)
TRANSFORMED_LABELS_SIGNATURE = "transformed_labels"  # TFMA's default name: the labels as trained on


def raw_input_name(column: str) -> str:
    """The `serving_raw` input (and so TFLite's and TF.js's) of a column: its name with every character
    but letters and digits as `_`, and `arg_` before one that does not start with a letter. That is
    tf.function's own rule for argument names ("petal length (cm)" -> "petal_length__cm_"), written
    here so that readers can map inputs back to columns."""
    swapped = "".join(c if c.isalnum() else "_" for c in column)
    return swapped if swapped[:1].isalpha() else f"arg_{swapped}"


def raw_input_columns(columns) -> dict[str, str]:
    """`serving_raw` input name -> column, for the given columns."""
    return {raw_input_name(column): column for column in columns}


# serving_default of a classifier also returns TF Serving's classify-style outputs: `scores` [n, K] (the
# probability of each class; for multilabel, of each label), `classes` [n, K] (their names) and, for binary
# and multiclass, `predicted_class` [n] (the most probable class's name).
SCORES_KEY = "scores"
CLASSES_KEY = "classes"
PREDICTED_CLASS_KEY = "predicted_class"
# In a classifier's SavedModel: the class names in the order of its outputs (JSON list), for readers
# without TensorFlow (the pusher's manifest, the TF.js page). TF Serving ignores assets.extra/.
CLASS_NAMES_FILE = "assets.extra/class_names.json"


# --- Our artifact types -----------------------------------------------------------------------------
class TestPredictions(types.Artifact):
    """`test_predictions.npz`: the test split's labels, the model's and the dumb baseline's predictions
    and the model's raw input features (no pickles: text is stored as fixed-width unicode);
    `feature_importance.json` when the metric is defined on the test rows. Written by DumbBaselineGate."""

    TYPE_NAME = "TestPredictions"


class DeviceModels(types.Artifact):
    """TFLite and TF.js models of one trained model, with `targets.json` (sizes, metric, parity).
    Custom property `exported` is 1 when the model was blessed and converted, 0 when nothing was.
    Written by ModelExporter."""

    TYPE_NAME = "DeviceModels"


class StakeholderReport(types.Artifact):
    """`report.html` (self-contained, plots embedded) and `report.json` (the same figures as data).
    Written by StakeholderReportGen."""

    TYPE_NAME = "StakeholderReport"


# --- Files inside artifacts ---------------------------------------------------------------------------
TEST_PREDICTIONS_FILE = "test_predictions.npz"  # TestPredictions
IMPORTANCE_FILE = "feature_importance.json"  # TestPredictions
POWER_FILE = "power.json"  # the gate's ModelBlessing: the comparison with the dumb baseline
TARGETS_FILE = "targets.json"  # DeviceModels
# DeviceModels: in each TF.js model's folder, what the TF.js page shows beside it (features, vocabularies,
# typical values, real test rows, how to word the answer); pushed with the model. Written by ModelExporter.
PAGE_FILE = "page.json"
EXPORTED_PROPERTY = "exported"  # DeviceModels' custom property
HISTORY_FILE = "history.json"  # ModelRun: the final fit's Keras history
PROTOCOL_FILE = "protocol.json"  # TunerResults: the evaluation protocol, capacity sweep and trials
TUNER_RESULTS_FILE = "tuner_results.json"  # TunerResults: TFX Tuner's own table of trials
REPORT_FILE = "report.html"  # StakeholderReport
REPORT_DATA_FILE = "report.json"  # StakeholderReport


SCHEMA_FILE = "schema.pbtxt"  # Schema (TFX's own name)
# A column CuratedSchemaGen leaves out of the features on its own (a row identifier, a column with no value
# in training): deprecated in the schema, with this annotation tag and the reason as its comment.
LEFT_OUT_TAG = "left_out"


def read_schema(schema_uri: str):
    """The curated schema (tensorflow_metadata Schema) a CuratedSchemaGen wrote."""
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.utils import io_utils

    return io_utils.parse_pbtxt_file(str(Path(schema_uri, SCHEMA_FILE)), schema_pb2.Schema())


def binary_class_names(schema_uri: str, spec: ProblemSpec) -> list[str] | None:
    """[negative, positive] as the data writes them, for a binary label written as text or as two numbers
    other than 0/1; else None."""
    return binary_class_names_in(read_schema(schema_uri), spec)


def binary_class_names_in(schema, spec: ProblemSpec) -> list[str] | None:
    """`binary_class_names` of a Schema proto."""
    label = next((f for f in schema.feature if f.name == spec.label_columns[0]), None)
    if label is None:
        return None
    domains = {domain.name: list(domain.value) for domain in schema.string_domain}
    values = list(label.string_domain.value) or domains.get(label.domain, [])
    if label.HasField("int_domain") and (label.int_domain.min, label.int_domain.max) != (0, 1):
        values = [str(label.int_domain.min), str(label.int_domain.max)]  # two numbers, e.g. 2/4
    positive = positive_of(values, spec.positive_class) if len(values) == 2 else None
    return None if positive is None else [next(v for v in values if v != positive), positive]


def read_left_out(schema_uri: str) -> dict[str, str]:
    """The columns the curated schema leaves out of the features on its own, each with the reason."""
    schema = read_schema(schema_uri)
    return {
        feature.name: " ".join(feature.annotation.comment)
        for feature in schema.feature
        if LEFT_OUT_TAG in feature.annotation.tag
    }


def read_class_names(saved_model_dir: str | Path) -> list[str] | None:
    """A classifier's class names in the order of its outputs; None for regression or older models."""
    path = Path(saved_model_dir, CLASS_NAMES_FILE)
    return json.loads(path.read_text()) if path.exists() else None


def read_test_predictions(uri: str) -> dict[str, np.ndarray]:
    with np.load(Path(uri, TEST_PREDICTIONS_FILE), allow_pickle=False) as saved:
        return {name: saved[name] for name in saved.files}


def read_importance(test_predictions_uri: str) -> list[dict] | None:
    path = Path(test_predictions_uri, IMPORTANCE_FILE)
    return json.loads(path.read_text()) if path.exists() else None


def read_power(blessing_uri: str) -> dict:
    """The comparison a DumbBaselineGate wrote next to its blessing."""
    return json.loads(Path(blessing_uri, POWER_FILE).read_text())


def read_targets(device_models_uri: str) -> dict:
    """The `targets.json` a ModelExporter wrote (what the pusher, the report and the CLI read)."""
    return json.loads(Path(device_models_uri, TARGETS_FILE).read_text())


def read_history(model_run_uri: str) -> dict:
    path = Path(model_run_uri, HISTORY_FILE)
    return json.loads(path.read_text()) if path.exists() else {}


def read_protocol(tuner_results_uri: str) -> dict:
    return json.loads(Path(tuner_results_uri, PROTOCOL_FILE).read_text())


def read_tuner_results(tuner_results_uri: str) -> list[dict]:
    return json.loads(Path(tuner_results_uri, TUNER_RESULTS_FILE).read_text())


def custom_int(artifact: types.Artifact, name: str) -> int:
    """ExampleGen records span and version as custom properties, as TFX's SpanRangeStrategy reads
    them; `artifact.span` reads the typed property, which stays 0."""
    return custom_int_of(artifact.mlmd_artifact, name)


def custom_int_of(artifact: metadata_store_pb2.Artifact, name: str) -> int:
    """An MLMD artifact's integer custom property (older runs wrote a string; 0 when absent)."""
    value = artifact.custom_properties.get(name)
    if value is None:
        return 0
    return int(value.string_value) if value.string_value else int(value.int_value)
