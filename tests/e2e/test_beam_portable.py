"""The training pipeline on Beam's PortableRunner: the job API that Flink's and Spark's job servers
implement, here Beam's own job service with an EXTERNAL pool of SDK workers, each in its own process.

The served taxi run of the session (same spec, same 2,500 trips, Beam's DirectRunner) is the reference:
the portable run must push the same model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from components.core.artifacts import TEST_PREDICTIONS_FILE
from components.core.spec import load_spec
from pipelines.ops.cli import run_training
from pipelines.paths import RunPaths
from tests.helpers.data import REPO_ROOT
from tests.helpers.pipeline_runs import NO_DEVICE_TARGETS, output_uri, versions
from tests.helpers.processes import free_port, wait_for_port

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("served-taxi")]


@pytest.fixture(scope="module")
def beam_services(tmp_path_factory):
    """Beam's job service and an SDK worker pool, started from this environment (the pool starts its
    workers with the `python` on PATH), on free ports; a Beam profile pointing at them."""
    folder = tmp_path_factory.mktemp("beam")
    job_port, pool_port = free_port(), free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO_ROOT),
    }
    commands = {
        "job_service": ["apache_beam.runners.portability.local_job_service_main", "--port", str(job_port)],
        "worker_pool": ["apache_beam.runners.worker.worker_pool_main", "--service_port", str(pool_port)],
    }
    processes = {}
    for name, command in commands.items():
        with open(folder / f"{name}.log", "w") as log:
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", *command], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT
            )
    try:
        wait_for_port(job_port, processes["job_service"])
        wait_for_port(pool_port, processes["worker_pool"])
        profile = folder / "portable.yaml"
        settings = {
            "runner": "portable",
            "job_endpoint": f"localhost:{job_port}",
            "environment_type": "EXTERNAL",
            "environment_config": f"localhost:{pool_port}",
        }
        profile.write_text(yaml.safe_dump(settings))
        yield profile, folder
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def portable_run(beam_services, served_taxi, tmp_path_factory):
    profile, logs = beam_services
    served = load_spec(served_taxi.spec_path)
    spec = served.model_copy(update={"deployment": served.deployment.model_copy(update=NO_DEVICE_TARGETS)})
    home = tmp_path_factory.mktemp("portable-home")
    from pipelines import settings

    summary = run_training(spec, home, beam_args=settings.beam_args(spec, str(profile)))
    return spec, summary, RunPaths.for_spec(spec.name, home), logs


def test_the_beam_components_ran_on_the_portable_runners_workers(portable_run):
    """The worker pool started SDK workers (one per Beam stage's bundle processor) for the run's jobs."""
    _, summary, _, logs = portable_run
    assert summary.blessed and summary.pushed_new, summary.power_message
    for component in ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator"):
        assert summary.states[component] == "COMPLETE", component
    pool_log = (logs / "worker_pool.log").read_text()
    assert pool_log.count("Starting worker with command") >= 4, pool_log[-2000:]
    jobs = (logs / "job_service.log").read_text()
    assert "Listening for beam jobs" in jobs


def test_the_portable_run_pushes_the_model_the_direct_runner_pushed(portable_run, served_taxi):
    spec, _, paths, _ = portable_run
    assert len(versions(paths.serving_dir)) == 1
    gate = output_uri(paths, spec, "DumbBaselineGate", "test_predictions")
    portable = np.load(gate / TEST_PREDICTIONS_FILE)
    direct = np.load(served_taxi.gate_predictions / TEST_PREDICTIONS_FILE)
    assert np.array_equal(portable["labels"], direct["labels"]), "the same test rows"
    assert np.max(np.abs(portable["predictions"] - direct["predictions"])) <= 1e-5
