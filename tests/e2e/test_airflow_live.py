"""Real Airflow, not `DAG.test()`: the production profile on this machine's PostgreSQL (Airflow's
database) and MariaDB (ML Metadata), a real scheduler (LocalExecutor) and webserver on 127.0.0.1.

The training DAG is unpaused and triggered through the REST API with credentials, polled until it
succeeds, and the pushed model is checked; anonymous requests are refused; a screenshot of the DAG's
grid view, taken by headless Chromium after logging in, is kept in build/test-artifacts/. Airflow's
database password has every character that means something in a URL (PostgreSQL here trusts loopback,
so it is not checked, but a URL it broke would not connect), and neither it nor the admin's password is
on any process's command line while Airflow runs.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from unittest import mock

import pytest
import requests
from sqlalchemy.engine import make_url

from pipelines.airflow.profile import AirflowServices
from pipelines.paths import RunPaths
from pipelines.workflow import results
from tests.helpers.data import ARTIFACTS
from tests.helpers.live_airflow import (
    MLMD_VARIABLES,
    AirflowApi,
    airflow_databases,
    live_environment,
    start_airflow,
)
from tests.helpers.pipeline_runs import versions, write_taxi_spec
from tests.helpers.processes import CommandLines

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("airflow-live")]

DAG_ID = "blueprint-taxi"
ADMIN = "admin"
CHROMIUM = "/usr/bin/chromium"
RUN_TIMEOUT_SECONDS = 1500  # 13 tasks, each a process importing TensorFlow and TFX
DATABASE_PASSWORD = f"-pg@{secrets.token_hex(6)}/:%"


@pytest.fixture(scope="module")
def databases():
    """A PostgreSQL database for Airflow and a MariaDB database for MLMD, both dropped afterwards."""
    with airflow_databases(f"blueprint_live_{os.getpid()}") as name:
        yield name


@pytest.fixture(scope="module")
def live(tmp_path_factory, taxi_slice, databases):
    """Airflow started from the production profile, with the repo's DAG file on a config folder that
    holds one small taxi spec."""
    root = tmp_path_factory.mktemp("live")
    # The checks need a push, not device models: no TFLite or TF.js conversions.
    spec_file = write_taxi_spec(
        root / "config",
        taxi_slice,
        schedule={"training": None, "retries": 0},
        deployment={"tflite": [], "tfjs": []},
    )
    env = live_environment("production", root, databases, spec_file.parent, pg_password=DATABASE_PASSWORD)
    services = AirflowServices(env)
    password = secrets.token_urlsafe(16)
    commands = CommandLines()
    with commands.recording_starts():
        start_airflow(services, (ADMIN, password))
    try:
        services.wait_until_healthy()
        yield services, (ADMIN, password), RunPaths.for_spec("taxi", root / "home"), env, commands
    finally:
        services.stop()


def api(live, method: str, path: str, **kwargs) -> requests.Response:
    services, credentials, *_ = live
    return AirflowApi(services.base_url, credentials)(method, path, **kwargs)


def wait_for_dag(live) -> dict:
    return AirflowApi(live[0].base_url, live[1]).wait_for_dag(DAG_ID)


def wait_for_run(live, run_id: str) -> dict:
    return AirflowApi(live[0].base_url, live[1]).wait_for_run(DAG_ID, run_id, RUN_TIMEOUT_SECONDS)


def test_anonymous_requests_are_refused(live):
    services = live[0]
    anonymous = requests.get(f"{services.base_url}/api/v1/dags", timeout=30)
    assert anonymous.status_code in (401, 403) and DAG_ID not in anonymous.text
    wrong = requests.get(f"{services.base_url}/api/v1/dags", auth=(ADMIN, "not-the-password"), timeout=30)
    assert wrong.status_code in (401, 403)
    assert api(live, "GET", "/dags").status_code == 200, "the admin's credentials are accepted"
    page = requests.get(f"{services.base_url}/home", timeout=30, allow_redirects=False)
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_airflow_listens_on_loopback_only(live):
    listening = live[0].listening_addresses()
    assert listening and {ip for ip, _ in listening} <= {"127.0.0.1", "::1"}, listening


def test_two_triggers_at_once_run_one_after_the_other_and_push_once(live):
    _, _, paths, env, _ = live
    dag = wait_for_dag(live)
    assert dag["is_paused"], "new DAGs start paused"
    assert api(live, "PATCH", f"/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200
    conf = {"epochs": 2, "reason": "REST API trigger from the live test"}
    triggered = [api(live, "POST", f"/dags/{DAG_ID}/dagRuns", json={"conf": conf}) for _ in range(2)]
    assert [answer.status_code for answer in triggered] == [200, 200], triggered[1].text
    first_id, second_id = (answer.json()["dag_run_id"] for answer in triggered)
    both_seen = seen_while_first_runs(live, first_id, second_id)
    assert both_seen and set(both_seen) == {"queued"}, f"the second run was {set(both_seen)} meanwhile"
    run = wait_for_run(live, first_id)
    tasks = api(live, "GET", f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances").json()
    states = {task["task_id"]: task["state"] for task in tasks["task_instances"]}
    assert run["state"] == "success", states
    assert set(states.values()) == {"success"}
    assert run["conf"] == conf
    assert len(versions(paths.serving_dir)) == 1
    assert run["note"].startswith("Blessed: test auc "), run["note"]
    assert f"Pushed version {versions(paths.serving_dir)[0]} to " in run["note"]
    with mock.patch.dict(os.environ, {name: env[name] for name in MLMD_VARIABLES}):
        store = results.open_store(paths.metadata_config())
    production = results.production_model(store, DAG_ID)
    assert production is not None and production.version == versions(paths.serving_dir)[0]
    history = next(Path(production.model_uri).parent.parent.glob("model_run/*/history.json"))
    assert len(json.loads(history.read_text())["loss"]) == 2, "the conf's epochs reached the Trainer"
    second = wait_for_run(live, second_id)
    assert second["state"] == "success", "the second run, once it started, completed"
    assert versions(paths.serving_dir) == [production.version], "nothing new to push: all cached"
    assert f"Nothing new pushed: version {production.version} stays in service." in second["note"]


def seen_while_first_runs(live, first_id: str, second_id: str) -> list[str]:
    """The second run's states sampled while the first is running (max_active_runs=1); every
    process's command line sampled meanwhile too, while task processes run."""
    commands = live[4]
    seen = []
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        first = api(live, "GET", f"/dags/{DAG_ID}/dagRuns/{first_id}").json()["state"]
        second = api(live, "GET", f"/dags/{DAG_ID}/dagRuns/{second_id}").json()["state"]
        if first in ("success", "failed"):
            return seen
        if first == "running":
            seen.append(second)
            commands.sample()
        time.sleep(5)
    return seen


