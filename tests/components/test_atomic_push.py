"""AtomicPusher's publishing: a version appears whole or not at all, and is pinned in the same step; a
push or pin cut short by a kill is finished or undone by the next writer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.atomic_pusher.executor import (
    TEMP_PREFIX,
    build_manifest,
    next_version,
    publish_atomically,
    remove_abandoned_staging,
    stage_device_targets,
)
from components.core import models_config
from tests.helpers.data import REPO_ROOT, fake_saved_model

# Publishes a model the way the Pusher does, in a process the OS lets write files of 64 KiB at most.
_PUSH_UNDER_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from components.core import models_config
from components.atomic_pusher.executor import publish_atomically
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
model, serving = sys.argv[1], Path(sys.argv[2])
version, _ = publish_atomically(model, str(serving))
"""


def test_publish_creates_a_complete_numbered_version(tmp_path):
    model = fake_saved_model(tmp_path / "model")
    version, path = publish_atomically(model, str(tmp_path / "serving"))
    assert version.isdigit()
    assert sorted(os.listdir(tmp_path / "serving")) == [version, models_config.CURRENT]
    assert (tmp_path / "serving" / version / "saved_model.pb").read_bytes() == b"graph"
    assert models_config.current_versions(tmp_path) == {"serving": int(version)}, "published and pinned"
    assert path == str(tmp_path / "serving" / version)


def test_versions_always_increase(tmp_path):
    serving = tmp_path / "serving"
    (serving / "9999999999").mkdir(parents=True)
    assert next_version(str(serving)) == 10000000000
    assert next_version(str(tmp_path), now=5) == 5


def test_failure_mid_copy_leaves_no_partial_version(tmp_path):
    model = fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving"
    first, _ = publish_atomically(model, str(serving))
    copied = []

    def copy_then_fail(src, dst, **kwargs):
        copied.append(shutil.copy2(src, dst))
        if len(copied) == 2:
            raise OSError(28, "No space left on device")
        return copied[-1]

    def disk_fills_up(source: str, destination: str) -> None:
        shutil.copytree(source, destination, dirs_exist_ok=True, copy_function=copy_then_fail)

    with pytest.raises(OSError, match="No space left"):
        publish_atomically(model, str(serving), copy=disk_fills_up)
    assert len(copied) >= 2  # the copy really was under way when the disk filled up
    assert sorted(os.listdir(serving)) == [first, models_config.CURRENT]
    assert not [name for name in os.listdir(serving) if name.startswith(TEMP_PREFIX)]


def device_targets(folder) -> tuple[str, dict]:
    """A ModelExporter output: a passing TFLite model and a TF.js model that failed its parity check."""
    (folder / "tflite").mkdir(parents=True)
    (folder / "tflite" / "int8.tflite").write_bytes(os.urandom(2048))
    (folder / "tfjs" / "uint8").mkdir(parents=True)
    (folder / "tfjs" / "uint8" / "model.json").write_text("{}")
    targets = {
        "exported": True,
        "metric": "auc",
        "tolerance": 0.01,
        "targets": [
            {"target": "serving", "variant": "savedmodel", "path": "", "passed": True, "reason": ""},
            {
                "target": "tflite",
                "variant": "int8",
                "path": "tflite/int8.tflite",
                "passed": True,
                "reason": "",
            },
            {
                "target": "tfjs",
                "variant": "uint8",
                "path": "tfjs/uint8",
                "passed": False,
                "reason": "auc 0.80",
            },
        ],
    }
    return str(folder), targets


