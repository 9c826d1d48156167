"""A training run's note and a DAG's docs, from a run summary and a spec (no Airflow run: the e2e tests in
tests/e2e/test_airflow_dags.py check the notes of real runs)."""

from __future__ import annotations

from components.core.spec import load_spec
from pipelines.airflow import model_notes
from pipelines.paths import RunPaths
from pipelines.workflow.errors import innermost_message
from pipelines.workflow.results import RunSummary
from tests.helpers.data import TAXI_SPEC

SPEC = load_spec(TAXI_SPEC, check_data=False)


def summary(**fields) -> RunSummary:
    found = RunSummary(pipeline_name="blueprint-taxi", run_id="manual__1", states={"Trainer": "COMPLETE"})
    for name, value in fields.items():
        setattr(found, name, value)
    return found


def test_a_model_that_is_not_blessed_says_why_and_that_nothing_was_pushed():
    run = summary(
        metrics={"auc": 0.61},
        blessed=False,
        validation_failures=["auc: 0.6100 fails the threshold (at least 0.9)"],
        power_message="no statistical power: the model does not beat the dumb baseline",
        report_path="build/pipelines/taxi/Report/report/9/report.html",
    )
    note = model_notes.result_note(SPEC, run, span=None, reason="manual run")
    assert note.splitlines() == [
        "Not blessed: test auc 0.6100 (goal auc >= 0.9): auc: 0.6100 fails the threshold (at least 0.9); "
        "no statistical power: the model does not beat the dumb baseline.",
        "Nothing pushed.",
        "Report: build/pipelines/taxi/Report/report/9/report.html",
        "Reason: manual run",
    ]


def test_a_cached_push_keeps_the_version_in_service():
    run = summary(metrics={"auc": 0.93}, blessed=True, pushed=True, pushed_version="7")
    run.states["Pusher"] = "CACHED"
    note = model_notes.result_note(SPEC, run, span=None, reason=None)
    assert note.splitlines()[1] == "Nothing new pushed: version 7 stays in service."


def test_a_run_without_a_record_does_not_pass_for_an_ingest_only_one():
    assert model_notes.result_note(SPEC, None, span=3, reason=None).startswith("Finished, but ML Metadata")


def test_a_failed_runs_note_names_each_failed_task_and_fits_airflows_column():
    note = model_notes.failure_note([("ExampleValidator", "bad data " * 100), ("Evaluator", "out of memory")])
    assert note.startswith("Failed at ExampleValidator: bad data") and "| Failed at Evaluator: out of" in note
    assert len(model_notes.failure_note([("Trainer", "x" * 5000)] * 5)) == model_notes.NOTE_LIMIT


def test_the_innermost_message_of_a_chain_is_kept():
    try:
        try:
            raise ValueError("column 'fare' holds text")
        except ValueError as error:
            raise RuntimeError("executor failed") from error
    except RuntimeError as error:
        assert innermost_message(error) == "column 'fare' holds text"
    assert innermost_message(None) == "no message"


def test_the_docs_of_a_model_with_nothing_in_service(tmp_path):
    doc = model_notes.model_doc(SPEC, RunPaths.for_spec("taxi", tmp_path))
    assert "| metric | `auc` >= 0.9 on the test split, and beat the dumb baseline |" in doc
    assert "| training | on demand (*Trigger DAG w/ config*) |" in doc
    assert "| monitoring | none (no spans) |" in doc
    assert "| in service | nothing yet: no version has been pushed |" in doc
    assert not (tmp_path / "metadata").exists(), "reading the docs created ML Metadata"
