"""`pipelines run` on a spanned spec: the CLI (TFX's LocalDagRunner) trains on the window of newest spans.

The Airflow path runs the same window resolver (tests/e2e/test_airflow_dags.py); this one runs it through the
portable launcher, which once refused it ('A node must be system node or have an executor'). The first
run goes through the same LocalDagRunner in the test's process (no second start-up of TensorFlow); the
one that trains on the window is the command a user types.

Between the two runs, span 2 is audited (`pipelines audit`: a random sample and the rows the first model
is least sure about), "annotated" with the trips' real labels and landed back (`pipelines land
--annotations`) as span 3: the second run ingests it, so its window is spans 1 and 3 and its report shows
the first model's agreement with the annotators.

The home those two runs leave (a pushed model trained on spans 1 and 3) then serves the checks of the
model in service on new labelled spans (`pipelines check`): its quality on the span's labels against the
test metric it was blessed with, and its age. Each check takes seconds; no other run is made.
"""

from __future__ import annotations

import csv
import datetime
import json
import random
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from components.core import annotations, models_config
from components.core.sources import write_table
from components.core.spec import ProblemSpec, load_spec
from pipelines.ops import audit, cli, predict, status
from pipelines.ops.cli import run_training
from pipelines.paths import RunPaths, pipeline_name
from pipelines.workflow import landing, monitoring, quality, results
from tests.helpers.data import REPO_ROOT
from tests.helpers.pipeline_runs import cli_run, versions, write_taxi_spec

pytestmark = pytest.mark.e2e

SPAN_ROWS = 1200
LABEL = "big_tipper"
FLIPPED_SHARE = 0.4
AUDITED = slice(SPAN_ROWS, 2 * SPAN_ROWS)  # span 2, audited by the first model
AUDIT_FRACTION, AUDIT_HARDEST = 0.2, 40
LEFT_UNANNOTATED = 5  # audit rows the "annotators" leave empty: not landed


@dataclass(frozen=True)
class SpannedHome:
    """The home after both runs, with what each run left."""

    spec_path: Path
    spec: ProblemSpec
    paths: RunPaths
    header: list[str]
    rows: list[dict[str, str]]  # the trips the spans are cut from, in random order
    first_pushed: bool
    spans_after_first: list[int]
    versions_after_first: int
    second: subprocess.CompletedProcess
    spans_after_second: list[int]
    audit_file: Path  # `pipelines audit` of span 2 by the first model
    annotated_file: Path  # the same file with the trips' real labels filled in

    def land(self, name: str, rows: list[dict[str, str]]) -> int:
        csv = write_table(self.paths.home.parent / "incoming" / name / "data.csv", self.header, rows)
        return landing.land_span(self.spec, [csv])


