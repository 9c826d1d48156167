"""Airflow on Celery, for real: the celery profile (CeleryExecutor, this machine's Redis as the broker,
PostgreSQL as Airflow's database and Celery's result backend), a scheduler, a webserver and two Celery
workers, each its own process with its own `--celery-hostname`, all on 127.0.0.1.

The training DAGs of two specs are triggered at once through the REST API with credentials; both runs
must succeed, overlap in time, have run tasks on both workers, and push their model once. The workers
serve no logs (Airflow's log server listens on every interface): the webserver reads a worker's task log
from the shared log folder.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime

import pytest
import requests

from components.core.sources import write_table
from pipelines.airflow.profile import AirflowServices
from pipelines.paths import RunPaths
from tests.helpers.live_airflow import (
    AirflowApi,
    airflow_databases,
    live_environment,
    start_airflow,
    wait_for_workers,
)
from tests.helpers.pipeline_runs import SMALL_TRAINING, versions, write_taxi_spec

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("airflow-celery")]

SPEC_NAMES = ("taxi-early", "taxi-late")  # the first and the last trips of the data
ROWS = 1000
ADMIN = "admin"
RUN_TIMEOUT_SECONDS = 1200  # 13 tasks per run; the two runs share two cores
TRAINING = dict(SMALL_TRAINING, epochs=2, steps_per_epoch=20)
# Five of the taxi features: fewer statistics, vocabularies and slices in every task; payment_type alone
# predicts a big tip well enough for a blessed model.
FEATURES = {
    "fare": "numeric",
    "trip_miles": "numeric",
    "trip_seconds": "numeric",
    "payment_type": "categorical",
    "trip_start_hour": "categorical",
}


@pytest.fixture(scope="module")
def celery_airflow(tmp_path_factory, taxi_rows):
    """The celery profile's Airflow with two workers, on databases and a Redis queue of its own."""
    root = tmp_path_factory.mktemp("celery")
    header, rows = taxi_rows
    for name, part in zip(SPEC_NAMES, (rows[:ROWS], rows[-ROWS:]), strict=True):
        write_taxi_spec(
            root / "config",
            write_table(root / "data" / f"{name}.csv", header, part),
            file_name=f"{name}.yaml",
            name=name,
            training=TRAINING,
            features=FEATURES,
            schedule={"training": None, "retries": 0},
            deployment={"tflite": [], "tfjs": []},
        )
    tag = f"{os.getpid()}_{secrets.token_hex(3)}"
    workers = [f"worker-a-{tag}", f"worker-b-{tag}"]  # unique on a broker other tests may share
    with airflow_databases(f"blueprint_celery_{tag}") as database:
        # A queue of its own: other Airflows on this Redis never take these tasks, nor these workers theirs.
        env = live_environment(
            "celery", root, database, root / "config", BLUEPRINT_CELERY_QUEUE=f"blueprint-test-{tag}"
        )
        services = AirflowServices(env)
        password = secrets.token_urlsafe(16)
        try:
            start_airflow(services, (ADMIN, password))
            services.start_workers(workers, concurrency=1)
            services.wait_until_healthy()
            wait_for_workers(services, workers)
            yield services, AirflowApi(services.base_url, (ADMIN, password)), workers, root, database
        finally:
            services.stop()
            forget_queue(tag)


def forget_queue(tag: str) -> None:
    """Removes the keys Celery left in the shared Redis for this test's queue (its bindings)."""
    import redis

    broker = redis.Redis(host="127.0.0.1", port=6379, db=0)
    keys = list(broker.scan_iter(match=f"*{tag}*"))
    if keys:
        broker.delete(*keys)


