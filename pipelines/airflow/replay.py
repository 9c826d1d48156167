"""Replay: the taxi trips as a stream of quarterly spans, through the real Airflow DAGs.

`python -m pipelines simulate` (or `make simulate`) cuts the shipped taxi data by
`trip_start_timestamp` into calendar quarters, lands them one at a time in a landing zone of its own,
and after each landing runs the monitoring DAG and, when it triggers retraining, the training DAG
(`DAG.test()`, on an Airflow database of the replay's own). It records per span the drift scores
against what each had to pass, the decision, and the metric of the models around the span's check (in
production before it, the candidate its retraining trained, in production after it) on the *next* span,
which none of them was trained on (ML Metadata says which spans each was), as JSON and PNG: scored on
the span just trained on, retraining would "help" by construction.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from components.core.sources import read_table, resolve, write_table
from components.core.spec import SPAN_TOKEN, ProblemSpec, load_spec
from pipelines.paths import HOME_VARIABLE, MYSQL_VARIABLE, RunPaths
from pipelines.settings import REPO_ROOT

if TYPE_CHECKING:
    from pipelines.workflow.results import ProductionModel

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
    """Runs the replay in `home` and writes `timeline.json` and `timeline.png` under `home`/<name>.
    What the libraries print goes to `<name>/replay.log`; the console gets one line per step."""
    home = claim_replay_home(home.resolve())
    os.environ[HOME_VARIABLE] = str(home)
    spec = replay_spec(load_spec(REPO_ROOT / spec_file, check_data=False), home)
    out = home / spec.name
    quarters = cut_into_quarters(Path(resolve(TAXI_DATA, REPO_ROOT)), out / "quarters")[:limit]
    print(
        f"Replay of '{spec.name}' in {home}: {len(quarters)} quarterly spans, "
        f"{quarters[0].stem} to {quarters[-1].stem}"
    )
    log = out / "replay.log"
    print(f"What Airflow, TFX and TensorFlow print: {log}", flush=True)
    with output_to(log) as console:
        timeline = _replay(spec, home, quarters, out, lambda line: print(line, file=console, flush=True))
    print(f"\nTimeline: {out / 'timeline.json'} and {out / 'timeline.png'}")
    return timeline


def _replay(
    spec: ProblemSpec, home: Path, quarters: list[Path], out: Path, say: Callable[[str], None]
) -> dict:
    """Each quarter lands, is checked and (when the check asks) trains; the models each quarter left are
    scored on the quarter after it as soon as that one has landed, before anything can train on it."""
    prepare_airflow(out / "airflow")
    airflow = ReplayAirflow(spec, home)
    paths = RunPaths.for_spec(spec.name, home)
    timeline = {"model": spec.name, "metric": spec.metric.name, "scoring": SCORING, "spans": []}
    left: SpanModels | None = None  # the models the previous quarter left, to score on this one
    for quarter in quarters:
        span, rows = _land(spec, quarter)
        if left is not None:
            timeline["spans"][-1].update(score_on_unseen_span(spec, left, span, rows))
            say(_unseen_line(timeline["spans"][-1], spec.metric.name))
        entry, left = _replay_span(spec, paths, airflow, quarter, span, rows, say)
        timeline["spans"].append(entry)
        _write_timeline(timeline, out)
    if timeline["spans"]:
        timeline["spans"][-1]["note"] = NO_NEXT_SPAN
        say(f"span {timeline['spans'][-1]['span']:2d}: {NO_NEXT_SPAN}")
        _write_timeline(timeline, out)
    return timeline


@contextlib.contextmanager
def output_to(log: Path) -> Iterator[TextIO]:
    """Sends this process's stdout and stderr (Python's and native code's: TensorFlow, Beam's workers,
    Airflow) to `log` for a while; yields the console, for the replay's own lines."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    console = open(os.dup(saved[0]), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    with open(log, "ab") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            yield console
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            console.close()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for descriptor in saved:
                os.close(descriptor)


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


NO_NEXT_SPAN = "the last span: no later span to score its models on (None)"
SCORING = (
    "metric_before, metric_candidate, metric_after: the model in production before span k's check, the "
    "candidate its retraining trained (None without retraining) and the model in production after it, "
    "each scored on span k+1 (scored_on_span), which none of them was trained on: `models` lists each "
    "one's training spans from ML Metadata. None for the last span, which has no next span."
)
MODEL_ROLES = ("before", "candidate", "after")


