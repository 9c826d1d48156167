"""The ModelExporter's worker lanes (components/model_exporter/workers.py and targets.py): every device
target converted and run on the test rows in two worker processes at once, each converted once (the TF.js
float16 / uint8 models are the float32 one with its weights quantized); a target that fails is recorded
with its reason while the others pass; a worker that crashes, stalls or has a bug gives a clear reason and
never hangs the export; workers choose Keras 2 before TensorFlow, and what they print or log goes to the
run's log, not the console. The executor around them runs in tests/e2e/test_deployment.py."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from components.core.artifacts import PREDICTIONS_KEY, RAW_SIGNATURE
from components.model_exporter import converters, targets, workers
from components.model_exporter.targets import TFJS, TFLITE, TargetJob
from components.modules.signatures import RAW_CONSTANT_PREFIX
from components.scoring import runtimes
from tests.helpers.data import REPO_ROOT
from tests.helpers.worker_jobs import Probe

COMPANIES = ["Flash Cab", "Sun Taxi", "Taxi Affiliation Services"]
LATENCY_CALLS = 20
PROBES = ("tests.helpers.worker_jobs",)  # what a lane of probe jobs imports: no TensorFlow


def raw_rows(count: int, seed: int) -> runtimes.Inputs:
    """Raw features as the exporter hands them to a worker: a fare (NaN = missing), a company ("" =
    missing, and one never seen)."""
    rng = np.random.default_rng(seed)
    fare = rng.gamma(2.0, 6.0, (count, 1)).astype(np.float32)
    fare[::17] = np.nan
    company = rng.choice([*COMPANIES, "", "Unknown Cab"], (count, 1)).astype(object)
    return {"company": company, "fare": fare}


class TinyModel(tf.Module):
    """A raw-feature signature of the exporter's kind: a missing number imputed and scaled, a category
    looked up in an in-graph table and embedded, a dense layer, a probability."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(COMPANIES, tf.range(len(COMPANIES), dtype=tf.int64)),
            default_value=len(COMPANIES),
        )
        self.embedding = tf.Variable(rng.normal(0, 0.5, (len(COMPANIES) + 1, 8)).astype(np.float32))
        self.kernel = tf.Variable(rng.normal(0, 0.5, (9, 1)).astype(np.float32))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 1], tf.string, name="company"),
            tf.TensorSpec([None, 1], tf.float32, name="fare"),
        ]
    )
    def serve(self, company: tf.Tensor, fare: tf.Tensor) -> dict[str, tf.Tensor]:
        def row(name: str, value: float) -> tf.Tensor:  # as signatures.RawTransform names its constants
            return tf.constant([[value]], tf.float32, name=f"{RAW_CONSTANT_PREFIX}{name}")

        present = tf.logical_not(tf.math.is_nan(fare))
        fare = (tf.where(present, fare, tf.zeros_like(fare)) - row("center", 12.0)) * row("scale", 0.125)
        fare = tf.where(present, fare, row("missing", 0.0) * tf.ones_like(fare))
        embedded = tf.gather(self.embedding, self.table.lookup(company[:, 0]))
        return {PREDICTIONS_KEY: tf.sigmoid(tf.concat([embedded, fare], axis=1) @ self.kernel)}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny") / "raw_only_saved_model"
    model = TinyModel()
    tf.saved_model.save(model, str(folder), signatures={RAW_SIGNATURE: model.serve.get_concrete_function()})
    return str(folder)


@pytest.fixture(scope="module")
def test_rows() -> runtimes.Inputs:
    return raw_rows(300, seed=1)


def job(family: str, variant: str, model: str, rows: runtimes.Inputs, out: Path) -> TargetJob:
    destination = out / (f"tflite/{variant}.tflite" if family == TFLITE else f"tfjs/{variant}")
    return TargetJob(
        target=family,
        variant=variant,
        source=model,
        destination=destination,
        work_dir=out / "tmp",
        inputs=rows,
        latency_calls=LATENCY_CALLS,
        calibration=raw_rows(100, seed=2) if variant == "int8" else None,
    )


