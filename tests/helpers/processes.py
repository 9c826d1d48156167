"""What command lines a test's processes had: anyone on the machine can read them with `ps`."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


class CommandLines:
    """Every command line seen: of the processes this one starts (recorded as they start, however short
    they live) and of every process on the machine (sampled, e.g. while Airflow's tasks run)."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, ...]] = set()

    @contextmanager
    def recording_starts(self) -> Iterator[CommandLines]:
        """Records the arguments of every subprocess this process starts inside the block."""
        original = subprocess.Popen.__init__

        def recording(popen, args, *more, **options):
            self.seen.add((args,) if isinstance(args, str | bytes) else tuple(map(str, args)))
            original(popen, args, *more, **options)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(subprocess.Popen, "__init__", recording)
            yield self

    def sample(self) -> None:
        """The command line of every process running now (/proc/<pid>/cmdline)."""
        import psutil

        for process in psutil.process_iter(["cmdline"]):
            if process.info["cmdline"]:
                self.seen.add(tuple(process.info["cmdline"]))

    def containing(self, *secrets: str) -> list[str]:
        """The command lines that show any of `secrets`."""
        return [
            " ".join(map(str, command))
            for command in self.seen
            if any(secret in str(part) for part in command for secret in secrets)
        ]


def free_port() -> int:
    """A TCP port nothing listens on now (on 127.0.0.1)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 120.0) -> None:
    """Waits until something accepts connections on 127.0.0.1:`port`; fails if `process` exits first."""
    import socket
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"{process.args} exited with {process.returncode} before listening on {port}"
            )
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listened on 127.0.0.1:{port} within {seconds:.0f} s")
