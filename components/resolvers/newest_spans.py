"""Which spans the pipeline trains on: the newest N spans that ExampleGen has ingested."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.common import resolver

from components.core.artifacts import custom_int

EXAMPLES_KEY = "examples"
WINDOW_NODE_ID = "span_window_resolver"


class NewestSpansStrategy(resolver.ResolverStrategy):
    """Resolves the newest `num_spans` spans of Examples (the latest version of each span).

    TFX's SpanRangeStrategy takes its window as a proto fixed when the DAG is built; this strategy
    takes it as a plain value, so an Airflow run can choose its window from the trigger form (the
    value arrives rendered from a `{{ params.window_spans }}` template, hence a string is accepted).
    """

    def __init__(self, num_spans: int | str):
        self._num_spans = int(num_spans)
        if self._num_spans < 1:
            raise ValueError(f"window_spans must be 1 or more, got {num_spans!r}")

    def resolve_artifacts(
        self, store, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        newest_version: dict[int, types.Artifact] = {}
        for artifact in input_dict.get(EXAMPLES_KEY, []):
            span = custom_int(artifact, "span")
            kept = newest_version.get(span)
            if kept is None or _version_key(artifact) > _version_key(kept):
                newest_version[span] = artifact
        spans = sorted(newest_version, reverse=True)[: self._num_spans]
        return {EXAMPLES_KEY: [newest_version[span] for span in sorted(spans)]}


def _version_key(artifact: types.Artifact) -> tuple[int, int]:
    return custom_int(artifact, "version"), artifact.id


class WindowResolver(resolver.Resolver):
    """A Resolver whose execution properties are one lasting dict.

    TFX's Airflow launcher renders the properties (templates such as `{{ params.window_spans }}`) and
    writes them back with `component.exec_properties.update(...)`; the stock Resolver builds a new dict
    on every access, so the rendered window would be lost and the template reach the strategy.
    """

    @classmethod
    def get_class_type(cls) -> str:
        """Compile as TFX's Resolver: the portable launcher (LocalDagRunner, `pipelines run`) picks a
        system node's handler by this name, and fails with 'A node must be system node or have an
        executor' for any other."""
        return resolver.Resolver.get_class_type()

    @property
    def exec_properties(self):
        if getattr(self, "_lasting_exec_properties", None) is None:
            self._lasting_exec_properties = dict(super().exec_properties)
        return self._lasting_exec_properties
