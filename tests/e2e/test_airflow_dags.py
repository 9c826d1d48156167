"""The Airflow DAGs on real Airflow (`DAG.test()`, SQLite): integrity, one DAG file for every spec (a
broken spec is its own import error), training, drift, bad data, arrival, each run's note, the DAG's docs.

One landing zone is replayed in order: span 1 is refused by the training DAG until the monitoring DAG
has checked it, then trains the first model; span 2 (same distribution) is only ingested; span 3 (fare
tripled) and span 4 (payment mix changed) trigger training with the reason; span 5 lands between span 4's
check and its training run, which trains on a window that includes span 4 and not the unchecked span 5;
spans 5 and 6 land between two polls and are both checked and ingested, in order; bad data fails loudly,
once.
"""

from __future__ import annotations

import json
import random
from argparse import Namespace
from pathlib import Path

import pytest
import yaml

from components.core.sources import write_table
from components.core.spec import load_spec
from pipelines.airflow.dags import CONFIG_VARIABLE, NOTE_TASK, spec_files
from pipelines.airflow.replay import ReplayAirflow
from pipelines.paths import RunPaths
from pipelines.workflow import landing, monitoring, results, scoring
from pipelines.workflow.training import pipeline_name
from tests.helpers.data import REPO_ROOT
from tests.helpers.pipeline_runs import COMPONENT_NODES, serving_snapshot, versions, write_taxi_spec

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def airflow_db():
    from airflow.utils import db

    db.initdb()


@pytest.fixture(scope="module")
def pool(taxi_rows):
    """6,000 trips drawn at random (the file is not in random order), split into disjoint spans."""
    header, rows = taxi_rows
    return header, random.Random(7).sample(rows, 6000)


@pytest.fixture(scope="module")
def stream(tmp_path_factory, pool, airflow_db):
    """A spanned taxi spec, its paths, and its two DAGs registered in Airflow's database."""
    root = tmp_path_factory.mktemp("stream")
    spec_file = write_taxi_spec(root / "config", root / "landing" / "span-{SPAN}" / "*.csv")
    raw = yaml.safe_load(spec_file.read_text())
    raw["data"]["window_spans"] = 3
    raw["schedule"] = {"retries": 0}  # a failing task fails the test now, not after a retry delay
    spec_file.write_text(yaml.safe_dump(raw))
    spec = load_spec(spec_file, check_data=False)
    home = root / "home"
    return spec, RunPaths.for_spec(spec.name, home), ReplayAirflow(spec, home), root


def land(stream, name: str, header: list[str], rows: list[dict]) -> int:
    spec, _, _, root = stream
    return landing.land_span(spec, [write_table(root / "incoming" / name / "data.csv", header, rows)])


@pytest.fixture(scope="module")
def triggered() -> dict:
    """Training confs one test leaves for a later one."""
    return {}


def latest_report(paths: RunPaths, span: int) -> dict:
    return monitoring.reports(paths.monitoring_dir, span)[-1]


def ingested_spans(paths: RunPaths) -> set[int]:
    store = results.open_store(paths.metadata_config())
    return {results.span_of(artifact) for artifact in store.get_artifacts_by_type("Examples")}


