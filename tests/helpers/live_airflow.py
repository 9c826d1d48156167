"""Real Airflow for the live tests: databases of their own, a profile's environment on temporary folders,
the services started and stopped, and the REST API with credentials."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from pipelines.airflow.dags import CONFIG_VARIABLE
from pipelines.airflow.profile import AirflowServices, profile_environment
from pipelines.paths import MYSQL_PASSWORD_VARIABLE, MYSQL_USER_VARIABLE, MYSQL_VARIABLE
from tests.helpers.processes import free_port

MLMD_VARIABLES = (MYSQL_VARIABLE, MYSQL_USER_VARIABLE, MYSQL_PASSWORD_VARIABLE)
FINISHED = ("success", "failed")


@contextmanager
def airflow_databases(name: str) -> Iterator[str]:
    """A PostgreSQL database (Airflow's) and a MariaDB database (ML Metadata's) called `name`, on this
    machine's servers, dropped afterwards."""
    import psycopg2
    import pymysql

    postgres = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    postgres.autocommit = True
    mariadb = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    with created_database(postgres, name, " WITH (FORCE)"), created_database(mariadb, name):
        yield name


@contextmanager
def created_database(connection, name: str, drop_options: str = "") -> Iterator[None]:
    """Database `name` made on an autocommit DB-API `connection`; dropped, and the connection closed,
    on the way out."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {name}{drop_options}")
    finally:
        connection.close()


def live_environment(
    profile: str, root: Path, database: str, config_dir: Path, pg_password: str = "", **more: str
) -> dict[str, str]:
    """`profile`'s environment for an Airflow in `root` on `database` (both servers), with the DAG file
    reading the specs in `config_dir` and the webserver on a free loopback port."""
    outside = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # conftest's SQLite
    base = dict(
        outside,
        PGUSER="postgres",
        PGPASSWORD=pg_password,
        PGDATABASE=database,
        AIRFLOW_HOME=str(root / "airflow"),
        AIRFLOW_PORT=str(free_port()),
        BLUEPRINT_HOME=str(root / "home"),
        AIRFLOW_WEBSERVER_WORKERS="1",  # the test is its only client
        **{MYSQL_VARIABLE: f"127.0.0.1:3306/{database}", MYSQL_USER_VARIABLE: "root"},
        **{MYSQL_PASSWORD_VARIABLE: ""},  # MariaDB's root here has none; said so explicitly
        **more,
    )
    env = profile_environment(profile, base=base)
    env[CONFIG_VARIABLE] = str(config_dir)
    return env


def start_airflow(services: AirflowServices, admin: tuple[str, str]) -> None:
    """Migrates, sets up the admin, starts the scheduler and the webserver."""
    services.migrate()
    services.ensure_admin(*admin)
    services.start()


class AirflowApi:
    """Airflow's REST API (`/api/v1`) with basic-auth credentials."""

    def __init__(self, base_url: str, credentials: tuple[str, str]):
        self.base_url = base_url
        self.credentials = credentials

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(
            method, f"{self.base_url}/api/v1{path}", auth=self.credentials, timeout=30, **kwargs
        )

    def wait_for_dag(self, dag_id: str, timeout: float = 240) -> dict:
        """The DAG once the scheduler has parsed it; fails at once on an import error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self("GET", f"/dags/{dag_id}")
            if answer.status_code == 200:
                return answer.json()
            errors = self("GET", "/importErrors").json()["import_errors"]
            assert not errors, f"the DAG file failed to import: {errors[0]['stack_trace'][-1500:]}"
            time.sleep(3)
        raise AssertionError(f"{dag_id} never reached Airflow's database in {timeout:.0f}s")

    def run(self, dag_id: str, run_id: str) -> dict:
        return self("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json()

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(dag_id, run_id)
            if run["state"] in FINISHED:
                return run
            time.sleep(5)
        raise AssertionError(f"run {run_id} of {dag_id} still {run['state']} after {timeout:.0f}s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()["task_instances"]


def wait_for_workers(services: AirflowServices, names: list[str], timeout: float = 240) -> None:
    """Waits until each Celery worker has said it is `ready.` (connected to the broker, consuming)."""
    deadline = time.monotonic() + timeout
    waiting = list(names)
    while waiting and time.monotonic() < deadline:
        for name in list(waiting):
            process = services.processes[f"worker {name}"]
            log = services.worker_log(name)
            text = log.read_text(errors="replace") if log.exists() else ""
            assert process.poll() is None, f"the Celery worker {name} exited:\n{text[-3000:]}"
            if " ready." in text:
                waiting.remove(name)
        time.sleep(1)
    assert not waiting, f"Celery workers not ready after {timeout:.0f}s: {waiting}"
