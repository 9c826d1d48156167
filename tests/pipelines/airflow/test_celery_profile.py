"""The celery profile and its worker entry point (the live run is tests/e2e/test_airflow_celery.py)."""

from __future__ import annotations

import importlib
import socket

import pytest
from sqlalchemy.engine import make_url

from pipelines.airflow import worker
from pipelines.airflow.profile import ProfileError, local_workers, profile_environment

BASE = {"PATH": "/usr/bin:/bin", "PGUSER": "blueprint", "PGPASSWORD": "-p@ss/w:rd?#%"}


def test_celery_profile_queues_tasks_on_redis_and_keeps_results_in_postgres():
    env = profile_environment("celery", base=BASE)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/0"
    backend = env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert backend == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], "Airflow's own database"
    url = make_url(backend.removeprefix("db+"))
    assert (url.drivername, url.password, url.host) == (
        "postgresql+psycopg2",
        BASE["PGPASSWORD"],
        "127.0.0.1",
    )
    assert env["AIRFLOW__WEBSERVER__WEB_SERVER_HOST"] == "127.0.0.1"
    assert "airflow.api.auth.backend.basic_auth" in env["AIRFLOW__API__AUTH_BACKENDS"]
    assert (
        env["AIRFLOW__CORE__DAGS_FOLDER"]
        == profile_environment("production", base=BASE)["AIRFLOW__CORE__DAGS_FOLDER"]
    ), "the same DAG file as production"
    module, _, function = env["AIRFLOW__CORE__HOSTNAME_CALLABLE"].rpartition(".")
    assert getattr(importlib.import_module(module), function) is worker.hostname


def test_celery_profile_takes_the_broker_queue_and_workers_from_the_environment():
    env = profile_environment(
        "celery",
        base=dict(
            BASE, REDIS_HOST="redis.internal", BLUEPRINT_CELERY_QUEUE="east", BLUEPRINT_CELERY_WORKERS="0"
        ),
    )
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis.internal:6379/0"
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "east"
    assert env["BLUEPRINT_CELERY_WORKERS"] == "0"


def test_a_tasks_hostname_is_its_workers_celery_hostname(monkeypatch):
    monkeypatch.setenv(worker.WORKER_NAME_VARIABLE, "worker-a")
    assert worker.hostname() == "worker-a"
    monkeypatch.delenv(worker.WORKER_NAME_VARIABLE)
    assert worker.hostname() == socket.getfqdn(), "Airflow's default elsewhere"


@pytest.mark.parametrize(
    ("argv", "profile", "name", "rest"),
    [
        (["--celery-hostname", "a", "-c", "1"], None, "a", ["--celery-hostname", "a", "-c", "1"]),
        (["--profile", "celery", "-H", "b"], "celery", "b", ["-H", "b"]),
        (["--celery-hostname=c", "--profile", "celery"], "celery", "c", ["--celery-hostname=c"]),
        (["--skip-serve-logs"], None, None, ["--skip-serve-logs"]),
    ],
)
def test_the_worker_reads_its_profile_and_name_and_passes_the_rest_to_airflow(argv, profile, name, rest):
    assert worker.worker_arguments(argv) == (profile, rest)
    assert worker.celery_hostname(rest) == name


def test_a_profile_without_a_name_is_refused():
    with pytest.raises(SystemExit, match="--profile needs a name"):
        worker.worker_arguments(["--profile"])


def test_the_profiles_workers_are_named_after_this_machine():
    host = socket.gethostname().split(".")[0]
    assert local_workers(profile_environment("celery", base=BASE)) == [f"{host}-1", f"{host}-2"]
    assert local_workers(profile_environment("production", base=BASE)) == [], "LocalExecutor: none"
    with pytest.raises(ProfileError, match="BLUEPRINT_CELERY_WORKERS='two'"):
        local_workers({"BLUEPRINT_CELERY_WORKERS": "two"})
