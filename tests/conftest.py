"""Shared fixtures. Keras 2 (tf_keras) is selected before anything imports TensorFlow."""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Airflow reads its settings once, on first import: the tests get an Airflow (SQLite) of their own.
AIRFLOW_TEST_HOME = Path(tempfile.mkdtemp(prefix="blueprint-airflow-"))
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_TEST_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_TEST_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import pytest  # noqa: E402

from bench.taxi_data import write_csv as write_rows  # noqa: E402, F401  (tests import it from here)
from pipelines.sources import resolve  # noqa: E402

TAXI_SOURCE = "pkg://tfx/examples/chicago_taxi_pipeline/data/big_tipper_label/data.csv"
TAXI_SPEC = REPO_ROOT / "config" / "taxi.yaml"


def taxi_csv_path() -> Path:
    return Path(resolve(TAXI_SOURCE, REPO_ROOT))


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="session")
def taxi_rows() -> tuple[list[str], list[dict[str, str]]]:
    return read_rows(taxi_csv_path())


@pytest.fixture(scope="session")
def taxi_slice(tmp_path_factory, taxi_rows) -> Path:
    """The first 3,000 real taxi trips, as a CSV of their own."""
    header, rows = taxi_rows
    return write_rows(tmp_path_factory.mktemp("taxi") / "slice.csv", header, rows[:3000])
