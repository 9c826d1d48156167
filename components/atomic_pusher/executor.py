"""AtomicPusher executor: copy the blessed SavedModel to a temporary folder, then rename it in."""

from __future__ import annotations

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

from components.atomic_pusher import models_config

TEMP_PREFIX = ".incoming-"


def next_version(base_directory: str, now: float | None = None) -> int:
    """A version number above every existing one: the unix time, or one more than the newest."""
    existing = [int(name) for name in os.listdir(base_directory) if name.isdigit()]
    return max([int(now if now is not None else time.time()), *(v + 1 for v in existing)])


def copy_model(source: str, destination: str) -> None:
    shutil.copytree(source, destination, dirs_exist_ok=True)


def publish_atomically(
    model_path: str, base_directory: str, copy: Callable[[str, str], None] = copy_model
) -> tuple[str, str]:
    """Copies `model_path` to `<base_directory>/<version>` so that it appears all at once.

    Returns (version, path). TF Serving only looks at folders whose names are numbers, so the
    temporary folder (`.incoming-*`) is invisible to it; `os.rename` within one filesystem is atomic.
    """
    os.makedirs(base_directory, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=base_directory)
    try:
        copy(model_path, staging)
        version = str(next_version(base_directory))
        destination = os.path.join(base_directory, version)
        os.rename(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return version, destination


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
        version, serving_path = publish_atomically(model_path, base_directory)
        config = models_config.make_current(
            Path(base_directory).parent, Path(base_directory).name, int(version)
        )
        logging.info("TF Serving config %s now serves version %s", config, version)
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=version)
        logging.info("Model version %s pushed to %s", version, serving_path)
