"""The landing zone: spans are numbered in order, land whole, and are never overwritten."""

from __future__ import annotations

import pytest
import yaml

from components.core.spec import load_spec
from pipelines.workflow import landing
from tests.helpers.data import TAXI_SPEC


@pytest.fixture
def spec(tmp_path):
    raw = yaml.safe_load(TAXI_SPEC.read_text())
    raw["data"]["source"] = "landing/span-{SPAN}/*.csv"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def test_spans_are_numbered_in_order_and_land_whole(spec, tmp_path, taxi_slice):
    assert landing.newest_span(spec) is None
    assert landing.land_span(spec, [taxi_slice]) == 1
    assert landing.land_span(spec, [taxi_slice]) == 2
    spans = landing.landed_spans(spec)
    assert list(spans) == [1, 2]
    assert spans[2] == [str(tmp_path / "landing" / "span-2" / "slice.csv")]
    assert not [p for p in (tmp_path / "landing").iterdir() if p.name.startswith(landing.INCOMING_PREFIX)]


def test_a_span_is_never_overwritten(spec, taxi_slice):
    landing.land_span(spec, [taxi_slice], span=5)
    with pytest.raises(landing.LandingError, match="span 5 has already landed"):
        landing.land_span(spec, [taxi_slice], span=5)


def test_a_failed_copy_leaves_no_span(spec, tmp_path, taxi_slice, monkeypatch):
    def failing_copy(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(landing.shutil, "copy2", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        landing.land_span(spec, [taxi_slice])
    assert landing.landed_spans(spec) == {}
    assert list((tmp_path / "landing").iterdir()) == []


def test_missing_files_are_named(spec, tmp_path):
    with pytest.raises(landing.LandingError, match="nothing.csv"):
        landing.land_span(spec, [tmp_path / "nothing.csv"])
