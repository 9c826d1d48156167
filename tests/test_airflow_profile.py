"""Airflow profiles: loopback and login by default, credentials only from the environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pipelines.airflow_profile import REPO_ROOT, ProfileError, profile_environment


def test_local_profile_binds_loopback_with_this_repos_dags():
    env = profile_environment("local", base={"PATH": "/usr/bin:/bin"})
    assert env["AIRFLOW__WEBSERVER__WEB_SERVER_HOST"] == "127.0.0.1"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO_ROOT / "dags")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW_HOME"] == str(REPO_ROOT / "airflow_home")
    assert "airflow.api.auth.backend.basic_auth" in env["AIRFLOW__API__AUTH_BACKENDS"]
    assert "AIRFLOW__WEBSERVER__SECRET_KEY" not in env, "the secret key is generated per install"


def test_production_profile_needs_database_credentials_from_the_environment():
    with pytest.raises(ProfileError, match="PGUSER"):
        profile_environment("production", base={"PATH": "/usr/bin:/bin"})
    env = profile_environment("production", base={"PATH": "/usr/bin:/bin", "PGUSER": "blueprint"})
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        "postgresql+psycopg2://blueprint:@127.0.0.1:5432/airflow"
    )
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"


def test_airflow_subprocesses_find_this_environments_airflow():
    """`airflow standalone` starts `airflow scheduler` etc. from PATH; a bare PATH must still work."""
    env = profile_environment("local", base={"PATH": "/usr/bin:/bin"})
    first = Path(env["PATH"].split(os.pathsep)[0])
    assert first == Path(sys.executable).parent and (first / "airflow").is_file()


def test_unknown_profile_is_named():
    with pytest.raises(ProfileError, match="no Airflow profile 'staging'"):
        profile_environment("staging")