def test_version_holds_the_targets_that_passed_and_a_manifest(tmp_path):
    model = fake_saved_model(tmp_path / "model")
    device_uri, targets = device_targets(tmp_path / "device")

    def complete(staging: str, version: str) -> None:
        manifest = build_manifest("taxi", version, targets, {"pipeline_run_id": "run-1"})
        stage_device_targets(device_uri, manifest, staging)
        (Path(staging) / "manifest.json").write_text(json.dumps(manifest))

    version, path = publish_atomically(model, str(tmp_path / "serving" / "taxi"), complete=complete)
    manifest = json.loads((Path(path) / "manifest.json").read_text())
    pushed = {t["variant"]: t["pushed"] for t in manifest["targets"]}
    assert pushed == {"savedmodel": True, "int8": True, "uint8": False}
    assert manifest["version"] == int(version) and manifest["source"]["pipeline_run_id"] == "run-1"
    assert (Path(path) / "tflite" / "int8.tflite").read_bytes() == (
        tmp_path / "device/tflite/int8.tflite"
    ).read_bytes()
    assert not (Path(path) / "tfjs").exists()  # failed parity: not pushed, the reason is in the manifest
    assert [t["reason"] for t in manifest["targets"] if not t["pushed"]] == ["auc 0.80"]


def test_failure_while_adding_device_targets_leaves_no_partial_version(tmp_path):
    model = fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving" / "taxi"
    first, _ = publish_atomically(model, str(serving))
    before = models_config.read_current(serving.parent, "taxi")

    def fails_mid_copy(staging: str, version: str) -> None:
        (Path(staging) / "tflite").mkdir()
        (Path(staging) / "tflite" / "float32.tflite").write_bytes(b"half")
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output"):
        publish_atomically(model, str(serving), complete=fails_mid_copy)
    assert sorted(os.listdir(serving)) == sorted([first, models_config.CURRENT])
    assert models_config.read_current(serving.parent, "taxi") == before
    assert models_config.current_versions(serving.parent) == {"taxi": int(first)}


