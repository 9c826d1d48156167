"""Where a run keeps its things, under one home folder (`build/` by default, ignored by git)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = Path("build")


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

    def create(self) -> None:
        for folder in (self.pipeline_root, self.metadata_path.parent, self.serving_dir):
            folder.mkdir(parents=True, exist_ok=True)