@pytest.fixture(scope="module")
def spanned(tmp_path_factory, taxi_rows) -> SpannedHome:
    """Spans of trips drawn at random: the file is ordered (a file-order chunk holds a handful of pickup
    places), so only random draws give later spans the distribution the model was trained on."""
    header, rows = taxi_rows
    rows = random.Random(25).sample(rows, 5 * SPAN_ROWS)
    root = tmp_path_factory.mktemp("spanned")
    spec_path = write_taxi_spec(root / "config", root / "landing" / "span-{SPAN}" / "*.csv")
    raw = yaml.safe_load(spec_path.read_text())
    raw["data"]["window_spans"] = 2
    spec_path.write_text(yaml.safe_dump(raw))
    spec = load_spec(spec_path, check_data=False)
    paths = RunPaths.for_spec(spec.name, root / "home")
    home = SpannedHome(spec_path, spec, paths, header, rows, False, [], 0, None, [], None, None)

    def trained_spans() -> list[int]:
        return results.newest_model(results.open_store(paths.metadata_config())).spans

    assert home.land("1", rows[:SPAN_ROWS]) == 1
    first = run_training(spec, paths.home)
    after_first = (first.pushed_new, trained_spans(), len(versions(paths.serving_dir)))
    assert home.land("2", rows[AUDITED]) == 2
    audit_file, annotated_file = root / "audit" / "span-2.csv", root / "audit" / "span-2-annotated.csv"
    common = ["--config", str(spec_path), "--home", str(paths.home)]
    assert (
        cli.main(
            ["audit", *common, "--span", "2", "--output", str(audit_file)]
            + ["--fraction", str(AUDIT_FRACTION), "--hardest", str(AUDIT_HARDEST)]
        )
        == 0
    )
    annotate(audit_file, rows[AUDITED], annotated_file)
    assert cli.main(["land", *common, "--annotations", str(annotated_file)]) == 0
    second = cli_run(spec_path, paths.home)
    return SpannedHome(
        spec_path,
        spec,
        paths,
        header,
        rows,
        *after_first,
        second,
        trained_spans(),
        audit_file,
        annotated_file,
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def annotate(audit_file: Path, span_rows: list[dict[str, str]], out: Path) -> None:
    """What annotators do: the label of each audit row (here the trip's real one), a few rows left empty."""
    audit_rows = read_csv(audit_file)
    for index, row in enumerate(audit_rows):
        if index >= LEFT_UNANNOTATED:
            row[LABEL] = span_rows[int(row[audit.AUDIT_ROW])][LABEL]
    write_table(out, list(audit_rows[0]), audit_rows)


def test_the_cli_trains_on_the_newest_spans(spanned):
    assert spanned.first_pushed
    assert spanned.spans_after_first == [1]
    assert spanned.versions_after_first == 1
    assert spanned.second.returncode == 0, spanned.second.stderr[-3000:]
    # ExampleGen ingests only the newest landed span (3: the annotated rows); the window adds the newest
    # ingested before it.
    assert spanned.spans_after_second == [1, 3]


# --- The annotation loop ------------------------------------------------------------------------------


def test_the_audit_holds_a_random_sample_and_the_rows_the_model_is_least_sure_about(spanned, tmp_path):
    audit_rows = read_csv(spanned.audit_file)
    assert list(audit_rows[0])[:5] == audit.AUDIT_COLUMNS
    assert all(row[LABEL] == "" for row in audit_rows), "annotators must not see the labels"
    first_version = min(models_config.versions(spanned.paths.serving_dir))
    assert {row[audit.MODEL_VERSION] for row in audit_rows} == {str(first_version)}
    sampled = {int(r[audit.AUDIT_ROW]) for r in audit_rows if r[audit.AUDIT_SAMPLE] == "yes"}
    hardest = {int(r[audit.AUDIT_ROW]) for r in audit_rows if r[audit.AUDIT_HARDEST] == "yes"}
    assert len(sampled) == round(AUDIT_FRACTION * SPAN_ROWS) and len(hardest) == AUDIT_HARDEST
    assert len(audit_rows) == len(sampled | hardest)
    # The model's own probabilities for every row of span 2 (`pipelines predict` with version 1).
    span_file = landing.landed_spans(spanned.spec)[2][0]
    scored = tmp_path / "scored.csv"
    predict.predict_file(spanned.spec, spanned.paths, Path(span_file), scored, version=first_version)
    margins = [abs(2 * float(row["probability_1"]) - 1) for row in read_csv(scored)]
    assert max(margins[i] for i in hardest) <= min(m for i, m in enumerate(margins) if i not in hardest)
    for row in audit_rows:
        assert abs(float(row[audit.MODEL_MARGIN]) - margins[int(row[audit.AUDIT_ROW])]) < 1e-5
    assert statistics.mean(margins[i] for i in hardest) < 0.2 < statistics.mean(margins)


def test_annotations_land_as_a_span_with_the_agreement_and_reach_the_next_window(spanned):
    annotated = read_csv(spanned.annotated_file)[LEFT_UNANNOTATED:]
    record = annotations.read_record(spanned.paths.monitoring_dir, 3)
    first_version = min(models_config.versions(spanned.paths.serving_dir))
    assert record["audited_span"] == 2 and record["version"] == first_version
    assert record["rows"] == len(annotated) and record["unlabelled_rows"] == LEFT_UNANNOTATED
    for group, flag in (("sample", audit.AUDIT_SAMPLE), ("hardest", audit.AUDIT_HARDEST)):
        rows = [row for row in annotated if row[flag] == "yes"]
        agreed = sum(row[f"predicted_{LABEL}"] == row[LABEL] for row in rows)
        figures = record["groups"][group]
        assert figures["rows"] == len(rows) and figures["agreed"] == agreed
        low, high = figures["interval"]
        assert figures["value"] == pytest.approx(agreed / len(rows)) and low < figures["value"] < high
        assert sum(part["rows"] for part in figures["per_class"].values()) == len(rows)
    assert record["groups"]["hardest"]["value"] < record["groups"]["sample"]["value"]
    # The span holds the annotated rows, with span 2's columns and the annotators' labels.
    landed = read_csv(landing.landed_spans(spanned.spec)[3][0])
    assert list(landed[0]) == spanned.header
    assert [row[LABEL] for row in landed] == [row[LABEL] for row in annotated]
    # The second run trained on it (MLMD lineage of the model in service) and its report shows the figure.
    model = results.newest_model(results.open_store(spanned.paths.metadata_config()))
    assert 3 in model.spans
    run = results.latest_run(spanned.paths.metadata_config(), pipeline_name(spanned.spec))
    report_dir = Path(run.report_path).parent
    shown = json.loads((report_dir / "report.json").read_text())["annotations"]
    assert [entry["span"] for entry in shown] == [3]
    assert shown[0]["groups"]["sample"]["value"] == record["groups"]["sample"]["value"]
    html = Path(run.report_path).read_text()
    assert "Annotated rows" in html and annotations.describe(record) in html
    assert annotations.describe(record) in status.text(status.status(spanned.paths.home))
    # Its check ingests it without judging drift or quality on hand-picked rows.
    report = monitoring.check_span(spanned.spec, spanned.paths, 3)
    assert report.decision == monitoring.NO_DRIFT and report.drift == [] and report.quality is None
    assert report.annotations == annotations.describe(record)


def test_a_bad_annotated_file_is_refused_naming_the_problem_and_nothing_lands(spanned, tmp_path, capsys):
    rows = read_csv(spanned.annotated_file)
    unknown = [dict(row, **{LABEL: "maybe"}) if i == LEFT_UNANNOTATED else row for i, row in enumerate(rows)]
    empty = [dict(row, **{LABEL: ""}) for row in rows]
    mixed = [dict(row, **{audit.MODEL_VERSION: "7"}) if i == 0 else row for i, row in enumerate(rows)]
    cases = {
        "unknown": (unknown, "big_tipper 'maybe' is not a class of the model (0, 1)"),
        "empty": (empty, "no row has a value in big_tipper"),
        "mixed": (mixed, "mixes rows of 2 audits"),
    }
    before = landing.landed_spans(spanned.spec)
    common = ["--config", str(spanned.spec_path), "--home", str(spanned.paths.home)]
    for name, (table, message) in cases.items():
        path = write_table(tmp_path / f"{name}.csv", list(rows[0]), table)
        assert cli.main(["land", *common, "--annotations", str(path)]) == cli.EXIT_FAILED
        assert message in capsys.readouterr().err, name
    raw_span = landing.landed_spans(spanned.spec)[2][0]
    assert cli.main(["land", *common, "--annotations", raw_span]) == cli.EXIT_FAILED
    assert "has no column 'audit_span', 'audit_row'" in capsys.readouterr().err
    assert landing.landed_spans(spanned.spec) == before
    assert annotations.read_records(spanned.paths.monitoring_dir, [max(before) + 1]) == []


# --- The model in service on new labelled spans ---------------------------------------------------------

UNSEEN = slice(3 * SPAN_ROWS, 4 * SPAN_ROWS)  # trips no model of the home trained on
# 150 trips no model trained on. The noise floor lets about 5% of same-distribution spans of 150 rows
# drift (python -m bench.drift_noise): the trips 4 * SPAN_ROWS + [0, 150) were one of them once the
# Trainer's shuffle changed the first model, its audit and so the reference (dropoff_longitude 0.173
# against a floor of 0.172), so the next 150 are used.
SMALL = slice(4 * SPAN_ROWS + 150, 4 * SPAN_ROWS + 300)


def flipped(rows: list[dict[str, str]], share: float, seed: int = 25) -> list[dict[str, str]]:
    """The rows with `share` of their labels flipped (0 <-> 1) and every feature untouched."""
    chosen = set(random.Random(seed).sample(range(len(rows)), round(share * len(rows))))
    return [
        dict(row, **{LABEL: str(1 - int(row[LABEL]))}) if index in chosen else row
        for index, row in enumerate(rows)
    ]


@pytest.fixture(scope="module")
def unseen_span(spanned) -> int:
    """A span of real trips from the same stream (features and labels as they are)."""
    return spanned.land("unseen", spanned.rows[UNSEEN])


def with_max_age(spec: ProblemSpec, days: float) -> ProblemSpec:
    return spec.model_copy(update={"retrain": spec.retrain.model_copy(update={"max_age_days": days})})


def test_a_same_distribution_span_does_not_retrain_for_quality(spanned, unseen_span):
    report = monitoring.check_span(spanned.spec, spanned.paths, unseen_span)
    assert report.decision == monitoring.NO_DRIFT, report.reason
    check = report.quality
    assert check is not None and check.decision == quality.KEEP, check
    assert check.rows == SPAN_ROWS and check.metric == "auc"
    low, high = check.interval
    assert low < check.value < high and high - low < 0.15
    assert abs(check.value - check.blessed) < spanned.spec.retrain.quality_drop + (high - low)
    assert check.blessed_from.startswith("Evaluator, test split")
    assert report.age is not None and report.age.max_age_days is None and not report.age.retrain
    assert report.reasons == []


def test_a_span_with_flipped_labels_retrains_for_quality_with_both_figures(spanned, unseen_span):
    """The same trips as the unseen span, 40% of their labels flipped: no feature moves, so only the
    model's quality on the labels can ask for retraining. Checked by `pipelines check` as a user runs it."""
    span = spanned.land("flipped", flipped(spanned.rows[UNSEEN], FLIPPED_SHARE))
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "check", "--config", str(spanned.spec_path)]
        + ["--home", str(spanned.paths.home), "--span", str(span)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = monitoring.reports(spanned.paths.monitoring_dir, span)[-1]
    same = monitoring.reports(spanned.paths.monitoring_dir, unseen_span)[-1]
    assert report["decision"] == monitoring.RETRAIN and report["drifted_features"] == []
    assert [d["value"] for d in report["drift"]] == [d["value"] for d in same["drift"]], "features moved"
    check = report["quality"]
    assert check["decision"] == quality.RETRAIN and check["retrain"]
    assert check["blessed"] == same["quality"]["blessed"]
    assert check["interval"][1] < check["blessed"] - spanned.spec.retrain.quality_drop
    assert check["drop"] > 0.2, "40% of labels flipped costs a real model far more than 0.05 of AUC"
    assert report["reasons"] == [check["reason"]]
    for figure in (check["value"], check["blessed"]):
        assert f"{figure:.4f}" in report["reason"] and f"{figure:.4f}" in done.stdout
    assert "retrain.quality_drop = 0.05" in report["reason"]
    assert "quality: auc" in done.stdout and "RETRAIN" in done.stdout

    shown = status.model_status(spanned.spec.name, spanned.paths.home)["drift"]
    assert shown["span"] == span and shown["quality"]["value"] == check["value"]
    text = status.text(status.status(spanned.paths.home))
    assert f"quality on the span: auc {check['value']:.4f}" in text
    assert f"vs {check['blessed']:.4f} blessed: retrain" in text


def test_a_small_same_distribution_span_does_not_retrain_on_sampling_noise(spanned, unseen_span):
    """150 trips: the quality interval is wide, and the check retrains only when all of it is beyond the
    limit; their features move past the spec's drift thresholds by chance, but not past the noise floor
    of 150 rows (random samples of the training data of that size), so nothing drifted."""
    span = spanned.land("small", spanned.rows[SMALL])
    report = monitoring.check_span(spanned.spec, spanned.paths, span)
    check = report.quality
    assert check.rows == 150 and check.decision == quality.KEEP, check
    low, high = check.interval
    same = monitoring.reports(spanned.paths.monitoring_dir, unseen_span)[0]
    wide_low, wide_high = same["quality"]["interval"]
    # About sqrt(8) = 2.8 times wider; 1.97 times for these 150 trips (the width varies with the sample).
    assert high - low > 1.5 * (wide_high - wide_low), "8 times fewer rows: a much wider interval"
    assert high >= check.limit
    assert not any("auc" in reason for reason in report.reasons)

    assert report.decision == monitoring.NO_DRIFT and report.drifted_features == [], report.reason
    over_threshold = [d for d in report.drift if d.value > d.threshold]
    assert over_threshold, "a threshold-only rule would have retrained on this span"
    assert all(d.noise_floor > d.value for d in over_threshold)
    noisy = [d for d in report.drift if d.noise_floor > d.threshold]
    assert noisy, "150 rows: some feature's noise floor is above the spec's threshold"
    floors = {d.feature: d.noise_floor for d in report.drift}
    assert sum(d["noise_floor"] for d in same["drift"]) < sum(floors.values()), "8 times more rows: lower"
    shown = monitoring.reports(spanned.paths.monitoring_dir, span)[-1]
    assert {d["feature"]: d["noise_floor"] for d in shown["drift"]} == floors
    assert f"(threshold {noisy[0].threshold:g}, noise floor {noisy[0].noise_floor:.4f})" in report.summary()
    assert "noise floor" in status.text(status.status(spanned.paths.home)).split("nearest its limit:")[1]


@contextmanager
def pushed_days_ago(paths: RunPaths, days: float) -> Iterator[str]:
    """The version in service as if pushed `days` ago: its manifest's `pushed_at`, and current.json's
    `since`, history entry and manifest copy, as that push would have written them. Restored after."""
    serving_root, model = paths.serving_dir.parent, paths.name
    version = models_config.current_versions(serving_root)[model]
    manifest_path = paths.serving_dir / str(version) / models_config.MANIFEST
    current_path = paths.serving_dir / models_config.CURRENT
    kept = {path: path.read_text() for path in (manifest_path, current_path)}
    then = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)
    manifest = json.loads(kept[manifest_path])
    manifest["pushed_at"] = then.isoformat(timespec="seconds")
    current = json.loads(kept[current_path])
    current["since"] = then.isoformat(timespec="microseconds")
    current["manifest"] = manifest
    for entry in current["history"]:
        if entry["version"] == version:
            entry["at"] = current["since"]
    try:
        manifest_path.write_text(json.dumps(manifest, indent=1))
        current_path.write_text(json.dumps(current, indent=1))
        yield str(version)
    finally:
        for path, text in kept.items():
            path.write_text(text)


