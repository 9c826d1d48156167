"""TF Serving's `models.config`: which version of each model is served, and rollback.

The serving root (`<home>/serving/`) holds one folder per model with numbered versions, and a
`models.config` (TF Serving's ModelServerConfig, text format) whose `specific` version policy pins the
version in service. A push pins the new version; a rollback pins the one before it. No version is ever
deleted, so a rollback is a change of one number. Every change happens under one lock (`locked`), with a
journal that lets the next writer finish a change a kill interrupted (`recover`). TF Serving reads the
file with `--model_config_file=/models/models.config --model_config_file_poll_wait_seconds=N`, with the
serving root mounted at `/models` (docker/).
"""

from __future__ import annotations

import datetime
import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from absl import logging
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.core.files import replace_file

MODELS_CONFIG = "models.config"
CURRENT = "current.json"
# What a push or rollback is about to pin, written before it touches anything TF Serving or the devices
# read and removed when both `models.config` and `current.json` say so: `recover` finishes the change
# when a kill left it half done.
JOURNAL = ".pin-journal.json"
MANIFEST = "manifest.json"
HISTORY_LIMIT = 100
SERVING_MOUNT = "/models"


class RollbackError(RuntimeError):
    """No earlier version to go back to; the message names the model and what is there."""


def target_name(target: dict) -> str:
    """`serving` for the SavedModel, `<target>-<variant>` for a device model (tflite-int8, tfjs-uint8)."""
    return target["target"] if target["target"] == "serving" else f"{target['target']}-{target['variant']}"


def versions(model_dir: Path) -> list[int]:
    """The complete versions TF Serving can see (numbered folders; `.incoming-*` ones are not)."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def current_versions(serving_root: Path) -> dict[str, int]:
    """Model name -> the version `models.config` pins ({} before the first push)."""
    path = serving_root / MODELS_CONFIG
    if not path.is_file():
        return {}
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    return {
        entry.name: max(entry.model_version_policy.specific.versions)
        for entry in config.model_config_list.config
        if entry.model_version_policy.specific.versions
    }


def read_manifest(version_dir: Path | str) -> dict:
    """A pushed version's `manifest.json` ({} for a version pushed without one)."""
    path = Path(version_dir) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def read_current(serving_root: Path, model: str) -> dict:
    """`<model>/current.json`: {model, version, reason, manifest, history} ({} before the first push)."""
    path = serving_root / model / CURRENT
    return json.loads(path.read_text()) if path.is_file() else {}


def make_current(serving_root: Path, model: str, version: int, reason: str = "push") -> Path:
    """Pins `version` of `model` for every target (other models kept); returns `models.config`."""
    if version not in versions(serving_root / model):
        raise ValueError(f"{serving_root / model} has no version {version}; cannot serve it")
    with locked(serving_root):
        return pin_locked(serving_root, model, version, reason)


def begin_pin(serving_root: Path, model: str, version: int, reason: str) -> dict:
    """Records what is about to be pinned (call with the lock held, before the change); returns the record."""
    entry = {
        "model": model,
        "version": version,
        "reason": reason,
        "was": current_versions(serving_root).get(model),
        "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds"),
    }
    replace_file(serving_root / JOURNAL, json.dumps(entry))
    return entry


def clear_pin(serving_root: Path) -> None:
    """Drops the record of a change that did not happen (a push that failed before its rename)."""
    (serving_root / JOURNAL).unlink(missing_ok=True)


def pin_locked(serving_root: Path, model: str, version: int, reason: str, entry: dict | None = None) -> Path:
    """Pins `version` for TF Serving (`models.config`) and the devices (`current.json`), with the lock
    held by the caller. The journal makes the two writes one change: `recover` finishes it after a kill."""
    entry = entry or begin_pin(serving_root, model, version, reason)
    current = current_versions(serving_root)
    current[model] = version
    config = _write(serving_root, current)
    history = read_current(serving_root, model).get("history", [])
    if not history or history[-1].get("at") != entry["at"]:
        history.append({key: entry[key] for key in ("at", "reason", "version", "was")})
    record = {
        "model": model,
        "version": version,
        "since": entry["at"],
        "reason": entry["reason"],
        "manifest": read_manifest(serving_root / model / str(version)),
        "history": history[-HISTORY_LIMIT:],
    }
    _replace_text(serving_root / model / CURRENT, json.dumps(record, indent=1))
    clear_pin(serving_root)
    return config


