"""A simpler model is not better (ML Test Score, model 5): a linear model must not beat the network.

Scikit-learn's logistic regression on the session's served taxi run (tests/conftest.py::served_taxi): fitted
on the training rows the network trained on, read from the run's Examples as the DumbBaselineGate reads
them (its raw-input arrays, `components/scoring/parity.py`), and scored on exactly the test rows the gate
and the Evaluator scored the network on. Numbers are imputed with their training mean and standardized;
categories are one-hot encoded, missing and unseen ones included. The network must not be worse than it
beyond the 95% paired-bootstrap interval of the difference (the gate's own comparison).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import tensorflow_transform as tft
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from tfx.utils import path_utils

from components.core.artifacts import BASELINE_BLESSING_KEY, TEST_PREDICTIONS_FILE, read_power
from components.core.spec import FeatureKind, ProblemSpec
from components.dumb_baseline_gate.executor import TRAIN_LABEL_ROWS
from components.dumb_baseline_gate.simple_model import as_text, rows_digest
from components.scoring import metrics, parity
from components.scoring.runtimes import TensorFlowRuntime
from tests.helpers.executors import examples

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("served-taxi")]


@dataclass(frozen=True)
class Rows:
    """One split as the gate reads it: raw-input arrays, labels, and the serialized examples in order."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    serialized: list[bytes]


def read_rows(outputs: dict, spec: ProblemSpec, split: str, limit: int | None = None) -> Rows:
    tft_output = tft.TFTransformOutput(outputs["Transform"]["transform_graph"][0])
    serving = path_utils.serving_model_path(outputs["Trainer"]["model"][0])
    dtypes = TensorFlowRuntime(serving).input_dtypes()
    serialized = parity.read_serialized(
        parity.split_records([examples(outputs["CsvExampleGen"]["examples"][0])], split), limit
    )
    inputs, parsed = parity.raw_inputs(serialized, tft_output, dtypes)
    return Rows(inputs, parity.labels(parsed, tft_output, spec), serialized)


def as_frame(spec: ProblemSpec, inputs: dict[str, np.ndarray]) -> pd.DataFrame:
    """Categories as text (a missing one is a category of its own, as in the network's vocabulary)."""
    columns = {}
    for name, values in sorted(inputs.items()):
        if spec.features[name] == FeatureKind.CATEGORICAL:
            columns[name] = as_text(values[:, 0])
        else:
            columns[name] = values[:, 0].astype(np.float64)
    return pd.DataFrame(columns)


def linear_model(spec: ProblemSpec, frame: pd.DataFrame) -> Pipeline:
    categorical = [name for name in frame if spec.features[name] == FeatureKind.CATEGORICAL]
    numeric = [name for name in frame if name not in categorical]
    encode = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    return make_pipeline(encode, LogisticRegression(max_iter=2000))


@pytest.fixture(scope="module")
def compared(served_taxi) -> dict:
    spec, outputs = served_taxi.spec, served_taxi.summary.outputs
    train = read_rows(outputs, spec, parity.TRAIN_SPLIT, TRAIN_LABEL_ROWS)
    test = read_rows(outputs, spec, parity.TEST_SPLIT)
    gate = np.load(served_taxi.gate_predictions / TEST_PREDICTIONS_FILE)
    train_frame = as_frame(spec, train.inputs)
    model = linear_model(spec, train_frame).fit(train_frame, train.labels[:, 0])
    linear = model.predict_proba(as_frame(spec, test.inputs))[:, 1:]
    network, simpler, lead = metrics.paired_comparison(
        spec.metric.name,
        spec.task.value,
        spec.metric.higher_is_better,
        metrics.task_arrays(spec, test.labels),
        metrics.prediction_arrays(spec, gate["predictions"]),
        metrics.prediction_arrays(spec, linear),
    )
    return {
        "spec": spec,
        "train": train,
        "test": test,
        "gate": gate,
        "power": read_power(outputs["DumbBaselineGate"][BASELINE_BLESSING_KEY][0]),
        "evaluator_auc": served_taxi.summary.metrics["auc"],
        "network": network,
        "linear": simpler,
        "lead": lead,
    }


def test_the_linear_model_is_scored_on_the_rows_the_evaluator_and_the_gate_scored(compared):
    test, gate, power = compared["test"], compared["gate"], compared["power"]
    assert len(test.serialized) == power["test_rows"] == len(gate["labels"])
    assert rows_digest(test.serialized) == power["simple_model"]["test_rows_sha256"], "the gate's rows"
    assert np.array_equal(test.labels, gate["labels"]), "the same rows in the same order"
    assert compared["network"] == pytest.approx(power["model_metric"])
    # TFMA's AUC sums over 10,000 threshold buckets: the same rows give the same AUC to about 1e-3.
    assert compared["network"] == pytest.approx(compared["evaluator_auc"], abs=2e-3)
    assert len(compared["train"].labels) == power["simple_model"]["train_rows"]


def test_a_linear_model_is_not_better_than_the_network(compared):
    power, lead = compared["power"], compared["lead"]
    assert compared["linear"] > power["dumb_metric"] + 0.2, "a real contender, not a broken baseline"
    assert lead[1] >= 0, (
        f"the network's auc {compared['network']:.4f} is below logistic regression's "
        f"{compared['linear']:.4f} beyond the 95% interval of its lead {lead}"
    )
