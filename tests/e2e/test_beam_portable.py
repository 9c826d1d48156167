"""The training pipeline on Beam's PortableRunner: the job API that Flink's and Spark's job servers
implement, here Beam's own job service with an EXTERNAL pool of SDK workers, each in its own process.

The portable run reads the served taxi run's rows as a European spreadsheet exports them, zipped (a
byte-order mark, `;`, CRLF, every name and cell quoted, NA for empty cells, gzip): the files a user has, on
the runner a cluster has. The served run of the session (same spec, the plain file, Beam's DirectRunner, the
CLI in a process of its own) is the reference: the portable run, made the same way with `--beam-profile`,
must write the same examples, transform them the same way and push the same model. The checks go stage
by stage, so a difference names the stage it began in. One run proves both claims (a whole run costs a
minute of the suite's budget); before the export was read, such a file failed the spec check ("column
'big_tipper' is not in the data"), and CRLF alone crashed the gate.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import yaml

from components.core.artifacts import TEST_PREDICTIONS_FILE
from components.core.sources import read_table
from components.core.spec import load_spec
from pipelines.paths import RunPaths, pipeline_name
from pipelines.workflow import results
from tests.helpers.data import REPO_ROOT, SAVED_AS, save_as
from tests.helpers.pipeline_runs import NO_DEVICE_TARGETS, cli_run, output_uri, versions, write_taxi_spec
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


@dataclass(frozen=True)
class PortableRun:
    spec: object  # components.core.spec.ProblemSpec
    summary: object  # pipelines.workflow.results.RunSummary
    paths: RunPaths
    logs: Path  # the job service's and the worker pool's logs
    stdout: str


@pytest.fixture(scope="module")
def portable_run(beam_services, served_taxi, tmp_path_factory) -> PortableRun:
    """`pipelines run --beam-profile <the portable profile>` on the served run's rows as a spreadsheet's
    export and the served run's spec (no device target: the SavedModel is what is compared)."""
    profile, logs = beam_services
    folder = tmp_path_factory.mktemp("portable")
    header, rows = read_table(served_taxi.source)
    export = save_as(folder / "export.csv.gz", header, rows, SAVED_AS["spreadsheet"])
    spec_path = write_taxi_spec(folder, export, deployment=NO_DEVICE_TARGETS)
    spec = load_spec(spec_path)
    paths = RunPaths.for_spec(spec.name, folder / "home")
    done = cli_run(spec_path, paths.home, options=("--beam-profile", str(profile)))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = results.latest_run(paths.metadata_config(), pipeline_name(spec))
    return PortableRun(spec, summary, paths, logs, done.stdout)


def test_the_beam_components_ran_on_the_portable_runners_workers(portable_run):
    """The worker pool started SDK workers (one per Beam stage's bundle processor) for the run's jobs."""
    summary, logs = portable_run.summary, portable_run.logs
    assert summary.blessed and summary.pushed_new, summary.power_message
    for component in ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator"):
        assert summary.states[component] == "COMPLETE", component
    pool_log = (logs / "worker_pool.log").read_text()
    assert pool_log.count("Starting worker with command") >= 4, pool_log[-2000:]
    jobs = (logs / "job_service.log").read_text()
    assert "Listening for beam jobs" in jobs


def test_the_spreadsheets_export_is_read_as_it_was_written(portable_run):
    stdout = portable_run.stdout
    assert "1 file(s), semicolon-separated (detected)" in stdout, stdout


def split_records(examples: Path, split: str) -> list[bytes]:
    """The serialized examples of one split, in the order the Trainer reads them (shards by name)."""
    files = sorted(str(path) for path in (examples / f"Split-{split}").glob("*.gz"))
    return [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def first_difference(ours: list[tf.train.Example], reference: list[tf.train.Example]) -> str | None:
    """Where two lists of examples part (None when they are the same): a short message, since pytest's
    own diff of two thousand protos runs for minutes."""
    if len(ours) != len(reference):
        return f"{len(ours)} examples against {len(reference)}"
    for row, (mine, theirs) in enumerate(zip(ours, reference, strict=True)):
        if mine != theirs:
            same_set = sorted(map(str, ours)) == sorted(map(str, reference))
            what = "the same examples in another order" if same_set else "other examples"
            return f"row {row} differs ({what})"
    return None


def test_the_portable_run_pushes_the_model_the_direct_runner_pushed(portable_run, served_taxi):
    spec, paths = portable_run.spec, portable_run.paths
    assert len(versions(paths.serving_dir)) == 1
    # The served run's own outputs: other tests run again in its home later.
    direct_outputs = served_taxi.summary.outputs
    portable_examples = output_uri(paths, spec, "CsvExampleGen", "examples")
    direct_examples = Path(direct_outputs["CsvExampleGen"]["examples"][0])
    for split in ("train", "eval", "test"):
        ours = [tf.train.Example.FromString(r) for r in split_records(portable_examples, split)]
        reference = [tf.train.Example.FromString(r) for r in split_records(direct_examples, split)]
        difference = first_difference(ours, reference)
        assert difference is None, f"the {split} split: {difference}"

    test_rows = split_records(direct_examples, "test")
    transformed = []
    graphs = (
        output_uri(paths, spec, "Transform", "transform_graph"),
        Path(direct_outputs["Transform"]["transform_graph"][0]),
    )
    for graph_uri in graphs:
        graph = tft.TFTransformOutput(str(graph_uri))
        features = tf.io.parse_example(tf.constant(test_rows), graph.raw_feature_spec())
        outputs = graph.transform_raw_features(features)
        transformed.append({name: tf.convert_to_tensor(value).numpy() for name, value in outputs.items()})
    portable_features, direct_features = transformed
    assert portable_features.keys() == direct_features.keys()
    for name, values in direct_features.items():
        assert np.array_equal(portable_features[name], values), f"Transform's '{name}' differs"

    gate = output_uri(paths, spec, "DumbBaselineGate", "test_predictions")
    portable = np.load(gate / TEST_PREDICTIONS_FILE)
    direct = np.load(served_taxi.gate_predictions / TEST_PREDICTIONS_FILE)
    assert np.array_equal(portable["labels"], direct["labels"]), "the same test rows"
    assert np.max(np.abs(portable["predictions"] - direct["predictions"])) <= 1e-5