def recover(serving_root: Path) -> str | None:
    """Finishes or undoes a push or rollback that a kill cut short (call with the lock held).

    The journal names the version being pinned. If that version is on disk, the change is finished:
    `models.config` and `current.json` both pin it (a push killed between its rename and its pin is
    completed, as the push meant; a pin killed between the two files is written whole). If it is not on
    disk (killed before the rename), the journal is dropped and nothing changes. Returns what was done.
    """
    path = serving_root / JOURNAL
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        clear_pin(serving_root)
        return "dropped an unreadable record of an interrupted change"
    model, version = entry["model"], int(entry["version"])
    if version not in versions(serving_root / model):
        clear_pin(serving_root)
        return f"undone: the {entry['reason']} of '{model}' version {version} stopped before it appeared"
    pin_locked(serving_root, model, version, entry["reason"], entry=entry)
    return (
        f"finished: the {entry['reason']} of '{model}' version {version}, interrupted, now pins it everywhere"
    )


def rollback(serving_root: Path, model: str, to: int | None = None) -> tuple[int, int]:
    """Pins the version that served before the current one, or `to`; returns (was, now). Nothing is
    deleted. See `rollback_target` for which version that is."""
    with locked(serving_root):
        available = versions(serving_root / model)
        current = current_versions(serving_root)
        was = current.get(model, available[-1] if available else None)
        if to is not None:
            if to not in available or to == was:
                raise RollbackError(
                    f"model '{model}' cannot roll back to version {to}: "
                    + ("it is the one in service" if to == was else f"versions there: {available or 'none'}")
                )
            target = to
        else:
            history = read_current(serving_root, model).get("history", [])
            target = rollback_target(history, was, available)
            if target is None:
                skipped = sorted(rolled_back_from(history))
                raise RollbackError(
                    f"model '{model}' has no version that served before {was} in {serving_root / model} "
                    f"(versions there: {available or 'none'}"
                    + (f"; rolled back from before: {', '.join(map(str, skipped))}" if skipped else "")
                    + "); nothing to roll back to. Name one with --to VERSION"
                )
        pin_locked(serving_root, model, target, reason=f"rollback from {was}")
    return was, target


def rolled_back_from(history: list[dict]) -> set[int]:
    """The versions a rollback moved away from: a bad version stays out of later rollbacks."""
    return {
        entry["was"] for entry in history if entry.get("reason", "").startswith("rollback") and entry["was"]
    }


def rollback_target(history: list[dict], current: int | None, available: list[int]) -> int | None:
    """The newest version in `current.json`'s history that served before `current`, skipping `current`,
    versions rolled back from and versions no longer on disk. Without a history (a folder pinned by hand or by
    an older Blueprint), the highest version below `current`."""
    if not history:
        earlier = [v for v in available if current is not None and v < current]
        return earlier[-1] if earlier else None
    skipped = rolled_back_from(history) | {current}
    for entry in reversed(history):
        if entry["version"] not in skipped and entry["version"] in available:
            return entry["version"]
    return None


def _write(serving_root: Path, current: dict[str, int]) -> Path:
    config = model_server_config_pb2.ModelServerConfig()
    for name in sorted(current):
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = f"{SERVING_MOUNT}/{name}"
        entry.model_platform = "tensorflow"
        entry.model_version_policy.specific.versions.append(current[name])
    path = serving_root / MODELS_CONFIG
    _replace_text(path, text_format.MessageToString(config))
    return path


def _replace_text(path: Path, text: str) -> None:
    """Writes `path` whole or not at all (readers see the old or the new, never half)."""
    replace_file(path, text)


@contextmanager
def locked(serving_root: Path) -> Iterator[None]:
    """One writer at a time: two pipelines pushing at once must not lose each other's entry. The first
    thing a writer does is finish or undo what a killed writer left half done (`recover`)."""
    serving_root.mkdir(parents=True, exist_ok=True)
    with open(serving_root / f".{MODELS_CONFIG}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            recovered = recover(serving_root)
            if recovered:
                logging.warning("Serving folder %s: %s", serving_root, recovered)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
