"""`pipelines run` on a spanned spec: the CLI (TFX's LocalDagRunner) trains on the window of newest spans.

The Airflow path runs the same window resolver (tests/test_airflow_dags.py); this one runs it through the
portable launcher, which once refused it ('A node must be system node or have an executor').
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines import landing, results
from pipelines.paths import RunPaths
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT, write_rows
from tests.pipeline_helpers import versions, write_taxi_spec

pytestmark = pytest.mark.e2e

SPAN_ROWS = 1200


def _cli_run(spec_path: Path, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", "run", "--config", str(spec_path), "--home", str(home)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )


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
        csv = write_rows(tmp_path / "incoming" / str(number) / "data.csv", header, chunk)
        assert landing.land_span(spec, [csv]) == number

    def trained_spans() -> list[int]:
        return results.newest_model(results.open_store(paths.metadata_config())).spans

    land(1)
    first = _cli_run(spec_path, paths.home)
    assert first.returncode == 0, first.stderr[-3000:]
    assert trained_spans() == [1]
    assert len(versions(paths.serving_dir)) == 1

    land(2)
    land(3)
    second = _cli_run(spec_path, paths.home)
    assert second.returncode == 0, second.stderr[-3000:]
    # ExampleGen ingests only the newest landed span (3); the window adds the newest ingested before it.
    assert trained_spans() == [1, 3]
