"""Airflow DAGs for every problem spec in `config/`; the one file in `dags/` calls `dags_for_config`.

- Discovery: every `*.yaml` / `*.yml` directly in the config folder is a model (`$BLUEPRINT_CONFIG_DIR`,
  default the repo's `config/`); a name that starts with `_` or `.` is not (drafts, shared fragments).
  Adding a model is adding a YAML file. A spec that fails to load is reported as an import error of
  that spec's file while every other spec's DAGs load (`report_broken_spec` says how).
- Training DAG (`blueprint-<name>`): the TFX pipeline from `create_pipeline` through TFX's
  AirflowDagRunner, one task per component. Scheduled from `schedule.training`, triggerable from the
  web UI with a form (epochs, steps per epoch, window of spans, span, train or only ingest, reason), and
  by the monitoring DAG. For a spanned source `choose_span` picks the span ExampleGen ingests: the run's
  `span` (the one the monitoring DAG checked), else the newest span that passed a check; a span that has
  not passed one is refused, so nothing is trained on unchecked data. A `should_train` gate sits between
  ExampleGen and the span window: a run with `train` off ingests the span (ExampleGen, statistics,
  validation) and skips training, so that every accepted span is in MLMD for later windows. The last
  task, `note_the_run`, writes the run's result into its note (`model_notes.py`).
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
import logging
import os
import re
import types
from datetime import datetime, timedelta
from pathlib import Path

from airflow import DAG
from airflow.exceptions import AirflowFailException
from airflow.models.param import Param
from airflow.operators.python import PythonOperator, ShortCircuitOperator
from airflow.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.utils.trigger_rule import TriggerRule

from components.core.spec import ProblemSpec, load_spec
from pipelines.airflow import model_notes
from pipelines.paths import RunPaths, home_from_environment
from pipelines.settings import REPO_ROOT

START_DATE = datetime(2024, 1, 1)
TRAINING_GATE = "should_train"
CHOOSE_SPAN_TASK = "choose_span"
FIND_TASK = "find_new_spans"
CHECK_TASK = "check_spans"
NOTE_TASK = "note_the_run"
CONFIG_VARIABLE = "BLUEPRINT_CONFIG_DIR"
SPEC_SUFFIXES = (".yaml", ".yml")
log = logging.getLogger(__name__)


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
    paths = RunPaths.for_spec(spec.name, home)
    pipeline = create_pipeline(spec, paths, run=run)
    config = AirflowPipelineConfig(
        airflow_dag_config={
            "schedule": spec.schedule.training,
            "start_date": START_DATE,
            "catchup": False,
            "max_active_runs": 1,
            "default_args": {**_default_args(spec), "on_failure_callback": model_notes.record_failure},
            "params": training_params(spec),
            "tags": ["blueprint", "training", spec.name],
            "description": f"Train, evaluate and push '{spec.name}' ({spec.task.value}, label {spec.label})",
            "doc_md": model_notes.model_doc(spec, paths),
        }
    )
    dag = AirflowDagRunner(config).run(pipeline)
    if spec.data.spanned:
        _ingest_a_checked_span(dag, spec, home, ingest_task_id=pipeline.components[0].id)
        _add_training_gate(dag, ingest_task_id=pipeline.components[0].id)
    _add_run_note(dag, spec, home)
    return dag


def note_the_run(
    spec: ProblemSpec, home: Path, dag_run=None, ti=None, params: dict | None = None, **_context
) -> None:
    """Writes the run's note: which task failed and why, else its result (`model_notes`). Fails when
    a task of the run failed: Airflow sets a run's state from its last tasks, and this one runs
    whatever happened upstream, so succeeding here would turn a failed run into a successful one."""
    failures = _failures(dag_run, ti)
    text = model_notes.failure_note(failures) if failures else _result_note(spec, home, dag_run, ti, params)
    set_note(dag_run.dag_id, dag_run.run_id, text)
    print(text)
    if failures:
        raise AirflowFailException(text)


def _failures(dag_run, ti) -> list[tuple[str, str]]:
    """(task, message) of the run's failed tasks, in the order they ended."""
    from airflow.utils.state import TaskInstanceState

    failed = dag_run.get_task_instances(state=[TaskInstanceState.FAILED])
    failed.sort(key=lambda other: (other.end_date is None, other.end_date or 0))
    return [
        (other.task_id, ti.xcom_pull(task_ids=other.task_id, key=model_notes.ERROR_KEY) or "see its log")
        for other in failed
    ]


def _result_note(spec: ProblemSpec, home: Path, dag_run, ti, params: dict | None) -> str:
    """The finished run's result from ML Metadata (TFX names the pipeline run after the DAG run)."""
    from pipelines.workflow import results

    reason = (params or {}).get("reason")
    try:
        paths = RunPaths.for_spec(spec.name, home)
        summary = results.run_summary(paths.metadata_config(), training_dag_id(spec), dag_run.run_id)
    except Exception as error:  # noqa: BLE001 - the run succeeded; the note says what could not be read
        return f"Finished, but its result could not be read from ML Metadata: {error}"
    chosen = ti.xcom_pull(task_ids=CHOOSE_SPAN_TASK)  # None without spans
    span = json.loads(chosen)["static_range"]["start_span_number"] if chosen else None
    return model_notes.result_note(spec, summary, span, reason)


