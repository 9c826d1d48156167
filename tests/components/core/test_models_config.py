"""TF Serving's models.config: a push pins the new version, a rollback the one before; nothing is deleted."""

from __future__ import annotations

import subprocess
import sys

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.atomic_pusher.executor import publish_atomically
from components.core import models_config
from tests.helpers.data import REPO_ROOT, fake_saved_model


def push(serving_root, model: str, source) -> int:
    version, _ = publish_atomically(str(source), str(serving_root / model))
    models_config.make_current(serving_root, model, int(version))
    return int(version)


def parsed(serving_root) -> model_server_config_pb2.ModelServerConfig:
    text = (serving_root / models_config.MODELS_CONFIG).read_text()
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_a_push_pins_the_new_version_for_tf_serving(tmp_path):
    source = fake_saved_model(tmp_path / "model")
    root = tmp_path / "serving"
    first = push(root, "taxi", source)
    second = push(root, "taxi", source)
    assert second > first
    (entry,) = parsed(root).model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == ("taxi", "/models/taxi", "tensorflow")
    assert list(entry.model_version_policy.specific.versions) == [second]


def test_rollback_serves_the_previous_version_and_deletes_nothing(tmp_path):
    source = fake_saved_model(tmp_path / "model")
    root = tmp_path / "serving"
    first, second = push(root, "taxi", source), push(root, "taxi", source)
    other = push(root, "wine", source)
    assert models_config.rollback(root, "taxi") == (second, first)
    assert models_config.current_versions(root) == {"taxi": first, "wine": other}
    assert models_config.versions(root / "taxi") == [first, second]
    with pytest.raises(models_config.RollbackError, match="'taxi' has no version older than"):
        models_config.rollback(root, "taxi")
    assert models_config.current_versions(root)["taxi"] == first, "a refused rollback changes nothing"


def test_pinning_a_version_that_is_not_there_is_refused(tmp_path):
    root = tmp_path / "serving"
    push(root, "taxi", fake_saved_model(tmp_path / "model"))
    with pytest.raises(ValueError, match="has no version 42"):
        models_config.make_current(root, "taxi", 42)


def test_rollback_command(tmp_path):
    source = fake_saved_model(tmp_path / "model")
    home = tmp_path / "home"
    first, second = push(home / "serving", "taxi", source), push(home / "serving", "taxi", source)
    command = [
        sys.executable,
        "-m",
        "pipelines",
        "rollback",
        "--config",
        "config/taxi.yaml",
        "--home",
        str(home),
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"now serves version {first} (was {second})" in done.stdout
    again = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert again.returncode != 0 and "nothing to roll back to" in again.stderr