def test_a_backdated_model_in_service_retrains_for_age_and_one_within_its_age_does_not(spanned, unseen_span):
    with pushed_days_ago(spanned.paths, 40) as version:
        old = monitoring.check_span(with_max_age(spanned.spec, 30), spanned.paths, unseen_span)
        within = monitoring.check_span(with_max_age(spanned.spec, 60), spanned.paths, unseen_span)
    assert old.decision == monitoring.RETRAIN and old.retrain
    assert old.age.version == version and 39.9 < old.age.age_days < 40.1
    assert old.reasons == [old.age.reason]
    assert "is 40.0 days old, more than retrain.max_age_days = 30" in old.reason
    assert "age: version" in old.summary() and "RETRAIN" in old.summary()
    assert within.decision == monitoring.NO_DRIFT and not within.retrain and within.reasons == []
    assert not within.age.retrain and within.age.max_age_days == 60
    shown = status.model_status(spanned.spec.name, spanned.paths.home)["drift"]
    assert shown["age"]["max_age_days"] == 60 and shown["age"]["retrain"] is False


def test_every_reason_is_listed_when_an_old_model_meets_flipped_labels(spanned):
    span = spanned.land("flipped-again", flipped(spanned.rows[UNSEEN], FLIPPED_SHARE, seed=26))
    with pushed_days_ago(spanned.paths, 40):
        report = monitoring.check_span(with_max_age(spanned.spec, 30), spanned.paths, span)
    assert report.decision == monitoring.RETRAIN
    assert report.reasons == [report.quality.reason, report.age.reason]
    assert report.reason == f"{report.quality.reason}; {report.age.reason}"


