"""An Airflow task that fails once succeeds on its retry (real Airflow, `DAG.test()`, SQLite).

The fault is real and transient: the data file is away when CsvExampleGen first runs, and comes back
once Airflow has put the task up for retry. The retry ingests it; nothing else is needed.
"""

from __future__ import annotations

import threading
import time

import pytest

from components.core.sources import write_table
from components.core.spec import load_spec
from pipelines.airflow.dags import training_dag, training_dag_id
from tests.helpers.pipeline_runs import write_taxi_spec

pytestmark = pytest.mark.e2e
TASK = "CsvExampleGen"


@pytest.fixture(scope="module")
def airflow_db():
    from airflow.utils import db

    db.initdb()


def up_for_retry(dag_id: str, task_id: str) -> bool:
    """Whether an instance of the task waits for its retry (other tests' runs of the DAG share the DB)."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        waiting = session.query(TaskInstance).filter_by(
            dag_id=dag_id, task_id=task_id, state=TaskInstanceState.UP_FOR_RETRY
        )
        return waiting.count() > 0


class ReturnsWhenRetrying(threading.Thread):
    """Moves the data file back once the task is up for retry (and records that it saw that state)."""

    def __init__(self, dag_id: str, away, back):
        super().__init__(daemon=True)
        self.dag_id, self.away, self.back = dag_id, away, back
        self.saw_retry = False

    def run(self) -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if up_for_retry(self.dag_id, TASK):
                self.saw_retry = True
                self.away.rename(self.back)
                return
            time.sleep(0.2)


def test_a_task_that_fails_once_succeeds_on_its_retry(tmp_path, taxi_rows, airflow_db):
    header, rows = taxi_rows
    data = write_table(tmp_path / "landing" / "data.csv", header, rows[:1000])
    spec = load_spec(
        write_taxi_spec(tmp_path / "config", data, schedule={"retries": 1, "retry_delay_minutes": 0.05})
    )
    dag = training_dag(spec, tmp_path / "home").partial_subset(
        f"^{TASK}$", include_upstream=True, include_downstream=False
    )
    away = data.with_name("data.away")
    data.rename(away)
    watcher = ReturnsWhenRetrying(training_dag_id(spec), away, data)
    watcher.start()
    run = dag.test()
    watcher.join(timeout=5)
    instance = run.get_task_instance(TASK)
    assert watcher.saw_retry, "the first attempt did not fail into up_for_retry"
    assert run.state == "success" and instance.state == "success"
    assert instance.try_number == 2, "it succeeded on the second try"
    assert list((tmp_path / "home").rglob("data_tfrecord-*.gz")), "the retry wrote the examples"
