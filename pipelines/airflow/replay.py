"""Replay: the taxi trips as a stream of quarterly spans, through the real Airflow DAGs.

`python -m pipelines simulate` (or `make simulate`) cuts the shipped taxi data by
`trip_start_timestamp` into calendar quarters, lands them one at a time in a landing zone of its own,
and after each landing runs the monitoring DAG and, when it triggers retraining, the training DAG
(`DAG.test()`, on an Airflow database of the replay's own). It records per span the drift scores,
the decision, and the production model's metric on the span before and after, as JSON and PNG.

Everything lives in the replay's home (`build/replay` by default): landing zone, pipeline root,
serving folder, monitoring reports, ML Metadata (SQLite) and Airflow. Each replay starts from nothing,
so it deletes what an earlier replay left there, and only that: a home without the replay's marker file
is refused, and the spec's own landing zone is never used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from components.core.sources import read_table, resolve, write_table
from components.core.spec import SPAN_TOKEN, ProblemSpec, load_spec
from pipelines.paths import HOME_VARIABLE, MYSQL_VARIABLE, RunPaths
from pipelines.settings import REPO_ROOT

REPLAY_SPEC = "config/taxi_replay.yaml"
DEFAULT_REPLAY_HOME = Path("build") / "replay"
REPLAY_MARKER = ".blueprint-replay"
TAXI_DATA = "pkg://tfx/examples/chicago_taxi_pipeline/data/big_tipper_label/data.csv"
TIMESTAMP_COLUMN = "trip_start_timestamp"


def quarter_of(timestamp: str) -> str:
    moment = datetime.fromtimestamp(int(float(timestamp)), tz=timezone.utc)
    return f"{moment.year}Q{(moment.month - 1) // 3 + 1}"


def cut_into_quarters(source: Path, folder: Path) -> list[Path]:
    """One CSV per calendar quarter of `trip_start_timestamp`, oldest first."""
    header, rows = read_table(source)
    by_quarter: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_quarter.setdefault(quarter_of(row[TIMESTAMP_COLUMN]), []).append(row)
    return [
        write_table(folder / f"{quarter}.csv", header, by_quarter[quarter]) for quarter in sorted(by_quarter)
    ]


def prepare_airflow(airflow_home: Path) -> None:
    """An Airflow of the replay's own (SQLite), set up before Airflow is first imported."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(airflow_home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{airflow_home / 'airflow.db'}"
    from airflow.utils import db

    db.initdb()


class ReplayAirflow:
    """The spec's two DAGs, registered in Airflow's database, run with `DAG.test()`.

    Each run gets freshly built DAG objects, as a scheduler's task process would: TFX's Airflow
    launcher writes a run's rendered and resolved properties (form values, ExampleGen's span) back
    into its component objects, so a second `DAG.test()` of the same objects would repeat the first.
    """

    def __init__(self, spec: ProblemSpec, home: Path):
        from airflow.models.serialized_dag import SerializedDagModel

        from pipelines.airflow.dags import monitoring_dag, training_dag

        self.spec, self.home = spec, home
        for dag in (training_dag(spec, home), monitoring_dag(spec, home)):
            dag.sync_to_db()  # TriggerDagRunOperator finds the training DAG in the database
            SerializedDagModel.write_dag(dag)

    def check(self) -> tuple[str, list[dict]]:
        """Runs the monitoring DAG; returns its state and the confs of the training runs it triggered."""
        from pipelines.airflow.dags import monitoring_dag, training_dag_id

        run = monitoring_dag(self.spec, self.home).test()
        return run.state, take_queued_runs(training_dag_id(self.spec))

    def train(self, conf: dict) -> str:
        """Runs the training DAG with `conf`; returns the run's state."""
        return self._run_training(conf).state

    def train_task_states(self, conf: dict) -> dict[str, str]:
        """Runs the training DAG with `conf`; returns each task's state."""
        return {ti.task_id: ti.state for ti in self._run_training(conf).get_task_instances()}

    def _run_training(self, conf: dict):
        from pipelines.airflow.dags import training_dag

        return training_dag(self.spec, self.home).test(run_conf=conf)


