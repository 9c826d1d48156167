"""Each deployment target run in its own runtime: TensorFlow, the TFLite interpreter, TF.js in Node."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from components.core.artifacts import PREDICTIONS_KEY, RAW_SIGNATURE, SERVING_SIGNATURE

BATCH = 256
TFJS_SCRIPT = Path(__file__).with_name("tfjs_predict.mjs")
NODE_TIMEOUT_SECONDS = 600

Inputs = dict[str, np.ndarray]  # feature -> [n, 1] float32 (NaN = missing) or object (text, "" = missing)


class RuntimeFailure(RuntimeError):
    """A target that does not load or run in its runtime; the message says why."""


def rows(inputs: Inputs, start: int, end: int) -> Inputs:
    return {name: values[start:end] for name, values in inputs.items()}


def row_count(inputs: Inputs) -> int:
    return len(next(iter(inputs.values())))


def _timed(call, inputs: Inputs, calls: int) -> list[float]:
    """Milliseconds of `calls` single-example calls, cycling over the rows, after one warm-up call."""
    count = row_count(inputs)
    call(rows(inputs, 0, 1))
    timings = []
    for i in range(calls):
        row = rows(inputs, i % count, i % count + 1)
        started = time.perf_counter()
        call(row)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


class TensorFlowRuntime:
    """The SavedModel's `serving_raw` signature in TensorFlow: the reference every target is held to."""

    name = "tensorflow"

    def __init__(self, saved_model_dir: str):
        self.saved_model = tf.saved_model.load(saved_model_dir)
        self._signature = self.saved_model.signatures[RAW_SIGNATURE]

    def input_dtypes(self) -> dict[str, tf.DType]:
        return {name: spec.dtype for name, spec in self._signature.structured_input_signature[1].items()}

    def _call(self, inputs: Inputs) -> np.ndarray:
        tensors = {name: tf.constant(values) for name, values in inputs.items()}
        return self._signature(**tensors)[PREDICTIONS_KEY].numpy()

    def predict(self, inputs: Inputs) -> np.ndarray:
        count = row_count(inputs)
        return np.concatenate([self._call(rows(inputs, s, s + BATCH)) for s in range(0, count, BATCH)])

    def latency_ms(self, inputs: Inputs, calls: int) -> list[float]:
        return _timed(self._call, inputs, calls)

    def predict_examples(self, serialized: list[bytes]) -> np.ndarray:
        """Predictions of serialized tf.Examples through `serving_default`: what TF Serving serves and
        the Evaluator scored, where `predict` runs the raw-feature signature the device targets are
        built from."""
        serve = self.saved_model.signatures[SERVING_SIGNATURE]
        return np.concatenate(
            [
                serve(examples=tf.constant(serialized[s : s + BATCH]))[PREDICTIONS_KEY].numpy()
                for s in range(0, len(serialized), BATCH)
            ]
        )


class TFLiteRuntime:
    """The TFLite interpreter with builtin ops only: no Flex delegate, so TensorFlow ops cannot sneak in."""

    name = "tflite"

    def __init__(self, model_path: Path):
        try:
            interpreter = tf.lite.Interpreter(
                model_path=str(model_path),
                experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN,
            )
            self._runner = interpreter.get_signature_runner(RAW_SIGNATURE)
        except (ValueError, RuntimeError) as error:
            raise RuntimeFailure(
                f"{model_path.name} does not load with TFLite builtin ops: {error}"
            ) from error

    def _call(self, inputs: Inputs) -> np.ndarray:
        return self._runner(**inputs)[PREDICTIONS_KEY]

    def predict(self, inputs: Inputs) -> np.ndarray:
        count = row_count(inputs)
        return np.concatenate([self._call(rows(inputs, s, s + BATCH)) for s in range(0, count, BATCH)])

    def latency_ms(self, inputs: Inputs, calls: int) -> list[float]:
        return _timed(self._call, inputs, calls)


def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeFailure("Node.js ('node') is not on PATH; TF.js models cannot be checked or pushed")
    return node


def to_json_columns(inputs: Inputs) -> dict[str, list]:
    """Columns as JSON values: text as str, integers as int, floats with None for a missing (NaN) one."""
    columns = {}
    for name, values in inputs.items():
        flat = values.reshape(-1)
        if flat.dtype == object:
            columns[name] = [v.decode() if isinstance(v, bytes) else str(v) for v in flat]
        elif flat.dtype.kind == "i":  # a date-time's Unix seconds
            columns[name] = [int(v) for v in flat]
        else:
            columns[name] = [None if math.isnan(v) else float(v) for v in flat]
    return columns


class TfjsNodeRuntime:
    """A TF.js graph model run by `@tensorflow/tfjs` in Node (tfjs_predict.mjs)."""

    name = "tfjs-node"

    def __init__(self, model_dir: Path):
        self._model_dir = model_dir
        self._node = node_executable()

    def run(self, inputs: Inputs, latency_calls: int) -> tuple[np.ndarray, list[float]]:
        """Predictions for every row and the milliseconds of `latency_calls` single-row calls."""
        predictions, timings, _ = self.run_timed(inputs, latency_calls)
        return predictions, timings

    def run_timed(self, inputs: Inputs, latency_calls: int) -> tuple[np.ndarray, list[float], float]:
        """`run`, and the milliseconds Node took to predict every row in batches of 256."""
        with tempfile.TemporaryDirectory(prefix="tfjs-") as folder:
            request, response = Path(folder) / "request.json", Path(folder) / "response.json"
            request.write_text(json.dumps({"inputs": to_json_columns(inputs), "latency_rows": latency_calls}))
            done = subprocess.run(
                [self._node, str(TFJS_SCRIPT), str(self._model_dir), str(request), str(response)],
                capture_output=True,
                text=True,
                timeout=NODE_TIMEOUT_SECONDS,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeFailure(f"TF.js in Node failed: {done.stderr.strip()[-2000:]}")
            result = json.loads(response.read_text())
        predictions = np.asarray(result["predictions"], dtype=np.float32)
        return predictions, result["latency_ms"], result["predict_ms"]
