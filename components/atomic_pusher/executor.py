"""AtomicPusher executor: fill a temporary folder with the version's targets, then rename it in."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.core import models_config
from components.core.artifacts import DEVICE_MODELS_KEY, read_class_names, read_targets

TEMP_PREFIX = ".incoming-"


def next_version(base_directory: str, now: float | None = None) -> int:
    """A version number above every existing one: the unix time, or one more than the newest."""
    existing = [int(name) for name in os.listdir(base_directory) if name.isdigit()]
    return max([int(now if now is not None else time.time()), *(v + 1 for v in existing)])


def copy_model(source: str, destination: str) -> None:
    shutil.copytree(source, destination, dirs_exist_ok=True)


def remove_abandoned_staging(base_directory: str) -> list[str]:
    """Deletes `.incoming-*` folders left by a push that was killed before its rename.

    Called with the serving lock held: no live pusher is staging, so any such folder is abandoned.
    """
    abandoned = [name for name in os.listdir(base_directory) if name.startswith(TEMP_PREFIX)]
    for name in abandoned:
        logging.warning("Removing %s, left by a push that did not finish", name)
        shutil.rmtree(os.path.join(base_directory, name), ignore_errors=True)
    return abandoned


def publish_atomically(
    model_path: str,
    base_directory: str,
    copy: Callable[[str, str], None] = copy_model,
    complete: Callable[[str, str], None] | None = None,
) -> tuple[str, str]:
    """Copies `model_path` to `<base_directory>/<version>` so that it appears all at once, and serves it.

    `complete(staging, version)` adds the rest of the version (device targets, manifest) before the
    rename. Returns (version, path). TF Serving only looks at folders whose names are numbers, so the
    temporary folder (`.incoming-*`) is invisible to it; `os.rename` within one filesystem is atomic.
    Choosing the number, the rename and the pin are one step under the serving lock: two pushers of a
    model end with the newer version pinned, and a kill anywhere leaves a journal that the next writer's
    `models_config.recover` finishes (version renamed in: pinned) or undoes (not renamed: dropped).
    """
    os.makedirs(base_directory, exist_ok=True)
    serving_root, model = Path(base_directory).parent, Path(base_directory).name
    with models_config.locked(serving_root):
        remove_abandoned_staging(base_directory)
        version = str(next_version(base_directory))
        staging = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=base_directory)
        destination = os.path.join(base_directory, version)
        try:
            copy(model_path, staging)
            if complete is not None:
                complete(staging, version)
            entry = models_config.begin_pin(serving_root, model, int(version), reason="push")
            os.rename(staging, destination)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            models_config.clear_pin(serving_root)
            raise
        models_config.pin_locked(serving_root, model, int(version), reason="push", entry=entry)
    return version, destination


def build_manifest(
    model: str, version: str, targets: dict | None, source: dict, classes: list[str] | None = None
) -> dict:
    """What a pushed version holds: every target with its path, size, metric and parity figures, and
    for a classifier its class names in the order of every target's probabilities."""
    manifest = {
        "model": model,
        "version": int(version),
        "pushed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": source,
    }
    if classes is not None:
        manifest["classes"] = classes
    if not targets or not targets.get("exported"):
        manifest["targets"] = [{"target": "serving", "variant": "savedmodel", "path": "", "pushed": True}]
        manifest["note"] = "no device targets were built for this model"
        return manifest
    for key in (
        "task",
        "metric",
        "higher_is_better",
        "tolerance",
        "tolerance_kind",
        "allowed_loss",
        "reference_mae",
        "test_rows",
        "latency_calls",
        "sparsity",
        "spans",
    ):
        manifest[key] = targets.get(key)
    manifest["targets"] = [{**t, "pushed": bool(t["passed"])} for t in targets["targets"]]
    return manifest


def savedmodel_refusal(targets: dict | None) -> str | None:
    """Why the ModelExporter refused the SavedModel (a compute gate), or None when it may be pushed.

    TF Serving loads a version folder's SavedModel and the device targets live in the same folder, so
    without the SavedModel there is no version to push: the model in service keeps serving."""
    if not targets or not targets.get("exported"):
        return None
    serving = next((t for t in targets["targets"] if t["target"] == "serving"), None)
    if serving is None or serving["passed"]:
        return None
    return serving["reason"] or "refused by the ModelExporter"


def stage_device_targets(device_models_uri: str, manifest: dict, staging: str) -> None:
    """Copies the targets that passed the gates (parity, compute) into the staging folder."""
    for target in manifest["targets"]:
        if not target["pushed"] or not target["path"]:
            continue
        source = Path(device_models_uri, target["path"])
        destination = Path(staging, target["path"])
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination)
        else:
            shutil.copy2(source, destination)


class Executor(pusher_executor.Executor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY]
        )
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise ValueError("AtomicPusher pushes to a filesystem destination only")
        model_path = self.GetModelPath(input_dict)
        base_directory = destination.filesystem.base_directory
        serving_root, name = Path(base_directory).parent, Path(base_directory).name
        device_uri = None
        targets = None
        if input_dict.get(DEVICE_MODELS_KEY):
            device_uri = artifact_utils.get_single_uri(input_dict[DEVICE_MODELS_KEY])
            targets = read_targets(device_uri)
        refusal = savedmodel_refusal(targets)
        if refusal is not None:
            logging.warning("Nothing pushed: the SavedModel (serving) is refused: %s", refusal)
            self._MarkNotPushed(model_push)
            return
        model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        source = {
            "pipeline_run_id": self._context.pipeline_run_id if self._context else None,
            "model_artifact_id": model.id,
            "model_uri": model.uri,
        }

        def complete(staging: str, version: str) -> None:
            manifest = build_manifest(name, version, targets, source, read_class_names(model_path))
            if device_uri is not None:  # copies only the targets that passed; none if none were built
                stage_device_targets(device_uri, manifest, staging)
            Path(staging, models_config.MANIFEST).write_text(json.dumps(manifest, indent=1))

        version, serving_path = publish_atomically(model_path, base_directory, complete=complete)
        logging.info("%s now serves version %s", serving_root / models_config.MODELS_CONFIG, version)
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=version)
        logging.info("Model version %s pushed to %s", version, serving_path)
