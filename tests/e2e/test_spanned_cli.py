"""`pipelines run` on a spanned spec: the CLI (TFX's LocalDagRunner) trains on the window of newest spans.

The Airflow path runs the same window resolver (tests/e2e/test_airflow_dags.py); this one runs it through the
portable launcher, which once refused it ('A node must be system node or have an executor'). The first
run goes through the same LocalDagRunner in the test's process (no second start-up of TensorFlow); the
one that trains on the window is the command a user types.
"""

from __future__ import annotations

import pytest
import yaml

from components.core.sources import write_table
from components.core.spec import load_spec
from pipelines.ops.cli import run_training
from pipelines.paths import RunPaths
from pipelines.workflow import landing, results
from tests.helpers.pipeline_runs import cli_run, versions, write_taxi_spec

pytestmark = pytest.mark.e2e

SPAN_ROWS = 1200


def test_the_cli_trains_on_the_newest_spans(tmp_path, taxi_rows):
    header, rows = taxi_rows
    spec_path = write_taxi_spec(tmp_path / "config", tmp_path / "landing" / "span-{SPAN}" / "*.csv")
    raw = yaml.safe_load(spec_path.read_text())
    raw["data"]["window_spans"] = 2
    spec_path.write_text(yaml.safe_dump(raw))
    spec = load_spec(spec_path, check_data=False)
    paths = RunPaths.for_spec(spec.name, tmp_path / "home")

    def land(number: int) -> None:
        chunk = rows[(number - 1) * SPAN_ROWS : number * SPAN_ROWS]
        csv = write_table(tmp_path / "incoming" / str(number) / "data.csv", header, chunk)
        assert landing.land_span(spec, [csv]) == number

    def trained_spans() -> list[int]:
        return results.newest_model(results.open_store(paths.metadata_config())).spans

    land(1)
    first = run_training(spec, paths.home)
    assert first.pushed_new
    assert trained_spans() == [1]
    assert len(versions(paths.serving_dir)) == 1

    land(2)
    land(3)
    second = cli_run(spec_path, paths.home)
    assert second.returncode == 0, second.stderr[-3000:]
    # ExampleGen ingests only the newest landed span (3); the window adds the newest ingested before it.
    assert trained_spans() == [1, 3]