def test_every_target_is_built_in_its_worker_and_a_failing_one_is_recorded(tiny_model, test_rows, tmp_path):
    families = {TFLITE: ["float32", "bogus", "dynamic", "int8"], TFJS: ["float32", "uint8"]}
    reference = runtimes.TensorFlowRuntime(tiny_model).predict(test_rows)
    with workers.Lanes({f: targets.WORKER_MODULES[f] for f in families}) as lanes:
        for family, variants in families.items():
            for variant in variants:
                lanes.submit(family, job(family, variant, tiny_model, test_rows, tmp_path))
        outcomes = lanes.results()

    names = {f"{family}-{variant}" for family, variants in families.items() for variant in variants}
    assert set(outcomes) == names, "every target is reported"
    failed = outcomes.pop("tflite-bogus")
    assert failed.reason == "ValueError: unknown TFLite variant 'bogus'"
    assert failed.predictions is None
    for name, outcome in outcomes.items():
        assert outcome.reason == "", name
        predictions = outcome.predictions.reshape(reference.shape)
        assert len(outcome.timings) == LATENCY_CALLS, name
        assert outcome.seconds > 0, name
        difference = np.max(np.abs(predictions - reference))
        assert difference <= (1e-5 if name.endswith("float32") else 0.05), (name, difference)

    # One TF.js conversion: the uint8 model is the float32 graph with its weights quantized, but for the
    # raw signature's per-column constants.
    float32 = json.loads((tmp_path / "tfjs" / "float32" / converters.MODEL_JSON).read_text())
    uint8 = json.loads((tmp_path / "tfjs" / "uint8" / converters.MODEL_JSON).read_text())
    assert uint8["modelTopology"] == float32["modelTopology"]
    assert uint8["modelInitializer"] == float32["modelInitializer"]
    weights = [w for group in uint8[converters.WEIGHTS_MANIFEST] for w in group["weights"]]
    constants = sorted(w["name"].rsplit("/", 1)[-1] for w in weights if RAW_CONSTANT_PREFIX in w["name"])
    assert constants == [f"{RAW_CONSTANT_PREFIX}{n}" for n in ("center", "missing", "scale")]
    assert not any("quantization" in w for w in weights if RAW_CONSTANT_PREFIX in w["name"]), "float32"
    others = [w for w in weights if w["dtype"] == "float32" and RAW_CONSTANT_PREFIX not in w["name"]]
    assert others and {w["quantization"]["dtype"] for w in others} == {"uint8"}


class RegexModel(tf.Module):
    """A signature with an op TFLite has no builtin kernel for (it would need the Flex delegate)."""

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.string, name="company")])
    def serve(self, company: tf.Tensor) -> dict[str, tf.Tensor]:
        return {PREDICTIONS_KEY: tf.cast(tf.strings.regex_full_match(company, "Taxi.*"), tf.float32)}


def test_a_model_tflite_cannot_convert_is_that_targets_reason_not_the_exports_failure(tmp_path):
    model = RegexModel()
    source = str(tmp_path / "regex")
    tf.saved_model.save(model, source, signatures={RAW_SIGNATURE: model.serve.get_concrete_function()})
    rows = {"company": raw_rows(10, seed=3)["company"]}
    with workers.Lanes({TFLITE: targets.WORKER_MODULES[TFLITE]}) as lanes:
        lanes.submit(TFLITE, job(TFLITE, "float32", source, rows, tmp_path))
        outcome = lanes.results()["tflite-float32"]
    assert outcome.reason.startswith("ConverterError: Could not translate MLIR to FlatBuffer"), outcome.reason
    assert outcome.predictions is None


def quantized_weights(folder: Path) -> list[list]:
    """A graph model's weights without their names (each conversion numbers its nodes anew), but for the
    raw signature's constants."""
    from tensorflowjs import read_weights

    manifest = json.loads((folder / converters.MODEL_JSON).read_text())[converters.WEIGHTS_MANIFEST]
    specs = sorted(
        json.dumps({k: v for k, v in w.items() if k != "name"}, sort_keys=True)
        for group in manifest
        for w in group["weights"]
        if RAW_CONSTANT_PREFIX not in w["name"]
    )
    values = sorted(
        (str(w["data"].dtype), w["data"].shape, repr(w["data"].tolist()))
        for w in read_weights.read_weights(manifest, str(folder), flatten=True)
        if RAW_CONSTANT_PREFIX not in w["name"]
    )
    return [specs, values]


