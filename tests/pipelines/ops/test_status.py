"""`pipelines status` on the session's every-target run (tests/conftest.py::every_target_run): the version in
service with its targets, metrics, spans and history, then the drift check a user runs with `land` and
`check`, and the last run; as text and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.core import models_config
from components.core.sources import write_table
from pipelines.ops import cli
from pipelines.workflow import monitoring
from tests.helpers.pipeline_runs import write_taxi_spec

GROUP = pytest.mark.xdist_group("test_deployment")


def _status(every_target_run, capsys, *options: str) -> str:
    run = every_target_run
    assert cli.main(["status", "--config", str(run.spec_path), "--home", str(run.paths.home), *options]) == 0
    return capsys.readouterr().out


@pytest.mark.e2e
@GROUP
def test_the_text_shows_the_version_in_service_its_targets_history_and_last_run(every_target_run, capsys):
    run = every_target_run
    version = run.summary.pushed_version
    text = _status(every_target_run, capsys)
    assert text.startswith("Model 'taxi'\n")
    assert f"  in service: version {version} since " in text
    assert f"{run.paths.serving_dir / version}" in text
    assert f"auc {run.summary.metrics['auc']:.4f}" in text and "  spans:      0\n" in text
    for target in (
        "serving",
        "tflite-float32",
        "tflite-dynamic",
        "tflite-int8",
        "tfjs-float32",
        "tfjs-uint8",
    ):
        assert f"\n    {target} " in text, target
    assert (
        "history (1 change(s), newest last):" in text
        and f"push                     version {version}" in text
    )
    assert f"  last run:   {run.summary.run_id}: blessed, pushed version {version}" in text
    assert f"  report:     {run.summary.report_path}" in text


@pytest.mark.e2e
@GROUP
def test_json_has_the_drift_check_after_one_lands(every_target_run, taxi_rows, tmp_path, capsys):
    """A span of 2016 trips lands and is checked against the model in service, as a user does it."""
    header, rows = taxi_rows
    run = every_target_run
    spanned = write_taxi_spec(tmp_path / "config", tmp_path / "landing" / "span-{SPAN}" / "*.csv")
    home = ["--config", str(spanned), "--home", str(run.paths.home)]
    trips = write_table(tmp_path / "incoming" / "trips.csv", header, rows[-1500:])
    assert cli.main(["land", "--config", str(spanned), str(trips)]) == 0
    assert cli.main(["check", *home]) == 0
    assert "Drift check of span 1 for model 'taxi'" in capsys.readouterr().out
    (check,) = monitoring.reports(run.paths.monitoring_dir)

    status = json.loads(_status(every_target_run, capsys, "--json"))
    assert status["home"] == str(run.paths.home)
    (model,) = status["models"]
    serving = model["serving"]
    version = int(run.summary.pushed_version)
    assert model["model"] == "taxi" and serving["version"] == version
    assert serving["spans"] == [0] and serving["metrics"] == pytest.approx(run.summary.metrics)
    assert serving["report"] == run.summary.report_path and Path(serving["report"]).is_file()
    assert {t["name"] for t in serving["targets"] if t["pushed"]} >= {"serving", "tflite-int8", "tfjs-uint8"}
    assert all(Path(t["file"]).exists() for t in serving["targets"])
    current = models_config.read_current(run.paths.serving_dir.parent, "taxi")
    assert serving["history"] == current["history"] and serving["history"][-1]["reason"] == "push"
    drift = model["drift"]
    assert drift["span"] == 1 and drift["checked_at"] == check["checked_at"]
    assert drift["decision"] == check["decision"] and drift["reason"] == check["reason"]
    assert drift["drifted_features"] == check["drifted_features"]
    assert drift["production_version"] == str(version)
    last = model["last_run"]
    assert last["run_id"] == run.summary.run_id and last["blessed"] is True and last["failed"] == []
    assert last["pushed_version"] == str(version)

    text = _status(every_target_run, capsys)
    assert f"  last drift check: span 1 at {check['checked_at']}: {check['decision']}" in text
    assert f"    drifted features: {', '.join(check['drifted_features']) or 'none'}" in text


def test_a_home_without_models_says_how_to_get_one(tmp_path, capsys):
    assert cli.main(["status", "--home", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == (
        f"No model under {tmp_path.resolve()}: `pipelines run --config SPEC` trains and pushes one."
    )
    assert list(tmp_path.iterdir()) == [], "status writes nothing"


def test_a_model_never_run_has_nothing_in_service_and_no_run(tmp_path, capsys):
    spec = write_taxi_spec(tmp_path / "config", tmp_path / "data.csv")
    assert cli.main(["status", "--config", str(spec), "--home", str(tmp_path / "home"), "--json"]) == 0
    (status,) = json.loads(capsys.readouterr().out)["models"]
    assert status["model"] == "taxi"
    assert (status["serving"], status["drift"], status["last_run"]) == (None, None, None)
    assert not (tmp_path / "home").exists(), "status writes nothing"
