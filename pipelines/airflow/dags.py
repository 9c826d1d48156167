"""Airflow DAGs for a problem spec; the files in `dags/` only call `dags_for_spec`.

- Training DAG (`blueprint-<name>`): the TFX pipeline from `create_pipeline` through TFX's
  AirflowDagRunner, one task per component. Scheduled from `schedule.training`, triggerable from the
  web UI with a form (epochs, steps per epoch, window of spans, span, train or only ingest, reason), and
  by the monitoring DAG. For a spanned source `choose_span` picks the span ExampleGen ingests: the run's
  `span` (the one the monitoring DAG checked), else the newest span that passed a check; a span that has
  not passed one is refused, so nothing is trained on unchecked data. A `should_train` gate sits between
  ExampleGen and the span window: a run with `train` off ingests the span (ExampleGen, statistics,
  validation) and skips training, so that every accepted span is in MLMD for later windows.
- Monitoring DAG (`blueprint-<name>-monitoring`, spanned sources only): on `schedule.monitoring` it
  looks for every span that landed and was not checked yet (a poll: spans arrive as files from outside
  Airflow, and Datasets are only updated by Airflow tasks), checks them oldest first for schema anomalies
  and drift, and triggers one training run per valid span, in landing order, with `span` in its conf,
  `train` on and the reason when the span drifted (or on every new span if the spec says so), off (ingest
  only) otherwise. Bad data fails the DAG run with the anomalies and triggers nothing for that span.
"""

from __future__ import annotations

import functools
import json
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
CHOOSE_SPAN_TASK = "choose_span"
FIND_TASK = "find_new_spans"
CHECK_TASK = "check_spans"


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
            spec.training.steps_per_epoch,
            type=["null", "integer"],
            minimum=1,
            description="batches per epoch (empty: one pass over the training rows)",
        ),
        "reason": Param("manual run", type="string", description="why this run (kept with the run)"),
    }
    if spec.data.spanned:
        params["window_spans"] = Param(
            spec.data.window_spans, type="integer", minimum=1, description="train on the newest N spans"
        )
        params["train"] = Param(
            True, type="boolean", description="off: only ingest and validate the span, do not train"
        )
        params["span"] = Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="span to ingest (empty: the newest span that passed the monitoring check)",
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
        _ingest_a_checked_span(dag, spec, home, ingest_task_id=pipeline.components[0].id)
        _add_training_gate(dag, ingest_task_id=pipeline.components[0].id)
    return dag


def choose_span(spec: ProblemSpec, home: Path, params: dict | None = None, **_context) -> str:
    """The span this run ingests, as ExampleGen's RangeConfig (JSON): the run's `span` (what the
    monitoring DAG checked), else the newest span that passed a check. A span that has not passed one is
    refused: the training DAG never ingests data the monitoring check has not seen."""
    from pipelines.workflow import monitoring

    paths = RunPaths.for_spec(spec.name, home)
    asked = (params or {}).get("span")
    span = int(asked) if asked is not None else monitoring.newest_checked_span(spec, paths)
    if span is None or not monitoring.passed_check(paths, span):
        what = f"span {span} has not" if span is not None else "no landed span has"
        raise AirflowFailException(
            f"{what} passed the bad-data and drift check of '{spec.name}' (reports in "
            f"{paths.monitoring_dir}); the DAG {monitoring_dag_id(spec)} checks every landed span and "
            "triggers training, or run `python -m pipelines check --config <spec> --span N` first"
        )
    print(f"ingesting span {span} (it passed the check)")
    return json.dumps({"static_range": {"start_span_number": span, "end_span_number": span}})