def take_queued_runs(dag_id: str) -> list[dict]:
    """The confs of the DAG's queued runs (what TriggerDagRunOperator created), in the order a scheduler
    would start them (logical date), which are removed: with no scheduler here, the caller runs them
    itself with `DAG.test()`."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        queued = (
            session.query(DagRun)
            .filter(DagRun.dag_id == dag_id, DagRun.state == DagRunState.QUEUED)
            .order_by(DagRun.execution_date)
            .all()
        )
        confs = [dict(run.conf or {}) for run in queued]
        for run in queued:
            session.delete(run)
    return confs


class ReplayError(RuntimeError):
    """The replay cannot use this home; the message says why and what to pass instead."""


def simulate(
    home: Path = DEFAULT_REPLAY_HOME, spec_file: str = REPLAY_SPEC, limit: int | None = None
) -> dict:
    """Runs the replay in `home` and writes `timeline.json` and `timeline.png` under `home`/<name>."""
    home = claim_replay_home(home.resolve())
    os.environ[HOME_VARIABLE] = str(home)
    spec = replay_spec(load_spec(REPO_ROOT / spec_file, check_data=False), home)
    paths = RunPaths.for_spec(spec.name, home)
    out = home / spec.name
    quarters = cut_into_quarters(Path(resolve(TAXI_DATA, REPO_ROOT)), out / "quarters")[:limit]
    print(
        f"Replay of '{spec.name}' in {home}: {len(quarters)} quarterly spans, "
        f"{quarters[0].stem} to {quarters[-1].stem}"
    )
    log = out / "airflow.log"
    print(f"Airflow's and TFX's logs: {log}", flush=True)
    with output_to(log):
        prepare_airflow(out / "airflow")
        airflow = ReplayAirflow(spec, home)
    timeline = {"model": spec.name, "metric": spec.metric.name, "spans": []}
    for quarter in quarters:
        timeline["spans"].append(_replay_span(spec, paths, airflow, quarter, log))
        _write_timeline(timeline, out)
    print(f"\nTimeline: {out / 'timeline.json'} and {out / 'timeline.png'}")
    return timeline


def claim_replay_home(home: Path) -> Path:
    """Empties `home` for a new replay and marks it as the replay's; refuses a home the replay did not
    make (a folder with other files and no marker: the shared `build/`, a user's data) and MLMD on MySQL
    (metadata the replay did not create)."""
    if os.environ.get(MYSQL_VARIABLE):
        raise ReplayError(
            f"{MYSQL_VARIABLE} is set: the replay keeps its ML Metadata in SQLite inside its home and "
            "never touches another store; unset it for `simulate`"
        )
    if home.exists() and any(home.iterdir()) and not (home / REPLAY_MARKER).is_file():
        raise ReplayError(
            f"'{home}' holds files the replay did not create (no {REPLAY_MARKER} in it), and a replay "
            "deletes what its home holds; pass --home with a new or empty folder (default: build/replay)"
        )
    if home.exists():
        for entry in home.iterdir():
            if entry.name == REPLAY_MARKER:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    home.mkdir(parents=True, exist_ok=True)
    (home / REPLAY_MARKER).write_text(
        "made by `python -m pipelines simulate`: a replay empties this folder\n"
    )
    return home


def replay_spec(spec: ProblemSpec, home: Path) -> ProblemSpec:
    """The spec with its landing zone moved into the replay's home (any spanned spec's own is left alone)."""
    if not spec.data.spanned:
        raise ReplayError(f"spec '{spec.name}': data.source has no {SPAN_TOKEN}; the replay lands spans")
    from pipelines.workflow import landing

    source = landing.source_under(spec, home / "landing" / spec.name)
    return spec.model_copy(update={"data": spec.data.model_copy(update={"source": source})})


@contextlib.contextmanager
def output_to(log: Path):
    """Sends this process's stdout and stderr (Python's and native code's) to `log` for a while."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for descriptor in saved:
                os.close(descriptor)


