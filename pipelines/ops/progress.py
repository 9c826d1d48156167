"""Progress for long runs: one line when each component starts and finishes, with elapsed seconds.

LocalDagRunner runs each node through TFX's portable `Launcher`. `track_components()` wraps that
class's `launch` for the duration of a run, so progress does not depend on log levels (TF Transform
and TFMA reset absl's verbosity while they run). Airflow shows the same per task in its UI.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class ComponentProgress:
    stream: TextIO = sys.stdout
    run_started: float = field(default_factory=time.monotonic)
    current: str | None = None

    def say(self, text: str) -> None:
        elapsed = time.monotonic() - self.run_started
        print(f"[{elapsed:7.1f}s] {text}", file=self.stream, flush=True)

    def started(self, node: str) -> None:
        self.current = node
        self.say(f"{node}: started")

    def finished(self, node: str, seconds: float, cached: bool) -> None:
        self.say(f"{node}: finished ({'cached, ' if cached else ''}{seconds:.1f}s)")

    def failed(self, node: str, seconds: float) -> None:
        self.say(f"{node}: FAILED after {seconds:.1f}s")


@contextlib.contextmanager
def track_components(stream: TextIO = sys.stdout) -> Iterator[ComponentProgress]:
    """Reports each component TFX's portable launcher runs while the context is open."""
    from tfx.orchestration.portable import launcher

    progress = ComponentProgress(stream=stream)
    original_launch = launcher.Launcher.launch
    original_prepare = launcher.Launcher._prepare_execution
    needed: dict[str, bool] = {}

    def prepare(self: launcher.Launcher):
        result = original_prepare(self)
        needed[self._pipeline_node.node_info.id] = result.is_execution_needed
        return result

    def launch(self: launcher.Launcher):
        node = self._pipeline_node.node_info.id
        progress.started(node)
        began = time.monotonic()
        try:
            info = original_launch(self)
        except BaseException:
            progress.failed(node, time.monotonic() - began)
            raise
        cached = needed.get(node) is False and self._system_node_handler is None
        progress.finished(node, time.monotonic() - began, cached=cached)
        return info

    launcher.Launcher.launch = launch
    launcher.Launcher._prepare_execution = prepare
    try:
        yield progress
    finally:
        launcher.Launcher.launch = original_launch
        launcher.Launcher._prepare_execution = original_prepare


def quiet_libraries(verbose: bool = False) -> None:
    """TensorFlow, Beam, TFX and TFMA print a great deal; keep errors unless asked for more."""
    if verbose:
        return
    for name in ("tensorflow", "apache_beam", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="tensorflow_model_analysis")
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
