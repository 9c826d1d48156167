"""What every part of `pipelines` shares: where the repository is, and where Beam runs.

Beam's settings come from the spec's `beam` section, or from a profile in `config/beam/` (`--beam-profile`
on the command line; `BLUEPRINT_BEAM_PROFILE` for Airflow), which replaces it: the same spec runs on
Beam's DirectRunner on a laptop and on a Flink or Spark cluster or Dataflow in production.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import yaml
from pydantic import ValidationError

from components.core.spec import BeamSpec, ProblemSpec, SpecError

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPONENTS_DIR = REPO_ROOT / "components"
BEAM_PROFILES_DIR = REPO_ROOT / "config" / "beam"
BEAM_PROFILE_ENV = "BLUEPRINT_BEAM_PROFILE"


def beam_profile(name: str) -> BeamSpec:
    """A Beam profile: `config/beam/<name>.yaml`, or a YAML file's path, holding a spec's `beam` section."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else BEAM_PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in BEAM_PROFILES_DIR.glob("*.yaml")))
        raise SpecError(f"Beam profile '{name}': no file {path}; use one of {known} or a YAML file's path")
    try:
        return BeamSpec.model_validate(yaml.safe_load(path.read_text()) or {})
    except (ValidationError, yaml.YAMLError) as error:
        raise SpecError(f"Beam profile {path}: {error}") from error


def beam_settings(spec: ProblemSpec, profile: str | None = None) -> BeamSpec:
    """Where this run's Beam components run: the named profile (or $BLUEPRINT_BEAM_PROFILE), else the
    spec's `beam` section."""
    profile = profile or os.environ.get(BEAM_PROFILE_ENV) or None
    return beam_profile(profile) if profile else spec.beam


def beam_args(spec: ProblemSpec, profile: str | None = None) -> list[str]:
    args = beam_settings(spec, profile).pipeline_args()
    return args + tfx_dependency_args(args)


# Beam options that already say how workers get TFX's code (TFX's own list, `dependency_utils`).
DEPENDENCY_OPTIONS = ("--extra_package", "--setup_file", "--requirements_file", "--sdk_container_image")


def tfx_dependency_args(args: list[str]) -> list[str]:
    """`--extra_package` with TFX's source package, built once per TFX version and kept in the user's
    cache, unless `args` already give the workers their code.

    Without it every Beam component builds the package again (TFX's `make_beam_dependency_flags`: a copy
    of the installed tfx and an sdist, about 3 s, and a temporary folder left behind each time): four
    times in a run, for a DirectRunner that never reads it; Flink, Spark and Dataflow workers install it.
    """
    if any(arg.startswith(DEPENDENCY_OPTIONS) for arg in args):
        return []
    return [f"--extra_package={tfx_package()}"]


def tfx_package() -> Path:
    """TFX's source package for Beam workers (`tfx_ephemeral-<version>.tar.gz`), built on first use."""
    import tfx
    from tfx.utils import dependency_utils

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "blueprint"
    package = cache / f"tfx_ephemeral-{tfx.__version__}.tar.gz"
    if package.is_file():
        return package
    cache.mkdir(parents=True, exist_ok=True)
    built = Path(dependency_utils.build_ephemeral_package())
    try:
        # Another process may build it at the same time: each renames a whole file into place.
        with (
            built.open("rb") as source,
            tempfile.NamedTemporaryFile(dir=cache, suffix=".partial", delete=False) as partial,
        ):
            shutil.copyfileobj(source, partial)
        os.replace(partial.name, package)
    finally:
        shutil.rmtree(built.parents[3], ignore_errors=True)  # <temporary folder>/build/tfx/dist/<package>
    return package
