"""Where a run keeps its things, under one home folder (`build/` by default, ignored by git)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.settings import REPO_ROOT

if TYPE_CHECKING:
    from components.core.spec import ProblemSpec

DEFAULT_HOME = Path("build")
HOME_VARIABLE = "BLUEPRINT_HOME"
# MLMD on MySQL/MariaDB instead of SQLite: BLUEPRINT_MLMD_MYSQL=host:port/database, with the
# credentials in BLUEPRINT_MLMD_USER / BLUEPRINT_MLMD_PASSWORD (never in the repo, never defaulted).
MYSQL_VARIABLE = "BLUEPRINT_MLMD_MYSQL"
MYSQL_USER_VARIABLE = "BLUEPRINT_MLMD_USER"
MYSQL_PASSWORD_VARIABLE = "BLUEPRINT_MLMD_PASSWORD"
MYSQL_DEFAULT_DATABASE = "blueprint_mlmd"


class MetadataConfigError(ValueError):
    """ML Metadata's connection settings are incomplete or malformed; the message names the variable."""


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
        """MLMD connection: MySQL when $BLUEPRINT_MLMD_MYSQL is set, else the SQLite file.

        Every reader and writer of a run's MLMD goes through here, so none reads the SQLite file
        while the pipeline wrote to MySQL."""
        mysql = mysql_settings()
        from tfx.orchestration import metadata

        if mysql is None:
            return metadata.sqlite_metadata_connection_config(str(self.metadata_path))
        return metadata.mysql_metadata_connection_config(  # MLMD creates the database if missing
            host=mysql.host,
            port=mysql.port,
            database=mysql.database,
            username=mysql.user,
            password=mysql.password,
        )

    def metadata_location(self) -> str:
        """Where MLMD lives, for people to read: the SQLite file or mysql://host:port/database."""
        mysql = mysql_settings()
        return str(self.metadata_path) if mysql is None else mysql.location

    def create(self) -> None:
        for folder in (self.pipeline_root, self.metadata_path.parent, self.serving_dir):
            folder.mkdir(parents=True, exist_ok=True)


def pipeline_name(spec: ProblemSpec) -> str:
    """The TFX pipeline's name in ML Metadata (a light module: the drift check needs it without TFX)."""
    return pipeline_name_for(spec.name)


def pipeline_name_for(model: str) -> str:
    """`pipeline_name` of the spec named `model` (what `status` knows of a model in a home)."""
    return f"blueprint-{model}"


@dataclass(frozen=True)
class MySQLSettings:
    """MLMD's MySQL database and account (the password kept out of repr, so out of tracebacks)."""

    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)

    @property
    def location(self) -> str:
        return f"mysql://{self.host}:{self.port}/{self.database}"


def mysql_settings() -> MySQLSettings | None:
    """MLMD's MySQL settings from the environment, None for SQLite; checked before TensorFlow loads.

    Raises MetadataConfigError naming the variable when $BLUEPRINT_MLMD_MYSQL is malformed or the
    account is not given."""
    target = os.environ.get(MYSQL_VARIABLE)
    if not target:
        return None
    return MySQLSettings(*_mysql_address(target), *_mysql_credentials())


def _mysql_address(target: str) -> tuple[str, int, str]:
    """(host, port, database) of `host[:port][/database]`, the value of $BLUEPRINT_MLMD_MYSQL."""
    address, _, database = target.partition("/")
    host, _, port = address.partition(":")
    if not host or not (port or "3306").isdigit():
        raise MetadataConfigError(
            f"{MYSQL_VARIABLE}={target!r} is not host:port/database (e.g. 127.0.0.1:3306/blueprint_mlmd)"
        )
    return host, int(port or 3306), database or MYSQL_DEFAULT_DATABASE


def _mysql_credentials() -> tuple[str, str]:
    """The MySQL account for MLMD: both variables must be set; only the password may be empty.

    No default account: a silent `root` with an empty password would connect wherever MySQL is left
    open, and fail confusingly everywhere else."""
    user = os.environ.get(MYSQL_USER_VARIABLE, "")
    password = os.environ.get(MYSQL_PASSWORD_VARIABLE)
    missing = [MYSQL_USER_VARIABLE] if not user else []
    missing += [MYSQL_PASSWORD_VARIABLE] if password is None else []
    if missing:
        raise MetadataConfigError(
            f"{MYSQL_VARIABLE} puts ML Metadata on MySQL, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set: set {MYSQL_USER_VARIABLE} and "
            f"{MYSQL_PASSWORD_VARIABLE} in the environment ({MYSQL_PASSWORD_VARIABLE}= for an account "
            "without a password), or unset "
            f"{MYSQL_VARIABLE} to keep ML Metadata in a SQLite file"
        )
    return user, password
