"""One device target built and run on the test rows: what an exporter worker process does (workers.py).

The executor parses the test rows (and the int8 calibration rows) once and hands them over with each
job; a worker converts the target, runs it in its runtime and sends back the predictions and timings,
and the executor judges them (parity, compute gates). What several targets of a worker share is made
once per process: the TFLite converter (`from_saved_model` loads the SavedModel in Python) and the
float32 TF.js graph model the float16 and uint8 ones are written from.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from tensorflow.lite.python.convert_phase import ConverterError

from components.model_exporter import converters
from components.scoring import runtimes
from components.scoring.runtimes import Inputs

TFLITE, TFJS = "tflite", "tfjs"
TFJS_FLOAT32_FOLDER = "tfjs-float32"  # in the job's work folder: what the quantized TF.js models come from
# What a conversion or a runtime raises for a target that cannot be built or run: recorded as the
# target's reason. TFLite's ConverterError is one (a model that needs Flex ops); anything else is a bug
# and is raised in the executor.
TARGET_FAILURES = (runtimes.RuntimeFailure, ValueError, RuntimeError, OSError, ConverterError)

# What a worker imports as it starts, while the executor prepares its jobs (workers.Lanes).
WORKER_MODULES = {
    TFLITE: (__name__,),
    TFJS: (__name__, "tensorflowjs.converters.tf_saved_model_conversion_v2"),
}

Result = TypeVar("Result")


@dataclass
class TargetOutcome:
    """What a worker sends back: the target's predictions and timings, or why there are none."""

    predictions: np.ndarray | None = None
    timings: list[float] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0  # converting and running, as the executor waited for it


@dataclass(frozen=True)
class TargetJob:
    """One target to convert from the raw-only SavedModel and run on the test rows."""

    target: str  # tflite or tfjs
    variant: str
    source: str  # the raw-only SavedModel (converters.write_raw_only_saved_model)
    destination: Path  # the .tflite file or the TF.js model's folder
    work_dir: Path  # scratch space shared by the jobs of one export
    inputs: Inputs  # the test rows
    latency_calls: int
    calibration: Inputs | None = None  # training rows, for int8

    @property
    def name(self) -> str:
        return f"{self.target}-{self.variant}"

    def run(self) -> TargetOutcome:
        """Converts and runs the target (in a worker); a target that fails is recorded, not raised."""
        build = {TFLITE: _tflite, TFJS: _tfjs}[self.target]
        try:
            predictions, timings = build(self)
        except TARGET_FAILURES as error:
            return self.failed(f"{type(error).__name__}: {error}")
        return TargetOutcome(predictions, timings)

    def failed(self, reason: str) -> TargetOutcome:
        return TargetOutcome(reason=reason)


def _once(function: Callable[..., Result]) -> Callable[..., Result]:
    """`function` called once per arguments in this process: its result, or the target failure it
    raised, serves every later call (a SavedModel that does not load is not loaded again per variant)."""
    outcomes: dict[tuple, tuple[bool, object]] = {}

    @functools.wraps(function)
    def once(*args):
        if args not in outcomes:
            try:
                outcomes[args] = (True, function(*args))
            except TARGET_FAILURES as error:
                outcomes[args] = (False, error)
        succeeded, value = outcomes[args]
        if not succeeded:
            raise value
        return value

    return once


_tflite_converter = _once(converters.tflite_converter)


@_once
def _tfjs_float32(source: str, folder: Path) -> Path:
    converters.to_tfjs(source, folder)
    return folder


def _single_rows(inputs: Inputs | None) -> Iterator[dict[str, np.ndarray]]:
    if inputs is None:
        raise ValueError("int8 needs calibration rows and the job has none")
    return (runtimes.rows(inputs, i, i + 1) for i in range(runtimes.row_count(inputs)))


def _tflite(job: TargetJob) -> tuple[np.ndarray, list[float]]:
    model = converters.to_tflite(
        _tflite_converter(job.source), job.variant, lambda: _single_rows(job.calibration)
    )
    job.destination.parent.mkdir(parents=True, exist_ok=True)
    job.destination.write_bytes(model)
    runtime = runtimes.TFLiteRuntime(job.destination)
    return runtime.predict(job.inputs), runtime.latency_ms(job.inputs, job.latency_calls)


def _tfjs(job: TargetJob) -> tuple[np.ndarray, list[float]]:
    float32_model = _tfjs_float32(job.source, job.work_dir / TFJS_FLOAT32_FOLDER)
    if job.variant == "float32":
        shutil.copytree(float32_model, job.destination, dirs_exist_ok=True)
    else:
        converters.quantize_tfjs(float32_model, job.destination, job.variant)
    return runtimes.TfjsNodeRuntime(job.destination).run(job.inputs, job.latency_calls)
