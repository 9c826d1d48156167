"""`pipelines predict` on the session's every-target run (tests/conftest.py::every_target_run): real trips
it never trained on, scored in every target, and bad files refused with ingest's messages, writing nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.core import models_config
from components.core.sources import read_table, write_table
from components.scoring import metrics, parity
from pipelines.ops import cli, predict
from tests.helpers.pipeline_runs import served_classes

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("test_deployment")]

ROWS = slice(3000, 3300)  # after the taxi slice the run trained on
ADDED = ["predicted_big_tipper", "probability_0", "probability_1"]
# The largest difference of one row's probability from the SavedModel's, per target: float targets compute
# what TensorFlow computes (test_deployment.py holds them to 1e-4 too); quantized ones are held to the
# parity gate's rule (the metric within `deployment.parity.tolerance`) and a mean difference.
FLOAT_TARGETS = {"serving": 1e-5, "tflite-float32": 1e-4, "tfjs-float32": 1e-4}
QUANTIZED_MEAN_DIFFERENCE = 0.05


@pytest.fixture(scope="module")
def trips(taxi_rows, tmp_path_factory) -> tuple[Path, list[str], list[dict[str, str]]]:
    header, rows = taxi_rows
    rows = [dict(row) for row in rows[ROWS]]
    return write_table(tmp_path_factory.mktemp("trips") / "trips.csv", header, rows), header, rows


@pytest.fixture(scope="module")
def saved_model(every_target_run, trips) -> dict:
    """TF Serving's signature (serialized tf.Examples in) on the trips: what every target is held to."""
    _, _, rows = trips
    return served_classes(every_target_run.paths, every_target_run.spec, rows)["outputs"]


def _predict(every_target_run, source: Path, output: Path, *options: str) -> int:
    run = every_target_run
    argv = ["predict", "--config", str(run.spec_path), "--home", str(run.paths.home)]
    return cli.main([*argv, "--input", str(source), "--output", str(output), *options])


def _nothing_written(output: Path) -> None:
    assert not output.exists()
    assert [p.name for p in output.parent.iterdir() if p.name.startswith(f".{output.name}")] == []


def test_every_target_scores_the_file_as_the_saved_model_does(every_target_run, trips, saved_model, tmp_path):
    source, header, rows = trips
    run = every_target_run
    version = int(run.summary.pushed_version)
    manifest = models_config.read_manifest(run.paths.serving_dir / str(version))
    expected = np.array(saved_model["scores"], dtype=np.float32)
    labels = np.array([float(row["big_tipper"]) for row in rows])
    reference = metrics.metric_value("auc", "binary", labels, expected[:, 1])
    targets = sorted(predict.pushed_targets(manifest))
    assert len(targets) == 6
    for target in targets:
        output = tmp_path / f"{target}.csv"
        scored = predict.predict_file(
            run.spec, run.paths, source, output, target=target, version=version, chunk_rows=128
        )
        assert (scored.rows, scored.served.target_name, scored.added) == (len(rows), target, ADDED)
        written_header, written = read_table(output)
        assert written_header == header + ADDED
        assert [{c: row[c] for c in header} for row in written] == rows, "the input cells are kept as read"
        scores = np.array([[float(row[c]) for c in ADDED[1:]] for row in written], dtype=np.float32)
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6)
        named = [row["predicted_big_tipper"] for row in written]
        assert named == [str(int(np.argmax(row))) for row in scores]  # big_tipper is written 0/1
        difference = np.abs(scores - expected)
        if target in FLOAT_TARGETS:
            assert difference.max() <= FLOAT_TARGETS[target], target
        else:
            assert 0 < difference.mean() <= QUANTIZED_MEAN_DIFFERENCE, target
        value = metrics.metric_value("auc", "binary", labels, scores[:, 1])
        assert parity.passes(run.spec, reference, value) == (True, ""), target
    served = read_table(tmp_path / "serving.csv")[1]
    assert [row["predicted_big_tipper"] for row in served] == saved_model["predicted_class"]


def test_the_cli_scores_with_the_version_in_service_and_keeps_the_named_columns(
    every_target_run, trips, tmp_path, capsys
):
    source, _, rows = trips
    output = tmp_path / "scored" / "trips.csv"
    assert _predict(every_target_run, source, output, "--keep", "trip_miles, company") == 0
    header, written = read_table(output)
    assert header == ["trip_miles", "company", *ADDED]
    assert [(row["trip_miles"], row["company"]) for row in written] == [
        (row["trip_miles"], row["company"]) for row in rows
    ]
    paths = every_target_run.paths
    in_service = models_config.current_versions(paths.serving_dir.parent)[paths.name]
    out = capsys.readouterr().out
    assert f"Scored {len(rows)} row(s) of {source} with 'taxi' version {in_service} (serving)" in out


def test_a_missing_feature_column_is_named_and_nothing_is_written(every_target_run, trips, tmp_path, capsys):
    _, header, rows = trips
    kept = [column for column in header if column != "trip_miles"]
    source = write_table(tmp_path / "no_miles.csv", kept, [{c: row[c] for c in kept} for row in rows])
    output = tmp_path / "out.csv"
    assert _predict(every_target_run, source, output) == cli.EXIT_FAILED
    error = capsys.readouterr().err
    assert f"Not scored, nothing written: '{source}' has no column 'trip_miles':" in error
    assert "takes it as a feature" in error and "Traceback" not in error
    _nothing_written(output)


def test_text_in_a_numeric_column_is_named_with_its_line_and_nothing_is_written(
    every_target_run, trips, tmp_path, capsys
):
    _, header, rows = trips
    broken = [dict(row) for row in rows]
    broken[150]["fare"] = "about ten dollars"  # data line 151: line 152 of the file
    source = write_table(tmp_path / "text_fare.csv", header, broken)
    output = tmp_path / "out.csv"
    output.write_text("kept as it was\n")  # a failed run does not touch an earlier output either
    assert _predict(every_target_run, source, output) == cli.EXIT_FAILED
    error = capsys.readouterr().err
    assert f"'{source}' does not match the schema of 'taxi' version" in error
    assert "column 'fare': Expected data of type: FLOAT but got STRING" in error  # ExampleValidator's words
    assert "(first at line 152: 'about ten dollars')" in error
    assert output.read_text() == "kept as it was\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.csv")] == []


def test_a_malformed_row_gets_ingests_message(every_target_run, trips, tmp_path, capsys):
    _, header, rows = trips
    source = write_table(tmp_path / "surplus.csv", header, rows[:50])
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[9] = lines[9].rstrip("\n") + ",surplus\n"
    source.write_text("".join(lines), encoding="utf-8")
    output = tmp_path / "out.csv"
    assert _predict(every_target_run, source, output) == cli.EXIT_FAILED
    error = capsys.readouterr().err
    assert f"'{source}' line 10: {len(header) + 1} fields where the header has {len(header)}" in error
    _nothing_written(output)


def test_an_unknown_target_or_version_is_refused(every_target_run, trips, tmp_path, capsys):
    source, _, _ = trips
    output = tmp_path / "out.csv"
    assert _predict(every_target_run, source, output, "--target", "tflite-int4") == cli.EXIT_FAILED
    error = capsys.readouterr().err
    assert "has no target 'tflite-int4'; its targets: serving, tflite-float32, tflite-dynamic" in error
    assert _predict(every_target_run, source, output, "--version", "7") == cli.EXIT_FAILED
    assert "'taxi' has no version 7 under" in capsys.readouterr().err
    _nothing_written(output)
