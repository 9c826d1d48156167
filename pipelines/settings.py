"""What every part of `pipelines` shares: where the repository is, and where Beam runs.

Beam's settings come from the spec's `beam` section, or from a profile in `config/beam/` (`--beam-profile`
on the command line; `BLUEPRINT_BEAM_PROFILE` for Airflow), which replaces it: the same spec runs on
Beam's DirectRunner on a laptop and on a Flink or Spark cluster or Dataflow in production.
"""

from __future__ import annotations

import os
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
    return beam_settings(spec, profile).pipeline_args()
