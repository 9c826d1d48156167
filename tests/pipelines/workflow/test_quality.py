"""The rules of the quality and age checks (`pipelines/workflow/quality.py`), on figures and files alone.

The checks on a real served model and real spans are in tests/e2e/test_spanned_cli.py.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
import tensorflow as tf
import yaml
from tensorflow_metadata.proto.v0 import schema_pb2

from components.core import models_config
from components.core.spec import load_spec
from components.core.tables import CsvFormat
from pipelines.paths import RunPaths
from pipelines.workflow import monitoring, quality, scoring
from tests.helpers.data import TAXI_SPEC

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)


def spec_with(tmp_path: Path, **changes):
    raw = yaml.safe_load(TAXI_SPEC.read_text())
    raw.update(changes)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path, check_data=False)


def decided(spec, value: float, interval: tuple[float, float], blessed: float) -> quality.QualityCheck:
    check = quality.QualityCheck(spec.metric.name, "7", rows=500, value=value, interval=list(interval))
    check.blessed = blessed
    return quality.decide(spec, check, span=4)


def test_a_bounded_metric_retrains_only_when_its_whole_interval_is_beyond_the_allowed_drop(tmp_path):
    spec = spec_with(tmp_path)  # auc, retrain.quality_drop 0.05 (absolute)
    clear = decided(spec, 0.60, (0.56, 0.64), blessed=0.93)
    assert clear.retrain and clear.limit == pytest.approx(0.88) and clear.drop == pytest.approx(0.33)
    assert clear.reason == (
        "auc of the model in service (version 7) on span 4 is 0.6000 (95% interval 0.5600 to 0.6400) "
        "against 0.9300 on its test split: 0.3300 worse, more than retrain.quality_drop = 0.05"
    )
    # A small span: the value is 0.07 below, but its interval reaches the limit: sampling noise.
    noisy = decided(spec, 0.86, (0.79, 0.91), blessed=0.93)
    assert noisy.decision == quality.KEEP and noisy.drop == pytest.approx(0.07) and noisy.reason == ""
    assert decided(spec, 0.92, (0.90, 0.94), blessed=0.93).decision == quality.KEEP
    better = decided(spec, 0.97, (0.95, 0.99), blessed=0.93)
    assert better.drop == pytest.approx(-0.04)
    assert "0.0400 better, 0.0500 worse allowed: ok" in better.summary()
    assert "0.3300 worse, 0.0500 worse allowed: RETRAIN" in clear.summary()


def test_mse_and_mae_drops_are_relative_to_the_blessed_value(tmp_path):
    features = yaml.safe_load(TAXI_SPEC.read_text())["features"]
    spec = spec_with(
        tmp_path,
        label="fare",
        features={name: kind for name, kind in features.items() if name != "fare"},
        task="regression",
        metric={"name": "mae", "threshold": 5.0},
        retrain={"quality_drop": 0.2},
    )
    # Blessed MAE 4.0: 20% allowed, so the limit is 4.8 (lower is better).
    worse = decided(spec, 6.0, (5.5, 6.6), blessed=4.0)
    assert worse.retrain and worse.limit == pytest.approx(4.8) and worse.drop == pytest.approx(0.5)
    assert worse.drop_kind == "relative" and "50.0% worse" in worse.reason and "(relative)" in worse.reason
    assert decided(spec, 5.0, (4.7, 5.3), blessed=4.0).decision == quality.KEEP  # interval reaches 4.8
    assert decided(spec, 4.4, (4.1, 4.7), blessed=4.0).decision == quality.KEEP


def served_home(tmp_path: Path, manifest: dict, history: list[dict], since: str) -> RunPaths:
    """A serving folder as the pusher leaves it: version 3 in service, its manifest and current.json."""
    paths = RunPaths.for_spec("taxi", tmp_path / "home")
    (paths.serving_dir / "3").mkdir(parents=True)
    (paths.serving_dir / "3" / models_config.MANIFEST).write_text(json.dumps(manifest))
    models_config.make_current(paths.serving_dir.parent, "taxi", 3)
    current = json.loads((paths.serving_dir / models_config.CURRENT).read_text())
    current.update(since=since, history=history)
    (paths.serving_dir / models_config.CURRENT).write_text(json.dumps(current))
    return paths


def test_the_age_is_counted_from_the_versions_push_not_from_a_later_rollback_to_it(tmp_path):
    pushed = "2026-01-01T12:00:00+00:00"
    history = [{"at": pushed, "reason": "push", "version": 3}, {"at": "2026-02-20T00:00:00", "version": 3}]
    paths = served_home(tmp_path, {"pushed_at": pushed}, history, since="2026-02-20T00:00:00+00:00")
    old = quality.check_age(spec_with(tmp_path, retrain={"max_age_days": 30}), paths, now=NOW)
    assert old.retrain and old.age_days == pytest.approx(59.0) and old.version == "3"
    assert old.reason == (
        f"model in service (version 3, pushed {pushed}) is 59.0 days old, more than retrain.max_age_days = 30"
    )
    assert not quality.check_age(spec_with(tmp_path, retrain={"max_age_days": 60}), paths, now=NOW).retrain
    assert not quality.check_age(spec_with(tmp_path), paths, now=NOW).retrain  # no max_age_days: never


def test_without_pushed_at_the_push_in_current_json_dates_the_version(tmp_path):
    history = [{"at": "2026-02-01T12:00:00.500000+00:00", "reason": "push", "version": 3}]
    paths = served_home(tmp_path, {}, history, since="2026-02-25T12:00:00+00:00")
    assert quality.check_age(spec_with(tmp_path), paths, now=NOW).age_days == pytest.approx(28.0, abs=1e-3)
    paths = served_home(tmp_path / "bare", {}, [], since="2026-02-25T12:00:00")  # no zone: UTC
    assert quality.check_age(spec_with(tmp_path), paths, now=NOW).age_days == pytest.approx(4.0)


def test_nothing_served_has_no_age(tmp_path):
    assert quality.check_age(spec_with(tmp_path), RunPaths.for_spec("taxi", tmp_path), now=NOW) is None


def test_the_quality_check_scores_the_labelled_rows_of_the_span_as_the_drift_check_read_it(tmp_path):
    """One read of the span (the drift check's, typed as ExampleGen types it) writes the examples the
    quality check scores: rows whose label is missing (`NA`, an empty cell) are not counted."""
    path = tmp_path / "span.csv"
    path.write_text(
        "\ufefffare;big_tipper;company\n4.5;1;NA\n\n7.25;NA;Flash Cab\n3;;Taxi Affiliation\n9.5;0;\n",
        encoding="utf-8",
    )
    prefix = str(tmp_path / "examples")
    stats = monitoring.csv_statistics([str(path)], CsvFormat(), schema_pb2.Schema(), [], prefix)
    assert stats.datasets[0].num_examples == 4
    raw_spec = {
        "fare": tf.io.FixedLenFeature([], tf.float32),
        "big_tipper": tf.io.FixedLenFeature([], tf.int64),
        "company": tf.io.FixedLenFeature([], tf.string),
    }
    assert quality.labelled_count(spec_with(tmp_path), raw_spec, f"{prefix}-*") == 2


def test_a_blank_or_missing_text_label_cannot_be_scored(tmp_path):
    def example(label: str | None) -> bytes:
        feature = (
            {}
            if label is None
            else {"big_tipper": tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.encode()]))}
        )
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    batch = tf.constant([example("yes"), example(" "), example(None), example(""), example("no")])
    raw_spec = {"big_tipper": tf.io.FixedLenFeature([], tf.string)}
    kept = scoring.labelled_examples(spec_with(tmp_path), raw_spec, batch)
    assert list(kept.numpy()) == [example("yes"), example("no")]
