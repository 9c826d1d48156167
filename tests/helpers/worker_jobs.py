"""Jobs that exercise the ModelExporter's worker lanes themselves (components/model_exporter/workers.py):
a worker that crashes, exits, stalls, has a bug or prints, and one that reports how it was started.
A worker imports this module to unpickle them; it imports nothing heavy."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field


@dataclass
class Done:
    value: object = None
    reason: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Probe:
    name: str
    action: str  # one of ACTIONS
    seconds: float = field(default=0.0)  # for "sleep"

    def run(self) -> Done:
        return Done(ACTIONS[self.action](self))

    def failed(self, reason: str) -> Done:
        return Done(reason=reason)


def _environment(_: Probe) -> dict:
    """What a worker chose before TensorFlow was imported, and the Keras TensorFlow then serves."""
    chosen = os.environ.get("TF_USE_LEGACY_KERAS")
    import tensorflow as tf

    return {"TF_USE_LEGACY_KERAS": chosen, "keras": tf.keras.Model.__module__}


def _crash(_: Probe) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _exit(_: Probe) -> None:
    os._exit(3)


def _sleep(probe: Probe) -> float:
    time.sleep(probe.seconds)
    return time.monotonic()


def _bug(_: Probe) -> None:
    raise TypeError("a bug in a job")


def _chatter(_: Probe) -> str:
    """What libraries do in a worker: log records, a Python warning, Python and native output."""
    from absl import logging as absl_logging

    absl_logging.info("worker absl info")
    logging.getLogger("some.library").warning("worker library warning")
    warnings.warn("worker python warning", stacklevel=1)
    print("worker python stdout", flush=True)
    print("worker python stderr", file=sys.stderr, flush=True)
    os.write(2, b"worker native fd 2\n")
    return "chattered"


ACTIONS = {
    "pid": lambda _: os.getpid(),
    "environment": _environment,
    "crash": _crash,
    "exit": _exit,
    "sleep": _sleep,
    "bug": _bug,
    "chatter": _chatter,
}
