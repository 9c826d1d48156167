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
    with pytest.raises(
        models_config.RollbackError, match="rolled back from before: .*nothing to roll back to"
    ):
        models_config.rollback(root, "taxi")
    assert models_config.current_versions(root)["taxi"] == first, "a refused rollback changes nothing"


def test_rollback_follows_history_and_skips_versions_rolled_back_from(tmp_path):
    """Push v1, push v2, roll back (v1), push v3, roll back: v1 again, not v2, the version already rolled
    back from (the issue's case). v2 stays reachable by number."""
    source = fake_saved_model(tmp_path / "model")
    root = tmp_path / "serving"
    v1, v2 = push(root, "taxi", source), push(root, "taxi", source)
    assert models_config.rollback(root, "taxi") == (v2, v1)
    v3 = push(root, "taxi", source)
    assert models_config.rollback(root, "taxi") == (v3, v1)
    with pytest.raises(models_config.RollbackError, match=f"rolled back from before: {v2}, {v3}"):
        models_config.rollback(root, "taxi")
    assert models_config.rollback(root, "taxi", to=v2) == (v1, v2)
    with pytest.raises(models_config.RollbackError, match="it is the one in service"):
        models_config.rollback(root, "taxi", to=v2)
    with pytest.raises(models_config.RollbackError, match="cannot roll back to version 42"):
        models_config.rollback(root, "taxi", to=42)
    history = models_config.read_current(root, "taxi")["history"]
    assert [entry["version"] for entry in history] == [v1, v2, v1, v3, v1, v2]
    assert models_config.versions(root / "taxi") == [v1, v2, v3]  # nothing deleted


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
    back = subprocess.run([*command, "--to", str(second)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert back.returncode == 0 and f"now serves version {second} (was {first})" in back.stdout


def test_the_files_other_services_read_are_readable_by_all(tmp_path):
    """The nginx page container and TF Serving run as other users: `current.json` and `models.config`
    are 0644 (a temporary file from mkstemp alone would leave them 0600, and the page would get 403)."""
    root = tmp_path / "serving"
    push(root, "taxi", fake_saved_model(tmp_path / "model"))
    for path in (root / models_config.MODELS_CONFIG, root / "taxi" / models_config.CURRENT):
        assert path.stat().st_mode & 0o777 == 0o644, path
