"""CuratedSchemaGen component: a SchemaGen whose schema also encodes the problem spec."""

from __future__ import annotations

import json
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.core.artifacts import SPEC_PARAMETERS
from components.curated_schema_gen import executor


class CuratedSchemaGenSpec(ComponentSpec):
    PARAMETERS = {
        **SPEC_PARAMETERS,
        standard_component_specs.EXCLUDE_SPLITS_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        standard_component_specs.STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
        # Training rows, sampled to find identifier columns (TFDV counts distinct values of text only).
        standard_component_specs.EXAMPLES_KEY: ChannelParameter(
            type=standard_artifacts.Examples, optional=True
        ),
    }
    OUTPUTS = {
        standard_component_specs.SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
    }


class CuratedSchemaGen(base_component.BaseComponent):
    """Infers a schema from the training split's statistics (as SchemaGen does) and curates it.

    The curation turns the spec into checks ExampleValidator can enforce: the label must be present
    in every row with the type its task needs, numeric features must hold numbers, features may be
    missing (Transform imputes them), categories outside the training vocabulary are allowed (they go
    to OOV buckets), and columns the spec does not use are marked deprecated so nothing reads them. When
    the spec leaves the features to Blueprint, row identifiers (unique text, integers numbering rows) and
    columns with no value in any training row are left out too, annotated with the reason
    (`components.core.artifacts.read_left_out`); a column the spec names that has no value is an error.
    """

    SPEC_CLASS = CuratedSchemaGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        statistics: types.BaseChannel,
        problem_spec: dict[str, Any],
        examples: types.BaseChannel | None = None,
        exclude_splits: list[str] | None = None,
        code_version: str = "",
    ):
        spec = CuratedSchemaGenSpec(
            statistics=statistics,
            examples=examples,
            problem_spec=json.dumps(problem_spec, sort_keys=True),
            exclude_splits=json.dumps(exclude_splits or []),
            code_version=code_version,
            schema=types.Channel(type=standard_artifacts.Schema),
        )
        super().__init__(spec=spec)
