"""Progress for long runs: one line per component when it finishes, with what it did where it is long.

LocalDagRunner runs each node through TFX's portable `Launcher`, in this process. `track_components()`
wraps that class's `launch` for the duration of a run, so progress does not depend on log levels (TF
Transform and TFMA reset absl's verbosity while they run). What a long component is doing comes from
what its code already says: a logging handler reads the records the Tuner's and the exporter's module
code log (`Trial 0: val_auc 0.95 over 4 folds`, `tflite-int8: converting and checking`), and the run
log (`run_log`) hands over the lines Keras and KerasTuner print (`Epoch 3/10`, `Search: Running Trial
#2`). On a terminal the component under way is a live status line (rich); elsewhere (CI, Airflow's
logs, a pipe) plain lines, and a long component's state at most every `PLAIN_DETAIL_SECONDS`.

    [   98.6s] Transform: finished (55.5s)
    [  177.1s] Tuner: finished (78.5s): 3 of 3 trials, best val_auc 0.9544
    [  206.5s] Trainer: finished (29.4s): 10 of 10 epochs, auc 0.9580

Airflow shows the same per task in its UI.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import TextIO

from pipelines.ops import run_log

PLAIN_DETAIL_SECONDS = 30.0

# What the components' code says, and what Keras and KerasTuner print (matched at the line's start).
TUNING_ROWS = re.compile(r"^Tuning on (\d+) train and (\d+) eval rows")
SWEEP_STEP = re.compile(r"^Capacity sweep: (\S+) trained (\d+) epochs, best validation loss ([-0-9.e]+)")
TRIAL_RUNNING = re.compile(r"^Search: Running Trial #(\d+)")
TRIAL_DONE = re.compile(r"^Trial (\S+): (\S+) ([-+0-9.eEnaif]+) over (\d+) folds")
BUDGET_SPENT = re.compile(r"^Tuning budget spent: no trial after (\d+)")
EPOCH = re.compile(r"^Epoch (\d+)/(\d+)\s*$")
EPOCH_END = re.compile(r"^\d+/\d+ - .*\bloss: ")
METRIC = re.compile(r"\b([a-z][a-z0-9_]*): ([-+]?[0-9.]+(?:e[-+]?\d+)?|nan)\b")
MODEL_SAVED = re.compile(r"^Model saved to .* after (\d+) epochs")
PRUNED = re.compile(r"^Pruned to ([0-9.]+%) zero weights")
NOT_EXPORTED = re.compile(r"^The model is not blessed: nothing is exported")
SAVED_MODEL = re.compile(r"^SavedModel: (\S+) ([-0-9.e]+) on (\d+) test rows")
CONVERTING = re.compile(r"^(\S+): converting and checking$")
CONVERTED = re.compile(r"^(\S+): (passes|NOT pushed)")


class _Activity:
    """What one component is doing, read from the lines it produces."""

    def __init__(self, node: str, spec=None):
        self.node, self.spec = node, spec
        self.detail = ""  # the state under way, for the live line and the plain state lines
        self.outcome = ""  # what it did, for its finished line
        self.trials = self.trials_done = 0
        self.best: float | None = None
        self.objective = ""
        self.fits = 0
        self.epoch: tuple[int, int] | None = None
        self.metric = ""
        self.targets = self.converted = self.passed = 0

    @property
    def max_trials(self) -> str:
        tuning = getattr(self.spec, "tuning", None)
        return f" of {tuning.trials}" if tuning is not None else ""

    def _higher_is_better(self) -> bool:
        metric = getattr(self.spec, "metric", None)
        return bool(getattr(metric, "higher_is_better", True))

    def _best(self) -> str:
        return f", best {self.objective} {self.best:.4f}" if self.best is not None else ""

    def observe(self, text: str) -> bool:
        """Reads one line; True when it changed what the component is doing."""
        return any(handle(text) for handle in (self._tuner, self._trainer, self._exporter))

    def _tuner(self, text: str) -> bool:
        if found := TUNING_ROWS.match(text):
            self.detail = f"tuning on {found[1]} train + {found[2]} eval rows: capacity sweep"
        elif found := SWEEP_STEP.match(text):
            self.detail = (
                f"capacity sweep: {found[1]} trained {found[2]} epochs, val loss {float(found[3]):.4f}"
            )
        elif found := TRIAL_RUNNING.match(text):
            self.trials = max(self.trials, int(found[1]))
            self.detail = f"trial {self.trials}{self.max_trials} running{self._best()}"
        elif found := TRIAL_DONE.match(text):
            self.trials_done += 1
            self.objective, score = found[2], float(found[3])
            if not math.isnan(score):
                better = max if self._higher_is_better() else min
                self.best = score if self.best is None else better(self.best, score)
            self.detail = f"trial {self.trials_done}{self.max_trials} done{self._best()}"
            self.outcome = f"{self.trials_done}{self.max_trials} trials{self._best()}"
        elif found := BUDGET_SPENT.match(text):
            self.detail = f"tuning budget spent after {found[1]} trials{self._best()}"
            self.outcome = f"{self.trials_done} trials (budget spent){self._best()}"
        else:
            return False
        return True

    def _trainer(self, text: str) -> bool:
        if found := EPOCH.match(text):
            k, n = int(found[1]), int(found[2])
            if k == 1 or self.epoch is None:
                self.fits += 1
            self.epoch = (k, n)
            last = f" (epoch {k - 1}: {self.metric})" if self.metric and k > 1 else ""
            self.detail = f"{self._fit()}epoch {k} of {n}{last}"
        elif EPOCH_END.match(text):
            values = dict(METRIC.findall(text))
            self.metric = self._pick_metric(values)
            k, n = self.epoch or (1, 1)
            self.detail = f"{self._fit()}epoch {k} of {n} done{self._metric()}"
            self.outcome = f"{self._fit()}{k} of {n} epochs{self._metric()}"
        elif found := MODEL_SAVED.match(text):
            self.outcome = f"{found[1]} epochs{self._metric()}"
        elif found := PRUNED.match(text):
            self.outcome += f"; pruned to {found[1]} zero weights"
        else:
            return False
        return True

    def _fit(self) -> str:
        return "" if self.fits <= 1 else "pruning: "

    def _metric(self) -> str:
        return f", {self.metric}" if self.metric else ""

    def _pick_metric(self, values: dict[str, str]) -> str:
        """The validation metric when the fit has validation data, else the training one (a tuned run's
        final model trains on train + eval), the spec's metric first, then the loss."""
        name = getattr(getattr(self.spec, "metric", None), "name", "")
        for key in (f"val_{name}", "val_loss", name, "loss"):
            if key and key in values:
                return f"{key} {float(values[key]):.4f}"
        return ""

    def _exporter(self, text: str) -> bool:
        deployment = getattr(self.spec, "deployment", None)
        total = f" of {len(deployment.tflite) + len(deployment.tfjs)}" if deployment is not None else ""
        if NOT_EXPORTED.match(text):
            self.outcome = self.detail = "not blessed: nothing exported"
        elif found := SAVED_MODEL.match(text):
            self.detail = f"SavedModel {found[1]} {float(found[2]):.4f} on {found[3]} test rows"
        elif found := CONVERTING.match(text):
            self.targets += 1
            self.detail = f"converting and checking {found[1]} (target {self.targets}{total})"
        elif found := CONVERTED.match(text):
            self.converted += 1
            self.passed += found[2] == "passes"
            self.outcome = f"{self.converted} device target(s), {self.passed} pass parity"
        else:
            return False
        return True


