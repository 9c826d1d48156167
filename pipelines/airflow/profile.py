"""Airflow profiles (`config/airflow/<profile>.env`) and the commands that start Airflow with one.

A profile is a list of `KEY=value` lines expanded by bash, so `${VAR:-default}` and `${VAR:?message}`
work and credentials can stay in the environment. `${REPO}` is the repository root, and
`${BLUEPRINT_PG_USERINFO}` is `$PGUSER:$PGPASSWORD` URL-encoded for a database URL (bash cannot encode:
a password with `@` or `/` would break the URL), set only when PGUSER is.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from pipelines.settings import REPO_ROOT

PROFILES = REPO_ROOT / "config" / "airflow"
ADMIN_PASSWORD_FILE = "admin_password.txt"
USERINFO = "BLUEPRINT_PG_USERINFO"
WORKERS_VARIABLE = "BLUEPRINT_CELERY_WORKERS"  # Celery workers to start with the scheduler (celery.env)


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
    env.pop(USERINFO, None)
    if env.get("PGUSER"):
        env[USERINFO] = url_userinfo(env["PGUSER"], env.get("PGPASSWORD", ""))
    # The profile's path is bash's $1, not part of the script: no path can change what bash runs.
    done = subprocess.run(
        ["bash", "-c", 'set -a; . "$1" || exit 3; env -0', "bash", str(path)],
        env=env,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise ProfileError(f"{path}: {done.stderr.decode(errors='replace').strip()}")
    expanded = dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)
    expanded.pop(USERINFO, None)  # used up by the profile; the password stays in PGPASSWORD only
    expanded.setdefault("PYTHONPATH", str(REPO_ROOT))
    # Airflow's scheduler starts task processes as `airflow ...` from PATH.
    venv_bin = str(Path(sys.executable).parent)
    expanded["PATH"] = os.pathsep.join([venv_bin, expanded.get("PATH", "")])
    return expanded


def url_userinfo(user: str, password: str) -> str:
    """`user:password` for a URL, each percent-encoded (SQLAlchemy's make_url decodes them)."""
    encoded = urllib.parse.quote(user, safe="")
    return f"{encoded}:{urllib.parse.quote(password, safe='')}" if password else encoded


def airflow_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "airflow"), *args]


def start_local(profile: str = "local") -> int:
    """Airflow on the profile (SQLite, loopback), with an admin whose password is made once per install.

    What `airflow standalone` does, minus its log servers: those listen on every interface, and on
    one machine the webserver reads task logs from disk. The password is kept in
    `$AIRFLOW_HOME/admin_password.txt` (mode 600), never in the repository.
    """
    services = AirflowServices(profile_environment(profile))
    services.migrate()
    services.ensure_admin("admin", admin_password(services.home / ADMIN_PASSWORD_FILE))
    services.start()
    print(
        f"Airflow on {services.base_url}/ (login: admin, password in {services.home / ADMIN_PASSWORD_FILE})",
        flush=True,
    )
    return services.serve()