@dataclass(frozen=True)
class SpanModels:
    """The models around one span's check: in production before it, the candidate its retraining trained
    (pushed or not; None without retraining) and in production after it."""

    before: ProductionModel | None
    candidate: ProductionModel | None
    after: ProductionModel | None

    def by_role(self) -> dict[str, ProductionModel | None]:
        return {role: getattr(self, role) for role in MODEL_ROLES}

    def record(self) -> dict[str, dict | None]:
        """What the timeline keeps of each model: its version and the spans it was trained on (MLMD)."""
        return {
            role: None
            if model is None
            else {"version": model.version or None, "model": model.model_uri, "trained_on_spans": model.spans}
            for role, model in self.by_role().items()
        }


def score_on_unseen_span(
    spec: ProblemSpec, models: SpanModels, span: int, rows: list[dict[str, str]]
) -> dict[str, float | int | None]:
    """Each model's metric (`metric_before`, `metric_candidate`, `metric_after`) on the rows of `span`, a
    span none of them was trained on: their training spans, read from ML Metadata, are checked first, so
    a figure is never in-sample. A model scored once per call, whatever its roles."""
    from pipelines.workflow import scoring

    seen = {role: model.spans for role, model in models.by_role().items() if model and span in model.spans}
    if seen:
        raise ReplayError(
            f"span {span} is among the training spans of the {', '.join(seen)} model(s) ({seen}): "
            "scoring on it would be in-sample"
        )
    metrics: dict[str, float | None] = {}
    scored: dict[str, float | int | None] = {"scored_on_span": span}
    for role, model in models.by_role().items():
        if model is not None and model.model_uri not in metrics:
            metrics[model.model_uri] = scoring.score_rows(spec, model, rows)
        scored[f"metric_{role}"] = None if model is None else metrics[model.model_uri]
    return scored


def _land(spec: ProblemSpec, quarter: Path) -> tuple[int, list[dict[str, str]]]:
    from pipelines.workflow import landing

    _, rows = read_table(quarter)
    return landing.land_span(spec, [quarter]), rows


def _replay_span(
    spec: ProblemSpec,
    paths: RunPaths,
    airflow: ReplayAirflow,
    quarter: Path,
    span: int,
    rows: list[dict[str, str]],
    say: Callable[[str], None],
) -> tuple[dict, SpanModels]:
    """Checks the landed span and trains when the check asks; returns its timeline entry (scored on
    the next span later) and the models around it."""
    from pipelines.workflow import monitoring

    started = time.monotonic()
    before, newest_before = _production_and_newest(spec, paths)
    say(f"span {span:2d} {quarter.stem}: landed, checking ...")
    state, triggered = airflow.check()
    conf = triggered[-1] if triggered else None
    report = (monitoring.reports(paths.monitoring_dir, span) or [{}])[-1]
    entry = {
        "span": span,
        "quarter": quarter.stem,
        "rows": len(rows),
        "monitoring_state": state,
        "decision": report.get("decision"),
        "reason": report.get("reason"),
        "drift": {d["feature"]: _drift_figures(d) for d in report.get("drift", [])},
        "drifted_features": report.get("drifted_features", []),
        "retrained": bool(conf and conf.get("train")),
    }
    if conf is not None:  # every valid span is ingested; training only when the check asked for it
        say(f"span {span:2d} {quarter.stem}: {'training' if conf.get('train') else 'ingesting'} ...")
        entry["training_state"] = airflow.train(conf)
    after, newest_after = _production_and_newest(spec, paths)
    trained = newest_after is not None and (
        newest_before is None or newest_after.model_uri != newest_before.model_uri
    )
    candidate = (
        None
        if not trained
        else after
        if after and after.model_uri == newest_after.model_uri
        else newest_after
    )
    models = SpanModels(before, candidate, after)  # a pushed candidate is `after`, with its version
    entry.update(
        production_version_before=before.version if before else None,
        production_version_after=after.version if after else None,
        pushed_new_model=bool(after) and (not before or after.version != before.version),
        models=models.record(),
        scored_on_span=None,
        **{f"metric_{role}": None for role in MODEL_ROLES},
        seconds=round(time.monotonic() - started, 1),
    )
    say(_line(entry))
    return entry, models


