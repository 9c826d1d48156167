"""Reading what was pushed: a version's manifest, and the table the CLI prints from it."""

from __future__ import annotations

import math

from components.core.models_config import read_manifest, target_name
from components.core.spec import BOUNDED_METRICS

__all__ = ["read_manifest", "target_table"]

FLAG = "!"


def _size(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


def _number(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def _difference(value: float | None) -> str:
    """A row's difference as people read it: dollars `2,346`, probabilities `0.0123`, noise `3.1e-07`."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}" if abs(value) >= 0.01 else f"{value:.1e}"


def _row(target: dict) -> str:
    pushed = "yes" if target.get("pushed") else f"no: {target.get('reason', '')}"
    flag = FLAG if target.get("max_abs_diff_flagged") else " "
    return (
        f"{target_name(target):18s} {_size(target.get('size_bytes', 0)):>10s} "
        f"{_number(target.get('metric'), '.4f'):>8s} {_difference(target.get('max_abs_diff')):>9s}{flag} "
        f"{_number(target.get('latency_ms_p50'), '.2f'):>7s}  {pushed}"
    )


def _first(manifest: dict, key: str) -> float | None:
    """A figure every judged target carries (the same for each: it comes from the SavedModel)."""
    return next((t[key] for t in manifest.get("targets", []) if t.get(key) is not None), None)


def _parity_rule(manifest: dict) -> list[str]:
    """The gate in one line: absolute for a metric in [0, 1], relative to the SavedModel's for mse / mae."""
    metric, tolerance = manifest.get("metric"), manifest.get("tolerance")
    if metric is None or tolerance is None:
        return []
    if metric in BOUNDED_METRICS:
        return [f"parity: a target's {metric} may be at most {tolerance:g} below the SavedModel's (absolute)"]
    allowed = _first(manifest, "allowed_loss")
    how = "relative" if allowed is None else f"relative, {allowed:.4g} here"
    share = f"{tolerance * 100:g}%"
    return [f"parity: a target's {metric} may be at most {share} worse than the SavedModel's ({how})"]


def _difference_notes(manifest: dict) -> list[str]:
    targets = manifest.get("targets", [])
    units = "the label's units" if manifest.get("task") == "regression" else "probability"
    notes = [
        f"max diff: the largest difference of a test row's prediction from the SavedModel's, in {units} "
        "(serving: its serving_default against serving_raw, the signature the devices are built from)"
    ]
    flagged = [target_name(t) for t in targets if t.get("max_abs_diff_flagged")]
    if flagged:
        mae = _first(manifest, "reference_mae")
        notes.append(
            f"{FLAG} {', '.join(flagged)}: a row is further from the SavedModel than its mean absolute "
            f"error ({_difference(mae)}); the gate judges the metric, not single rows: check the target "
            "before relying on it"
        )
    return notes


def target_table(manifest: dict) -> list[str]:
    """One line per target: size, metric on the test split, largest difference from TF on one row (flagged
    when larger than the SavedModel's mean absolute error), latency; then the parity rule and notes."""
    metric = manifest.get("metric", "metric")
    header = f"{'target':18s} {'size':>10s} {metric:>8s} {'max diff':>9s}  {'p50 ms':>7s}  pushed"
    lines = [header, "-" * len(header), *(_row(t) for t in manifest.get("targets", []))]
    if any(t.get("max_abs_diff") is not None for t in manifest.get("targets", [])):
        lines += _parity_rule(manifest) + _difference_notes(manifest)
    sparsity = manifest.get("sparsity") or {}
    if sparsity.get("target") is not None:
        lines.append(
            f"pruning: {sparsity['reached']:.1%} of the weights are zero (target {sparsity['target']:.0%})"
        )
    return lines