def last_run(dag_id: str) -> tuple[str, str | None, str]:
    """The state, note and run id of the DAG's newest run."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).first()
        return run.state, run.note, run.run_id


def test_one_dag_file_builds_the_dags_of_every_spec_quickly_and_cleanly(airflow_db, monkeypatch):
    from airflow.models import DagBag

    monkeypatch.delenv(CONFIG_VARIABLE, raising=False)
    assert [path.name for path in (REPO_ROOT / "dags").glob("*.py")] == ["blueprint.py"]
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"), include_examples=False)
    assert bag.import_errors == {}
    specs = [load_spec(path, check_data=False) for path in spec_files(REPO_ROOT / "config")]
    assert {spec.name for spec in specs} >= {"taxi", "taxi_replay"}
    assert {f"blueprint-{spec.name}" for spec in specs} <= set(bag.dag_ids), "a spec without its DAG"
    assert "blueprint-taxi_replay-monitoring" in bag.dag_ids
    for stat in bag.dagbag_stats:
        assert stat.duration.total_seconds() < 30, f"{stat.file} took {stat.duration} to import"
    training = bag.get_dag("blueprint-taxi")
    assert training.catchup is False and training.max_active_runs == 1
    assert training.default_args["retries"] >= 1
    assert {"epochs", "steps_per_epoch", "reason"} <= set(training.params)
    assert {"window_spans", "train"} <= set(bag.get_dag("blueprint-taxi_replay").params)


def test_a_broken_spec_is_its_own_import_error_and_the_other_dags_load(
    tmp_path, taxi_slice, airflow_db, monkeypatch, capsys
):
    """What the UI and the REST API show is the DAG processor's record (`ParseImportError`), which the
    real processor writes here; `airflow dags list-import-errors` parses the folder itself."""
    import logging

    from airflow.cli.commands.dag_command import dag_list_import_errors
    from airflow.dag_processing.processor import DagFileProcessor
    from airflow.models import DagBag, DagModel
    from airflow.models.errors import ParseImportError
    from airflow.utils.session import create_session

    config = tmp_path / "config"
    write_taxi_spec(config, taxi_slice, name="good").rename(config / "good.yaml")
    broken = write_taxi_spec(config, taxi_slice, name="wine", task="ranking").rename(config / "wine.yaml")
    twin = write_taxi_spec(config, taxi_slice, name="good").rename(config / "twin.yml")
    write_taxi_spec(config, taxi_slice, name="draft", task="ranking").rename(config / "_draft.yaml")
    monkeypatch.setenv(CONFIG_VARIABLE, str(config))
    dag_file = str(REPO_ROOT / "dags" / "blueprint.py")

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"), include_examples=False)
    assert set(bag.import_errors) == {str(broken), str(twin)}, "the draft is skipped, each failure is its own"
    assert f"{broken}: field 'task': unknown task type 'ranking'" in bag.import_errors[str(broken)]
    assert "good.yaml already builds the DAG blueprint-good" in bag.import_errors[str(twin)]
    assert set(bag.dag_ids) == {"blueprint-good"} and bag.get_dag("blueprint-good").fileloc == dag_file

    processor = DagFileProcessor(dag_ids=None, dag_directory=str(REPO_ROOT / "dags"), log=logging.getLogger())
    assert processor.process_file(dag_file, callback_requests=[])[:2] == (1, 2)
    with create_session() as session:
        recorded = {e.filename: e.stacktrace for e in session.query(ParseImportError)}
        model = session.query(DagModel).filter(DagModel.dag_id == "blueprint-good").one()
        assert (model.is_active, model.has_import_errors) == (True, False), "the good DAG can be scheduled"
    assert "unknown task type 'ranking'" in recorded[str(broken)] and dag_file not in recorded

    with pytest.raises(SystemExit):
        dag_list_import_errors(Namespace(subdir=str(REPO_ROOT / "dags"), output="json", verbose=False))
    listed = {entry["filepath"]: entry["error"] for entry in json.loads(capsys.readouterr().out)}
    assert set(listed) == {str(broken), str(twin)}
    assert "field 'task'" in listed[str(broken)]


def test_training_dag_tasks_follow_the_pipeline(stream):
    from pipelines.airflow.dags import CHOOSE_SPAN_TASK, TRAINING_GATE, training_dag
    from pipelines.workflow.training import create_pipeline

    spec, paths, _, root = stream
    dag = training_dag(spec, root / "home")
    components = create_pipeline(spec, paths).components
    assert set(dag.task_ids) == {c.id for c in components} | {TRAINING_GATE, CHOOSE_SPAN_TASK, NOTE_TASK}
    assert set(COMPONENT_NODES) <= set(dag.task_ids)
    note = dag.get_task(NOTE_TASK)
    assert note.trigger_rule == "all_done" and not note.downstream_task_ids
    assert note.get_flat_relative_ids(upstream=True) == set(dag.task_ids) - {NOTE_TASK}, "not the last task"
    for component in components:
        upstream = dag.get_task(component.id).upstream_task_ids - {TRAINING_GATE, CHOOSE_SPAN_TASK}
        assert upstream == {node.id for node in component.upstream_nodes}, component.id
    assert dag.get_task(TRAINING_GATE).upstream_task_ids == {"CsvExampleGen"}
    assert dag.get_task("CsvExampleGen").upstream_task_ids == {CHOOSE_SPAN_TASK}
    assert dag.get_task(TRAINING_GATE).downstream_task_ids == {"span_window_resolver"}
    order = [task.task_id for task in dag.topological_sort()]
    assert order.index("span_window_resolver") < order.index("Transform") < order.index("Trainer")
    assert order.index("Evaluator") < order.index("ModelExporter") < order.index("Pusher")


def test_the_dags_docs_show_the_model_not_the_code(stream):
    from pipelines.airflow.dags import monitoring_dag, training_dag

    spec, _, _, root = stream
    doc = training_dag(spec, root / "home").doc_md
    assert doc.startswith(f"## {spec.name}\n\n{spec.description}\n") and "pipelines/" not in doc
    assert "| label | `big_tipper` |" in doc and "| task | binary |" in doc
    assert "| metric | `auc` >= 0.7 on the test split, and beat the dumb baseline |" in doc
    assert (
        "| training | on demand (*Trigger DAG w/ config*), when the monitoring DAG finds a new span |" in doc
    )
    assert "| monitoring | `@daily` |" in doc
    assert "| in service | nothing yet: no version has been pushed |" in doc
    assert "checks each new span" in monitoring_dag(spec, root / "home").doc_md


def test_training_dag_trains_and_pushes_with_the_form_values(stream, pool):
    header, rows = pool
    spec, paths, airflow, _ = stream
    assert land(stream, "first", header, rows[:2500]) == 1
    refused = airflow.train_task_states({"epochs": 2, "reason": "before any check"})
    assert refused["choose_span"] == "failed" and refused["CsvExampleGen"] == "upstream_failed"
    state, note, _ = last_run(pipeline_name(spec))
    assert state == "failed" and refused[NOTE_TASK] == "failed", "the note task keeps a failed run failed"
    assert note.startswith("Failed at choose_span: no landed span has passed the bad-data and drift check")
    assert ingested_spans(paths) == set(), "a span the monitoring DAG has not checked was ingested"
    state, queued = airflow.check()
    assert state == "success" and queued == [{"span": 1, "train": True, "reason": queued[0]["reason"]}]
    assert latest_report(paths, 1)["decision"] == monitoring.FIRST_MODEL
    assert airflow.train({"epochs": 2, "reason": "first model"}) == "success", "the newest checked span"
    assert len(versions(paths.serving_dir)) == 1
    production = results.production_model(results.open_store(paths.metadata_config()), "blueprint-taxi")
    assert production.spans == [1]
    history = json.loads(
        (Path(production.model_uri).parent.parent / "model_run").glob("*/history.json").__next__().read_text()
    )
    assert len(history["loss"]) == 2, "the trigger form's epochs did not reach the Trainer"
    state, note, run_id = last_run(pipeline_name(spec))
    run = results.run_summary(paths.metadata_config(), pipeline_name(spec), run_id)
    version = versions(paths.serving_dir)[0]
    assert state == "success" and note.startswith(
        f"Blessed: test auc {run.metrics['auc']:.4f} (goal auc >= 0.7)"
    )
    assert f"Pushed version {version} to {paths.serving_dir / version}." in note
    assert f"Report: {run.report_path}" in note and Path(run.report_path).is_file()
    assert "span 1" in note and note.endswith("Reason: first model")


def test_the_dags_docs_show_the_version_in_service_and_its_report(stream):
    from pipelines.airflow.dags import training_dag

    spec, paths, _, root = stream
    run = results.run_summary(paths.metadata_config(), pipeline_name(spec), last_run(pipeline_name(spec))[2])
    doc = training_dag(spec, root / "home").doc_md
    version = versions(paths.serving_dir)[0]
    assert (
        f"| in service | version {version} (since " in doc and f"test auc {run.metrics['auc']:.4f} |" in doc
    )
    assert f"| report | `{run.report_path}` |" in doc


def test_status_shows_the_version_airflow_pushed_with_its_run(stream):
    """TFX's Airflow launcher gives executors no run id (the manifest has none): `status` finds the run
    that pushed the version through ML Metadata, and the newest run among Airflow's."""
    from pipelines.ops import status

    spec, paths, _, _ = stream
    run_id = last_run(pipeline_name(spec))[2]
    run = results.run_summary(paths.metadata_config(), pipeline_name(spec), run_id)
    report = status.model_status(spec.name, paths.home)
    version = versions(paths.serving_dir)[0]
    assert report["serving"]["version"] == int(version) and report["serving"]["run_id"] is None
    assert report["serving"]["metrics"] == run.metrics and report["serving"]["report"] == run.report_path
    assert report["last_run"]["run_id"] == run.run_id and report["last_run"]["pushed_version"] == version


