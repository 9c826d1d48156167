"""Airflow profiles (`config/airflow/<profile>.env`) and the commands that start Airflow with one.

A profile is a list of `KEY=value` lines expanded by bash, so `${VAR:-default}` and `${VAR:?message}`
work and credentials can stay in the environment. `${REPO}` is the repository root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES = REPO_ROOT / "config" / "airflow"


class ProfileError(RuntimeError):
    """A profile that cannot be used; the message says which variable is missing."""


def profile_environment(profile: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment to run Airflow with: `base` (os.environ) plus the profile's settings."""
    path = PROFILES / f"{profile}.env"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES.glob("*.env")))
        raise ProfileError(f"no Airflow profile '{profile}' in {PROFILES} (known: {known})")
    env = dict(os.environ if base is None else base)
    env["REPO"] = str(REPO_ROOT)
    script = f'set -a; . "{path}" || exit 3; env -0'
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise ProfileError(f"{path}: {done.stderr.decode(errors='replace').strip()}")
    expanded = dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)
    expanded.setdefault("PYTHONPATH", str(REPO_ROOT))
    expanded["TF_USE_LEGACY_KERAS"] = "1"
    return expanded


def airflow_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "airflow"), *args]


def start_standalone(profile: str = "local") -> int:
    """`airflow standalone` with the profile: loopback, login required, example DAGs off."""
    env = profile_environment(profile)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    password_file = Path(env["AIRFLOW_HOME"]) / "standalone_admin_password.txt"
    host = env.get("AIRFLOW__WEBSERVER__WEB_SERVER_HOST", "127.0.0.1")
    port = env.get("AIRFLOW__WEBSERVER__WEB_SERVER_PORT", "8080")
    print(f"Airflow on http://{host}:{port}/ (login: admin, password in {password_file})", flush=True)
    return subprocess.call(airflow_command("standalone"), env=env)


def start_production(profile: str = "production") -> int:
    """Migrates the database, then runs the scheduler and the webserver until interrupted."""
    env = profile_environment(profile)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    subprocess.run(airflow_command("db", "migrate"), env=env, check=True)
    scheduler = subprocess.Popen(airflow_command("scheduler"), env=env)
    webserver = subprocess.Popen(airflow_command("webserver"), env=env)
    try:
        return webserver.wait()
    finally:
        for process in (scheduler, webserver):
            process.terminate()
