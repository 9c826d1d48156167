"""TF Serving's `models.config`: which version of each model is served, and rollback.

The serving root (`<home>/serving/`) holds one folder per model with numbered versions, and a
`models.config` (TF Serving's ModelServerConfig, text format) whose `specific` version policy pins the
version in service. A push pins the new version; a rollback pins the one before it. No version is ever
deleted, so a rollback is a change of one number. TF Serving reads the file with
`--model_config_file=/models/models.config --model_config_file_poll_wait_seconds=N`, with the serving
root mounted at `/models` (docker/).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

MODELS_CONFIG = "models.config"
SERVING_MOUNT = "/models"


class RollbackError(RuntimeError):
    """No earlier version to go back to; the message names the model and what is there."""


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


def make_current(serving_root: Path, model: str, version: int) -> Path:
    """Pins `version` of `model` in `models.config` (other models kept); returns the file."""
    if version not in versions(serving_root / model):
        raise ValueError(f"{serving_root / model} has no version {version}; cannot serve it")
    with _locked(serving_root):
        current = current_versions(serving_root)
        current[model] = version
        return _write(serving_root, current)


def rollback(serving_root: Path, model: str) -> tuple[int, int]:
    """Pins the version before the current one; returns (was, now). Nothing is deleted."""
    with _locked(serving_root):
        available = versions(serving_root / model)
        current = current_versions(serving_root)
        was = current.get(model, available[-1] if available else None)
        earlier = [v for v in available if was is not None and v < was]
        if not earlier:
            raise RollbackError(
                f"model '{model}' has no version older than {was} in {serving_root / model} "
                f"(versions there: {available or 'none'}); nothing to roll back to"
            )
        current[model] = earlier[-1]
        _write(serving_root, current)
    return was, earlier[-1]


def _write(serving_root: Path, current: dict[str, int]) -> Path:
    config = model_server_config_pb2.ModelServerConfig()
    for name in sorted(current):
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = f"{SERVING_MOUNT}/{name}"
        entry.model_platform = "tensorflow"
        entry.model_version_policy.specific.versions.append(current[name])
    path = serving_root / MODELS_CONFIG
    handle, staging = tempfile.mkstemp(prefix=f".{MODELS_CONFIG}-", dir=serving_root)
    with os.fdopen(handle, "w") as out:
        out.write(text_format.MessageToString(config))
    os.replace(staging, path)  # TF Serving polling the file sees the old or the new one, never half
    return path


@contextmanager
def _locked(serving_root: Path) -> Iterator[None]:
    """One writer at a time: two pipelines pushing at once must not lose each other's entry."""
    serving_root.mkdir(parents=True, exist_ok=True)
    with open(serving_root / f".{MODELS_CONFIG}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
