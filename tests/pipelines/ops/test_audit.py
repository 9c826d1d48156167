"""The rules of the annotation loop (`pipelines/ops/audit.py`) on figures alone: how sure a model is, which
rows an audit chooses, what it refuses, and the agreement figures.

The loop on a real served model and real spans is in tests/e2e/test_spanned_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from components.core import annotations
from components.core.spec import TaskType, load_spec
from pipelines.ops import audit
from tests.helpers.data import TAXI_SPEC


def taxi_spec(tmp_path: Path, **changes):
    raw = yaml.safe_load(TAXI_SPEC.read_text())
    raw.update(changes)
    raw["features"].pop(raw["label"], None)  # the label cannot also be a feature
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path, check_data=False)


def test_the_margin_is_the_gap_between_the_two_most_probable_answers():
    binary = np.array([[0.5], [0.9], [0.05]], np.float32)
    assert audit.margins(TaskType.BINARY, binary) == pytest.approx([0.0, 0.8, 0.9])
    multiclass = np.array([[0.4, 0.35, 0.25], [0.9, 0.05, 0.05]], np.float32)
    assert audit.margins(TaskType.MULTICLASS, multiclass) == pytest.approx([0.05, 0.85])
    multilabel = np.array([[0.99, 0.55], [0.1, 0.2]], np.float32)
    assert audit.margins(TaskType.MULTILABEL, multilabel) == pytest.approx([0.1, 0.6])


def test_an_audit_chooses_a_seeded_sample_and_the_least_sure_rows():
    margins = np.linspace(1.0, 0.0, 100)  # the last rows are the least sure
    sample, hardest = audit.choose_rows(margins, fraction=0.1, hardest=5, seed=3)
    assert hardest == {95, 96, 97, 98, 99}
    assert len(sample) == 10 and sample == audit.choose_rows(margins, 0.1, 5, seed=3)[0]
    assert sample != audit.choose_rows(margins, 0.1, 5, seed=4)[0]
    assert audit.choose_rows(margins, 0.0, 3, seed=0) == (set(), {97, 98, 99})
    assert len(audit.choose_rows(margins, 0.001, 0, seed=0)[0]) == 1, "a fraction asks for a row at least"


@pytest.mark.parametrize(
    ("fraction", "hardest", "message"),
    [
        (1.5, 10, "--fraction 1.5 is not a share"),
        (0.1, -1, "--hardest -1 is negative"),
        (0.0, 0, "ask for no rows"),
    ],
)
def test_an_audit_that_asks_for_nothing_sensible_is_refused(tmp_path, fraction, hardest, message):
    with pytest.raises(audit.AuditError, match=message):
        audit.audit_span(taxi_spec(tmp_path), None, tmp_path / "audit.csv", 1, fraction, hardest)
    assert not (tmp_path / "audit.csv").exists()


def test_a_regression_audit_has_no_hardest_rows(tmp_path):
    spec = taxi_spec(tmp_path, label="fare", task="regression", metric={"name": "mae", "threshold": 5.0})
    with pytest.raises(audit.AuditError, match="regression: it gives no probability.*--hardest 0"):
        audit.audit_span(spec, None, tmp_path / "audit.csv", 1, 0.1, 5)


def test_agreement_is_a_share_with_a_wilson_interval_per_class(tmp_path):
    spec = taxi_spec(tmp_path)
    truth = np.array([1] * 20 + [0] * 80)
    answers = truth.copy()
    answers[:10] = 0  # half the positives missed
    group = audit.agreement(spec, ["0", "1"], answers, truth)
    assert group["rows"] == 100 and group["agreed"] == 90 and group["value"] == 0.9
    low, high = group["interval"]
    assert 0.82 < low < 0.84 and 0.94 < high < 0.96  # Wilson 95% for 90 of 100: 0.826 to 0.945
    assert group["per_class"]["1"]["value"] == 0.5 and group["per_class"]["0"]["value"] == 1.0
    line = annotations.describe_group(group, "agreement")
    assert line == "agreed on 90% of 100 rows (95% interval 83% to 94%)"


def test_the_landed_file_is_named_as_the_spec_reads_its_spans(tmp_path):
    spanned = taxi_spec(tmp_path, data={"source": str(tmp_path / "landing" / "span-{SPAN}" / "*.csv")})
    assert audit.landing_file_name(spanned) == "annotations.csv"
    fixed = taxi_spec(tmp_path, data={"source": str(tmp_path / "landing" / "span-{SPAN}" / "trips.csv")})
    assert audit.landing_file_name(fixed) == "trips.csv"
