"""Airflow profiles: loopback and login by default, credentials only from the environment."""

from __future__ import annotations

import io
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from sqlalchemy.engine import make_url

from pipelines.airflow import profile
from pipelines.airflow.admin_user import read_password
from pipelines.airflow.profile import (
    ADMIN_PASSWORD_FILE,
    REPO_ROOT,
    AirflowServices,
    ProfileError,
    admin_password,
    airflow_command,
    profile_environment,
)
from tests.helpers.processes import CommandLines

# Every character that means something in a URL's authority, and a leading dash for argparse.
AWKWARD_PASSWORD = "-p@ss/w:rd?#%$x y"


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
        "postgresql+psycopg2://blueprint@127.0.0.1:5432/airflow"
    )
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    for profile_env in (env, profile_environment("local", base={"PATH": "/usr/bin:/bin"})):
        # A webserver starved by training tasks must not be shut down after Airflow's default 120 s.
        assert profile_env["AIRFLOW__WEBSERVER__WEB_SERVER_MASTER_TIMEOUT"] == "600"


def test_a_database_password_with_url_characters_reaches_airflow_intact():
    """Before, `@`, `/` or `:` in PGPASSWORD went into the URL as they were and broke it."""
    base = {"PATH": "/usr/bin:/bin", "PGUSER": "blue@print", "PGPASSWORD": AWKWARD_PASSWORD}
    env = profile_environment("production", base=dict(base, PGHOST="db.internal", PGDATABASE="af"))
    url = make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (url.username, url.password) == ("blue@print", AWKWARD_PASSWORD)
    assert (url.host, url.port, url.database) == ("db.internal", 5432, "af")
    assert profile.USERINFO not in env, "the encoded credentials are not passed on"
    given = "postgresql+psycopg2://me:given@elsewhere/db"
    assert (
        profile_environment("production", base=dict(base, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=given))[
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
        ]
        == given
    )


def test_the_profiles_path_is_never_part_of_the_shell_script(tmp_path, monkeypatch):
    """Before, the path was pasted into `bash -c`: a quote or `$(...)` in it ran as a command."""
    folder = tmp_path / 'it"s $(touch pwned) `touch pwned`'
    folder.mkdir()
    (folder / "odd.env").write_text("AIRFLOW_HOME=${REPO}/odd\n")
    monkeypatch.setattr(profile, "PROFILES", folder)
    monkeypatch.chdir(tmp_path)
    env = profile_environment("odd", base={"PATH": "/usr/bin:/bin"})
    assert env["AIRFLOW_HOME"] == f"{REPO_ROOT}/odd"
    assert not list(tmp_path.rglob("pwned"))


def test_the_admin_password_is_read_whole_from_stdin():
    assert read_password(io.StringIO(AWKWARD_PASSWORD + "\n")) == AWKWARD_PASSWORD
    assert read_password(io.StringIO(AWKWARD_PASSWORD)) == AWKWARD_PASSWORD
    with pytest.raises(SystemExit, match="no password on stdin"):
        read_password(io.StringIO(""))


def test_airflow_subprocesses_find_this_environments_airflow():
    """The scheduler starts task processes as `airflow ...` from PATH; a bare PATH must still work."""
    env = profile_environment("local", base={"PATH": "/usr/bin:/bin"})
    first = Path(env["PATH"].split(os.pathsep)[0])
    assert first == Path(sys.executable).parent and (first / "airflow").is_file()


def test_unknown_profile_is_named():
    with pytest.raises(ProfileError, match="no Airflow profile 'staging'"):
        profile_environment("staging")


def local_environment(home: Path) -> dict[str, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outside = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # conftest's database
    env = profile_environment("local", base=dict(outside, AIRFLOW_PORT=str(port)))
    (home / "dags").mkdir(parents=True)
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"))
    return env


@pytest.mark.e2e
def test_local_airflow_listens_on_loopback_only_and_requires_login(tmp_path):
    services = AirflowServices(local_environment(tmp_path / "airflow"))
    services.migrate()
    password_file = services.home / ADMIN_PASSWORD_FILE
    commands = CommandLines()
    with commands.recording_starts():
        services.ensure_admin("admin", admin_password(password_file))
        # One generated password in 64 starts with "-": created, then reset, it must still log in.
        services.ensure_admin("dashed", "-created-with-a-dash")
        services.ensure_admin("dashed", AWKWARD_PASSWORD)
        services.start()
    try:
        services.wait_until_healthy()
        commands.sample()
        listening = services.listening_addresses()
        anonymous = requests.get(f"{services.base_url}/api/v1/dags", timeout=30)
        admin = requests.get(
            f"{services.base_url}/api/v1/dags", auth=("admin", password_file.read_text()), timeout=30
        )
        dashed = requests.get(
            f"{services.base_url}/api/v1/dags", auth=("dashed", AWKWARD_PASSWORD), timeout=30
        )
    finally:
        services.stop()
    assert listening, "the webserver listens somewhere"
    assert {ip for ip, _ in listening} <= {"127.0.0.1", "::1"}, f"listening beyond loopback: {listening}"
    assert anonymous.status_code in (401, 403)
    assert admin.status_code == 200
    assert dashed.status_code == 200, "a reset password starting with '-', with `@/:?#%$ `, works"
    assert commands.containing("pipelines.airflow.admin_user"), "the short-lived starts were recorded"
    shown = commands.containing(password_file.read_text(), "-created-with-a-dash", AWKWARD_PASSWORD)
    assert shown == [], "a password on a command line, where `ps` shows it"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert admin_password(password_file) == password_file.read_text(), "made once, then kept"


def test_each_install_gets_its_own_secret_key_and_none_is_in_the_repo(tmp_path):
    keys = []
    for install in ("one", "two"):
        env = local_environment(tmp_path / install)
        done = subprocess.run(
            airflow_command("config", "get-value", "webserver", "secret_key"),
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        keys.append(done.stdout.strip())
    assert len(keys[0]) >= 16 and keys[0] != keys[1]
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
    assert "airflow.cfg" not in tracked and "admin_password" not in tracked
    for key in keys:
        found = subprocess.run(["git", "grep", "-F", key], cwd=REPO_ROOT, capture_output=True)
        assert found.returncode == 1, "a generated secret key is committed"
