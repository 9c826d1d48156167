"""`pipelines status`: what serves, what happened to it, what the last drift check and run said.

Everything is read from what the pipeline, the pusher and the drift check already write: the serving
folder (`models.config`, `current.json`, each version's `manifest.json`), ML Metadata (runs, metrics,
blessing, lineage) and the monitoring folder (drift reports, annotated spans). Nothing is written.
"""

from __future__ import annotations

from pathlib import Path

from components.core import annotations, models_config
from pipelines.paths import RunPaths, mysql_settings, pipeline_name_for

SHOWN_HISTORY = 10  # entries of the push/rollback history in the text view (--json has them all)


def models_in_home(home: Path) -> list[str]:
    """The models a home holds something of: a serving folder, a metadata file or drift reports."""
    found = {
        path.name
        for folder in ("serving", "monitoring")
        if (home / folder).is_dir()
        for path in (home / folder).iterdir()
        if path.is_dir() and not path.name.startswith(".")
    }
    found |= {path.stem for path in (home / "metadata").glob("*.sqlite")}
    return sorted(found)


def _has_metadata(paths: RunPaths) -> bool:
    """Opening a missing SQLite file would create one: a status must not leave anything behind."""
    return mysql_settings() is not None or paths.metadata_path.is_file()


def _target(folder: Path, target: dict) -> dict:
    """A manifest's target entry, with its name and where its file or folder is."""
    return {
        **target,
        "name": models_config.target_name(target),
        "pushed": bool(target.get("pushed", True)),
        "file": str(folder / target.get("path", "")),
    }


def serving_status(paths: RunPaths) -> dict | None:
    """The version in service: its targets, metrics, spans and report, and the push/rollback history."""
    from pipelines.workflow import results

    serving_root, model = paths.serving_dir.parent, paths.name
    version = models_config.current_versions(serving_root).get(model)
    if version is None:
        return None
    current = models_config.read_current(serving_root, model)
    folder = paths.serving_dir / str(version)
    manifest = models_config.read_manifest(folder)
    source = manifest.get("source", {})
    status = {
        "version": version,
        "since": current.get("since"),
        "reason": current.get("reason"),
        "path": str(folder),
        "models_config": str(serving_root / models_config.MODELS_CONFIG),
        "pushed_at": manifest.get("pushed_at"),
        "classes": manifest.get("classes"),
        "task": manifest.get("task"),
        "metric": manifest.get("metric"),
        "tolerance": manifest.get("tolerance"),
        "test_rows": manifest.get("test_rows"),
        "targets": [_target(folder, t) for t in manifest.get("targets", [])],
        "spans": manifest.get("spans"),
        "metrics": {},
        "report": None,
        "run_id": source.get("pipeline_run_id"),
        "history": current.get("history", []),
    }
    if _has_metadata(paths):
        config, pipeline = paths.metadata_config(), pipeline_name_for(model)
        # A version pushed from Airflow has no run id in its manifest: found through the Pusher's output.
        run = (
            results.run_summary(config, pipeline, status["run_id"])
            if status["run_id"]
            else results.pushing_run(config, pipeline, str(version))
        )
        if run is not None:
            status["metrics"], status["report"] = run.metrics, run.report_path
        if status["spans"] is None and source.get("model_artifact_id"):
            lineage = results.pushed_model(
                results.open_store(config), source["model_artifact_id"], str(version)
            )
            status["spans"] = lineage.spans if lineage else None
    return status


def drift_status(paths: RunPaths) -> dict | None:
    """The newest drift check: its span, decision, drifted features, the model in service's quality on
    the span's labels and its age, and when."""
    from pipelines.workflow import monitoring

    checks = monitoring.reports(paths.monitoring_dir)
    if not checks:
        return None
    newest = max(enumerate(checks), key=lambda pair: (pair[1].get("checked_at", ""), pair[0]))[1]
    return {
        "span": newest.get("span"),
        "checked_at": newest.get("checked_at"),
        "decision": newest.get("decision"),
        "reason": newest.get("reason"),
        "drifted_features": newest.get("drifted_features", []),
        "rows": newest.get("rows"),
        "drift": newest.get("drift", []),  # each feature: value, threshold, noise floor of `rows` rows
        "production_version": newest.get("production_version"),
        "quality": newest.get("quality"),
        "age": newest.get("age"),
        "reports": str(paths.monitoring_dir),
        "checks": len(checks),
    }


def run_status(paths: RunPaths) -> dict | None:
    """The newest training run: blessed or why not, what it pushed, its report."""
    from pipelines.workflow import results

    if not _has_metadata(paths):
        return None
    run = results.latest_run(paths.metadata_config(), pipeline_name_for(paths.name))
    if run is None:
        return None
    why_not = [] if run.blessed else list(run.validation_failures)
    if not run.blessed and run.power_message and run.power_message.startswith("no statistical power"):
        why_not.append(run.power_message)
    return {
        "run_id": run.run_id,
        "blessed": run.blessed,
        "why_not_blessed": why_not,
        "failed": [node for node, state in run.states.items() if state == "FAILED"],
        "metrics": run.metrics,
        "pushed_version": run.pushed_version if run.pushed_new else None,
        "report": run.report_path,
    }


def model_status(name: str, home: Path) -> dict:
    paths = RunPaths.for_spec(name, home)
    return {
        "model": name,
        "serving": serving_status(paths),
        "drift": drift_status(paths),
        "last_run": run_status(paths),
        "annotations": annotation_status(paths),
        "serving_dir": str(paths.serving_dir),
        "metadata": paths.metadata_location(),
    }


