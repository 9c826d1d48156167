"""What a run did, read back from ML Metadata: per-component state, metrics, blessing and push."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata as tfx_metadata

from components.core.artifacts import BASELINE_BLESSING_KEY, REPORT_FILE, read_left_out
from components.core.evaluation import read_evaluation

_STATE_NAMES = {value: name for name, value in metadata_store_pb2.Execution.State.items()}


@dataclass
class RunSummary:
    pipeline_name: str
    run_id: str
    states: dict[str, str] = field(default_factory=dict)  # node id -> COMPLETE / CACHED / FAILED
    outputs: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # node -> key -> uris
    metrics: dict[str, float] = field(default_factory=dict)
    validation_failures: list[str] = field(default_factory=list)
    blessed: bool | None = None
    power_message: str | None = None  # the dumb-baseline comparison ("no statistical power: ...")
    simple_model_message: str | None = None  # the network beside gradient-boosted trees on the test rows
    report_path: str | None = None  # the stakeholder report (report.html)
    pushed: bool | None = None
    pushed_version: str | None = None
    pushed_path: str | None = None
    left_out_columns: dict[str, str] = field(default_factory=dict)  # left out of the features: why

    @property
    def executed(self) -> list[str]:
        return [node for node, state in self.states.items() if state == "COMPLETE"]

    @property
    def pushed_new(self) -> bool:
        """True when this run itself pushed a version (a cached Pusher only points at an old one)."""
        return bool(self.pushed) and self.states.get("Pusher") == "COMPLETE"

    @property
    def cached(self) -> list[str]:
        return [node for node, state in self.states.items() if state == "CACHED"]


def open_store(metadata: str | Path | metadata_store_pb2.ConnectionConfig) -> mlmd.MetadataStore:
    """The MLMD store for a SQLite file path or a connection config."""
    if isinstance(metadata, metadata_store_pb2.ConnectionConfig):
        return mlmd.MetadataStore(metadata)
    return mlmd.MetadataStore(tfx_metadata.sqlite_metadata_connection_config(str(metadata)))


def executions_by_node(store: mlmd.MetadataStore, pipeline_name: str) -> dict[str, list]:
    """Every execution ever recorded for each node of the pipeline, oldest first."""
    result: dict[str, list] = {}
    prefix = f"{pipeline_name}."
    for context in store.get_contexts_by_type("node"):
        if context.name.startswith(prefix):
            node = context.name[len(prefix) :]
            result[node] = sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)
    return result


def latest_run(
    metadata: str | Path | metadata_store_pb2.ConnectionConfig, pipeline_name: str
) -> RunSummary | None:
    """The newest pipeline run's summary, or None when the pipeline never ran: a run of the CLI
    (LocalDagRunner) or of Airflow (TFX's older layout, see `run_summary`), whichever is newer.

    `metadata` is what the pipeline was given (`RunPaths.metadata_config()`): a SQLite path only
    finds runs when MLMD is in that file."""
    store = open_store(metadata)
    runs = [
        c
        for c in store.get_contexts_by_type("pipeline_run")
        if any(p.name == pipeline_name for p in store.get_parent_contexts_by_context(c.id))
    ]
    runs += [c for c in store.get_contexts_by_type("run") if c.name.startswith(f"{pipeline_name}.")]
    runs = runs or store.get_contexts_by_type("pipeline_run")
    if not runs:
        return None
    return _summary(store, max(runs, key=lambda c: (c.create_time_since_epoch, c.id)), pipeline_name)


def run_summary(
    metadata: str | Path | metadata_store_pb2.ConnectionConfig, pipeline_name: str, run_id: str
) -> RunSummary | None:
    """The summary of the pipeline run `run_id` (a manifest's `source.pipeline_run_id`), or None.

    A run of TFX's AirflowDagRunner (`run_id` is the DAG run's) is recorded in TFX's older layout: a
    `run` context named `<pipeline>.<run_id>`, each execution naming its node in `component_id`."""
    store = open_store(metadata)
    run = _context(store, "pipeline_run", run_id) or _context(store, "run", f"{pipeline_name}.{run_id}")
    return None if run is None else _summary(store, run, pipeline_name)


def pushing_run(
    metadata: str | Path | metadata_store_pb2.ConnectionConfig, pipeline_name: str, version: str
) -> RunSummary | None:
    """The summary of the run that pushed `version` of the pipeline's model, or None. Found through the
    Pusher's output, so it also serves versions whose manifest has no run id (TFX's Airflow launcher
    gives executors none)."""
    store = open_store(metadata)
    pushes = [
        artifact
        for artifact in store.get_artifacts_by_type("PushedModel")
        if "pushed_version" in artifact.custom_properties
        and artifact.custom_properties["pushed_version"].string_value == version
        and _produced_in_pipeline(store, artifact.id, pipeline_name)
    ]
    if not pushes:
        return None
    run_types = {t.id for t in store.get_context_types() if t.name in ("pipeline_run", "run")}
    contexts = store.get_contexts_by_execution(_producer(store, min(a.id for a in pushes)))
    run = next((context for context in contexts if context.type_id in run_types), None)
    return None if run is None else _summary(store, run, pipeline_name)


def _context(store: mlmd.MetadataStore, type_name: str, name: str) -> metadata_store_pb2.Context | None:
    try:
        return store.get_context_by_type_and_name(type_name, name)
    except mlmd.errors.NotFoundError:  # a store with no context of that type yet
        return None


def _summary(store: mlmd.MetadataStore, run: metadata_store_pb2.Context, pipeline_name: str) -> RunSummary:
    summary = RunSummary(pipeline_name=pipeline_name, run_id=run.name)
    executions = store.get_executions_by_context(run.id)
    node_of = _node_names(store, executions, pipeline_name)
    for execution in sorted(executions, key=lambda e: e.id):
        node = node_of.get(execution.id, execution.type)
        summary.states[node] = _STATE_NAMES.get(execution.last_known_state, "UNKNOWN")
        outputs = _output_artifacts(store, execution.id)
        summary.outputs[node] = {key: [a.uri for a in found] for key, found in outputs.items()}
    _read_results(store, summary, executions, node_of)
    schema = summary.outputs.get("SchemaGen", {}).get("schema")
    if schema:
        summary.left_out_columns = read_left_out(schema[0])
    return summary


def _node_names(store, executions, pipeline_name: str) -> dict[int, str]:
    names = {}
    prefix = f"{pipeline_name}."
    for execution in executions:
        if "component_id" in execution.properties:  # TFX's older layout (AirflowDagRunner)
            names[execution.id] = execution.properties["component_id"].string_value
            continue
        for context in store.get_contexts_by_execution(execution.id):
            if context.name.startswith(prefix):
                names[execution.id] = context.name[len(prefix) :]
    return names


_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
_INPUT_EVENTS = (metadata_store_pb2.Event.INPUT,)


def _artifacts_by_key(store, execution_id: int, event_types: tuple[int, ...]) -> dict[str, list]:
    """An execution's input or output artifacts by key (cached executions point at the reused ones)."""
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type in event_types]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    found: dict[str, list] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else "artifact"
        found.setdefault(key, []).append(artifacts[event.artifact_id])
    return found


