"""Where a run keeps its things, under one home folder (`build/` by default, ignored by git)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.settings import REPO_ROOT

if TYPE_CHECKING:
    from components.core.spec import ProblemSpec

DEFAULT_HOME = Path("build")
HOME_VARIABLE = "BLUEPRINT_HOME"
# MLMD on MySQL/MariaDB instead of SQLite: BLUEPRINT_MLMD_MYSQL=host:port/database, with the
# credentials in BLUEPRINT_MLMD_USER / BLUEPRINT_MLMD_PASSWORD (never in the repo).
MYSQL_VARIABLE = "BLUEPRINT_MLMD_MYSQL"


def home_from_environment() -> Path:
    """Where Airflow-run pipelines keep their things: $BLUEPRINT_HOME, else build/ in the repo."""
    default = REPO_ROOT / DEFAULT_HOME
    return Path(os.environ.get(HOME_VARIABLE) or default)


@dataclass(frozen=True)
class RunPaths:
    """The layout for one model name:

    <home>/pipelines/<name>/        TFX artifacts (pipeline root)
    <home>/metadata/<name>.sqlite   ML Metadata (lineage, caching)
    <home>/serving/<name>/<version> pushed SavedModels, the layout TF Serving watches
    """

    home: Path
    name: str

    @classmethod
    def for_spec(cls, name: str, home: str | Path = DEFAULT_HOME) -> RunPaths:
        return cls(Path(home).resolve(), name)

    @property
    def pipeline_root(self) -> Path:
        return self.home / "pipelines" / self.name

    @property
    def metadata_path(self) -> Path:
        return self.home / "metadata" / f"{self.name}.sqlite"

    @property
    def serving_dir(self) -> Path:
        return self.home / "serving" / self.name

    @property
    def monitoring_dir(self) -> Path:
        """Drift reports, one JSON + one text summary per check."""
        return self.home / "monitoring" / self.name

    def metadata_config(self):
        """MLMD connection: MySQL when $BLUEPRINT_MLMD_MYSQL is set, else the SQLite file."""
        from tfx.orchestration import metadata

        target = os.environ.get(MYSQL_VARIABLE)
        if not target:
            return metadata.sqlite_metadata_connection_config(str(self.metadata_path))
        address, _, database = target.partition("/")
        host, _, port = address.partition(":")
        return metadata.mysql_metadata_connection_config(  # MLMD creates the database if missing
            host=host,
            port=int(port or 3306),
            database=database or "blueprint_mlmd",
            username=os.environ.get("BLUEPRINT_MLMD_USER", "root"),
            password=os.environ.get("BLUEPRINT_MLMD_PASSWORD", ""),
        )

    def create(self) -> None:
        for folder in (self.pipeline_root, self.metadata_path.parent, self.serving_dir):
            folder.mkdir(parents=True, exist_ok=True)


def pipeline_name(spec: ProblemSpec) -> str:
    """The TFX pipeline's name in ML Metadata (a light module: the drift check needs it without TFX)."""
    return f"blueprint-{spec.name}"
