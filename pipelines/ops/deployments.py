"""Reading what was pushed: a version's manifest, and the table the CLI prints from it."""

from __future__ import annotations

from components.core.models_config import read_manifest, target_name

__all__ = ["read_manifest", "target_table"]


def _size(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


def _number(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def target_table(manifest: dict) -> list[str]:
    """One line per target: size, metric on the test split, largest difference from TF, latency."""
    metric = manifest.get("metric", "metric")
    header = f"{'target':18s} {'size':>10s} {metric:>8s} {'max diff':>9s} {'p50 ms':>7s}  pushed"
    lines = [header, "-" * len(header)]
    for target in manifest.get("targets", []):
        name = target_name(target)
        pushed = "yes" if target.get("pushed") else f"no: {target.get('reason', '')}"
        lines.append(
            f"{name:18s} {_size(target.get('size_bytes', 0)):>10s} "
            f"{_number(target.get('metric'), '.4f'):>8s} {_number(target.get('max_abs_diff'), '.1e'):>9s} "
            f"{_number(target.get('latency_ms_p50'), '.2f'):>7s}  {pushed}"
        )
    sparsity = manifest.get("sparsity") or {}
    if sparsity.get("target") is not None:
        lines.append(
            f"pruning: {sparsity['reached']:.1%} of the weights are zero (target {sparsity['target']:.0%})"
        )
    return lines
