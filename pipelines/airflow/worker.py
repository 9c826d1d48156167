"""`python -m pipelines.airflow.worker [--profile NAME] --celery-hostname NAME [worker options]`: a Celery
worker (`airflow celery worker`) with the pipeline's libraries imported before it starts.

Celery's pool processes fork from the worker, and each task forks again (Airflow's default), so what is
imported here is loaded in every task: the same saving as `pipelines.airflow.scheduler` gives
LocalExecutor. Without `--profile` the environment must already be a profile's (as
`AirflowServices.start_workers` gives it); with one, the worker reads `config/airflow/<NAME>.env` itself,
which is how a worker on another machine starts.

`hostname` is the profile's `[core] hostname_callable`: a task's `hostname` is its worker's
`--celery-hostname`, so several workers on one machine are told apart (in the UI, and by the live test);
without one, the machine's FQDN, Airflow's default. The name only labels the task instance: with
`--skip-serve-logs` the webserver reads task logs from the shared log folder, never from a worker.
"""

from __future__ import annotations

import os
import socket
import sys

WORKER_NAME_VARIABLE = "BLUEPRINT_WORKER_NAME"


def hostname() -> str:
    return os.environ.get(WORKER_NAME_VARIABLE) or socket.getfqdn()


def worker_arguments(argv: list[str]) -> tuple[str | None, list[str]]:
    """The profile named by `--profile NAME` (or None) and the arguments for `airflow celery worker`."""
    if "--profile" not in argv:
        return None, argv
    at = argv.index("--profile")
    if at + 1 >= len(argv):
        raise SystemExit("--profile needs a name (a file of config/airflow/, e.g. celery)")
    return argv[at + 1], argv[:at] + argv[at + 2 :]


def celery_hostname(argv: list[str]) -> str | None:
    for flag in ("--celery-hostname", "-H"):
        if flag in argv[:-1]:
            return argv[argv.index(flag) + 1]
    return next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--celery-hostname=")), None)


def main(argv: list[str]) -> None:
    profile, arguments = worker_arguments(argv)
    if profile:
        from pipelines.airflow.profile import ProfileError, profile_environment

        try:
            os.environ.update(profile_environment(profile))
        except ProfileError as error:
            raise SystemExit(str(error)) from error
    name = celery_hostname(arguments)
    if name:
        os.environ[WORKER_NAME_VARIABLE] = name
    from pipelines.airflow.scheduler import preload

    preload()
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "celery", "worker", *arguments]
    airflow_main()


if __name__ == "__main__":
    main(sys.argv[1:])
