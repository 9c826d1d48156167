"""What the Airflow UI says about a model: the DAG's docs (the model, not this code) and each training
run's note (its result, shown in the grid view).

The docs are written when the DAG file is parsed (every `min_file_process_interval`), so the version in
service they show is at most that old. A run's note is written by the training DAG's last task, which
runs whatever happened upstream (`all_done`): the verdict, the test metric, what was pushed and the
report, or the task that failed and its message. Each task's failure message reaches it through XCom
(`record_failure`, every task's failure callback): Airflow keeps exceptions only in the task logs.
"""

from __future__ import annotations

from pathlib import Path

from components.core.spec import ProblemSpec
from pipelines.paths import RunPaths, mysql_settings, pipeline_name
from pipelines.workflow.errors import innermost_message

ERROR_KEY = "error"
NOTE_LIMIT = 1000  # DagRunNote.content is a String(1000)
_ERROR_LIMIT = 400  # of one task's message in a note


def record_failure(context: dict) -> None:
    """A task's failure callback: keeps its message (the innermost of the exception's chain) in XCom."""
    context["ti"].xcom_push(key=ERROR_KEY, value=innermost_message(context.get("exception")))


def failure_note(failures: list[tuple[str, str]]) -> str:
    """Which task failed and why, for each failed task (upstream_failed ones only follow from them)."""
    parts = [f"Failed at {task}: {message[:_ERROR_LIMIT]}" for task, message in failures]
    return _limit(" | ".join(parts))


def result_note(spec: ProblemSpec, summary, span: int | None, reason: str | None) -> str:
    """A finished run's note: the verdict, the test metric, what was pushed and the report (`summary`
    is the run's `results.RunSummary`, None when MLMD has none), or that the span was only ingested."""
    where = f"span {span}" if span is not None else "the data"
    if summary is None:
        lines = ["Finished, but ML Metadata holds no record of this run."]
    elif "Trainer" not in summary.states:
        lines = [f"Ingested {where} without training (train off): nothing trained, nothing pushed."]
    else:
        lines = [verdict(spec, summary), pushed(summary)]
        if summary.report_path:
            lines.append(f"Report: {summary.report_path}")
        if span is not None:
            lines.append(f"Trained on a window ending at span {span}.")
    if reason:
        lines.append(f"Reason: {reason}")
    return _limit("\n".join(lines))


def verdict(spec: ProblemSpec, summary) -> str:
    metric = spec.metric
    goal = f"{metric.name} {'>=' if metric.higher_is_better else '<='} {metric.threshold:g}"
    value = summary.metrics.get(metric.name)
    measured = f"test {metric.name} {value:.4f}" if value is not None else f"no test {metric.name}"
    if summary.blessed:
        return f"Blessed: {measured} (goal {goal}), beats the dumb baseline, no regression."
    why = list(summary.validation_failures)
    if summary.power_message and summary.power_message.startswith("no statistical power"):
        why.append(summary.power_message)
    return f"Not blessed: {measured} (goal {goal})" + (f": {'; '.join(why)}" if why else "") + "."


def pushed(summary) -> str:
    if summary.pushed_new:
        return f"Pushed version {summary.pushed_version} to {summary.pushed_path}."
    if summary.pushed:
        return f"Nothing new pushed: version {summary.pushed_version} stays in service."
    return "Nothing pushed."


def _limit(text: str) -> str:
    return text if len(text) <= NOTE_LIMIT else text[: NOTE_LIMIT - 3] + "..."


def model_doc(spec: ProblemSpec, paths: RunPaths, monitoring: bool = False) -> str:
    """The DAG's docs (Markdown): the model, its goal, its schedules, the version in service and its
    report. `monitoring` picks the line about what the DAG does."""
    what = (
        "This DAG checks each new span for bad data and drift, and triggers training."
        if monitoring
        else "This DAG trains, evaluates and pushes the model; each run's note says its result."
    )
    metric = spec.metric
    rows = [
        ("label", f"`{spec.label}`"),
        ("task", spec.task.value),
        (
            "metric",
            f"`{metric.name}` {'>=' if metric.higher_is_better else '<='} {metric.threshold:g} on the "
            "test split, and beat the dumb baseline",
        ),
        ("training", _training_schedule(spec)),
        ("monitoring", _schedule(spec.schedule.monitoring) if spec.data.spanned else "none (no spans)"),
        *in_service(paths, pipeline_name(spec)),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    description = spec.description or "(no description in the spec)"
    return f"## {spec.name}\n\n{description}\n\n{what}\n\n| | |\n| --- | --- |\n{table}\n"


def _schedule(cron: str | None) -> str:
    return f"`{cron}`" if cron else "none"


def _training_schedule(spec: ProblemSpec) -> str:
    when = [f"`{spec.schedule.training}`"] if spec.schedule.training else []
    when.append("on demand (*Trigger DAG w/ config*)")
    if spec.data.spanned:
        when.append("when the monitoring DAG finds a new span")
    return ", ".join(when)


def in_service(paths: RunPaths, pipeline: str) -> list[tuple[str, str]]:
    """Rows for the version in service and its report; never raises (the DAG must load regardless)."""
    try:
        version, since, report, metric = _serving(paths, pipeline)
    except Exception as error:  # noqa: BLE001 - the docs say what went wrong instead
        return [("in service", f"unknown: could not read {paths.serving_dir} ({error})")]
    if version is None:
        return [("in service", "nothing yet: no version has been pushed")]
    shown = f"version {version}" + (f" (since {_minute(since)})" if since else "")
    shown += f", {metric}" if metric else ""
    return [
        ("in service", shown),
        ("report", f"`{report}`" if report else "not found in ML Metadata"),
        ("serving folder", f"`{paths.serving_dir / str(version)}`"),
    ]


def _minute(timestamp: str) -> str:
    """`2026-12-02T23:05:00.380750+00:00` -> `2026-12-02 23:05 UTC` (what `pin_locked` writes)."""
    return f"{timestamp[:16].replace('T', ' ')} UTC"


def _serving(paths: RunPaths, pipeline: str) -> tuple[int | None, str | None, str | None, str | None]:
    """(version, since, report path, test metric) of the version in service, from the serving folder
    and the run that pushed it (ML Metadata)."""
    from components.core import models_config

    serving_root = paths.serving_dir.parent
    version = models_config.current_versions(serving_root).get(paths.name)
    if version is None:
        return None, None, None, None
    since = models_config.read_current(serving_root, paths.name).get("since")
    if mysql_settings() is None and not Path(paths.metadata_path).is_file():
        return version, since, None, None  # opening a missing SQLite file would create one
    from pipelines.workflow import results

    run = results.pushing_run(paths.metadata_config(), pipeline, str(version))
    if run is None:
        return version, since, None, None
    name = models_config.read_manifest(paths.serving_dir / str(version)).get("metric", "")
    value = run.metrics.get(name)
    return version, since, run.report_path, f"test {name} {value:.4f}" if value is not None else None