def test_a_span_from_the_same_distribution_is_ingested_without_retraining(stream, pool):
    header, rows = pool
    spec, paths, airflow, _ = stream
    served = serving_snapshot(paths.serving_dir)
    span = land(stream, "same", header, rows[2500:4000])
    state, queued = airflow.check()
    assert state == "success"
    report = latest_report(paths, span)
    assert report["decision"] == monitoring.NO_DRIFT, report["reason"]
    assert report["drift"] and not report["drifted_features"]
    assert len(queued) == 1 and queued[0]["train"] is False and queued[0]["span"] == span
    summaries = list(paths.monitoring_dir.glob(f"span-{span:04d}-*.txt"))
    assert summaries and "no feature drifted" in summaries[0].read_text()
    states = airflow.train_task_states(queued[0])
    assert states["CsvExampleGen"] == "success" and states["ExampleValidator"] == "success"
    gated = ("span_window_resolver", "Transform", "Trainer", "ModelExporter", "Pusher")
    assert {states[task] for task in gated} == {"skipped"}
    assert span in ingested_spans(paths), "the accepted span is in MLMD for later windows"
    state, note, _ = last_run(pipeline_name(spec))
    assert state == "success" and states[NOTE_TASK] == "success"
    assert note.startswith(
        f"Ingested span {span} without training (train off): nothing trained, nothing pushed."
    )
    assert serving_snapshot(paths.serving_dir) == served


