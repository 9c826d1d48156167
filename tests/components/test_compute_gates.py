"""Compute gates: a target over its latency or size budget, or slower than `max_slowdown` times the same
target in the version in service (read from a serving folder the AtomicPusher wrote), is not pushed, with
the figures; a refused SavedModel refuses the whole version and the pusher pushes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from components.atomic_pusher.executor import build_manifest, publish_atomically, savedmodel_refusal
from components.core import models_config
from components.core.artifacts import TARGETS_FILE
from components.core.spec import DeploymentSpec
from components.model_exporter import gates
from components.scoring.parity import TargetReport
from tests.helpers.data import fake_saved_model
from tests.helpers.executors import push
from tests.helpers.pipeline_runs import serving_snapshot


def report(
    name: str, size_bytes: int = 100_000, p50: float | None = 1.0, passed: bool = True
) -> TargetReport:
    target, _, variant = name.partition("-")
    return TargetReport(
        target,
        variant or "savedmodel",
        "" if target == "serving" else f"{target}/{variant}",
        runtime="test",
        size_bytes=size_bytes,
        latency_ms_p50=p50,
        passed=passed,
        reason="" if passed else "auc 0.8000 is 0.1000 worse than the SavedModel's 0.9000",
    )


def push_version(
    serving_dir: Path, latencies: dict[str, float], refused: frozenset[str] = frozenset()
) -> int:
    """A version pushed as the AtomicPusher pushes one, its manifest built from these targets' reports."""
    reports = [report(name, p50=p50, passed=name not in refused) for name, p50 in latencies.items()]
    targets = {"exported": True, "targets": [r.to_json() for r in reports]}

    def complete(staging: str, version: str) -> None:
        manifest = build_manifest(serving_dir.name, version, targets, {"pipeline_run_id": "test"})
        Path(staging, models_config.MANIFEST).write_text(json.dumps(manifest))

    model = fake_saved_model(
        serving_dir.parent.parent / "models" / str(len(models_config.versions(serving_dir)))
    )
    version, _ = publish_atomically(model, str(serving_dir), complete=complete)
    return int(version)


def judged(
    candidate: TargetReport, deployment: DeploymentSpec, served: gates.ServedLatencies | None = None
) -> TargetReport:
    gates.check(candidate, deployment, served or gates.ServedLatencies())
    return candidate


def test_a_target_over_its_size_budget_is_not_pushed_with_the_figures():
    deployment = DeploymentSpec(max_size_kb={"tflite-int8": 200})
    refused = judged(report("tflite-int8", size_bytes=250_400), deployment)
    assert not refused.passed
    assert refused.reason == "size 250 kB is over deployment.max_size_kb = 200 kB"
    assert judged(report("tflite-int8", size_bytes=200_000), deployment).passed  # at the budget: pushed
    assert judged(report("tflite-float32", size_bytes=10**9), deployment).passed  # no budget of its own


def test_a_target_over_its_latency_budget_is_not_pushed_with_the_figures():
    deployment = DeploymentSpec(max_latency_ms={"tflite-int8": 2, "serving": 5})
    refused = judged(report("tflite-int8", p50=3.2), deployment)
    assert not refused.passed
    assert f"{refused.name}: {refused.reason}" == (
        "tflite-int8: p50 latency 3.2 ms is over deployment.max_latency_ms = 2 ms"
    )
    assert judged(report("tflite-int8", p50=2.0), deployment).passed
    barely = judged(report("tflite-int8", p50=2.0004), deployment)
    assert barely.reason.startswith("p50 latency 2.0004 ms is over"), "the figure must read above the budget"


def test_a_target_that_failed_to_build_keeps_its_reason_and_gets_the_gates():
    deployment = DeploymentSpec(max_size_kb={"tfjs-uint8": 50}, max_latency_ms={"tfjs-uint8": 1})
    failed = judged(report("tfjs-uint8", size_bytes=80_000, p50=None, passed=False), deployment)
    assert not failed.passed
    assert failed.reason == (
        "auc 0.8000 is 0.1000 worse than the SavedModel's 0.9000; "
        "size 80 kB is over deployment.max_size_kb = 50 kB"
    ), "an unmeasured latency is not judged"


