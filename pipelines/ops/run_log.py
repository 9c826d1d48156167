"""One log file per run for everything the libraries print; the console keeps Blueprint's own lines.

TensorFlow's C++ code, the TFLite and TF.js converters, Beam's worker processes and pip write straight
to file descriptors 1 and 2, and TensorFlow prints its CUDA factory messages while it is imported, so
Python's logging alone cannot quiet them. `capture()` points descriptors 1 and 2 at the run's log (child
processes inherit them) before TensorFlow is imported, keeps duplicates of the real ones as the console
(progress lines, the summary), and sends Python's own streams, warnings and logging records to the log.
With `verbose`, a thread copies the log to the console as it grows.

The CLI process (`python -m pipelines`) calls `keep_until_exit()`: its descriptors stay on the log after
the run, so what TensorFlow prints while the interpreter shuts down lands there too, and `print()` goes to
the console. Called in-process (tests), `capture()` puts everything back as it was when it ends.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

LOG_FORMAT = "%(asctime)s %(levelname).1s %(name)s: %(message)s"
INFO = 0  # absl's verbosity for INFO: the log keeps TFX's and the components' messages
TAIL_SECONDS = 0.2

_active: RunLog | None = None
_keep = False
_kept: list[RunLog] = []


def log_path(name: str, home: str | Path) -> Path:
    """`<home>/logs/<name>/<date>-<time>.log`, a new file for each run."""
    folder = Path(home).resolve() / "logs" / name
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = folder / f"{stamp}.log", 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-{n}.log"
    return path


class _LogStream(io.TextIOBase):
    """What `sys.stdout` and `sys.stderr` are during a run: text goes to the log, and each complete line
    to the observers (the progress display reads Keras's and KerasTuner's lines from here). Handlers
    that keep a reference to it follow `target` when the capture ends."""

    def __init__(self, target: TextIO, observers: list[Callable[[str], None]]):
        super().__init__()
        self.target = target
        self.observers = observers
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        written = self.target.write(text)
        if self.observers:
            with self._lock:
                lines = (self._partial + text).replace("\r", "\n").split("\n")
                self._partial = lines.pop()
            for line in lines:
                if line.strip():
                    for observe in list(self.observers):
                        with contextlib.suppress(Exception):  # a display never breaks the run
                            observe(line)
        return written

    def flush(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self.target.flush()

    def fileno(self) -> int:
        return self.target.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")

    @property
    def errors(self) -> str:  # type: ignore[override]
        return getattr(self.target, "errors", "strict")

    @property
    def buffer(self):
        return self.target.buffer


class RunLog:
    """An open capture: where the log is, the console, and who watches the libraries' lines."""

    def __init__(self, path: Path, verbose: bool):
        self.path = path
        self.verbose = verbose
        self.observers: list[Callable[[str], None]] = []
        self.console: TextIO = sys.stdout
        self.console_err: TextIO = sys.stderr
        self.stream: TextIO | None = None  # the log, as text
        self._saved: tuple[int, int] | None = None
        self._python: tuple[TextIO, TextIO] | None = None
        self._streams: tuple[_LogStream, _LogStream] | None = None
        self._handler: logging.Handler | None = None
        self._absl_verbosity: int | None = None
        self._tail: threading.Thread | None = None
        self._stop = threading.Event()

    def write(self, text: str) -> None:
        """A line of Blueprint's own into the log (where a component starts and ends)."""
        if self.stream is not None:
            with contextlib.suppress(ValueError, OSError):
                self.stream.write(text.rstrip("\n") + "\n")

    # -- descriptors ---------------------------------------------------------------------------------
    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(ValueError, OSError, AttributeError):
                stream.flush()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._saved = os.dup(1), os.dup(2)
        self.console = _console(self._saved[0])
        self.console_err = _console(self._saved[1])
        os.dup2(descriptor, 1)
        os.dup2(descriptor, 2)
        os.close(descriptor)
        self.stream = open(  # noqa: SIM115 - closed in _close, or kept open until the process exits
            self.path, "a", buffering=1, encoding="utf-8", errors="backslashreplace"
        )
        self._python = sys.stdout, sys.stderr
        self._streams = _LogStream(self.stream, self.observers), _LogStream(self.stream, self.observers)
        sys.stdout, sys.stderr = self._streams
        self._handler = logging.StreamHandler(self._streams[1])
        self._handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(self._handler)
        self._absl_verbosity = _set_absl(INFO)
        if self.verbose:
            self._tail = threading.Thread(target=self._follow, name="run-log-tail", daemon=True)
            self._tail.start()

    def _follow(self) -> None:
        """`tail -f` of the log to the console (`--verbose`)."""
        with open(self.path, "rb") as log:
            while True:
                stopping = self._stop.is_set()
                chunk = log.read()
                if chunk:
                    with contextlib.suppress(OSError, ValueError):
                        self.console.buffer.write(chunk)
                        self.console.buffer.flush()
                elif stopping:
                    return
                else:
                    time.sleep(TAIL_SECONDS)

    def _stop_tail(self) -> None:
        if self._tail is not None:
            self._stop.set()
            self._tail.join(timeout=10)
            self._tail = None

    def _leave(self, keep: bool) -> None:
        """The run is over: Python's streams go back to the console; with `keep` the descriptors (and
        so whatever native code still prints) stay on the log until the process exits."""
        assert self._python is not None and self._streams is not None and self._saved is not None
        for stream in self._streams:
            stream.flush()
        self._stop_tail()
        if keep:  # what is logged after the run (the summary reads ML Metadata) still goes to the log
            sys.stdout, sys.stderr = self.console, self.console_err
            return
        logging.getLogger().removeHandler(self._handler)
        if self._absl_verbosity is not None:
            _set_absl(self._absl_verbosity)
        sys.stdout, sys.stderr = self._python
        for stream, original in zip(self._streams, self._python, strict=True):
            stream.target, stream.observers = original, []
        self.console.flush()
        self.console_err.flush()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        self.console.close()
        self.console_err.close()
        self.stream.close()
        self.stream = None

    def _at_exit(self) -> None:
        """Interpreter shutdown: Python's streams back on the log (descriptors 1 and 2)."""
        with contextlib.suppress(ValueError, OSError):
            self.console.flush()
            self.console_err.flush()
        if self._streams is not None:
            sys.stdout, sys.stderr = self._streams