def test_grid_view_screenshot(live):
    from playwright.sync_api import sync_playwright

    services, (user, password), *_ = live
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it with apt-get"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "airflow-grid.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{services.base_url}/dags/{DAG_ID}/grid")
        assert "/login" in page.url, "the grid view is behind the login"
        page.fill("input#username", user)
        page.fill("input#password", password)
        page.click("input[type=submit]")
        page.goto(f"{services.base_url}/dags/{DAG_ID}/grid")
        page.wait_for_selector("text=Trainer", timeout=60_000)
        page.screenshot(path=str(shot), full_page=True)
        tasks_shown = [
            name for name in ("CsvExampleGen", "Trainer", "Pusher") if page.locator(f"text={name}").count()
        ]
        successes = page.locator("text=Total success").count()
        browser.close()
    assert tasks_shown == ["CsvExampleGen", "Trainer", "Pusher"]
    assert successes, "the grid's run summary shows the successful run"
    assert shot.stat().st_size > 20_000


def test_no_secret_is_on_any_command_line_while_airflow_runs(live):
    """Before, the admin's password was an argument of `airflow users create`, visible in `ps`; and the
    database password went into Airflow's URL unencoded (`@`, `/` and `:` broke it)."""
    _, (_, password), _, env, commands = live
    commands.sample()
    assert commands.containing(DAG_ID), "sampled while the DAG's tasks ran (the trigger test runs first)"
    assert commands.containing(password, DATABASE_PASSWORD) == []
    # The URL Airflow connected with (its /health said the database was healthy) holds the password whole.
    url = make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (url.username, url.password, url.host) == ("postgres", DATABASE_PASSWORD, "127.0.0.1")