def test_a_push_the_filesystem_refuses_leaves_the_previous_version_serving(tmp_path):
    """A real write failure (EFBIG from RLIMIT_FSIZE: root ignores file modes, not this limit)."""
    model = fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving" / "taxi"
    first, _ = publish_atomically(model, str(serving))
    before = (
        (serving.parent / models_config.MODELS_CONFIG).read_bytes(),
        models_config.read_current(serving.parent, "taxi"),
    )
    large = Path(fake_saved_model(tmp_path / "large"))
    (large / "variables" / "variables.data-00000-of-00001").write_bytes(os.urandom(256 * 1024))
    done = subprocess.run(
        [sys.executable, "-c", _PUSH_UNDER_A_FILE_SIZE_LIMIT, str(large), str(serving)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "File too large" in done.stderr, done.stderr
    assert sorted(os.listdir(serving)) == sorted([first, models_config.CURRENT])
    after = (
        (serving.parent / models_config.MODELS_CONFIG).read_bytes(),
        models_config.read_current(serving.parent, "taxi"),
    )
    assert after == before


def test_staging_left_by_a_killed_push_is_removed_by_the_next(tmp_path):
    model = fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving"
    abandoned = serving / f"{TEMP_PREFIX}killed"
    shutil.copytree(model, abandoned)
    version, _ = publish_atomically(model, str(serving))
    assert sorted(os.listdir(serving)) == [version, models_config.CURRENT]
    assert remove_abandoned_staging(str(serving)) == []


# Pushes a model the way the Pusher does; with a hold, it stops between the rename and the pin (the
# marker file says it is there) for that many seconds, so a test can race a second pusher or SIGKILL it.
_PUSH_HELD_AFTER_RENAME = """
import sys, time
from pathlib import Path
from components.core import models_config
from components.atomic_pusher.executor import publish_atomically
model, serving, marker, hold = sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
pin = models_config.pin_locked
def held_pin(*args, **kwargs):
    marker.write_text("renamed, not pinned")
    time.sleep(hold)
    return pin(*args, **kwargs)
if hold:
    models_config.pin_locked = held_pin
print(publish_atomically(model, serving)[0], flush=True)
"""


def start_push(model: str, serving: Path, marker: Path, hold: float) -> subprocess.Popen:
    command = [sys.executable, "-c", _PUSH_HELD_AFTER_RENAME, model, str(serving), str(marker), str(hold)]
    return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_two_pushers_at_once_end_with_the_newer_version_pinned(tmp_path):
    model = fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving" / "taxi"
    older = start_push(model, serving, tmp_path / "older-renamed", hold=3.0)
    wait_for(tmp_path / "older-renamed", older)
    newer = start_push(model, serving, tmp_path / "newer-renamed", hold=0.0)
    outputs = [process.communicate(timeout=120) for process in (older, newer)]
    assert [process.returncode for process in (older, newer)] == [0, 0], outputs
    first, second = (int(out.strip()) for out, _ in outputs)
    assert first < second
    assert models_config.current_versions(serving.parent) == {"taxi": second}
    current = models_config.read_current(serving.parent, "taxi")
    assert current["version"] == second
    assert [(entry["version"], entry["was"]) for entry in current["history"]] == [
        (first, None),
        (second, first),
    ]


def test_a_push_killed_between_rename_and_pin_is_finished_by_the_next_writer(tmp_path):
    model = fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving" / "taxi"
    first, _ = publish_atomically(model, str(serving))
    killed = start_push(model, serving, tmp_path / "renamed", hold=3600.0)
    wait_for(tmp_path / "renamed", killed)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=60) == -signal.SIGKILL
    half = max(models_config.versions(serving))
    assert half > int(first) and models_config.current_versions(serving.parent) == {"taxi": int(first)}
    assert (serving.parent / models_config.JOURNAL).is_file(), "the kill left no record of the push"

    was, now = models_config.rollback(serving.parent, "taxi")  # the next writer finishes the push first
    assert (was, now) == (half, int(first)), "the rollback did not start from the finished push"
    current = models_config.read_current(serving.parent, "taxi")
    assert [(e["version"], e["reason"]) for e in current["history"]] == [
        (int(first), "push"),
        (half, "push"),
        (int(first), f"rollback from {half}"),
    ]
    assert not (serving.parent / models_config.JOURNAL).exists()


def test_a_pin_cut_between_models_config_and_current_json_is_written_whole_next_time(tmp_path, monkeypatch):
    model = fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving" / "taxi"
    first, _ = publish_atomically(model, str(serving))
    second, _ = publish_atomically(model, str(serving))
    write = models_config._replace_text

    def killed_before_current_json(path: Path, text: str) -> None:
        if path.name == models_config.CURRENT:
            raise SystemExit("killed")
        write(path, text)

    monkeypatch.setattr(models_config, "_replace_text", killed_before_current_json)
    with pytest.raises(SystemExit):
        models_config.rollback(serving.parent, "taxi")
    assert models_config.current_versions(serving.parent) == {"taxi": int(first)}
    assert models_config.read_current(serving.parent, "taxi")["version"] == int(second), (
        "TF Serving and devices differ"
    )
    monkeypatch.undo()

    with models_config.locked(serving.parent):
        pass
    assert models_config.current_versions(serving.parent) == {"taxi": int(first)}
    current = models_config.read_current(serving.parent, "taxi")
    assert current["version"] == int(first) and current["reason"] == f"rollback from {second}"
    assert [e["version"] for e in current["history"]] == [int(first), int(second), int(first)]


def test_a_push_killed_before_its_rename_is_undone(tmp_path):
    model = fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving" / "taxi"
    first, _ = publish_atomically(model, str(serving))
    with models_config.locked(serving.parent):
        models_config.begin_pin(serving.parent, "taxi", int(first) + 5, reason="push")
    with models_config.locked(serving.parent):
        pass
    assert not (serving.parent / models_config.JOURNAL).exists()
    assert models_config.current_versions(serving.parent) == {"taxi": int(first)}
    assert len(models_config.read_current(serving.parent, "taxi")["history"]) == 1