# --- The replay's figures: out of sample ------------------------------------------------------------------


def trained_spans_in_mlmd(store, model_uri: str) -> set[int]:
    """The spans of the Examples the Trainer that made the model at `model_uri` read, from MLMD's events."""
    from ml_metadata.proto import metadata_store_pb2

    (model,) = [artifact for artifact in store.get_artifacts_by_type("Model") if artifact.uri == model_uri]
    events = store.get_events_by_artifact_ids([model.id])
    (trainer,) = [e.execution_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
    inputs = [
        event.artifact_id
        for event in store.get_events_by_execution_ids([trainer])
        if event.type == metadata_store_pb2.Event.INPUT and event.path.steps[0].key == "examples"
    ]
    return {artifact.custom_properties["span"].int_value for artifact in store.get_artifacts_by_id(inputs)}


def test_the_replay_scores_the_models_around_a_check_on_a_span_neither_trained_on(spanned, unseen_span):
    """The replay's scoring step on the home's two models: the first (version 1, spans [1]) as the model in
    production before a check, the second (spans [1, 3]) as the candidate its retraining trained. The
    figures come from the span after, which MLMD's lineage shows neither trained on; an in-sample span
    is refused."""
    from components.core.sources import read_table
    from pipelines.airflow import replay

    store = results.open_store(spanned.paths.metadata_config())
    first, *_, newest = sorted(store.get_artifacts_by_type("Model"), key=lambda artifact: artifact.id)
    models = replay.SpanModels(
        before=results.model_lineage(store, first, "1"),
        candidate=results.model_lineage(store, newest, ""),
        after=results.production_model(store, pipeline_name(spanned.spec)),
    )
    (span_file,) = landing.landed_spans(spanned.spec)[unseen_span]
    _, span_rows = read_table(span_file)
    scored = replay.score_on_unseen_span(spanned.spec, models, unseen_span, span_rows)

    record = models.record()
    assert scored["scored_on_span"] == unseen_span
    for role, model in models.by_role().items():
        lineage = trained_spans_in_mlmd(store, model.model_uri)
        assert unseen_span not in lineage, f"the {role} model trained on the span it is scored on"
        assert record[role]["trained_on_spans"] == sorted(lineage)
        assert 0.5 < scored[f"metric_{role}"] <= 1, role
    assert record["before"]["trained_on_spans"] == [1] and record["candidate"]["trained_on_spans"] == [1, 3]
    assert scored["metric_before"] != scored["metric_candidate"], "two models, two figures"
    with pytest.raises(replay.ReplayError, match="span 3 is among the training spans of the candidate"):
        replay.score_on_unseen_span(spanned.spec, models, 3, span_rows)
