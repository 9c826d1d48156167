"""Compute gates: a target over its latency or size budget, or much slower than the same target in the
version in service, is not pushed (`deployment.max_latency_ms`, `max_size_kb`, `max_slowdown`).

The SavedModel is the version: TF Serving loads a version folder's `saved_model.pb`, and the device
targets travel in that folder. So a SavedModel that fails a gate takes every other target with it:
nothing is pushed, the model in service keeps serving, and each target's reason says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from components.core import models_config
from components.core.spec import DeploymentSpec
from components.scoring.parity import TargetReport

BYTES_PER_KB = 1000  # the spec's kB


@dataclass(frozen=True)
class ServedLatencies:
    """The p50 latency of each target pushed in the version in service (none before the first push)."""

    version: int | None = None
    p50_ms: dict[str, float] = field(default_factory=dict)


def served_latencies(serving_dir: Path | None) -> ServedLatencies:
    """What the version pinned in `serving_dir` (`<serving root>/<model>`) measured, from its manifest.

    A target the version in service did not push (or measured no latency for) is not in service: there
    is nothing to be slower than."""
    if serving_dir is None:
        return ServedLatencies()
    version = models_config.current_versions(serving_dir.parent).get(serving_dir.name)
    if version is None:
        return ServedLatencies()
    manifest = models_config.read_manifest(serving_dir / str(version))
    p50 = {
        models_config.target_name(target): float(target["latency_ms_p50"])
        for target in manifest.get("targets", [])
        if target.get("pushed", True) and _positive(target.get("latency_ms_p50"))
    }
    return ServedLatencies(version, p50)


def failures(report: TargetReport, deployment: DeploymentSpec, served: ServedLatencies) -> list[str]:
    """Each compute gate `report` fails, with the figures; [] when it passes them all. A latency that was
    not measured (the conversion failed) is not judged: that target is refused already."""
    found = [_size_failure(report, deployment)]
    if _positive(report.latency_ms_p50):
        found += [_latency_failure(report, deployment), _slowdown_failure(report, deployment, served)]
    return [failure for failure in found if failure]


def _size_failure(report: TargetReport, deployment: DeploymentSpec) -> str:
    budget = deployment.max_size_kb.get(report.name)
    size_kb = report.size_bytes / BYTES_PER_KB
    if budget is None or size_kb <= budget:
        return ""
    return f"size {_above(size_kb, budget)} kB is over deployment.max_size_kb = {budget:g} kB"


def _latency_failure(report: TargetReport, deployment: DeploymentSpec) -> str:
    budget, p50 = deployment.max_latency_ms.get(report.name), report.latency_ms_p50
    if budget is None or p50 <= budget:
        return ""
    return f"p50 latency {_above(p50, budget)} ms is over deployment.max_latency_ms = {budget:g} ms"


def _slowdown_failure(report: TargetReport, deployment: DeploymentSpec, served: ServedLatencies) -> str:
    limit, before, p50 = deployment.max_slowdown, served.p50_ms.get(report.name), report.latency_ms_p50
    if limit is None or before is None or p50 <= limit * before:
        return ""
    return (
        f"p50 latency {p50:.4g} ms is {_above(p50 / before, limit)}x the {before:.4g} ms of version "
        f"{served.version} in service, over deployment.max_slowdown = {limit:g}"
    )


def check(
    report: TargetReport,
    deployment: DeploymentSpec,
    served: ServedLatencies,
    savedmodel: TargetReport | None = None,
) -> None:
    """Marks `report` not to be pushed when it fails a gate, its reasons added to any it had; a device
    target is refused as well when the `savedmodel`'s report (checked first) was (see the module's
    docstring)."""
    refuse(report, failures(report, deployment, served))
    if savedmodel is not None and not savedmodel.passed and report.passed:
        refuse(report, [without_savedmodel(savedmodel.reason)])


def refuse(report: TargetReport, reasons: list[str]) -> None:
    """Adds `reasons` (if any) to the report's and marks it not to be pushed."""
    if reasons:
        report.passed = False
        report.reason = "; ".join(r for r in (report.reason, *reasons) if r)


def without_savedmodel(serving_reason: str) -> str:
    """The reason of a target refused only because the SavedModel was."""
    return f"the SavedModel is not pushed ({serving_reason}): nothing of this version is"


def _above(value: float, limit: float) -> str:
    """`value` with enough digits to read above `limit` (2.0004 ms over a 2 ms budget is not "2")."""
    for digits in range(3, 10):
        text = f"{value:.{digits}g}"
        if float(text) > limit:
            return text
    return repr(value)


def _positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0