class _PlainLines:
    """Lines as they come; a long component's state at most every PLAIN_DETAIL_SECONDS."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.last = time.monotonic()

    def line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
        self.last = time.monotonic()

    def state(self, text: str, now: float) -> None:
        if now - self.last >= PLAIN_DETAIL_SECONDS:
            self.line(text)

    def restart(self) -> None:
        self.last = time.monotonic()

    def close(self) -> None:
        pass


class _LiveLine:
    """A terminal: finished components scroll up, the one under way is a status line below them."""

    def __init__(self, stream: TextIO, progress: ComponentProgress):
        from rich.console import Console
        from rich.live import Live
        from rich.spinner import Spinner
        from rich.text import Text

        self._text = Text
        self.progress = progress
        self.console = Console(file=stream, highlight=False, soft_wrap=True)
        self.spinner = Spinner("dots", text="")
        self.live = Live(
            self,
            console=self.console,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.live.start()

    def __rich__(self):
        self.spinner.update(text=self._text(self.progress.status_text(), no_wrap=True, overflow="ellipsis"))
        return self.spinner

    def line(self, text: str) -> None:
        self.console.print(self._text(text))

    def state(self, text: str, now: float) -> None:
        pass  # drawn on the next refresh

    def restart(self) -> None:
        pass

    def close(self) -> None:
        self.live.stop()


def _wants_live(stream: TextIO) -> bool:
    try:
        if not stream.isatty() or os.environ.get("TERM") == "dumb":
            return False
        import rich  # noqa: F401  (in the lock through Airflow; plain lines without it)
    except (ImportError, AttributeError, ValueError):
        return False
    return True


class ComponentProgress:
    """The run's progress display: one line per component, the component under way live on a terminal."""

    def __init__(self, stream: TextIO | None = None, spec=None, live: bool | None = None):
        self.stream = stream if stream is not None else sys.stdout
        self.spec = spec
        self.run_started = time.monotonic()
        self.current: str | None = None
        self.component_started = self.run_started
        self.activity: _Activity | None = None
        self._lock = threading.RLock()
        self._log = run_log.active()
        if live is None:
            live = _wants_live(self.stream) and not (self._log and self._log.verbose)
        self._display = _LiveLine(self.stream, self) if live else _PlainLines(self.stream)

    def _stamp(self, text: str) -> str:
        return f"[{time.monotonic() - self.run_started:7.1f}s] {text}"

    # The lock guards the state only: the display is never called while holding it (rich's refresh
    # thread holds its own lock while it asks for `status_text`).
    def say(self, text: str) -> None:
        """A line of its own: on the console (or, with --verbose, through the log, which the console
        shows), and in the run's log where it helps to read what came before and after."""
        line = self._stamp(text)
        if self._log is not None:
            self._log.write(f"---- Blueprint {line}")
            if self._log.verbose:
                return
        self._display.line(line)

    def status_text(self) -> str:
        """The live line: the component under way, for how long, and what it is doing."""
        current, activity, began = self.current, self.activity, self.component_started
        if current is None:
            return f"{time.monotonic() - self.run_started:.0f}s"
        detail = f": {activity.detail}" if activity is not None and activity.detail else ""
        return f"{current} ({time.monotonic() - began:.0f}s){detail}"

    def started(self, node: str) -> None:
        with self._lock:
            self.component_started = time.monotonic()
            self.activity = _Activity(node, self.spec)
            self.current = node
        self._display.restart()
        if self._log is not None:
            self._log.write(f"---- Blueprint {self._stamp(f'{node}: started')}")

    def observe(self, text: str) -> None:
        """A line a library printed or a component logged: updates what the component is doing."""
        with self._lock:
            if self.activity is None or not self.activity.observe(text.strip()):
                return
            state = f"{self.current}: {self.activity.detail}"
        if self._log is None or not self._log.verbose:
            self._display.state(self._stamp(state), time.monotonic())

    def finished(self, node: str, seconds: float, cached: bool) -> None:
        with self._lock:
            outcome = self.activity.outcome if self.activity and not cached else ""
            self.current, self.activity = None, None
        if node.endswith("_resolver") and not outcome:  # bookkeeping: the summary leaves them out too
            if self._log is not None:
                self._log.write(f"---- Blueprint {self._stamp(f'{node}: finished')}")
            return
        took = f"{'cached, ' if cached else ''}{seconds:.1f}s"
        self.say(f"{node}: finished ({took}){': ' + outcome if outcome else ''}")

    def failed(self, node: str, seconds: float) -> None:
        with self._lock:
            self.activity = None
        self.say(f"{node}: FAILED after {seconds:.1f}s")

    def close(self) -> None:
        self._display.close()


