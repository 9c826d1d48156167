"""docker/: the compose file parses with Debian's docker-compose (no engine needed here) and wires
PostgreSQL, Airflow (LocalExecutor, or Celery workers with the celery profile), TF Serving and the TF.js
page the way the pipeline writes its outputs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.helpers.data import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker" / "compose.yaml"
CELERY_ENV_FILE = REPO_ROOT / "docker" / "celery.env"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "AIRFLOW_SECRET_KEY": "key",
    "AIRFLOW_ADMIN_PASSWORD": "admin-pw",
    "AIRFLOW_FERNET_KEY": "fernet-key",
}
AIRFLOW_SERVICES = ("airflow-webserver", "airflow-scheduler", "airflow-init", "airflow-worker")
CELERY_SERVICES = ("redis", "airflow-worker")


def compose_config(environment: dict[str, str], *options: str) -> subprocess.CompletedProcess:
    compose = shutil.which("docker-compose")
    assert compose, "Debian's docker-compose is missing: `make test` installs it with apt-get"
    env = {k: v for k, v in os.environ.items() if k not in SECRETS} | environment
    return subprocess.run(
        [compose, "-f", str(COMPOSE_FILE), *options, "config"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def config() -> dict:
    done = compose_config({**SECRETS, "BLUEPRINT_DATA": "/srv/blueprint"})
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_file_has_every_service(config):
    assert set(config["services"]) == {
        "postgres",
        "airflow-init",
        "airflow-webserver",
        "airflow-scheduler",
        "tf-serving",
        "tfjs-page",
        "redis",
        "airflow-worker",
    }


def test_tf_serving_reads_the_pushed_models_and_their_config(config):
    serving = config["services"]["tf-serving"]
    assert serving["image"].startswith("tensorflow/serving:")
    assert "--model_config_file=/models/models.config" in serving["command"]
    assert any(v.startswith("/srv/blueprint/serving:/models:ro") for v in serving["volumes"])
    page = config["services"]["tfjs-page"]
    assert any(v.startswith("/srv/blueprint/serving:/serving:ro") for v in page["volumes"])
    assert page["build"]["dockerfile"] == "docker/Dockerfile.page"


def test_airflow_runs_the_blueprint_image_on_postgres(config):
    for name in ("airflow-webserver", "airflow-scheduler", "airflow-init"):
        service = config["services"][name]
        assert service["build"]["dockerfile"] == "docker/Dockerfile"
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert (
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
            == "postgresql+psycopg2://airflow@postgres:5432/airflow"
        )
        assert env["PGPASSWORD"] == "pg-secret", "libpq reads the password from the environment"
        assert env["AIRFLOW__WEBSERVER__SECRET_KEY"] == "key"
        assert any(v.startswith("/srv/blueprint:/data") for v in service["volumes"])
    assert "--skip-serve-logs" in config["services"]["airflow-scheduler"]["command"]


def test_any_database_password_reaches_airflow_whole_and_no_password_is_an_argument():
    """Before, the password went into the URL as it was (`@` or `/` broke it), and the admin's password
    was an argument of `airflow users create`, which `ps` shows."""
    awkward = "-p@ss/w:rd?#%x"
    done = compose_config({**SECRETS, "POSTGRES_PASSWORD": awkward, "AIRFLOW_ADMIN_PASSWORD": awkward})
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    for name in ("airflow-webserver", "airflow-scheduler", "airflow-init"):
        env = services[name]["environment"]
        url = make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert (url.username, url.password, url.host, url.database) == (
            "airflow",
            None,
            "postgres",
            "airflow",
        )
        assert env["PGPASSWORD"] == awkward
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == awkward
    for service in services.values():
        command = " ".join(service.get("command") or [])
        assert "--password" not in command and awkward not in command, command
    assert "pipelines.airflow.admin_user" in " ".join(services["airflow-init"]["command"])


def test_every_port_is_published_on_loopback_only(config):
    published = [port for service in config["services"].values() for port in service.get("ports", [])]
    assert published
    for port in published:
        text = port if isinstance(port, str) else f"{port.get('host_ip')}:{port.get('published')}"
        assert text.startswith("127.0.0.1:"), port


def test_compose_refuses_to_start_without_secrets():
    done = compose_config({})
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr


def test_image_installs_from_the_same_lock():
    dockerfile = (REPO_ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.10-bookworm$", dockerfile, re.MULTILINE)
    assert "COPY pyproject.toml uv.lock" in dockerfile and "uv sync --frozen" in dockerfile
    assert "npm ci" in dockerfile and "package-lock.json" in dockerfile
    page = (REPO_ROOT / "docker" / "Dockerfile.page").read_text()
    assert "tf.min.js" in page and "docker/page/" in page


def test_every_airflow_container_shares_one_fernet_key_and_compose_requires_it(config):
    """Without one key, each container generates its own (again on every recreate) and the scheduler
    cannot decrypt the Connections and Variables saved through the webserver."""
    for name in AIRFLOW_SERVICES:
        assert config["services"][name]["environment"]["AIRFLOW__CORE__FERNET_KEY"] == "fernet-key", name
    done = compose_config({k: v for k, v in SECRETS.items() if k != "AIRFLOW_FERNET_KEY"})
    assert done.returncode != 0 and "AIRFLOW_FERNET_KEY" in done.stderr


def test_the_webserver_reads_the_task_logs_the_scheduler_writes(config):
    """The scheduler does not serve its logs (--skip-serve-logs): the webserver must see the same folder."""
    log_folder = "/opt/airflow/logs"  # AIRFLOW_HOME/logs in docker/Dockerfile
    mounts = {}
    for name in ("airflow-webserver", "airflow-scheduler", "airflow-worker"):
        volumes = config["services"][name]["volumes"]
        mounts[name] = [v for v in volumes if isinstance(v, str) and v.split(":")[1] == log_folder]
        assert len(mounts[name]) == 1, (name, volumes)
    assert len({mount[0].split(":")[0] for mount in mounts.values()}) == 1, "one logs volume for all"
    assert mounts["airflow-webserver"][0].split(":")[0] in config["volumes"]  # a named volume, not a path
    dockerfile = (REPO_ROOT / "docker" / "Dockerfile").read_text()
    assert "AIRFLOW_HOME=/opt/airflow" in dockerfile
    # A new named volume takes the owner of the image's folder: it must exist there, owned by the user.
    assert re.search(r"mkdir -p [^\n]*/opt/airflow/logs", dockerfile) and "chown -R blueprint" in dockerfile


def test_airflow_init_fails_the_stack_when_the_migration_or_the_admin_fails(config):
    """No `|| echo` or `|| true`: a failed migration or admin account stops the webserver and the scheduler
    from starting (they wait for airflow-init to complete successfully)."""
    command = " ".join(config["services"]["airflow-init"]["command"])
    assert "airflow db migrate &&" in command
    assert "||" not in command and "; " not in command
    for name in ("airflow-webserver", "airflow-scheduler"):
        depends = config["services"][name]["depends_on"]["airflow-init"]
        assert depends["condition"] == "service_completed_successfully", name


def test_redis_and_the_workers_start_only_with_the_celery_profile(config):
    services = config["services"]
    for name, service in services.items():
        assert service.get("profiles", []) == (["celery"] if name in CELERY_SERVICES else []), name
    assert services["redis"]["image"].startswith("redis:")
    assert "ports" not in services["redis"], "the broker is reached on the compose network only"
    worker = services["airflow-worker"]
    assert worker["build"]["dockerfile"] == "docker/Dockerfile"
    assert worker["command"][:3] == ["python", "-m", "pipelines.airflow.worker"]
    assert "--skip-serve-logs" in worker["command"], "Airflow's log server listens on every interface"
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert worker["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    for name in ("airflow-webserver", "airflow-scheduler", "airflow-init"):
        assert "redis" not in services[name].get("depends_on", {}), "the default stack has no Redis"


def test_every_worker_sees_the_data_folder_and_the_secrets_of_the_scheduler(config):
    scheduler, worker = (config["services"][name] for name in ("airflow-scheduler", "airflow-worker"))
    assert any(v.startswith("/srv/blueprint:/data") for v in worker["volumes"])
    assert worker["environment"]["BLUEPRINT_HOME"] == "/data"
    for key in (
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__WEBSERVER__SECRET_KEY",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "PGPASSWORD",
    ):
        assert worker["environment"][key] == scheduler["environment"][key], key
    assert worker["environment"]["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    backend = make_url(worker["environment"]["AIRFLOW__CELERY__RESULT_BACKEND"].removeprefix("db+"))
    assert (backend.drivername, backend.host, backend.database) == (
        "postgresql+psycopg2",
        "postgres",
        "airflow",
    )
    assert backend.password is None, "libpq reads PGPASSWORD; compose cannot URL-encode a password"


def test_the_celery_env_file_turns_the_profile_on_and_the_scheduler_to_celery():
    settings = dict(
        line.split("=", 1) for line in CELERY_ENV_FILE.read_text().splitlines() if line and line[0] != "#"
    )
    assert settings == {
        "COMPOSE_PROFILES": "celery",
        "AIRFLOW_EXECUTOR": "CeleryExecutor",
        "AIRFLOW_PARALLELISM": "16",
    }
    done = compose_config(SECRETS, "--env-file", str(CELERY_ENV_FILE))
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    for name in AIRFLOW_SERVICES:
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__PARALLELISM"] == "16"
