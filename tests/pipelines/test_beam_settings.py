"""Where Beam runs: the spec's `beam` section, a profile of config/beam/, or $BLUEPRINT_BEAM_PROFILE."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from components.core.spec import BeamSpec, SpecError, load_spec
from pipelines import settings
from tests.helpers.data import TAXI_SPEC


def test_the_default_is_beams_direct_runner_in_process_with_one_worker():
    assert load_spec(TAXI_SPEC, check_data=False).beam.pipeline_args() == [
        "--runner=DirectRunner",
        "--direct_running_mode=in_memory",
        "--direct_num_workers=1",
    ]


@pytest.mark.parametrize(
    "profile, runner",
    [
        ("direct", "DirectRunner"),
        ("direct-all-cores", "DirectRunner"),
        ("portable", "PortableRunner"),
        ("flink", "FlinkRunner"),
        ("spark", "SparkRunner"),
        ("dataflow", "DataflowRunner"),
    ],
)
def test_every_profile_in_config_beam_loads_and_names_its_runner(profile, runner):
    args = settings.beam_profile(profile).pipeline_args()
    assert args[0] == f"--runner={runner}"
    assert sum(arg.startswith("--runner") for arg in args) == 1


def test_the_portable_profile_points_at_a_job_service_and_an_external_worker_pool():
    args = settings.beam_profile("portable").pipeline_args()
    assert "--job_endpoint=localhost:8099" in args
    assert "--environment_type=EXTERNAL" in args and "--environment_config=localhost:50000" in args


def test_a_profile_replaces_the_specs_beam_section_and_the_environment_names_one(monkeypatch, tmp_path):
    spec = load_spec(TAXI_SPEC, check_data=False)
    monkeypatch.delenv(settings.BEAM_PROFILE_ENV, raising=False)
    assert settings.beam_settings(spec) == spec.beam
    assert settings.beam_settings(spec, "direct-all-cores").direct_num_workers == 0
    monkeypatch.setenv(settings.BEAM_PROFILE_ENV, "portable")
    assert settings.beam_settings(spec).runner == "portable"
    own = tmp_path / "mine.yaml"
    own.write_text(yaml.safe_dump({"runner": "direct", "direct_num_workers": 2}))
    assert "--direct_num_workers=2" in settings.beam_args(spec, str(own))


def test_every_run_gives_beam_tfxs_package_built_once_unless_its_args_name_the_workers_code(
    monkeypatch, tmp_path
):
    spec = load_spec(TAXI_SPEC, check_data=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = settings.beam_args(spec)
    package = [arg.split("=", 1)[1] for arg in first if arg.startswith("--extra_package=")]
    assert len(package) == 1 and package[0].endswith(".tar.gz")
    built = tmp_path / "cache" / "blueprint" / package[0].rsplit("/", 1)[-1]
    assert built.is_file() and built.stat().st_size > 100_000  # TFX's own source
    stamp = built.stat().st_mtime_ns
    assert settings.beam_args(spec) == first and built.stat().st_mtime_ns == stamp  # not built again
    own = tmp_path / "own.yaml"
    own.write_text(yaml.safe_dump({"runner": "direct", "args": ["--setup_file=./setup.py"]}))
    assert not any(arg.startswith("--extra_package") for arg in settings.beam_args(spec, str(own)))


def test_an_unknown_or_incomplete_profile_is_refused_naming_what_to_do(tmp_path):
    with pytest.raises(SpecError, match="Beam profile 'flonk'.*direct, direct-all-cores"):
        settings.beam_profile("flonk")
    incomplete = tmp_path / "incomplete.yaml"
    incomplete.write_text(yaml.safe_dump({"runner": "portable"}))
    with pytest.raises(SpecError, match="beam.job_endpoint"):
        settings.beam_profile(str(incomplete))
    with pytest.raises(ValidationError, match="beam.environment_config"):
        BeamSpec(runner="portable", job_endpoint="localhost:8099", environment_type="EXTERNAL")
    with pytest.raises(ValidationError, match="beam.runner"):
        BeamSpec(args=["--runner=FlinkRunner"])
