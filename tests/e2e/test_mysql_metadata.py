"""ML Metadata on MySQL (this machine's MariaDB): `pipelines run` records the run there and reads its
summary back from there, not from a SQLite file nobody wrote; MySQL's account is never defaulted."""

from __future__ import annotations

import os
import secrets
from unittest import mock

import pytest

from components.core.sources import write_table
from pipelines.paths import MYSQL_PASSWORD_VARIABLE, MYSQL_USER_VARIABLE, MYSQL_VARIABLE, RunPaths
from pipelines.workflow import results
from tests.helpers.pipeline_runs import SMALL_TRAINING, cli_run, versions, write_taxi_spec

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("mysql-metadata")]

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
ROWS = 2000  # enough trips for a blessed model; the claim is where MLMD lives, not how good it is


@pytest.fixture
def mysql_database():
    """A database of this test's own on MariaDB, dropped afterwards."""
    import pymysql

    name = f"blueprint_mlmd_{os.getpid()}_{secrets.token_hex(4)}"
    connection = pymysql.connect(**MARIADB, autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.close()


def mysql_environment(database: str) -> dict[str, str]:
    return {
        MYSQL_VARIABLE: f"{MARIADB['host']}:{MARIADB['port']}/{database}",
        MYSQL_USER_VARIABLE: MARIADB["user"],
        MYSQL_PASSWORD_VARIABLE: MARIADB["password"],
    }


@pytest.fixture
def small_spec(tmp_path, taxi_rows):
    header, rows = taxi_rows
    source = write_table(tmp_path / "trips.csv", header, rows[:ROWS])
    training = dict(SMALL_TRAINING, epochs=3, steps_per_epoch=20)
    # A push is the claim, not device models: no TFLite or TF.js conversions.
    return write_taxi_spec(
        tmp_path / "config", source, threshold=0.6, training=training, deployment={"tflite": [], "tfjs": []}
    )


def test_a_cli_run_with_mlmd_on_mysql_reports_its_push(small_spec, tmp_path, mysql_database):
    """Before, the CLI read the summary from the SQLite path and exited 1 ("left no record in ML
    Metadata") after a successful push."""
    mysql = mysql_environment(mysql_database)
    done = cli_run(small_spec, tmp_path / "home", env={**os.environ, **mysql})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pushed:   version" in done.stdout, done.stdout
    assert f"metadata: mysql://127.0.0.1:3306/{mysql_database}" in done.stdout
    paths = RunPaths.for_spec("taxi", tmp_path / "home")
    assert not paths.metadata_path.exists(), "nothing was written to the SQLite file"
    with mock.patch.dict(os.environ, mysql):
        production = results.production_model(results.open_store(paths.metadata_config()), "blueprint-taxi")
    assert production is not None and [production.version] == versions(paths.serving_dir)


def test_mlmd_on_mysql_without_an_account_stops_before_running(small_spec, tmp_path, mysql_database):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BLUEPRINT_MLMD")}
    environment[MYSQL_VARIABLE] = mysql_environment(mysql_database)[MYSQL_VARIABLE]
    done = cli_run(small_spec, tmp_path / "home", env=environment)
    assert done.returncode == 1
    assert MYSQL_USER_VARIABLE in done.stderr and MYSQL_PASSWORD_VARIABLE in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "home").exists(), "nothing ran"