def test_a_shifted_numeric_feature_triggers_training_with_the_reason(stream, pool):
    header, rows = pool
    _, paths, airflow, _ = stream
    shifted = [dict(row, fare=f"{float(row['fare'] or 0) * 3:.2f}") for row in rows[4000:5000]]
    span = land(stream, "fare", header, shifted)
    state, queued = airflow.check()
    assert state == "success"
    report = latest_report(paths, span)
    assert report["decision"] == monitoring.RETRAIN and "fare" in report["drifted_features"]
    assert len(queued) == 1 and "fare" in queued[0]["reason"] and queued[0]["span"] == span
    assert queued[0]["train"] is True
    # Only ingested here, to keep the suite short: the next test trains on a window that holds it.
    assert airflow.train(dict(queued[0], train=False)) == "success"


def test_a_changed_category_mix_triggers_training(stream, pool, triggered):
    header, rows = pool
    _, paths, airflow, _ = stream
    mixed = [
        dict(row, payment_type="Credit Card" if i % 10 < 8 else row["payment_type"])
        for i, row in enumerate(rows[5000:6000])
    ]
    span = land(stream, "mix", header, mixed)
    state, queued = airflow.check()
    assert state == "success"
    report = latest_report(paths, span)
    assert "payment_type" in report["drifted_features"]
    assert "fare" not in report["drifted_features"]
    assert len(queued) == 1 and "payment_type" in queued[0]["reason"]
    triggered["after_mix"] = queued[0]