def set_note(dag_id: str, run_id: str, text: str) -> None:
    """Sets the DAG run's note (shown in the grid view, and `note` in the REST API's DAG run)."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one()
        run.note = text


def _add_run_note(dag: DAG, spec: ProblemSpec, home: Path) -> None:
    """`note_the_run` after every other task: downstream of the leaves, run when all are done."""
    leaves = [task for task in dag.tasks if not task.downstream_task_ids]
    note = PythonOperator(
        task_id=NOTE_TASK,
        python_callable=functools.partial(note_the_run, spec, home),
        trigger_rule=TriggerRule.ALL_DONE,
        dag=dag,
    )
    leaves >> note


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

    # Only the window is skipped directly; the rest follows by trigger rules, so `note_the_run` (all_done)
    # still writes an ingest-only run's note.
    gate = ShortCircuitOperator(
        task_id=TRAINING_GATE,
        python_callable=train_this_run,
        ignore_downstream_trigger_rules=False,
        dag=dag,
    )
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
        doc_md=model_notes.model_doc(spec, RunPaths.for_spec(spec.name, home), monitoring=True),
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
    """The DAGs of one spec (path absolute or relative to the repo root), by DAG id."""
    spec = load_spec(REPO_ROOT / spec_file, check_data=False)
    home = home_from_environment()
    dags = [training_dag(spec, home)]
    if spec.data.spanned:
        dags.append(monitoring_dag(spec, home))
    return {dag.dag_id: dag for dag in dags}


def config_folder() -> Path:
    """Where the specs Airflow builds DAGs for are: $BLUEPRINT_CONFIG_DIR, else the repo's config/."""
    return Path(os.environ.get(CONFIG_VARIABLE) or REPO_ROOT / "config").resolve()


def spec_files(folder: Path) -> list[Path]:
    """The model specs in `folder`: its `*.yaml` / `*.yml` files, but not `_*` or `.*` (drafts,
    fragments) and not sub-folders (`config/airflow/` holds Airflow profiles)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{CONFIG_VARIABLE}: '{folder}' is not a folder of problem specs")
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix in SPEC_SUFFIXES and not path.name.startswith(("_", "."))
    )


def dags_for_config(folder: Path | None = None) -> dict[str, DAG]:
    """The DAGs of every spec in `folder` (default `config_folder()`), by DAG id. A spec that fails to
    load, or names a model another spec already built, is reported on its own (`report_broken_spec`)
    and the other specs' DAGs are returned."""
    built: dict[str, DAG] = {}
    source: dict[str, Path] = {}
    for spec_file in spec_files(folder or config_folder()):
        try:
            dags = dags_for_spec(str(spec_file))
        except Exception as error:  # noqa: BLE001 - whatever fails is this spec's error, not the others'
            report_broken_spec(spec_file, error)
            continue
        clash = next((dag_id for dag_id in dags if dag_id in built), None)
        if clash is not None:
            report_broken_spec(
                spec_file,
                BrokenSpecError(
                    f"{spec_file}: field 'name': {source[clash].name} already builds the DAG {clash}; "
                    "give each spec its own name"
                ),
            )
            continue
        built.update(dags)
        source.update(dict.fromkeys(dags, spec_file))
    return built


class BrokenSpecError(Exception):
    """A spec in the config folder yields no DAGs; the message names the file and what is wrong."""


class _BrokenSpecDag(DAG):
    """Stands for a spec that failed to load. DagBag calls `validate()` on each DAG it finds, before
    bagging it, and records what it raises as an import error of the DAG's `fileloc`; this one always
    raises, so it is never bagged, scheduled or shown as a DAG."""

    def __init__(self, spec_file: Path, message: str):
        super().__init__(
            dag_id=f"blueprint-broken-spec-{re.sub(r'[^A-Za-z0-9_.-]', '_', spec_file.stem)}",
            schedule=None,
            start_date=START_DATE,
        )
        self.message = message

    def validate(self) -> None:
        raise BrokenSpecError(self.message)


def report_broken_spec(spec_file: Path, error: Exception) -> None:
    """Makes Airflow list a spec's failure as an import error of the spec's own file (the UI's
    "Broken DAG: [<spec>] ..." and `airflow dags list-import-errors`), while the other DAGs load.

    Airflow 2 has no call for this (apache/airflow#53971): an exception out of a DAG file drops every DAG
    of the file, and an error recorded under the DAG file's own path marks all its DAGs
    `has_import_errors`, which stops the scheduler from creating their runs and the UI and REST API from
    triggering them. So the failure is a DAG that fails DagBag's validation, registered (as a `with DAG`
    block registers its DAG) with a stand-in module whose `__file__` is the spec: DagBag sets the DAG's
    `fileloc` from its module, so the error is keyed by the spec's path, where no DAG lives. The DAG
    processor rewrites the error at each parse of the DAG file; its periodic sweep of errors whose file is
    not a DAG file (`dag_dir_list_interval`) removes it, so an error shows up to
    `min_file_process_interval` late after a sweep, and a fixed spec's error goes at the next sweep.
    """
    from airflow.models.dag import DagContext

    message = str(error) if str(spec_file) in str(error) else f"{spec_file}: {type(error).__name__}: {error}"
    log.error("no DAGs for %s: %s", spec_file, message)
    stand_in = types.ModuleType(f"blueprint_spec_{re.sub(r'[^A-Za-z0-9_]', '_', spec_file.stem)}")
    stand_in.__file__ = str(spec_file)
    DagContext.autoregistered_dags.add((_BrokenSpecDag(spec_file, message), stand_in))