def _output_artifacts(store, execution_id: int) -> dict[str, list]:
    return _artifacts_by_key(store, execution_id, _OUTPUT_EVENTS)


def _inputs_of(store, execution_id: int) -> dict[str, list]:
    return _artifacts_by_key(store, execution_id, _INPUT_EVENTS)


def _read_results(store, summary: RunSummary, executions, node_of: dict[int, str]) -> None:
    by_node = {node_of.get(e.id): e for e in executions}
    evaluator = by_node.get("Evaluator")
    gate = by_node.get("DumbBaselineGate")
    report = by_node.get("Report")
    pusher = by_node.get("Pusher")
    if evaluator is not None:
        outputs = {key: found[0] for key, found in _output_artifacts(store, evaluator.id).items()}
        if "evaluation" in outputs:
            summary.metrics, summary.validation_failures = read_evaluation(outputs["evaluation"].uri)
    if gate is not None:
        blessing = _output_artifacts(store, gate.id).get(BASELINE_BLESSING_KEY)
        if blessing:
            properties = blessing[0].custom_properties
            summary.blessed = bool(properties["blessed"].int_value) if "blessed" in properties else None
            if "power_message" in properties:
                summary.power_message = properties["power_message"].string_value
            if "simple_model_message" in properties:
                summary.simple_model_message = properties["simple_model_message"].string_value
            if "slice_failures" in properties and properties["slice_failures"].string_value:
                summary.validation_failures.append(properties["slice_failures"].string_value)
    if report is not None:
        found = _output_artifacts(store, report.id).get("report")
        if found:
            summary.report_path = str(Path(found[0].uri) / REPORT_FILE)
    if pusher is not None:
        outputs = {key: found[0] for key, found in _output_artifacts(store, pusher.id).items()}
        pushed = outputs.get("pushed_model")
        if pushed is not None:
            props = pushed.custom_properties
            summary.pushed = bool(props["pushed"].int_value) if "pushed" in props else None
            if summary.pushed:
                summary.pushed_version = props["pushed_version"].string_value
                summary.pushed_path = props["pushed_destination"].string_value