def test_the_triggered_run_trains_on_the_checked_span_not_on_a_later_one(stream, pool, triggered):
    header, rows = pool
    _, paths, airflow, _ = stream
    late = land(stream, "late", header, rows[2500:3300])  # after span 4's check, before its training run
    assert airflow.train(triggered["after_mix"]) == "success"
    trained = results.newest_model(results.open_store(paths.metadata_config()))
    assert trained.spans == [2, 3, 4], "the rolling window is the newest 3 checked spans"
    assert late not in ingested_spans(paths), "a span landed after the check was ingested unchecked"
    triggered["late"] = late


def test_spans_landed_between_two_polls_are_all_checked_and_ingested_in_order(stream, pool, triggered):
    header, rows = pool
    _, paths, airflow, _ = stream
    later = land(stream, "later", header, rows[3300:4000])
    state, queued = airflow.check()
    assert state == "success"
    assert [conf["span"] for conf in queued] == [triggered["late"], later], "one run per span, in order"
    assert all(monitoring.reports(paths.monitoring_dir, conf["span"]) for conf in queued)
    for conf in queued:
        assert airflow.train(dict(conf, train=False)) == "success"
    store = results.open_store(paths.metadata_config())
    ingested = sorted(store.get_artifacts_by_type("Examples"), key=lambda artifact: artifact.id)
    assert [results.span_of(a) for a in ingested][-2:] == [triggered["late"], later]


def test_a_category_never_seen_in_training_is_accepted_with_a_warning(stream, pool):
    header, rows = pool
    spec, paths, _, _ = stream
    served = serving_snapshot(paths.serving_dir)
    novel = [dict(row, company="Blueprint Cabs") if i % 3 == 0 else row for i, row in enumerate(rows[:900])]
    report = monitoring.check_span(spec, paths, land(stream, "novel", header, novel))
    assert report.decision != monitoring.BAD_DATA and not report.schema_anomalies
    # A third of the rows: the most frequent unseen value (rarer companies of span 1 are unseen too).
    assert report.unseen_categories["company"][0] == "Blueprint Cabs"
    warning = next(line for line in report.summary().splitlines() if "WARNING company" in line)
    assert "never seen in training ('Blueprint Cabs'" in warning
    production = results.production_model(results.open_store(paths.metadata_config()), pipeline_name(spec))
    assert scoring.score_rows(spec, production, novel) > 0.8, "the served model still scores the rows"
    assert serving_snapshot(paths.serving_dir) == served


def test_bad_data_stops_monitoring_triggers_nothing_and_keeps_the_served_model(stream, pool):
    header, rows = pool
    _, paths, airflow, _ = stream
    served = serving_snapshot(paths.serving_dir)
    bad_header = [column for column in header if column != "big_tipper"]
    bad_rows = [
        {k: ("n/a" if k == "fare" else v) for k, v in row.items() if k != "big_tipper"} for row in rows[:500]
    ]
    span = land(stream, "bad", bad_header, bad_rows)
    state, queued = airflow.check()
    assert state == "failed"
    report = latest_report(paths, span)
    assert report["decision"] == monitoring.BAD_DATA
    assert {"fare", "big_tipper"} <= set(report["schema_anomalies"])
    assert queued == []
    assert serving_snapshot(paths.serving_dir) == served
    assert monitoring.spans_to_check(stream[0], paths) == [], "a bad span is reported once, not every poll"


def test_a_span_folder_without_files_is_bad_data(stream):
    spec, paths, _, _ = stream
    span = landing.newest_span(spec) + 1
    landing.span_folder(spec, span).mkdir(parents=True)
    with pytest.raises(monitoring.BadSpanError, match=f"span {span} .* holds no files"):
        monitoring.check_span(spec, paths, span)
    assert latest_report(paths, span)["decision"] == monitoring.BAD_DATA
