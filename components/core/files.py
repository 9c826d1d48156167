"""Writing files that other processes read: whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

READABLE_BY_ALL = 0o644


def replace_file(path: Path, data: str | bytes, mode: int = READABLE_BY_ALL) -> None:
    """Writes `path` through a temporary file in its folder and a rename: a reader (or a later run after
    a kill mid-write) sees the old file or the new one, never half of one. The file gets `mode` (0644:
    `models.config`, `current.json` and reports are read by other services' users, such as the nginx page
    container; mkstemp alone would leave 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.fchmod(handle, mode)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