def test_the_slowdown_is_against_the_same_target_in_the_version_in_service(tmp_path):
    serving = tmp_path / "serving" / "taxi"
    first = push_version(
        serving, {"serving": 0.5, "tflite-int8": 1.0, "tfjs-uint8": 0.1}, refused=frozenset({"tfjs-uint8"})
    )
    second = push_version(serving, {"serving": 5.0, "tflite-int8": 10.0})
    models_config.rollback(serving.parent, "taxi", to=first)  # the version in service, not the newest

    served = gates.served_latencies(serving)
    assert served == gates.ServedLatencies(first, {"serving": 0.5, "tflite-int8": 1.0}), second
    deployment = DeploymentSpec(max_slowdown=1.5)
    slow = judged(report("tflite-int8", p50=1.6), deployment, served)
    assert not slow.passed
    assert slow.reason == (
        f"p50 latency 1.6 ms is 1.6x the 1 ms of version {first} in service, "
        "over deployment.max_slowdown = 1.5"
    )
    assert judged(report("tflite-int8", p50=1.5), deployment, served).passed
    assert judged(report("tfjs-uint8", p50=50.0), deployment, served).passed, (
        "not pushed there: not in service"
    )
    assert judged(report("tflite-dynamic", p50=50.0), deployment, served).passed, "not built there"


def test_with_no_version_in_service_there_is_no_slowdown(tmp_path):
    assert gates.served_latencies(None) == gates.ServedLatencies()
    assert gates.served_latencies(tmp_path / "serving" / "taxi") == gates.ServedLatencies()
    never_measured = tmp_path / "old" / "taxi"
    publish_atomically(fake_saved_model(tmp_path / "model"), str(never_measured))  # no manifest
    assert gates.served_latencies(never_measured).p50_ms == {}


def test_a_refused_savedmodel_refuses_every_target_and_the_pusher_pushes_nothing(tmp_path):
    deployment = DeploymentSpec(max_latency_ms={"serving": 1})
    savedmodel = judged(report("serving", p50=4.0), deployment)
    device = report("tflite-int8", p50=0.1)
    gates.check(device, deployment, gates.ServedLatencies(), savedmodel)
    assert not savedmodel.passed and not device.passed
    assert device.reason == (
        "the SavedModel is not pushed (p50 latency 4 ms is over deployment.max_latency_ms = 1 ms): "
        "nothing of this version is"
    )

    serving = tmp_path / "serving" / "taxi"
    in_service = push_version(serving, {"serving": 3.0})
    before = serving_snapshot(serving.parent)
    device_dir = tmp_path / "device"
    (device_dir / "tflite").mkdir(parents=True)
    (device_dir / "tflite" / "int8.tflite").write_bytes(b"int8")
    targets = {"exported": True, "targets": [savedmodel.to_json(), device.to_json()]}
    (device_dir / TARGETS_FILE).write_text(json.dumps(targets))
    assert savedmodel_refusal(targets) == savedmodel.reason

    model = fake_saved_model(tmp_path / "trainer" / "Format-Serving")
    pushed = push(str(Path(model).parent), str(device_dir), serving, tmp_path / "pusher")
    assert pushed.get_int_custom_property("pushed") == 0
    assert serving_snapshot(serving.parent) == before, "nothing written, the version in service serves"
    assert models_config.current_versions(serving.parent) == {"taxi": in_service}


def test_a_savedmodel_that_passes_lets_the_version_be_pushed():
    assert savedmodel_refusal(None) is None
    assert savedmodel_refusal({"exported": False, "reason": "the model is not blessed"}) is None
    passing = {
        "exported": True,
        "targets": [report("serving").to_json(), report("tflite-int8", passed=False).to_json()],
    }
    assert savedmodel_refusal(passing) is None
