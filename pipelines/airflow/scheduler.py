"""`python -m pipelines.airflow.scheduler [scheduler options]`: Airflow's scheduler, with the pipeline's
libraries imported before it starts.

With LocalExecutor every task runs in a process forked from the scheduler, and each task first parses
its DAG file, whose imports (TensorFlow, TFX, Beam, TFMA) took about 8 s of every task's start: 26
tasks, 3.5 minutes, for one training run and one all-cached run. Imported once here, before the
scheduler forks, they are already loaded in every task process. Nothing runs TensorFlow here: the
first op runs in the task, after the fork. SequentialExecutor starts tasks in new interpreters: nothing
is preloaded for it. Celery's workers preload the same way (`pipelines.airflow.worker`).
"""

from __future__ import annotations

import importlib
import sys

# What a DAG file imports when it builds its DAGs (TensorFlow, TFX's components and executors, Beam,
# TFMA), and the monitoring task's TFDV.
PRELOADED = (
    "pipelines.airflow.dags",
    "pipelines.workflow.training",
    "pipelines.workflow.monitoring",
    "tfx.orchestration.airflow.airflow_dag_runner",
)


def preload() -> None:
    for module in PRELOADED:
        importlib.import_module(module)


def main(argv: list[str]) -> None:
    from airflow.__main__ import main as airflow_main
    from airflow.configuration import conf

    if conf.get("core", "executor") == "LocalExecutor":
        preload()
    sys.argv = ["airflow", "scheduler", *argv]
    airflow_main()


if __name__ == "__main__":
    main(sys.argv[1:])
