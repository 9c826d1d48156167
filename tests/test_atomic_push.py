"""AtomicPusher's publishing: a version appears whole or not at all."""

from __future__ import annotations

import os
import shutil

import pytest

from components.atomic_pusher.executor import TEMP_PREFIX, next_version, publish_atomically


def make_model(folder) -> str:
    (folder / "variables").mkdir(parents=True)
    (folder / "variables" / "variables.index").write_bytes(b"index")
    (folder / "variables" / "variables.data-00000-of-00001").write_bytes(os.urandom(4096))
    (folder / "saved_model.pb").write_bytes(b"graph")
    return str(folder)


def test_publish_creates_a_complete_numbered_version(tmp_path):
    model = make_model(tmp_path / "model")
    version, path = publish_atomically(model, str(tmp_path / "serving"))
    assert version.isdigit()
    assert sorted(os.listdir(tmp_path / "serving")) == [version]
    assert (tmp_path / "serving" / version / "saved_model.pb").read_bytes() == b"graph"
    assert path == str(tmp_path / "serving" / version)


def test_versions_always_increase(tmp_path):
    serving = tmp_path / "serving"
    (serving / "9999999999").mkdir(parents=True)
    assert next_version(str(serving)) == 10000000000
    assert next_version(str(tmp_path), now=5) == 5


def test_failure_mid_copy_leaves_no_partial_version(tmp_path):
    model = make_model(tmp_path / "model")
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
    assert sorted(os.listdir(serving)) == [first]
    assert not [name for name in os.listdir(serving) if name.startswith(TEMP_PREFIX)]
