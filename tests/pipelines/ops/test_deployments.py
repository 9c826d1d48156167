"""The CLI's table of a pushed version's targets: the largest difference on one row, in the label's units
for regression, flagged when a row is further from the SavedModel than its mean absolute error."""

from __future__ import annotations

from pipelines.ops.deployments import target_table


def _target(target: str, variant: str, metric: float, max_abs_diff: float, flagged: bool = False) -> dict:
    return {
        "target": target,
        "variant": variant,
        "path": "" if target == "serving" else f"{target}/{variant}",
        "size_bytes": 60_000,
        "metric": metric,
        "max_abs_diff": max_abs_diff,
        "latency_ms_p50": 0.4,
        "passed": True,
        "reason": "",
        "allowed_loss": 1.4833,
        "reference_mae": 148.33,
        "max_abs_diff_flagged": flagged,
        "pushed": True,
    }


def _price_manifest() -> dict:
    """A regression on prices in dollars: the int8 model keeps the MAE but is 2,346 dollars off on a row."""
    return {
        "task": "regression",
        "metric": "mae",
        "higher_is_better": False,
        "tolerance": 0.01,
        "test_rows": 3000,
        "targets": [
            _target("serving", "savedmodel", 148.33, 0.0),
            _target("tflite", "int8", 149.10, 2346.4, flagged=True),
            _target("tfjs", "float32", 148.38, 3.1e-4),
        ],
    }


def _line(lines: list[str], name: str) -> str:
    return next(line for line in lines if line.startswith(name + " "))


def test_a_regression_targets_max_difference_is_shown_in_dollars_and_flagged():
    lines = target_table(_price_manifest())
    int8, tfjs = _line(lines, "tflite-int8"), _line(lines, "tfjs-float32")
    assert "2,346!" in int8 and int8.endswith("yes")
    assert "3.1e-04 " in tfjs and "!" not in tfjs
    assert "0 " in _line(lines, "serving")
    assert any("in the label's units" in line for line in lines)
    note = next(line for line in lines if line.startswith("! "))
    assert "tflite-int8" in note and "mean absolute error (148.3)" in note and "tfjs" not in note


def test_the_parity_rule_is_printed_as_it_applies_to_the_metric():
    lines = target_table(_price_manifest())
    rule = "parity: a target's mae may be at most 1% worse than the SavedModel's (relative, 1.483 here)"
    assert rule in lines
    classifier = {**_price_manifest(), "task": "binary", "metric": "auc"}
    lines = target_table(classifier)
    assert "parity: a target's auc may be at most 0.01 below the SavedModel's (absolute)" in lines
    assert any("in probability" in line for line in lines)
    savedmodel_only = {"target": "serving", "variant": "savedmodel", "path": "", "pushed": True}
    assert len(target_table({"targets": [savedmodel_only]})) == 3  # header, rule, row: no notes
