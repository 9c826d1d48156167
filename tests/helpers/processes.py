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
