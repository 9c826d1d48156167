"""Faults: the pipeline process SIGKILLed during Transform, during Trainer and in the middle of a push.

Each kill is a real SIGKILL of the CLI's process group at a known point. After each, ML Metadata
stays consistent (every completed execution's outputs are live and on disk; nothing consumed an
artifact a killed execution left), the next run reuses what completed (cache) and executes the
rest, and a watcher that reads the serving folder every 20 ms never sees a partial version. The
last run pushes exactly one version, and its model is bit for bit the model of the session's served
run (tests/conftest.py::served_taxi): the same spec and data, run once without interruption.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ml_metadata.proto import metadata_store_pb2

from components.atomic_pusher.executor import TEMP_PREFIX
from components.core.artifacts import TEST_PREDICTIONS_FILE
from pipelines.paths import RunPaths
from pipelines.workflow import results, training
from tests.helpers.data import REPO_ROOT
from tests.helpers.fault_runner import HOLD_PUSH
from tests.helpers.pipeline_runs import COMPONENT_NODES, output_uri, versions

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("served-taxi")]

Execution = metadata_store_pb2.Execution
Artifact = metadata_store_pb2.Artifact
Event = metadata_store_pb2.Event
RUN_TIMEOUT = 900


class ServingWatcher(threading.Thread):
    """Reads the serving folder every 20 ms; records any numbered version that is not complete."""

    def __init__(self, serving_dir: Path):
        super().__init__(daemon=True)
        self.serving_dir = serving_dir
        self.partial: list[str] = []
        self.looks = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for version in versions(self.serving_dir):
                folder = self.serving_dir / version
                if not ((folder / "saved_model.pb").is_file() and (folder / "manifest.json").is_file()):
                    self.partial.append(version)
            self.looks += 1
            time.sleep(0.02)


class PipelineProcess:
    """The CLI in its own process group, its output collected line by line."""

    def __init__(self, spec_path: Path, home: Path, hold_push: Path | None = None):
        env = dict(os.environ)
        if hold_push is not None:
            env[HOLD_PUSH] = str(hold_push)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.helpers.fault_runner",
                "run",
                "--config",
                str(spec_path),
                "--home",
                str(home),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def kill_when(self, ready: Callable[[], bool], then_wait: float = 0.0) -> None:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not ready():
            assert self.process.poll() is None, "the run ended before the fault:\n" + self.output()
            assert time.monotonic() < deadline, "the fault point never came:\n" + self.output()
            time.sleep(0.1)
        time.sleep(then_wait)
        os.killpg(self.process.pid, signal.SIGKILL)
        assert self.process.wait(timeout=60) == -signal.SIGKILL
        self.reader.join(timeout=10)

    def finish(self) -> int:
        code = self.process.wait(timeout=RUN_TIMEOUT)
        self.reader.join(timeout=10)
        return code

    def output(self) -> str:
        return "\n".join(self.lines[-60:])


@pytest.fixture(scope="module")
def setup(tmp_path_factory, served_taxi):
    """The served run's spec and data, run here in a home of the fault tests' own."""
    spec = served_taxi.spec
    paths = RunPaths.for_spec(spec.name, tmp_path_factory.mktemp("faults") / "home")
    watcher = ServingWatcher(paths.serving_dir)
    watcher.start()
    yield served_taxi.spec_path, spec, paths, watcher
    watcher.stopped.set()


def completed(paths: RunPaths, spec) -> dict[str, int]:
    """Per node, how many executions finished (executed or taken from the cache)."""
    store = results.open_store(paths.metadata_config())
    done = (Execution.COMPLETE, Execution.CACHED)
    return {
        node: sum(1 for e in executions if e.last_known_state in done)
        for node, executions in results.executions_by_node(store, training.pipeline_name(spec)).items()
    }


def executed(paths: RunPaths, spec) -> dict[str, int]:
    store = results.open_store(paths.metadata_config())
    return {
        node: sum(1 for e in executions if e.last_known_state == Execution.COMPLETE)
        for node, executions in results.executions_by_node(store, training.pipeline_name(spec)).items()
    }


def assert_metadata_consistent(paths: RunPaths) -> None:
    """Finished executions' outputs are live and on disk; no execution read an artifact not live."""
    store = results.open_store(paths.metadata_config())
    finished = [
        e.id for e in store.get_executions() if e.last_known_state in (Execution.COMPLETE, Execution.CACHED)
    ]
    artifacts = {a.id: a for a in store.get_artifacts()}
    for event in store.get_events_by_execution_ids(finished):
        artifact = artifacts[event.artifact_id]
        if event.type == Event.OUTPUT:
            assert artifact.state == Artifact.LIVE, (
                f"output {artifact.uri} of a finished execution is not live"
            )
            assert Path(artifact.uri).exists(), f"{artifact.uri} is recorded but not on disk"
        if event.type == Event.INPUT:
            assert artifact.state == Artifact.LIVE, f"an execution read {artifact.uri}, which is not live"