def admin_password(path: Path) -> str:
    """The password in `path`, generated (random, owner-only file) the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(18))
    return path.read_text().strip()


class AirflowServices:
    """A scheduler and a webserver run with one profile's environment, their logs in AIRFLOW_HOME."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.home = Path(env["AIRFLOW_HOME"])
        host = env.get("AIRFLOW__WEBSERVER__WEB_SERVER_HOST", "127.0.0.1")
        self.base_url = f"http://{host}:{env.get('AIRFLOW__WEBSERVER__WEB_SERVER_PORT', '8080')}"
        self.processes: dict[str, subprocess.Popen] = {}

    def migrate(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self._airflow("db", "migrate")

    def ensure_admin(self, username: str, password: str) -> None:
        """An Admin user with this password (created, or its password reset); never a public role.

        The password goes to pipelines/airflow/admin_user.py on stdin: on a command line (`airflow
        users create --password`) every user of the machine could read it with `ps`."""
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.airflow.admin_user", f"--username={username}"],
            input=password,
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ProfileError(f"the Airflow user '{username}' was not set up:\n{done.stderr[-3000:]}")

    def start(self) -> None:
        # --skip-serve-logs: LocalExecutor's tasks write logs the webserver reads from disk, and
        # Airflow's log server would listen on every interface.
        # The scheduler imports the pipeline's libraries once, so the tasks it forks start at once.
        commands = {
            "scheduler": [sys.executable, "-m", "pipelines.airflow.scheduler", "--skip-serve-logs"],
            "webserver": airflow_command("webserver"),
        }
        for name, command in commands.items():
            log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the process
            self.processes[name] = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
            )
        print(f"Airflow scheduler and webserver starting; logs in {self.home}", flush=True)

    def start_workers(self, names: list[str], concurrency: int = 1) -> None:
        """Celery workers on this machine, one process each, named by `--celery-hostname`.

        --skip-serve-logs: Airflow's log server listens on every interface; the workers write task logs
        into the folder the webserver reads (here the same $AIRFLOW_HOME/logs, elsewhere shared storage).
        """
        for name in names:
            command = [
                *(sys.executable, "-m", "pipelines.airflow.worker", "--celery-hostname", name),
                *("--concurrency", str(concurrency), "--skip-serve-logs"),
            ]
            log = open(self.worker_log(name), "ab")  # noqa: SIM115 - kept open for the process
            self.processes[f"worker {name}"] = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
            )
        print(f"{len(names)} Celery worker(s) starting: {', '.join(names)}", flush=True)

    def worker_log(self, name: str) -> Path:
        return self.home / f"worker-{name}.log"

    def wait_until_healthy(self, timeout: float = 180) -> dict:
        """Waits for the webserver to answer /health with a healthy database and scheduler."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise ProfileError(f"the Airflow {name} exited ({process.returncode}); see {self.home}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=5) as answer:
                    health = json.load(answer)
                if all(
                    health.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler")
                ):
                    return health
                last = json.dumps(health)
            except (OSError, ValueError) as error:
                last = str(error)
            time.sleep(2)
        raise ProfileError(f"Airflow at {self.base_url} not healthy after {timeout:.0f}s: {last}")

    def listening_addresses(self, names: list[str] | None = None) -> set[tuple[str, int]]:
        """Every TCP (address, port) the services' processes (or those `names`) and their children
        listen on."""
        import psutil

        found = set()
        for name, process in self.processes.items():
            if names is not None and name not in names:
                continue
            family = psutil.Process(process.pid)
            for member in [family, *family.children(recursive=True)]:
                try:
                    connections = member.net_connections(kind="tcp")
                except psutil.NoSuchProcess:
                    continue
                found |= {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
        return found

    def serve(self) -> int:
        """Waits until the webserver exits (or Ctrl-C), then stops everything."""
        try:
            return self.processes["webserver"].wait()
        except KeyboardInterrupt:
            return 0
        finally:
            self.stop()

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    def _airflow(self, *args: str) -> None:
        done = subprocess.run(airflow_command(*args), env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ProfileError(f"airflow {args[0]} {args[1]} failed:\n{done.stderr[-3000:]}")


def start_production(profile: str = "production") -> int:
    """Migrates the database, then runs the scheduler, the webserver and the profile's Celery workers
    ($BLUEPRINT_CELERY_WORKERS, the celery profile's) until interrupted.

    With AIRFLOW_ADMIN_PASSWORD in the environment an Admin user (AIRFLOW_ADMIN_USER, default admin)
    is created or given that password; otherwise create users with `airflow users create`.
    """
    services = AirflowServices(profile_environment(profile))
    services.migrate()
    if os.environ.get("AIRFLOW_ADMIN_PASSWORD"):
        services.ensure_admin(
            os.environ.get("AIRFLOW_ADMIN_USER", "admin"), os.environ["AIRFLOW_ADMIN_PASSWORD"]
        )
    services.start()
    workers = local_workers(services.env)
    if workers:
        services.start_workers(workers)
    print(f"Airflow on {services.base_url}/ (login required)", flush=True)
    return services.serve()


def local_workers(env: dict[str, str]) -> list[str]:
    """The names of the $BLUEPRINT_CELERY_WORKERS workers to start here: `<host>-1`, `<host>-2`...

    Celery refuses a second worker of the same name on one broker: the machine's name keeps the
    workers of several machines apart."""
    count = env.get(WORKERS_VARIABLE) or "0"
    if not count.isdigit():
        raise ProfileError(f"{WORKERS_VARIABLE}={count!r} is not a number of Celery workers")
    host = socket.gethostname().split(".")[0]
    return [f"{host}-{number}" for number in range(1, int(count) + 1)]