def _production_and_newest(
    spec: ProblemSpec, paths: RunPaths
) -> tuple[ProductionModel | None, ProductionModel | None]:
    """The model in production and the newest model any Trainer made, from ML Metadata."""
    from pipelines.paths import pipeline_name
    from pipelines.workflow import results

    store = results.open_store(paths.metadata_config())
    return results.production_model(store, pipeline_name(spec)), results.newest_model(store)


def _drift_figures(drift: dict) -> dict:
    """A feature's drift in a report, with what it had to pass (the threshold and the noise floor)."""
    limit = max(drift["threshold"], drift.get("noise_floor") or 0.0)
    return {
        "value": drift["value"],
        "threshold": drift["threshold"],
        "noise_floor": drift.get("noise_floor"),
        "ratio": round(drift["value"] / limit, 4) if limit > 0 else None,
        "drifted": drift.get("drifted", drift["value"] > limit),
    }


def _fmt(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def _line(entry: dict) -> str:
    action = (
        "retrained" + (" + pushed" if entry["pushed_new_model"] else "")
        if entry["retrained"]
        else "kept model"
    )
    return (
        f"span {entry['span']:2d} {entry['quarter']} rows {entry['rows']:5d}  "
        f"{entry['decision'] or entry['monitoring_state']:20s} {action:20s}"
        f"  drifted: {', '.join(entry['drifted_features']) or '-'}  ({entry['seconds']:.0f}s)"
    )


def _unseen_line(entry: dict, metric: str) -> str:
    candidate = (
        f", candidate {_fmt(entry['metric_candidate'])}" if entry["models"]["candidate"] is not None else ""
    )
    return (
        f"span {entry['span']:2d} {entry['quarter']}: its models on span {entry['scored_on_span']} "
        f"(unseen): {metric} before {_fmt(entry['metric_before'])}"
        f"{candidate}, after {_fmt(entry['metric_after'])}"
    )


def _write_timeline(timeline: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "timeline.json").write_text(json.dumps(timeline, indent=1))
    plot_timeline(timeline, out / "timeline.png")


def plot_timeline(timeline: dict, path: Path) -> None:
    """Top: the models around each span scored on the next one; bottom: each feature's drift as a share
    of what it had to pass (threshold or noise floor), drifting above the line at 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spans = timeline["spans"]
    x = list(range(len(spans)))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    _plot_unseen_metrics(top, spans, x, timeline["metric"])
    top.set_title(f"Replay of '{timeline['model']}': quarterly spans (red: retraining triggered)")
    _plot_drift_ratios(bottom, spans, x)
    bottom.set_xticks(x, [s["quarter"] for s in spans], rotation=45)
    bottom.set_xlabel("span k (its models are scored on span k+1)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_unseen_metrics(axes, spans: list[dict], x: list[int], metric: str) -> None:
    def series(role: str) -> list[float]:
        return [float("nan") if s.get(f"metric_{role}") is None else s[f"metric_{role}"] for s in spans]

    axes.plot(x, series("before"), "o-", label="in production before span k")
    axes.plot(x, series("after"), "s--", label="in production after span k")
    axes.plot(x, series("candidate"), "x", markersize=9, label="retrained on span k's window (candidate)")
    for i, s in enumerate(spans):
        if s["retrained"]:
            axes.axvline(i, color="tab:red", alpha=0.15, linewidth=8)
    axes.set_ylabel(f"{metric} on span k+1 (unseen)")
    axes.legend(loc="best", fontsize=8)


def _plot_drift_ratios(axes, spans: list[dict], x: list[int]) -> None:
    from matplotlib import colormaps

    features = sorted({f for s in spans for f in s["drift"]})
    axes.set_prop_cycle(color=colormaps["tab20"].colors)  # one colour per feature
    for feature in features:
        ratios = [(s["drift"].get(feature) or {}).get("ratio") for s in spans]
        axes.plot(x, [float("nan") if r is None else r for r in ratios], ".-", label=feature)
    axes.axhline(1.0, color="black", linewidth=1)
    axes.set_ylabel("drift / max(threshold, noise floor)")
    if features:
        axes.legend(fontsize=7, ncol=3, loc="best")