@dataclass
class ProductionModel:
    """The model being served, and what it was trained on (read back through MLMD lineage)."""

    version: str
    model_uri: str
    schema_uri: str
    transform_uri: str
    training_examples: list[metadata_store_pb2.Artifact]  # raw Examples, one per span it was trained on

    @property
    def serving_model_dir(self) -> str:
        return str(Path(self.model_uri) / "Format-Serving")

    @property
    def spans(self) -> list[int]:
        return sorted(span_of(a) for a in self.training_examples)


def span_of(artifact: metadata_store_pb2.Artifact) -> int:
    """An Examples artifact's span (a custom property that ExampleGen sets)."""
    from components.core.artifacts import custom_int_of

    return custom_int_of(artifact, "span")


def production_model(store: mlmd.MetadataStore, pipeline_name: str) -> ProductionModel | None:
    """The newest model the Pusher pushed for this pipeline, or None before the first push."""
    pushes = [
        artifact
        for artifact in store.get_artifacts_by_type("PushedModel")
        if "pushed" in artifact.custom_properties
        and artifact.custom_properties["pushed"].int_value == 1
        and _produced_in_pipeline(store, artifact.id, pipeline_name)
    ]
    if not pushes:
        return None
    pushed = max(pushes, key=lambda a: a.id)
    model = _inputs_of(store, _producer(store, pushed.id))["model"][0]
    return model_lineage(store, model, pushed.custom_properties["pushed_version"].string_value)


def pushed_model(store: mlmd.MetadataStore, model_artifact_id: int, version: str) -> ProductionModel | None:
    """A pushed version's model (its manifest's `source.model_artifact_id`) with what it was trained on;
    None when this store does not hold it."""
    found = store.get_artifacts_by_id([int(model_artifact_id)])
    return model_lineage(store, found[0], version) if found else None


def newest_model(store: mlmd.MetadataStore) -> ProductionModel | None:
    """The newest model any Trainer made (pushed or not), with what it was trained on."""
    models = store.get_artifacts_by_type("Model")
    return model_lineage(store, max(models, key=lambda a: a.id), "") if models else None


def model_lineage(
    store: mlmd.MetadataStore, model: metadata_store_pb2.Artifact, version: str
) -> ProductionModel:
    """The model with what its Trainer read: the raw Examples (one per span), schema and transform."""
    trainer_inputs = _inputs_of(store, _producer(store, model.id))
    return ProductionModel(
        version=version,
        model_uri=model.uri,
        schema_uri=trainer_inputs["schema"][0].uri,
        transform_uri=trainer_inputs["transform_graph"][0].uri,
        training_examples=sorted(trainer_inputs["examples"], key=span_of),
    )


def _producer(store: mlmd.MetadataStore, artifact_id: int) -> int:
    for event in store.get_events_by_artifact_ids([artifact_id]):
        if event.type == metadata_store_pb2.Event.OUTPUT:
            return event.execution_id
    raise LookupError(f"artifact {artifact_id} has no producing execution in ML Metadata")


def _produced_in_pipeline(store: mlmd.MetadataStore, artifact_id: int, pipeline_name: str) -> bool:
    execution_id = _producer(store, artifact_id)
    return any(
        context.name == pipeline_name or context.name.startswith(f"{pipeline_name}.")
        for context in store.get_contexts_by_execution(execution_id)
    )
