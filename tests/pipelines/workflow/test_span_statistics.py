"""A landed span's statistics and examples, on Beam and in the check's own process (`span_statistics`):
the same examples, the same statistics, the same drift and the same anomalies, on real taxi trips saved
as a European spreadsheet exports them (BOM, `;`, CRLF, quotes, `NA`, gzip)."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv

from components.core.spec import BeamSpec, load_spec
from components.core.tables import CsvFormat
from pipelines.workflow import monitoring
from tests.helpers.data import SAVED_AS, TAXI_SPEC, save_as, taxi_rows

ROWS = 1_000


def records(prefix: Path) -> list[bytes]:
    files = tf.io.gfile.glob(f"{prefix}-*")
    return [record.numpy() for record in tf.data.TFRecordDataset(files)]


@pytest.fixture(scope="module")
def span(tmp_path_factory) -> list[str]:
    header, rows = taxi_rows()
    path = tmp_path_factory.mktemp("span") / "trips.csv.gz"
    return [str(save_as(path, header, rows[:ROWS], SAVED_AS["spreadsheet"]))]


@pytest.fixture(scope="module")
def both_ways(span, tmp_path_factory):
    """(statistics, examples) of the span on Beam, then in this process."""
    folder = tmp_path_factory.mktemp("examples")
    schema = tfdv.infer_schema(monitoring.in_process_statistics(span, CsvFormat(), None))
    on_beam = monitoring.csv_statistics(span, CsvFormat(), schema, [], str(folder / "beam"))
    in_process = monitoring.in_process_statistics(span, CsvFormat(), schema, str(folder / "here"))
    return schema, (on_beam, records(folder / "beam")), (in_process, records(folder / "here"))


def test_the_check_reads_the_same_examples_without_beam(both_ways):
    _, (_, on_beam), (_, in_process) = both_ways
    assert len(in_process) == ROWS
    assert sorted(in_process) == sorted(on_beam)  # Beam's order is its own


def test_the_same_statistics_give_no_drift_and_the_same_anomalies(both_ways):
    schema, (on_beam, _), (in_process, _) = both_ways
    spec = load_spec(TAXI_SPEC, check_data=False)
    compared = monitoring.monitoring_schema(schema, spec)
    assert in_process.datasets[0].num_examples == on_beam.datasets[0].num_examples == ROWS
    drift = tfdv.validate_statistics(in_process, compared, previous_statistics=on_beam)
    measured = monitoring.drift_measurements(drift, monitoring.feature_kinds(compared, spec))
    assert len(measured) == len(spec.feature_columns([f.name for f in schema.feature]))
    assert max(d.value for d in measured) <= 1e-6, measured
    for stats in (on_beam, in_process):
        assert monitoring.schema_problems(tfdv.validate_statistics(stats, schema)) == {}


def test_a_text_cell_in_a_number_column_is_the_same_anomaly_both_ways(both_ways, span, tmp_path):
    schema = both_ways[0]
    header, rows = taxi_rows()
    broken = [dict(row) for row in rows[:50]]
    broken[7]["fare"] = "twelve dollars"
    files = [str(save_as(tmp_path / "broken.csv", header, broken, SAVED_AS["plain"]))]
    problems = [
        monitoring.schema_problems(tfdv.validate_statistics(stats, schema))
        for stats in (
            monitoring.csv_statistics(files, CsvFormat(), schema, []),
            monitoring.in_process_statistics(files, CsvFormat(), schema),
        )
    ]
    assert problems[0] == problems[1] and "fare" in problems[1], problems


def test_only_a_small_span_on_beams_defaults_is_read_without_beam(span, monkeypatch, tmp_path):
    ran = []
    monkeypatch.setattr(monitoring, "csv_statistics", lambda *args: ran.append("beam"))
    monkeypatch.setattr(monitoring, "in_process_statistics", lambda *args: ran.append("here"))
    read = monitoring.span_statistics
    read(span, CsvFormat(), None, BeamSpec(), [])
    read(span, CsvFormat(), None, BeamSpec(direct_num_workers=0), [])
    monkeypatch.setattr(monitoring, "IN_PROCESS_BYTES", Path(span[0]).stat().st_size - 1)
    read(span, CsvFormat(), None, BeamSpec(), [])
    assert ran == ["here", "beam", "beam"]


def test_the_reference_statistics_are_the_same_both_ways(both_ways, tmp_path):
    """The production model's training examples (ExampleGen's gzipped TFRecords) described in this
    process and on Beam: the first check after a push compares the span with them."""
    from ml_metadata.proto import metadata_store_pb2

    from pipelines.workflow.results import ProductionModel

    schema, (_, examples), _ = both_ways
    train = tmp_path / "examples" / "Split-train"
    train.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(train / "data_tfrecord-00000-of-00001.gz"), options="GZIP") as writer:
        for record in examples:
            writer.write(record)
    artifact = metadata_store_pb2.Artifact(uri=str(tmp_path / "examples"))
    production = ProductionModel("1", "model", "schema", "transform", [artifact])
    here = monitoring.reference_statistics(production, schema, tmp_path / "here", BeamSpec(), [])
    beam = BeamSpec(direct_num_workers=0)
    on_beam = monitoring.reference_statistics(production, schema, tmp_path / "beam", beam, [])
    assert here.datasets[0].num_examples == on_beam.datasets[0].num_examples == ROWS
    spec = load_spec(TAXI_SPEC, check_data=False)
    compared = monitoring.monitoring_schema(schema, spec)
    drift = tfdv.validate_statistics(here, compared, previous_statistics=on_beam)
    assert max(d.value for d in monitoring.drift_measurements(drift, {})) <= 1e-6
    assert (tmp_path / "here" / "reference-1.pb").is_file()  # cached per version