def _console(descriptor: int) -> TextIO:
    """A line-buffered text stream on a duplicate of the real stdout or stderr."""
    return open(  # noqa: SIM115 - the console of this run; closed when the capture ends in-process
        descriptor, "w", buffering=1, encoding="utf-8", errors="replace", closefd=True
    )


def _set_absl(verbosity: int) -> int | None:
    """Sets absl's verbosity (TFX's and the components' own messages; absl's scale: INFO is 0),
    returning the one it replaces; None when absl is not installed."""
    try:
        from absl import logging as absl_logging
    except ImportError:
        return None
    before = absl_logging.get_verbosity()
    absl_logging.set_verbosity(verbosity)
    return before


@contextlib.contextmanager
def capture(path: Path, verbose: bool = False, title: str = "") -> Iterator[RunLog]:
    """Everything printed inside goes to the log at `path` (and to the console too with `verbose`);
    `console()` is the real terminal meanwhile. An exception leaving the block is written to the log
    with its traceback, then raised."""
    global _active
    if _active is not None:  # nested: one log per run
        yield _active
        return
    run = RunLog(Path(path), verbose)
    run._open()
    run.write(f"Blueprint run log{': ' + title if title else ''} ({time.strftime('%Y-%m-%d %H:%M:%S')})")
    _active = run
    try:
        yield run
    except BaseException:
        run.write(traceback.format_exc())
        raise
    finally:
        _active = None
        run._leave(keep=_keep)
        if _keep:
            _kept.append(run)


def absl_info() -> None:
    """absl at INFO: TFX's and the components' messages go to the log (and to the progress display)."""
    _set_absl(INFO)


def active() -> RunLog | None:
    """The capture under way, if any."""
    return _active


def console() -> TextIO:
    """Where Blueprint's own lines go: the real stdout during a capture, else `sys.stdout`."""
    return _active.console if _active is not None else sys.stdout


def keep_until_exit() -> None:
    """For the CLI process: a capture leaves descriptors 1 and 2 on its log when it ends (see module)."""
    global _keep
    _keep = True


def at_exit() -> None:
    """For the CLI process, once its command is done: from here on Python's output (the interpreter's
    shutdown noise) goes to the last run's log, not the console."""
    if _kept:
        _kept[-1]._at_exit()