@pytest.fixture(scope="module")
def runs(celery_airflow) -> dict[str, dict]:
    """Both training DAGs unpaused, then triggered together; each run once finished, with its tasks."""
    _, api, *_ = celery_airflow
    dag_ids = [f"blueprint-{name}" for name in SPEC_NAMES]
    for dag_id in dag_ids:
        assert api.wait_for_dag(dag_id)["is_paused"], "new DAGs start paused"
        assert api("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).status_code == 200
    conf = {"reason": "two specs at once on two Celery workers"}
    triggered = {dag_id: api("POST", f"/dags/{dag_id}/dagRuns", json={"conf": conf}) for dag_id in dag_ids}
    assert {answer.status_code for answer in triggered.values()} == {200}, [
        a.text for a in triggered.values()
    ]
    finished = {}
    for dag_id, answer in triggered.items():
        run = api.wait_for_run(dag_id, answer.json()["dag_run_id"], RUN_TIMEOUT_SECONDS)
        finished[dag_id] = dict(run, tasks=api.task_instances(dag_id, run["dag_run_id"]))
    return finished


def test_two_specs_triggered_at_once_both_succeed_on_both_workers_and_push_once(celery_airflow, runs):
    _, _, workers, root, _ = celery_airflow
    for dag_id, run in runs.items():
        states = {task["task_id"]: task["state"] for task in run["tasks"]}
        assert run["state"] == "success", (dag_id, states)
        assert set(states.values()) == {"success"}, (dag_id, states)
    hosts = {task["hostname"] for run in runs.values() for task in run["tasks"]}
    assert hosts == set(workers), f"tasks ran on {hosts}, not on both workers {workers}"
    starts = [datetime.fromisoformat(run["start_date"]) for run in runs.values()]
    ends = [datetime.fromisoformat(run["end_date"]) for run in runs.values()]
    assert max(starts) < min(ends), "the two runs overlapped: both DAGs ran at once"
    for name, run in zip(SPEC_NAMES, runs.values(), strict=True):
        pushed = versions(RunPaths.for_spec(name, root / "home").serving_dir)
        assert len(pushed) == 1, (name, pushed)
        assert f"Pushed version {pushed[0]} to " in run["note"], run["note"]


def test_celery_kept_its_task_results_in_postgresql(celery_airflow, runs):
    """The result backend is Airflow's PostgreSQL database (`db+postgresql...`), not Redis."""
    import psycopg2

    *_, database = celery_airflow
    connection = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT status, count(*) FROM celery_taskmeta GROUP BY status")
            counted = dict(cursor.fetchall())
    finally:
        connection.close()
    tasks = sum(len(run["tasks"]) for run in runs.values())
    assert counted == {"SUCCESS": tasks}, counted


def test_the_webserver_shows_a_task_log_a_worker_wrote(celery_airflow, runs):
    """No worker serves logs: the webserver reads the log folder the workers write."""
    _, api, workers, *_ = celery_airflow
    dag_id, run = next(iter(runs.items()))
    trainer = next(task for task in run["tasks"] if task["task_id"] == "Trainer")
    path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances/Trainer/logs/{trainer['try_number']}"
    log = api("GET", path, headers={"Accept": "text/plain"})
    assert log.status_code == 200, log.text[-500:]
    assert trainer["hostname"] in workers
    assert f"on host {trainer['hostname']}" in log.text, log.text[-2000:]
    assert "Could not read served logs" not in log.text


def test_login_is_required_and_nothing_listens_beyond_loopback(celery_airflow, runs):
    services, api, workers, *_ = celery_airflow
    assert all(services.processes[f"worker {name}"].poll() is None for name in workers), "workers alive"
    anonymous = requests.get(f"{services.base_url}/api/v1/dags", timeout=30)
    assert anonymous.status_code in (401, 403)
    assert api("GET", "/dags").status_code == 200
    listening = services.listening_addresses()
    assert listening and {ip for ip, _ in listening} <= {"127.0.0.1", "::1"}, listening
    worker_ports = services.listening_addresses([f"worker {name}" for name in workers])
    assert worker_ports == set(), f"a Celery worker listens (its log server?): {worker_ports}"