def test_a_run_killed_during_transform_resumes_from_the_cache(setup):
    spec_path, spec, paths, _ = setup
    run = PipelineProcess(spec_path, paths.home)
    # One progress line per component, when it finishes: Transform runs right after ExampleValidator.
    run.kill_when(lambda: run.said("ExampleValidator: finished"), then_wait=4.0)
    assert not run.said("Transform: finished"), "the kill came after Transform"
    assert completed(paths, spec).get("Transform", 0) == 0
    assert_metadata_consistent(paths)
    assert versions(paths.serving_dir) == []


def test_a_run_killed_during_the_trainer_keeps_transform(setup):
    spec_path, spec, paths, _ = setup
    run = PipelineProcess(spec_path, paths.home)
    run.kill_when(lambda: run.said("Transform: finished"), then_wait=3.0)  # the Trainer runs next
    assert not run.said("Trainer: finished"), "the kill came after the Trainer"
    for node in ("CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator"):
        assert run.said(f"{node}: finished (cached"), f"{node} ran again after the first kill"
    assert executed(paths, spec)["Transform"] == 1
    assert completed(paths, spec).get("Trainer", 0) == 0
    assert_metadata_consistent(paths)
    assert versions(paths.serving_dir) == []


def test_a_run_killed_in_the_middle_of_a_push_leaves_no_version(setup, tmp_path):
    spec_path, spec, paths, watcher = setup
    marker = tmp_path / "staged"
    run = PipelineProcess(spec_path, paths.home, hold_push=marker)
    run.kill_when(marker.exists)
    assert run.said("Transform: finished (cached"), "Transform ran again after the second kill"
    staged = Path(marker.read_text())
    assert staged.name.startswith(TEMP_PREFIX) and (staged / "saved_model.pb").is_file()
    assert versions(paths.serving_dir) == [], "a version appeared although the push was killed"
    assert executed(paths, spec)["Trainer"] == 1
    assert_metadata_consistent(paths)
    assert watcher.partial == []


def test_the_next_run_pushes_exactly_one_version_and_repeats_nothing_that_finished(setup):
    spec_path, spec, paths, watcher = setup
    unfinished = {node for node in COMPONENT_NODES if not completed(paths, spec).get(node)}
    assert "Pusher" in unfinished and "Trainer" not in unfinished
    run = PipelineProcess(spec_path, paths.home)
    assert run.finish() == 0, run.output()
    executed_line = next(line for line in run.lines if line.strip().startswith("executed:"))
    assert set(executed_line.split(":", 1)[1].strip().split(", ")) == unfinished, run.output()
    counts = executed(paths, spec)
    for node in ("CsvExampleGen", "Transform", "Trainer", "Evaluator", "ModelExporter", "Report"):
        assert counts[node] == 1, f"{node} executed {counts[node]} times over the four runs"
    assert counts["Pusher"] == 1
    assert len(versions(paths.serving_dir)) == 1
    assert not [p for p in paths.serving_dir.iterdir() if p.name.startswith(TEMP_PREFIX)], "staging left"
    assert_metadata_consistent(paths)
    assert watcher.looks > 100 and watcher.partial == []


def gate_arrays(predictions: Path) -> tuple[np.ndarray, np.ndarray]:
    saved = np.load(predictions / TEST_PREDICTIONS_FILE)
    return saved["labels"], saved["predictions"]


def test_training_is_reproducible_and_the_interrupted_runs_trained_the_same_model(setup, served_taxi):
    """The session's served run, uninterrupted in a fresh home (nothing cached) on the same spec and
    data, trained the model the resumed runs trained.

    Bit-identical: seeded weights, dropout and row order, TensorFlow op determinism, and Transform's
    analyzers summing in float64 (under load Beam splits the sums into other bundles; float32 sums of
    longitudes then differed in their last bits, and training grew that to 0.26 in a prediction).
    """
    _, spec, paths, _ = setup
    assert served_taxi.paths.home != paths.home
    labels, resumed = gate_arrays(output_uri(paths, spec, "DumbBaselineGate", "test_predictions"))
    same_labels, uninterrupted = gate_arrays(served_taxi.gate_predictions)
    assert np.array_equal(labels, same_labels), "both runs tested on the same rows"
    assert np.array_equal(resumed, uninterrupted), np.max(np.abs(resumed - uninterrupted))