class _Records(logging.Handler):
    """Hands the components' log records (absl's, Python's) to the progress display."""

    def __init__(self, progress: ComponentProgress):
        super().__init__(level=logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a display never breaks the run
            self.progress.observe(record.getMessage())


@contextlib.contextmanager
def track_components(stream: TextIO | None = None, spec=None) -> Iterator[ComponentProgress]:
    """Reports each component TFX's portable launcher runs while the context is open, on `stream`
    (default: the console of the run's log, else stdout). `spec` names the trials and targets to expect."""
    from tfx.orchestration.portable import launcher

    progress = ComponentProgress(stream=stream if stream is not None else run_log.console(), spec=spec)
    log = run_log.active()
    records = _Records(progress)
    if log is not None:  # without a run log, absl stays at ERROR (quiet_libraries): nothing to read
        logging.getLogger().addHandler(records)
        log.observers.append(progress.observe)
    original_launch = launcher.Launcher.launch
    original_prepare = launcher.Launcher._prepare_execution
    needed: dict[str, bool] = {}

    def prepare(self: launcher.Launcher):
        result = original_prepare(self)
        needed[self._pipeline_node.node_info.id] = result.is_execution_needed
        return result

    def launch(self: launcher.Launcher):
        node = self._pipeline_node.node_info.id
        if log is not None:
            run_log.absl_info()  # TF Transform and TFMA lower it; the log and the progress want INFO
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
        logging.getLogger().removeHandler(records)
        if log is not None and progress.observe in log.observers:
            log.observers.remove(progress.observe)
        progress.close()


def quiet_libraries(verbose: bool = False) -> None:
    """TensorFlow, Beam, TFX and TFMA print a great deal. With a run log (the CLI) all of it goes there,
    at INFO for absl (TFX's and the components' messages); without one (a run in a test) keep errors,
    unless asked for more."""
    if run_log.active() is not None:
        run_log.absl_info()
        return
    if verbose:
        return
    for name in ("tensorflow", "apache_beam", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="tensorflow_model_analysis")
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
