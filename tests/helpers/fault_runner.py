"""`python -m tests.helpers.fault_runner <cli args>`: the Blueprint CLI, held inside the push on request.

With BLUEPRINT_TEST_HOLD_PUSH=<marker file>, the Pusher stages the SavedModel in its `.incoming-*`
folder, writes the marker and waits, so tests/e2e/test_faults.py can SIGKILL the process in the middle
of a push. Nothing else changes: the same executor, the same files, a real kill.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from components.atomic_pusher import executor as pusher
from pipelines.ops.cli import main

HOLD_PUSH = "BLUEPRINT_TEST_HOLD_PUSH"


def _hold_after_staging(marker: Path):
    publish = pusher.publish_atomically

    def copy_then_hold(source: str, staging: str) -> None:
        pusher.copy_model(source, staging)
        marker.write_text(staging)
        time.sleep(3600)

    def publish_held(model_path: str, base_directory: str, **kwargs):
        return publish(model_path, base_directory, copy=copy_then_hold, **kwargs)

    return publish_held


if __name__ == "__main__":
    if os.environ.get(HOLD_PUSH):
        pusher.publish_atomically = _hold_after_staging(Path(os.environ[HOLD_PUSH]))
    sys.exit(main(sys.argv[1:]))
