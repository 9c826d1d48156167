"""Replay: the shipped taxi trips cut into calendar quarters, oldest first, no trip lost; the replay works
in a home of its own and refuses to delete anything it did not create."""

from __future__ import annotations

import csv

import pytest
import yaml

from components.core.spec import load_spec
from pipelines.airflow import replay
from pipelines.airflow.replay import cut_into_quarters, quarter_of
from pipelines.ops.cli import main
from pipelines.paths import MYSQL_VARIABLE
from pipelines.workflow import landing
from tests.helpers.data import REPO_ROOT, taxi_csv_path


def test_quarter_of_a_unix_timestamp():
    assert quarter_of("1357006500") == "2013Q1"  # 2013-01-01 02:15 UTC
    assert quarter_of("1483046100") == "2016Q4"


def test_taxi_trips_are_cut_into_ordered_quarters(tmp_path, taxi_rows):
    files = cut_into_quarters(taxi_csv_path(), tmp_path)
    names = [f.stem for f in files]
    assert names == sorted(names) and names[0] == "2013Q1" and names[-1] == "2016Q4"
    total = 0
    for path in files:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert {quarter_of(row["trip_start_timestamp"]) for row in rows} == {path.stem}
        total += len(rows)
    assert total == len(taxi_rows[1])


@pytest.fixture
def users_zone(tmp_path, taxi_slice):
    """A user's spanned taxi spec with a landed span, a pushed version and metadata in their home."""
    raw = yaml.safe_load((REPO_ROOT / replay.REPLAY_SPEC).read_text())
    raw["data"]["source"] = str(tmp_path / "landing" / "span-{SPAN}" / "*.csv")
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    spec = load_spec(spec_file, check_data=False)
    landing.land_span(spec, [taxi_slice])
    home = tmp_path / "build"
    (home / "serving" / spec.name / "1").mkdir(parents=True)
    (home / "serving" / spec.name / "1" / "saved_model.pb").write_bytes(b"a pushed model")
    (home / "metadata").mkdir()
    (home / "metadata" / f"{spec.name}.sqlite").write_bytes(b"lineage")
    return spec, home


def everything_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_the_replay_refuses_a_home_it_did_not_make_and_deletes_nothing(users_zone, tmp_path, capsys):
    spec, home = users_zone
    before = everything_under(tmp_path)
    with pytest.raises(
        replay.ReplayError, match=r"holds files the replay did not create .*new or empty folder"
    ):
        replay.claim_replay_home(home)
    assert main(["simulate", "--home", str(home), "--spans", "1"]) == 1
    assert "Cannot replay:" in capsys.readouterr().err
    assert everything_under(tmp_path) == before


def test_the_replay_lands_in_its_own_zone_never_the_specs(users_zone, tmp_path):
    spec, _ = users_zone
    replay_home = replay.claim_replay_home(tmp_path / "replay")
    moved = replay.replay_spec(spec, replay_home)
    assert moved.data.source == str(replay_home / "landing" / spec.name / "span-{SPAN}" / "*.csv")
    assert landing.landed_spans(moved) == {}
    assert list(landing.landed_spans(spec)) == [1], "the user's landing zone is untouched"


def test_a_second_replay_empties_only_its_own_home(tmp_path):
    home = replay.claim_replay_home(tmp_path / "replay")
    (home / "serving" / "taxi_replay" / "7").mkdir(parents=True)
    assert replay.claim_replay_home(home) == home
    assert [p.name for p in home.iterdir()] == [replay.REPLAY_MARKER]


def test_the_replay_refuses_metadata_in_mysql(tmp_path, monkeypatch):
    monkeypatch.setenv(MYSQL_VARIABLE, "127.0.0.1:3306/blueprint")
    with pytest.raises(replay.ReplayError, match=f"{MYSQL_VARIABLE} is set"):
        replay.claim_replay_home(tmp_path / "replay")
    assert not (tmp_path / "replay").exists()


def trained_on(*spans: int):
    """A model as ML Metadata describes it: the Examples it was trained on, one per span."""
    from ml_metadata.proto import metadata_store_pb2

    from pipelines.workflow.results import ProductionModel

    examples = []
    for span in spans:
        artifact = metadata_store_pb2.Artifact(uri=f"/examples/{span}")
        artifact.custom_properties["span"].int_value = span
        examples.append(artifact)
    return ProductionModel("1", f"/model/{'-'.join(map(str, spans))}", "/schema", "/transform", examples)


def test_models_are_never_scored_on_a_span_they_were_trained_on():
    models = replay.SpanModels(before=trained_on(1, 2), candidate=trained_on(2, 3), after=trained_on(2, 3))
    with pytest.raises(
        replay.ReplayError, match=r"span 3 is among the training spans of the candidate, after model"
    ):
        replay.score_on_unseen_span(None, models, 3, rows=[])
    assert models.record()["candidate"] == {"version": "1", "model": "/model/2-3", "trained_on_spans": [2, 3]}


def test_the_timeline_plots_unseen_metrics_and_drift_against_what_it_had_to_pass(tmp_path):
    def drift(value, threshold, floor):
        return replay._drift_figures(
            {
                "value": value,
                "threshold": threshold,
                "noise_floor": floor,
                "drifted": value > max(threshold, floor),
            }
        )

    first = {"quarter": "2016Q1", "retrained": True, "metric_before": None, "metric_candidate": 0.9}
    first |= {"metric_after": 0.9, "drift": {"fare": drift(0.15, 0.1, 0.3)}}
    last = {"quarter": "2016Q2", "retrained": False, "drift": {"fare": drift(0.05, 0.1, 0.02)}}
    last |= {f"metric_{role}": None for role in replay.MODEL_ROLES}
    assert first["drift"]["fare"] == {
        "value": 0.15,
        "threshold": 0.1,
        "noise_floor": 0.3,
        "ratio": 0.5,
        "drifted": False,
    }, "above its threshold, below the noise floor of a small span"
    assert last["drift"]["fare"]["ratio"] == 0.5
    path = tmp_path / "timeline.png"
    replay.plot_timeline({"model": "taxi_replay", "metric": "auc", "spans": [first, last]}, path)
    assert path.stat().st_size > 10_000
