"""Shared fixtures, and how `make test` groups tests on its workers. Helpers live in tests/helpers/."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import components  # noqa: F401  (selects Keras 2 before anything imports TensorFlow)

# Airflow reads its settings once, on first import: the tests get an Airflow (SQLite) of their own.
AIRFLOW_TEST_HOME = Path(tempfile.mkdtemp(prefix="blueprint-airflow-"))
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_TEST_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_TEST_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

import pytest  # noqa: E402

from components.core.sources import write_table  # noqa: E402
from tests.helpers import data  # noqa: E402

# `make test` runs pytest-xdist with `--dist loadgroup`: each group runs on one worker, so a module- or
# session-scoped pipeline run is made once. A test's group is its `xdist_group` mark, else its module.
# Groups start longest first (seconds from `pytest --durations=0`, tests/README.md), so that the
# workers finish together; groups not named here follow in file order.
LONGEST_GROUPS_FIRST = (
    "airflow-live",  # a real scheduler: mostly waiting on its tasks, it starts at once
    "airflow-celery",  # a scheduler and two Celery workers: mostly waiting on their tasks
    "served-taxi",
    "test_airflow_dags",
    "test_spanned_cli",
    "test_deployment",
    "workflow-binary",
    "class-names",
    "skewed-fare",  # a log-scale fare regression on 3,000 trips with every device target
    "workflow-tips",
    "test_airflow_profile",
    "test_preprocessing",
    "workflow-multiclass",  # iris from the five lines, tuned by default: a 24 s budget plus the run
    "workflow-shuffled",
    "workflow-multilabel",
    "workflow-regression",
)


def xdist_group(item: pytest.Item) -> str:
    marker = item.get_closest_marker("xdist_group")
    return str(marker.args[0]) if marker else item.module.__name__.rsplit(".", 1)[-1]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(xdist_group(item)))
    rank = {group: index for index, group in enumerate(LONGEST_GROUPS_FIRST)}
    items.sort(key=lambda item: rank.get(xdist_group(item), len(rank)))


@pytest.fixture(scope="session")
def taxi_rows() -> tuple[list[str], list[dict[str, str]]]:
    return data.taxi_rows()


@pytest.fixture(scope="session")
def taxi_slice(tmp_path_factory, taxi_rows) -> Path:
    """The first 3,000 real taxi trips, as a CSV of their own."""
    header, rows = taxi_rows
    return write_table(tmp_path_factory.mktemp("taxi") / "slice.csv", header, rows[:3000])


@pytest.fixture(scope="session")
def served_taxi(tmp_path_factory, taxi_rows):
    """One CLI run on 2,500 real taxi trips (with a column the spec does not name) into a fresh home,
    shared by the e2e checks of a served model, the bad-input catalogue and the fault tests'
    reproducibility check. Tests that use it carry `xdist_group("served-taxi")`, so it runs once."""
    from tests.helpers.pipeline_runs import SERVED_ROWS, serve_taxi

    header, rows = taxi_rows
    return serve_taxi(tmp_path_factory.mktemp("served"), header, rows[:SERVED_ROWS])


@pytest.fixture(scope="session")
def every_target_run(tmp_path_factory, taxi_slice):
    """One run on the taxi slice built for every deployment target, shared by tests/e2e/test_deployment.py
    and the predict and status tests (all in xdist group "test_deployment", so it runs once)."""
    from tests.helpers.pipeline_runs import every_target_run

    return every_target_run(tmp_path_factory.mktemp("every-target"), taxi_slice)
