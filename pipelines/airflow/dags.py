"""Airflow DAGs for a problem spec; the files in `dags/` only call `dags_for_spec`.

- Training DAG (`blueprint-<name>`): the TFX pipeline from `create_pipeline` through TFX's
  AirflowDagRunner, one task per component. Scheduled from `schedule.training`, triggerable from the
  web UI with a form (epochs, steps per epoch, window of spans, train or only ingest, reason), and by
  the monitoring DAG. For a spanned source a `should_train` gate sits between ExampleGen and the span
  window: a run with `train` off ingests the newest span (ExampleGen, statistics, validation) and
  skips training, so that every accepted span is in MLMD for later windows.
- Monitoring DAG (`blueprint-<name>-monitoring`, spanned sources only): on `schedule.monitoring` it
  looks for a newly landed span (a poll: spans arrive as files from outside Airflow, and Datasets are
  only updated by Airflow tasks), checks it for schema anomalies and drift, and triggers the training
  DAG for every valid span, with `train` on and the reason in its conf when the span drifted (or on
  every new span if the spec says so), off (ingest only) otherwise. Bad data fails the DAG run with
  the anomalies and triggers nothing.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from pathlib import Path

from airflow import DAG
from airflow.exceptions import AirflowFailException
from airflow.models.param import Param
from airflow.operators.python import PythonOperator, ShortCircuitOperator
from airflow.operators.trigger_dagrun import TriggerDagRunOperator

from components.core.spec import ProblemSpec, load_spec
from pipelines.paths import RunPaths, home_from_environment
from pipelines.settings import REPO_ROOT

START_DATE = datetime(2024, 1, 1)
TRAINING_GATE = "should_train"


def training_dag_id(spec: ProblemSpec) -> str:
    from pipelines.paths import pipeline_name

    return pipeline_name(spec)


def monitoring_dag_id(spec: ProblemSpec) -> str:
    return f"{training_dag_id(spec)}-monitoring"


def _default_args(spec: ProblemSpec) -> dict:
    return {
        "owner": "blueprint",
        "retries": spec.schedule.retries,
        "retry_delay": timedelta(minutes=spec.schedule.retry_delay_minutes),
    }


def training_params(spec: ProblemSpec) -> dict[str, Param]:
    """The web UI's trigger form: what a user may change for one run."""
    params = {
        "epochs": Param(spec.training.epochs, type="integer", minimum=1, description="training epochs"),
        "steps_per_epoch": Param(
            spec.training.steps_per_epoch, type="integer", minimum=1, description="batches per epoch"
        ),
        "reason": Param("manual run", type="string", description="why this run (kept with the run)"),
    }
    if spec.data.spanned:
        params["window_spans"] = Param(
            spec.data.window_spans, type="integer", minimum=1, description="train on the newest N spans"
        )
        params["train"] = Param(
            True, type="boolean", description="off: only ingest and validate the newest span, do not train"
        )
    return params


def training_dag(spec: ProblemSpec, home: Path) -> DAG:
    from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig

    from pipelines.workflow.training import RunParameters, create_pipeline

    run = RunParameters.from_airflow_params()  # window_spans is only read by a spanned pipeline
    pipeline = create_pipeline(spec, RunPaths.for_spec(spec.name, home), run=run)
    config = AirflowPipelineConfig(
        airflow_dag_config={
            "schedule": spec.schedule.training,
            "start_date": START_DATE,
            "catchup": False,
            "max_active_runs": 1,
            "default_args": _default_args(spec),
            "params": training_params(spec),
            "tags": ["blueprint", "training", spec.name],
            "description": f"Train, evaluate and push '{spec.name}' ({spec.task.value}, label {spec.label})",
            "doc_md": __doc__,
        }
    )
    dag = AirflowDagRunner(config).run(pipeline)
    if spec.data.spanned:
        _add_training_gate(dag, ingest_task_id=pipeline.components[0].id)
    return dag


def train_this_run(params: dict | None = None, **_context) -> bool:
    """The `should_train` gate: False (skip the window, training, evaluation and push) when the run
    was asked only to ingest the newest span."""
    train = True if params is None else bool(params.get("train", True))
    print("training on the window of spans" if train else "ingest only: training skipped (train=false)")
    return train


def _add_training_gate(dag: DAG, ingest_task_id: str) -> None:
    from components.resolvers.newest_spans import WINDOW_NODE_ID

    gate = ShortCircuitOperator(task_id=TRAINING_GATE, python_callable=train_this_run, dag=dag)
    dag.get_task(ingest_task_id) >> gate >> dag.get_task(WINDOW_NODE_ID)


def find_new_span(spec: ProblemSpec, home: Path, ti=None, **_context) -> bool:
    """True when a span landed that was not checked yet (pushed as XCom 'span'); False skips the rest."""
    from pipelines.workflow import monitoring

    span = monitoring.span_to_check(spec, RunPaths.for_spec(spec.name, home))
    print(f"newest unchecked span: {span}" if span is not None else "no new span has landed")
    if span is None:
        return False
    ti.xcom_push(key="span", value=span)
    return True


def check_new_span(spec: ProblemSpec, home: Path, ti=None, **_context) -> None:
    """Checks the span found upstream; fails on bad data, else tells the trigger whether to train."""
    from pipelines.workflow import monitoring

    span = int(ti.xcom_pull(task_ids="find_new_span", key="span"))
    try:
        report = monitoring.check_span(spec, RunPaths.for_spec(spec.name, home), span)
    except monitoring.BadSpanError as error:
        raise AirflowFailException(str(error)) from None
    print(report.summary())
    ti.xcom_push(key="reason", value=report.reason)
    ti.xcom_push(key="decision", value=report.decision)
    ti.xcom_push(key="train", value=report.retrain)


def monitoring_dag(spec: ProblemSpec, home: Path) -> DAG:
    with DAG(
        dag_id=monitoring_dag_id(spec),
        schedule=spec.schedule.monitoring,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(spec),
        tags=["blueprint", "monitoring", spec.name],
        description=f"Check each new span of '{spec.name}' for bad data and drift; retrain on drift",
        doc_md=__doc__,
        render_template_as_native_obj=True,  # the trigger's conf keeps span an int and train a bool
    ) as dag:
        find = ShortCircuitOperator(
            task_id="find_new_span", python_callable=functools.partial(find_new_span, spec, home)
        )
        check = PythonOperator(
            task_id="check_span", python_callable=functools.partial(check_new_span, spec, home)
        )
        trigger = TriggerDagRunOperator(
            task_id="trigger_training",
            trigger_dag_id=training_dag_id(spec),
            conf={
                "reason": "{{ ti.xcom_pull(task_ids='check_span', key='reason') }}",
                "span": "{{ ti.xcom_pull(task_ids='find_new_span', key='span') }}",
                "train": "{{ ti.xcom_pull(task_ids='check_span', key='train') }}",
            },
            wait_for_completion=False,
        )
        find >> check >> trigger
    return dag


def dags_for_spec(spec_file: str) -> dict[str, DAG]:
    """The DAGs of one spec (path relative to the repo root), by DAG id."""
    spec = load_spec(REPO_ROOT / spec_file, check_data=False)
    home = home_from_environment()
    dags = [training_dag(spec, home)]
    if spec.data.spanned:
        dags.append(monitoring_dag(spec, home))
    return {dag.dag_id: dag for dag in dags}