def _ingest_a_checked_span(dag: DAG, spec: ProblemSpec, home: Path, ingest_task_id: str) -> None:
    """ExampleGen reads the span `choose_span` picks instead of the newest landed one (which may have
    landed after the check). The RangeConfig is set as a template on the task, not on the component:
    TFX type-checks a component's RangeConfig as JSON when it is built, and Airflow renders the task's
    execution properties (`op_kwargs`) in each run."""
    from tfx.types.standard_component_specs import RANGE_CONFIG_KEY

    choose = PythonOperator(
        task_id=CHOOSE_SPAN_TASK, python_callable=functools.partial(choose_span, spec, home), dag=dag
    )
    ingest = dag.get_task(ingest_task_id)
    ingest.op_kwargs["exec_properties"][RANGE_CONFIG_KEY] = (
        f"{{{{ ti.xcom_pull(task_ids='{CHOOSE_SPAN_TASK}') }}}}"
    )
    choose >> ingest


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


def find_new_spans(spec: ProblemSpec, home: Path, ti=None, **_context) -> bool:
    """True when spans landed that were not checked yet (pushed as XCom 'spans', oldest first); False
    skips the rest."""
    from pipelines.workflow import monitoring

    spans = monitoring.spans_to_check(spec, RunPaths.for_spec(spec.name, home))
    print(f"spans not checked yet: {spans}" if spans else "no new span has landed")
    if not spans:
        return False
    ti.xcom_push(key="spans", value=spans)
    return True


def check_new_spans(spec: ProblemSpec, home: Path, ti=None, **_context) -> list[dict]:
    """Checks the spans found upstream in order; returns one training trigger per valid span.

    Each trigger carries its own logical date, one microsecond after the previous one: the scheduler
    starts queued runs of a DAG in logical-date order, so the spans are ingested in the order they landed
    whatever order the trigger tasks run in. Bad spans are kept (XCom 'bad_spans') for `refuse_bad_spans`.
    """
    from airflow.utils import timezone

    from pipelines.workflow import monitoring

    paths = RunPaths.for_spec(spec.name, home)
    started = timezone.utcnow()
    triggers, bad_spans = [], []
    for span in ti.xcom_pull(task_ids=FIND_TASK, key="spans"):
        try:
            report = monitoring.check_span(spec, paths, span)
        except monitoring.BadSpanError as error:
            print(error)
            bad_spans.append(str(error))
            continue
        print(report.summary())
        triggers.append(
            {
                "conf": {"span": span, "train": report.retrain, "reason": report.reason},
                "logical_date": (started + timedelta(microseconds=len(triggers))).isoformat(),
            }
        )
    ti.xcom_push(key="bad_spans", value=bad_spans)
    return triggers


def refuse_bad_spans(ti=None, **_context) -> None:
    """Fails the monitoring run when a span was bad data, with every anomaly (the good spans of the same
    poll are still triggered)."""
    bad_spans = ti.xcom_pull(task_ids=CHECK_TASK, key="bad_spans") or []
    if bad_spans:
        raise AirflowFailException("\n".join(bad_spans))


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
    ) as dag:
        find = ShortCircuitOperator(
            task_id=FIND_TASK, python_callable=functools.partial(find_new_spans, spec, home)
        )
        check = PythonOperator(
            task_id=CHECK_TASK, python_callable=functools.partial(check_new_spans, spec, home)
        )
        trigger = TriggerDagRunOperator.partial(
            task_id="trigger_training", trigger_dag_id=training_dag_id(spec), wait_for_completion=False
        ).expand_kwargs(check.output)
        refuse = PythonOperator(task_id="refuse_bad_spans", python_callable=refuse_bad_spans)
        find >> check >> [trigger, refuse]
    return dag


def dags_for_spec(spec_file: str) -> dict[str, DAG]:
    """The DAGs of one spec (path relative to the repo root), by DAG id."""
    spec = load_spec(REPO_ROOT / spec_file, check_data=False)
    home = home_from_environment()
    dags = [training_dag(spec, home)]
    if spec.data.spanned:
        dags.append(monitoring_dag(spec, home))
    return {dag.dag_id: dag for dag in dags}