def annotation_status(paths: RunPaths) -> dict | None:
    """The newest annotated span (`pipelines land --annotations`): the audited model's agreement."""
    records = annotations.read_records(paths.monitoring_dir)
    return {**records[-1], "summary": annotations.describe(records[-1])} if records else None


def status(home: Path, names: list[str] | None = None) -> dict:
    """Every model's status (the named ones, or all the home holds), as JSON-ready data."""
    home = Path(home).resolve()
    return {"home": str(home), "models": [model_status(name, home) for name in names or models_in_home(home)]}


# --- The text view --------------------------------------------------------------------------------------


def _figures(metrics: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in sorted(metrics.items())) or "-"


def _serving_lines(serving: dict | None) -> list[str]:
    from pipelines.ops import deployments

    if serving is None:
        return ["  in service: nothing pushed yet (`pipelines run` pushes a blessed model)"]
    lines = [
        f"  in service: version {serving['version']} since {serving['since'] or '?'} "
        f"({serving['reason'] or 'push'}), {serving['path']}",
        f"  metrics:    {_figures(serving['metrics'])} (test split, run {serving['run_id'] or '?'})",
        f"  spans:      {', '.join(map(str, serving['spans'])) if serving['spans'] else '-'}",
    ]
    if serving["classes"]:
        lines.append(f"  classes:    {', '.join(serving['classes'])}")
    lines.append("  targets:")
    lines += [f"    {line}" for line in deployments.target_table(serving)]
    if serving["report"]:
        lines.append(f"  its report: {serving['report']}")
    history = serving["history"]
    lines.append(f"  history ({len(history)} change(s), newest last):")
    for entry in history[-SHOWN_HISTORY:]:
        was = f" (was {entry['was']})" if entry.get("was") else ""
        lines.append(
            f"    {entry.get('at', '?')}  {entry.get('reason', '?'):24s} version {entry['version']}{was}"
        )
    return lines


def _drift_lines(drift: dict | None) -> list[str]:
    if drift is None:
        return ["  last drift check: none (`pipelines check` checks a landed span)"]
    drifted = ", ".join(drift["drifted_features"]) or "none"
    return [
        f"  last drift check: span {drift['span']} at {drift['checked_at']}: {drift['decision']}",
        f"    drifted features: {drifted}",
        *_nearest_drift_lines(drift),
        f"    {drift['reason']}",
        *_quality_lines(drift.get("quality")),
        *_age_lines(drift.get("age")),
        f"    reports: {drift['reports']}",
    ]


def _nearest_drift_lines(drift: dict) -> list[str]:
    """The feature nearest to drifting: what a feature must pass is its threshold and the noise floor
    of a span of that many rows (older reports have no floor)."""

    def limit(feature: dict) -> float:
        return max(feature["threshold"], feature.get("noise_floor") or 0.0)

    measured = [feature for feature in drift.get("drift") or [] if limit(feature) > 0]
    if not measured:
        return []
    nearest = max(measured, key=lambda feature: feature["value"] / limit(feature))
    floor = nearest.get("noise_floor")
    return [
        f"    nearest its limit: {nearest['feature']} {nearest['value']:.4f} (threshold "
        f"{nearest['threshold']:g}"
        + ("" if floor is None else f", noise floor {floor:.4f}")
        + f" at {drift.get('rows')} rows)"
    ]


def _quality_lines(quality: dict | None) -> list[str]:
    """The model in service on the checked span's labels against its blessed test figure."""
    if quality is None:
        return []
    if quality.get("value") is None:
        return [f"    quality on the span: not measured: {quality.get('reason', '')}"]
    low, high = quality["interval"]
    return [
        f"    quality on the span: {quality['metric']} {quality['value']:.4f} (95% interval {low:.4f} to "
        f"{high:.4f}, {quality['rows']} rows) vs {quality['blessed']:.4f} blessed: {quality['decision']}"
    ]


def _age_lines(age: dict | None) -> list[str]:
    if age is None:
        return []
    limit = age.get("max_age_days")
    return [
        f"    model age: {age['age_days']:.1f} days (version {age['version']}, pushed {age['pushed_at']}; "
        f"retrain.max_age_days {'none' if limit is None else format(limit, 'g')})"
        + (": retrain" if age.get("retrain") else "")
    ]


def _run_lines(run: dict | None) -> list[str]:
    if run is None:
        return ["  last run:   none recorded in ML Metadata"]
    if run["failed"]:
        verdict = f"failed at {', '.join(run['failed'])}"
    elif run["blessed"]:
        verdict = "blessed"
    else:
        verdict = "not blessed"
    pushed = f"pushed version {run['pushed_version']}" if run["pushed_version"] else "pushed nothing new"
    lines = [f"  last run:   {run['run_id']}: {verdict}, {pushed}; metrics {_figures(run['metrics'])}"]
    lines += [f"    - {reason}" for reason in run["why_not_blessed"]]
    if run["report"]:
        lines.append(f"  report:     {run['report']}")
    return lines


def text(report: dict) -> str:
    if not report["models"]:
        return f"No model under {report['home']}: `pipelines run --config SPEC` trains and pushes one."
    blocks = []
    for model in report["models"]:
        lines = [f"Model '{model['model']}'"]
        lines += (
            _serving_lines(model["serving"]) + _drift_lines(model["drift"]) + _run_lines(model["last_run"])
        )
        if model.get("annotations"):
            lines.append(f"  last annotations: {model['annotations']['summary']}")
        lines.append(f"  serving folder: {model['serving_dir']}; metadata: {model['metadata']}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
