"""A CLI run the way a production install makes one: ML Metadata on MySQL (this machine's MariaDB) and the
data a typed Parquet export of the served taxi run's rows.

`pipelines run` records the run in MySQL and reads its summary back from there, not from a SQLite file
nobody wrote; MySQL's account is never defaulted. `data.format: parquet` makes the same tf.Examples as the
CSV, so the same splits and the same model as the session's served run. One run proves both claims (a
whole run costs a minute of the suite's budget), in the served run's group since it is the reference.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from components.core.artifacts import BASELINE_BLESSING_KEY, read_power, read_schema
from components.core.spec import load_spec
from pipelines.paths import MYSQL_PASSWORD_VARIABLE, MYSQL_USER_VARIABLE, MYSQL_VARIABLE, RunPaths
from pipelines.workflow import results, training
from tests.helpers.data import TAXI_SPEC
from tests.helpers.pipeline_runs import NO_DEVICE_TARGETS, ServedRun, cli_run, versions, write_taxi_spec

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("served-taxi")]

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


@pytest.fixture(scope="module")
def mysql_database():
    """A database of this module's own on MariaDB, dropped afterwards."""
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


def parquet_export(served_taxi: ServedRun, path: Path) -> Path:
    """The served run's rows as Parquet, each column typed as the CSV's inference typed it (integers with
    blanks as nullable int64, as a typed export keeps them), plus the trip's start as a timestamp column
    the spec leaves out."""
    import pandas as pd
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = read_schema(served_taxi.summary.outputs["SchemaGen"]["schema"][0])
    typed = {schema_pb2.INT: "Int64", schema_pb2.FLOAT: "float64", schema_pb2.BYTES: "object"}
    frame = pd.read_csv(served_taxi.source, keep_default_na=False, na_values=[""])
    frame = frame.astype({f.name: typed[f.type] for f in schema.feature if f.name in frame})
    frame["trip_started"] = pd.to_datetime(frame["trip_start_timestamp"], unit="s")
    frame.to_parquet(path)
    return path


@dataclass(frozen=True)
class ProductionRun:
    spec: object  # components.core.spec.ProblemSpec
    paths: RunPaths
    database: str
    done: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def production_run(served_taxi, mysql_database, tmp_path_factory) -> ProductionRun:
    """`pipelines run` on the Parquet export with ML Metadata on MariaDB, into a fresh home."""
    folder = tmp_path_factory.mktemp("production")
    source = parquet_export(served_taxi, folder / "trips.parquet")
    taxi = load_spec(TAXI_SPEC, check_data=False)
    spec_path = write_taxi_spec(
        folder / "config",
        source,
        data={"source": str(source), "format": "parquet"},
        exclude=[*taxi.exclude, "trip_started"],
        deployment=NO_DEVICE_TARGETS,
    )
    home = folder / "home"
    done = cli_run(spec_path, home, env={**os.environ, **mysql_environment(mysql_database)})
    spec = load_spec(spec_path)
    return ProductionRun(spec, RunPaths.for_spec(spec.name, home), mysql_database, done)


def on_mysql(run: ProductionRun):
    """This process pointed at the run's ML Metadata on MySQL, as the CLI was."""
    return mock.patch.dict(os.environ, mysql_environment(run.database))


def test_a_cli_run_with_mlmd_on_mysql_reports_its_push(production_run):
    """Before, the CLI read the summary from the SQLite path and exited 1 ("left no record in ML
    Metadata") after a successful push."""
    done, paths = production_run.done, production_run.paths
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pushed:   version" in done.stdout, done.stdout
    assert f"metadata: mysql://127.0.0.1:3306/{production_run.database}" in done.stdout
    assert not paths.metadata_path.exists(), "nothing was written to the SQLite file"
    with on_mysql(production_run):
        production = results.production_model(results.open_store(paths.metadata_config()), "blueprint-taxi")
    assert production is not None and [production.version] == versions(paths.serving_dir)


def test_the_served_rows_as_parquet_train_the_same_model(production_run, served_taxi):
    """Test AUC within 0.01 of the served run's (the issue's bar). Every 0 of the label survives (TFX's
    own parquet executor turns zeros into missing values)."""
    with on_mysql(production_run):
        summary = results.latest_run(
            production_run.paths.metadata_config(), training.pipeline_name(production_run.spec)
        )
    assert "ParquetExampleGen" in summary.executed and summary.pushed and summary.blessed, summary
    auc = read_power(summary.outputs["DumbBaselineGate"][BASELINE_BLESSING_KEY][0])["model_metric"]
    served = read_power(served_taxi.summary.outputs["DumbBaselineGate"][BASELINE_BLESSING_KEY][0])[
        "model_metric"
    ]
    assert abs(auc - served) <= 0.01, (auc, served)


def test_mlmd_on_mysql_without_an_account_stops_before_running(mysql_database, taxi_slice, tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BLUEPRINT_MLMD")}
    environment[MYSQL_VARIABLE] = mysql_environment(mysql_database)[MYSQL_VARIABLE]
    done = cli_run(write_taxi_spec(tmp_path / "config", taxi_slice), tmp_path / "home", env=environment)
    assert done.returncode == 1
    assert MYSQL_USER_VARIABLE in done.stderr and MYSQL_PASSWORD_VARIABLE in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "home").exists(), "nothing ran"
