"""Worker processes for the ModelExporter: lanes that convert and check targets at the same time.

A lane is one worker process that runs its jobs one after another, so what its targets share is made
once in it (targets.py); the executor runs one lane per target family (TFLite, TF.js), one per core, and
feeds each from a thread of its own. A worker is a new interpreter (`python -m` this module), as
multiprocessing's `spawn` would start it, never a fork: a fork of a process that has imported TensorFlow
can deadlock. It is started with `subprocess`, not `multiprocessing.Process`, because Airflow's
LocalExecutor runs tasks in forks of a daemonic multiprocessing worker, where `Process.start()` refuses
("daemonic processes are not allowed to have children"). A worker imports its jobs' modules as it starts
(`components` first, which chooses Keras 2 before TensorFlow is imported) while the executor prepares
the jobs.

Jobs, outcomes and the worker's log records travel over a multiprocessing pipe; the executor's loggers
handle the records as their own, so they land where its own do (the run's log, Airflow's task log). What
native code prints goes to the descriptors the worker inherits, which the CLI's run log has pointed at its
file (pipelines/ops/run_log.py). A worker that dies (a crash in a converter, the kernel's OOM killer) ends
its pipe: the job it was running gets a reason naming the exit code or signal, and the lane's next job
starts a new worker. A job that does not finish within `JOB_TIMEOUT_SECONDS` is stopped.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import logging.handlers
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from absl import logging as absl_logging

# Where the `components` package is, for a worker's imports wherever the executor runs from.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_SECONDS = 1800.0  # converting and checking one target; a worker past it is stopped
STOP_SECONDS = 30.0  # for a worker to exit once it has no more jobs


class Outcome(Protocol):
    seconds: float


class Job(Protocol):
    """What a lane runs: `run()` in the worker; `failed(reason)` in the executor, for a job its worker
    could not finish. Pickled to the worker, so its class is importable there."""

    @property
    def name(self) -> str: ...

    def run(self) -> Outcome: ...

    def failed(self, reason: str) -> Outcome: ...


class WorkerError(RuntimeError):
    """A job raised something that is not a target's failure (a bug): raised again in the executor."""


class Lane:
    """One worker process running jobs one at a time; the next job after a crash starts a new one."""

    def __init__(self, name: str, modules: tuple[str, ...]):
        self.name, self.modules = name, modules
        self._process: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._closed = False

    def start(self) -> None:
        ours, theirs = multiprocessing.Pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(theirs.fileno()), f"{self.name}-worker", *self.modules],
            stdin=subprocess.DEVNULL,
            pass_fds=[theirs.fileno()],
            env={**os.environ, "PYTHONPATH": _python_path()},
        )
        theirs.close()  # only the worker holds its end now: when it dies, ours reads the end of the pipe
        self._conn, self._ready = ours, False

    def call(self, job: Job, timeout: float = JOB_TIMEOUT_SECONDS) -> Outcome:
        """`job.run()` in the worker, with the seconds it took; `job.failed(...)` when the worker dies,
        runs out of time, or the lane is closed."""
        if self._closed:
            return job.failed(f"not built: the {self.name} worker was stopped (the export failed)")
        if self._process is None:
            self.start()
        try:
            if not self._ready:
                self._receive(time.monotonic() + timeout, timeout)  # imported, waiting for jobs
                self._ready = True
            started = time.monotonic()
            self._send(job)
            outcome = self._receive(started + timeout, timeout)
        except _WorkerDied as died:
            self.stop()
            if self._closed:
                return job.failed(f"not built: the {self.name} worker was stopped (the export failed)")
            return job.failed(f"the {self.name} worker process {died}; nothing was recorded for this target")
        outcome.seconds = time.monotonic() - started
        return outcome

    def _send(self, job: Job) -> None:
        try:
            self._conn.send(job)
        except OSError:  # the worker died as it was sent the job
            raise _WorkerDied(self._how_it_ended()) from None

    def _receive(self, deadline: float, timeout: float) -> Any:
        """The worker's next answer, handling the log records it sends before it."""
        while True:
            if not self._conn.poll(max(0.0, deadline - time.monotonic())):
                self._process.kill()
                raise _WorkerDied(f"did not finish within {timeout:.0f}s and was stopped")
            try:
                kind, value = self._conn.recv()
            except (EOFError, OSError):
                raise _WorkerDied(self._how_it_ended()) from None
            if kind == "log":
                relay(value)
            elif kind == "raised":
                raise WorkerError(f"in the {self.name} worker process: {value}")
            else:
                return value

    def _how_it_ended(self) -> str:
        try:
            code = self._process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            return "closed its pipe and stopped answering"
        if code < 0:
            return f"was killed by signal {signal.Signals(-code).name} (a crash, or out of memory)"
        return f"exited with code {code} (a crash)"

    def close(self) -> None:
        """Ends the worker now, whatever it is doing: a call under way returns its job as failed, and
        the lane starts no other. Safe from another thread than the one calling."""
        self._closed = True
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def ask_to_exit(self) -> None:
        """Tells an idle worker to exit (what it printed is flushed as it does); `stop` waits for it."""
        if self._conn is not None:
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(None)

    def stop(self) -> None:
        """Ends an idle worker: asked to exit, killed if it does not within `STOP_SECONDS`."""
        if self._process is None:
            return
        self.ask_to_exit()
        try:
            self._process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._conn.close()
        self._process, self._conn, self._ready = None, None, False