def _replay_span(
    spec: ProblemSpec, paths: RunPaths, airflow: ReplayAirflow, quarter: Path, log: Path
) -> dict:
    from pipelines.paths import pipeline_name
    from pipelines.workflow import landing, monitoring, results, scoring

    started = time.monotonic()
    span = landing.land_span(spec, [quarter])
    _, rows = read_table(quarter)
    store = results.open_store(paths.metadata_config())
    before = results.production_model(store, pipeline_name(spec))
    entry = {
        "span": span,
        "quarter": quarter.stem,
        "rows": len(rows),
        "production_version_before": before.version if before else None,
        "metric_before": scoring.score_rows(spec, before, rows) if before else None,
    }
    print(f"span {span:2d} {quarter.stem}: landed, checking ...", flush=True)
    with output_to(log):
        state, triggered = airflow.check()
    conf = triggered[-1] if triggered else None
    report = (monitoring.reports(paths.monitoring_dir, span) or [{}])[-1]
    entry.update(
        monitoring_state=state,
        decision=report.get("decision"),
        reason=report.get("reason"),
        drift={d["feature"]: d["value"] for d in report.get("drift", [])},
        drifted_features=report.get("drifted_features", []),
        retrained=bool(conf and conf.get("train")),
    )
    if conf is not None:  # every valid span is ingested; training only when the check asked for it
        print(
            f"span {span:2d} {quarter.stem}: {'training' if conf.get('train') else 'ingesting'} ...",
            flush=True,
        )
        with output_to(log):
            entry["training_state"] = airflow.train(conf)
    after = results.production_model(results.open_store(paths.metadata_config()), pipeline_name(spec))
    entry["production_version_after"] = after.version if after else None
    entry["pushed_new_model"] = bool(after) and (not before or after.version != before.version)
    entry["metric_after"] = scoring.score_rows(spec, after, rows) if after else None
    entry["seconds"] = round(time.monotonic() - started, 1)
    print(_line(entry), flush=True)
    return entry


def _line(entry: dict) -> str:
    def fmt(value):
        return "  -  " if value is None else f"{value:.3f}"

    action = (
        "retrained" + (" + pushed" if entry["pushed_new_model"] else "")
        if entry["retrained"]
        else "kept model"
    )
    return (
        f"span {entry['span']:2d} {entry['quarter']} rows {entry['rows']:5d}  "
        f"{entry['decision'] or entry['monitoring_state']:20s}"
        f" {action:20s} metric before {fmt(entry['metric_before'])} after {fmt(entry['metric_after'])}"
        f"  drifted: {', '.join(entry['drifted_features']) or '-'}  ({entry['seconds']:.0f}s)"
    )


def _write_timeline(timeline: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "timeline.json").write_text(json.dumps(timeline, indent=1))
    plot_timeline(timeline, out / "timeline.png")


def plot_timeline(timeline: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spans = timeline["spans"]
    labels = [s["quarter"] for s in spans]
    x = range(len(spans))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    metric = timeline["metric"]
    top.plot(x, [s["metric_before"] for s in spans], "o-", label=f"{metric} before (model in production)")
    top.plot(x, [s["metric_after"] for s in spans], "s--", label=f"{metric} after (retrained if drifted)")
    for i, s in enumerate(spans):
        if s["retrained"]:
            top.axvline(i, color="tab:red", alpha=0.15, linewidth=8)
    top.set_ylabel(f"{metric} on the new span")
    top.set_title(f"Replay of '{timeline['model']}': quarterly spans (red: retraining triggered)")
    top.legend(loc="lower left")
    features = sorted({f for s in spans for f in s["drift"]})
    for feature in features:
        bottom.plot(x, [s["drift"].get(feature) for s in spans], ".-", label=feature)
    bottom.set_ylabel("drift (L-inf / JSD)")
    bottom.set_xticks(list(x), labels, rotation=45)
    if features:
        bottom.legend(fontsize=7, ncol=3, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