@pytest.mark.parametrize("variant", ["float16", "uint8"])
def test_quantizing_the_float32_tfjs_model_writes_what_a_quantized_conversion_does(
    tiny_model, tmp_path, variant
):
    from tensorflowjs.converters import tf_saved_model_conversion_v2

    tf_saved_model_conversion_v2.convert_tf_saved_model(
        tiny_model,
        str(tmp_path / "converted"),
        signature_def=RAW_SIGNATURE,
        saved_model_tags="serve",
        quantization_dtype_map={variant: True},
    )
    converters.to_tfjs(tiny_model, tmp_path / "float32")
    converters.quantize_tfjs(tmp_path / "float32", tmp_path / "quantized", variant)
    assert quantized_weights(tmp_path / "quantized") == quantized_weights(tmp_path / "converted")


def test_the_lanes_run_at_the_same_time():
    with workers.Lanes({"one": PROBES, "two": PROBES}) as lanes:
        for lane in ("one", "two"):
            lanes.submit(lane, Probe(f"{lane}-warm", "pid"))
            lanes.submit(lane, Probe(f"{lane}-sleep", "sleep", seconds=2.0))
        outcomes = lanes.results()
    finished = sorted(outcomes[f"{lane}-sleep"].value for lane in ("one", "two"))
    assert finished[1] - finished[0] < 1.5, "each lane slept 2 s, side by side"
    assert outcomes["one-warm"].value != outcomes["two-warm"].value, "two worker processes"


@pytest.mark.parametrize(
    ("action", "reason"),
    [("crash", "was killed by signal SIGKILL (a crash, or out of memory)"), ("exit", "exited with code 3")],
)
def test_a_worker_that_dies_gives_its_target_the_reason_and_the_lane_goes_on(action, reason):
    with workers.Lanes({TFLITE: PROBES}) as lanes:
        for probe in (Probe("before", "pid"), Probe("target", action), Probe("after", "pid")):
            lanes.submit(TFLITE, probe)
        outcomes = lanes.results()
    assert outcomes["target"].reason.startswith(f"the {TFLITE} worker process {reason}")
    assert outcomes["target"].value is None
    assert outcomes["before"].value != outcomes["after"].value, "a new worker for the next job"


def test_a_job_past_its_time_is_stopped():
    lane = workers.Lane("slow", PROBES)
    started = time.monotonic()
    outcome = lane.call(Probe("stalled", "sleep", seconds=600), timeout=3)
    lane.stop()
    assert outcome.reason.startswith("the slow worker process did not finish within 3s and was stopped")
    assert time.monotonic() - started < 60


def test_a_bug_in_a_job_is_raised_in_the_executor_and_the_workers_end():
    lanes = workers.Lanes({TFLITE: PROBES, TFJS: PROBES})
    with pytest.raises(workers.WorkerError, match="TypeError: a bug in a job"), lanes:
        lanes.submit(TFLITE, Probe("buggy", "bug"))
        lanes.submit(TFJS, Probe("slow", "sleep", seconds=600))
        lanes.results()
    assert all(lane._process is None for lane in lanes._lanes.values()), "no worker left running"


def test_a_worker_chooses_keras_2_before_tensorflow_as_every_entry_point_does(monkeypatch):
    monkeypatch.delenv("TF_USE_LEGACY_KERAS")
    with workers.Lanes({TFLITE: PROBES}) as lanes:
        lanes.submit(TFLITE, Probe("environment", "environment"))
        environment = lanes.results()["environment"].value
    assert environment["TF_USE_LEGACY_KERAS"] == "1"
    assert environment["keras"].startswith("tf_keras"), environment


CLI_RUN = """
    import sys
    from pathlib import Path
    from pipelines.ops import run_log
    run_log.keep_until_exit()
    with run_log.capture(Path(sys.argv[1])):
        from components.model_exporter import workers
        from tests.helpers.worker_jobs import Probe
        with workers.Lanes({"tflite": ("tests.helpers.worker_jobs",)}) as lanes:
            lanes.submit("tflite", Probe("chatter", "chatter"))
            assert lanes.results()["chatter"].value == "chattered"
        print("Blueprint progress", file=run_log.console(), flush=True)
    run_log.at_exit()
"""


def test_what_a_worker_logs_or_prints_goes_to_the_runs_log_not_the_console(tmp_path):
    log = tmp_path / "run.log"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CLI_RUN), str(log)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Blueprint progress\n"
    text = log.read_text()
    for line in (
        "chatter: converting and checking",  # the lane's own record
        "worker absl info",
        "worker library warning",
        "worker python warning",
        "worker python stdout",
        "worker python stderr",
        "worker native fd 2",
    ):
        assert line in text, line
        assert line not in done.stdout + done.stderr, line