def _python_path() -> str:
    """The worker's PYTHONPATH: the package root first, then whatever the executor's environment had."""
    return os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p)


class Lanes:
    """Lanes running at the same time, each fed from a thread of the executor; `submit` jobs, then
    `results()` waits for every outcome (keyed by job name, with the seconds each took). `modules`: each
    lane's name, and what its worker imports as it starts (its jobs' module first)."""

    def __init__(self, modules: dict[str, tuple[str, ...]]):
        names = list(modules)
        self._lanes = {name: Lane(name, modules[name]) for name in names}
        self._jobs: dict[str, queue.Queue] = {name: queue.Queue() for name in names}
        self._threads = [threading.Thread(target=self._feed, args=(n,), name=f"{n}-lane") for n in names]
        self._outcomes: dict[str, Outcome] = {}
        self._errors: list[BaseException] = []
        self._stopping = threading.Event()

    def __enter__(self) -> Lanes:
        try:
            for lane in self._lanes.values():
                lane.start()  # the workers import TensorFlow while the executor prepares their jobs
        except BaseException:
            self._end_all()
            raise
        for thread in self._threads:
            thread.start()
        return self

    def submit(self, lane: str, job: Job) -> None:
        self._jobs[lane].put(job)

    def results(self) -> dict[str, Outcome]:
        self._finish()
        if self._errors:
            raise self._errors[0]
        return dict(self._outcomes)

    def __exit__(self, *raised) -> None:
        if raised[0] is not None:
            self._close_all()
        self._finish()
        self._end_all()

    def _close_all(self) -> None:
        """No more jobs: those under way end as failed, and each lane's thread drains its queue."""
        self._stopping.set()
        for lane in self._lanes.values():
            lane.close()

    def _end_all(self) -> None:
        for lane in self._lanes.values():
            lane.ask_to_exit()  # all at once: an interpreter with TensorFlow takes a second to exit
        for lane in self._lanes.values():
            lane.stop()

    def _finish(self) -> None:
        for jobs in self._jobs.values():
            jobs.put(None)
        for thread in self._threads:
            if thread.is_alive():  # never started when a worker could not be
                thread.join()

    def _feed(self, name: str) -> None:
        lane, jobs = self._lanes[name], self._jobs[name]
        while (job := jobs.get()) is not None:
            if self._stopping.is_set():
                continue
            absl_logging.info("%s: converting and checking", job.name)
            try:
                self._outcomes[job.name] = lane.call(job)
            except BaseException as error:  # raised in the executor's thread by results()
                self._errors.append(error)
                self._close_all()
        lane.ask_to_exit()  # its exit (a second with TensorFlow) overlaps what still runs


class _WorkerDied(Exception):
    pass


def relay(record: logging.LogRecord) -> None:
    """A worker's log record handled by this process's logger of the same name, as if logged here."""
    logger = logging.getLogger(None if record.name == "root" else record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


class _PipeQueue:
    """What `logging.handlers.QueueHandler` puts records into: the worker's pipe to the executor."""

    def __init__(self, conn: Connection, lock: threading.Lock):
        self.conn, self.lock = conn, lock

    def put_nowait(self, record: logging.LogRecord) -> None:
        with self.lock:
            self.conn.send(("log", record))


def serve(conn: Connection, modules: tuple[str, ...]) -> None:
    """A worker's life: log records to the executor, import `modules`, then run jobs until told to stop
    (None) or until the executor is gone."""
    lock = threading.Lock()
    _log_to(_PipeQueue(conn, lock))
    try:
        for module in modules:
            importlib.import_module(module)
    except BaseException:
        _send(conn, lock, ("raised", traceback.format_exc()))
        return
    _log_to(_PipeQueue(conn, lock))  # again: imports may have added handlers of their own
    _send(conn, lock, ("ready", None))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        except BaseException:  # a job that does not unpickle here
            _send(conn, lock, ("raised", traceback.format_exc()))
            continue
        if job is None:
            return
        try:
            answer = ("done", job.run())
        except BaseException:
            answer = ("raised", f"{job.name}: {traceback.format_exc()}")
        for stream in (sys.stdout, sys.stderr):  # what the job printed reaches the log before its verdict
            stream.flush()
        _send(conn, lock, answer)


def _send(conn: Connection, lock: threading.Lock, message: tuple) -> None:
    with lock:
        conn.send(message)


def _log_to(pipe: _PipeQueue) -> None:
    """Every record at INFO and above goes to the executor, whose loggers decide what is kept; Python's
    warnings too. absl (TensorFlow's logging) at INFO, as the run log sets it in the executor."""
    root = logging.getLogger()
    root.handlers = [logging.handlers.QueueHandler(pipe)]  # type: ignore[arg-type]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    for name in ("absl", "tensorflow"):
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate = [], True
        logger.setLevel(logging.INFO)


def main(argv: list[str]) -> None:
    """`python -m components.model_exporter.workers <pipe descriptor> <name> <module>...`: a lane's
    worker; its log records carry `name` as their process name."""
    multiprocessing.current_process().name = argv[1]
    serve(Connection(int(argv[0])), tuple(argv[2:]))


if __name__ == "__main__":
    main(sys.argv[1:])
