"""`pipelines predict`: scores a CSV file with a pushed model, in any of the version's deployment targets.

The file is read as ingest reads it (`components.core.tables`: a byte-order mark, `,` `;` tab or `|`,
gzip, missing-value tokens), checked as ingest checks it (the strict file check of
`checked_csv_example_gen`, then TFDV against the production schema), and scored in chunks: one chunk of
rows is in memory at a time, so a file larger than memory works. The output goes to a hidden file next
to `--output` and is renamed into place at the end: a refused file leaves no output behind.
"""

from __future__ import annotations

import csv
import glob
import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from components.core import models_config, sources, tables
from components.core.spec import ProblemSpec, TaskType
from pipelines.paths import RunPaths, mysql_settings

CHUNK_ROWS = 10_000
PREDICTED_PREFIX = "predicted_"
PROBABILITY_PREFIX = "probability_"
SERVING_TARGET = "serving"

Row = tuple[int, list[str]]  # (line number in the file, the row's cells as written)


class PredictError(ValueError):
    """A file, column, version or target that cannot be scored; the message names it and what to do."""


@dataclass(frozen=True)
class Served:
    """One pushed version of a model and the target chosen to run it."""

    model: str
    version: int
    folder: Path
    manifest: dict
    target: dict  # the manifest's entry for the chosen target

    @property
    def target_name(self) -> str:
        return models_config.target_name(self.target)


@dataclass(frozen=True)
class Scored:
    """What a `predict` call wrote."""

    rows: int
    output: Path
    served: Served
    added: list[str]  # the columns added to the kept input columns


def pushed_targets(manifest: dict) -> dict[str, dict]:
    """Target name -> manifest entry, for the targets the version holds (the SavedModel always)."""
    targets = {models_config.target_name(t): t for t in manifest.get("targets", []) if t.get("pushed", True)}
    return targets or {SERVING_TARGET: {"target": SERVING_TARGET, "variant": "savedmodel", "path": ""}}


def served_version(serving_dir: Path, version: int | None, target: str | None) -> Served:
    """The version in service (or `version`) and its `target` (default: the SavedModel)."""
    model, available = serving_dir.name, models_config.versions(serving_dir)
    if not available:
        raise PredictError(
            f"model '{model}' has no pushed version under '{serving_dir}'; run `pipelines run` first "
            "(or pass the --home the model was pushed to)"
        )
    if version is None:
        version = models_config.current_versions(serving_dir.parent).get(model, available[-1])
    elif version not in available:
        raise PredictError(
            f"model '{model}' has no version {version} under '{serving_dir}' (versions: "
            f"{', '.join(map(str, available))})"
        )
    folder = serving_dir / str(version)
    manifest = models_config.read_manifest(folder)
    targets = pushed_targets(manifest)
    name = target or SERVING_TARGET
    if name not in targets:
        raise PredictError(
            f"version {version} of '{model}' has no target '{name}'; its targets: {', '.join(targets)} "
            "(the spec's `deployment` section says which are built)"
        )
    return Served(model, version, folder, manifest, targets[name])


def training_lineage(paths: RunPaths, served: Served):
    """The version's model as ML Metadata records it: the production schema and TF Transform's output."""
    from pipelines.workflow import results

    if mysql_settings() is None and not paths.metadata_path.is_file():
        raise PredictError(
            f"no ML Metadata at '{paths.metadata_path}': the schema of '{served.model}' is recorded "
            "there; pass the --home the model was trained in"
        )
    artifact_id = served.manifest.get("source", {}).get("model_artifact_id")
    store = results.open_store(paths.metadata_config())
    lineage = results.pushed_model(store, artifact_id, str(served.version)) if artifact_id else None
    if lineage is None:
        raise PredictError(
            f"version {served.version} of '{served.model}' names no model that ML Metadata at "
            f"{paths.metadata_location()} knows (manifest.json 'source'); was it pushed from another home?"
        )
    return lineage


def runtime(served: Served) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """A function from raw-signature inputs to the target's predictions, in the target's own runtime."""
    from components.scoring import runtimes

    kind, path = served.target["target"], served.folder / served.target["path"]
    if kind == SERVING_TARGET:
        return runtimes.TensorFlowRuntime(str(served.folder)).predict
    if kind == "tflite":
        return runtimes.TFLiteRuntime(path).predict
    if kind == "tfjs":
        tfjs = runtimes.TfjsNodeRuntime(path)
        return lambda inputs: tfjs.run(inputs, latency_calls=0)[0]
    raise PredictError(f"target '{served.target_name}' has no runtime in this version of Blueprint")


# --- Reading and checking the file ----------------------------------------------------------------------


def read_checked_header(path: Path, table_format: tables.CsvFormat) -> list[str]:
    """The header, after the strict whole-file check ingest runs (field counts, quotes, UTF-8, no rows)."""
    from components.checked_csv_example_gen.reader import BadCsvError, check_csv_file

    if not path.is_file():
        raise PredictError(f"'{path}' does not exist; pass the CSV file to score with --input")
    try:
        header = sources.read_header(glob.escape(str(path)), table_format)  # a path, not a pattern
        check_csv_file(str(path), table_format)
    except (sources.SourceError, BadCsvError, tables.TableError) as error:
        raise PredictError(str(error)) from None
    return header


def require_columns(path: Path, header: list[str], needed: list[str], why: str) -> None:
    missing = [column for column in needed if column not in header]
    if missing:
        raise PredictError(
            f"'{path}' has no column {', '.join(repr(c) for c in missing)}: {why} (its columns: "
            f"{', '.join(header)})"
        )


def data_rows(path: Path, table_format: tables.CsvFormat) -> Iterator[Row]:
    """Each data row with its line number, one at a time (blank lines skipped, as ingest skips them)."""
    with tables.open_text(str(path)) as handle:
        reader = tables.reader(handle, table_format.delimiter_of(str(path)))
        next(reader, None)
        for row in reader:
            if row:
                yield reader.line_num, row


def chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


class SchemaCheck:
    """Ingest's checks of cell values against the production schema, for one chunk of rows at a time.

    As ExampleGen does, each column's type is inferred from its cells (tfx_bsl's ColumnTypeInferrer) and
    the rows become tf.Examples (TFX's CSV-to-Example DoFn); TFDV then validates them against the schema
    (`validate_instance`: the per-example checks of ExampleValidator: types, NaN and infinity). Unlike a
    training split, a few rows may hold only whole numbers in a float column or only digits in a text
    one: a type the schema's type holds (int in float, anything in text) takes the schema's type.
    """

    def __init__(self, schema, columns: list[str]):
        from tensorflow_metadata.proto.v0 import schema_pb2
        from tfx_bsl.coders import csv_decoder

        self.columns = columns
        self.schema = schema_pb2.Schema()
        self.schema.CopyFrom(schema)
        kept = [feature for feature in self.schema.feature if feature.name in columns]
        del self.schema.feature[:]
        self.schema.feature.extend(kept)
        widest = {
            schema_pb2.INT: csv_decoder.ColumnType.INT,
            schema_pb2.FLOAT: csv_decoder.ColumnType.FLOAT,
            schema_pb2.BYTES: csv_decoder.ColumnType.STRING,
        }
        self.schema_types = {feature.name: widest.get(feature.type) for feature in kept}

    def problems(self, chunk: list[list[str]]) -> dict[str, str]:
        """Column -> what TFDV found wrong with its cells in this chunk ({} when nothing)."""
        import tensorflow_data_validation as tfdv
        from tensorflow_data_validation.api.validation_api import validate_instance
        from tfx.components.example_gen.csv_example_gen import executor as csv_executor
        from tfx_bsl.coders import csv_decoder, example_coder

        cells = [[cell.encode("utf-8") for cell in row] for row in chunk]
        inferrer = csv_decoder.ColumnTypeInferrer(self.columns, skip_blank_lines=True)
        types = inferrer.create_accumulator()
        for row in cells:
            types = inferrer.add_input(types, row)
        infos = [self._widened(info) for info in inferrer.extract_output(types)]
        to_example = csv_executor._ParsedCsvToTfExample()
        serialized = [e.SerializeToString() for row in cells for e in to_example.process(row, infos)]
        batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(serialized)
        anomalies = validate_instance(batch, tfdv.StatsOptions(schema=self.schema))
        return {
            column: "; ".join(r.description or r.short_description for r in info.reason) or info.description
            for column, info in sorted(anomalies.anomaly_info.items())
        }

    def _widened(self, info):
        wanted = self.schema_types.get(info.name)
        if wanted is not None and 0 <= info.type <= wanted:
            return info._replace(type=wanted)
        return info


def first_bad_line(rows: list[Row], index: int, integer: bool) -> tuple[int, str] | None:
    """The first row whose cell at `index` is not a finite number (a whole one if `integer`)."""
    for line, cells in rows:
        cell = cells[index].strip()
        if not cell:
            continue
        try:
            value = float(cell)
        except ValueError:
            return line, cell
        if not np.isfinite(value) or (integer and not value.is_integer()):
            return line, cell
    return None


# --- Writing the output ---------------------------------------------------------------------------------


@contextmanager
def staged_output(path: Path) -> Iterator[TextIO]:
    """A text file that appears at `path` only when the block completes: written to a hidden file in
    the same folder and renamed, so that a failure leaves neither a partial file nor a stray one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
            yield out
        os.chmod(staging, 0o644)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def number(value: np.floating) -> str:
    """The shortest text that reads back as the same float32 (what the model returned, not more)."""
    return np.format_float_positional(np.float32(value), unique=True, trim="-")


class Columns:
    """The columns `predict` adds, named after the label and the classes the model was trained on:
    `predicted_<label>` (the class name, or the value for regression) and `probability_<class>`."""

    def __init__(self, spec: ProblemSpec, classes: list[str] | None):
        self.task, self.classes = spec.task, classes
        self.predicted = f"{PREDICTED_PREFIX}{spec.label_columns[0]}"
        self.names = [f"{PROBABILITY_PREFIX}{name}" for name in classes or []]
        if self.task != TaskType.MULTILABEL:
            self.names.insert(0, self.predicted)

    def cells(self, predictions: np.ndarray) -> list[list[str]]:
        """One list of cells per row, in the order of `names`."""
        if self.classes is None:
            return [[number(row[0])] for row in predictions]
        if self.task == TaskType.BINARY:  # serving_default's scores: [1 - p, p]
            predictions = np.concatenate([np.float32(1.0) - predictions, predictions], axis=1)
        rows = [[number(p) for p in row] for row in predictions]
        if self.task == TaskType.MULTILABEL:
            return rows
        # The class serving_default's `predicted_class` names: the first of the most probable.
        chosen = np.argmax(predictions, axis=1)
        return [[self.classes[index], *row] for index, row in zip(chosen, rows, strict=True)]


# --- Scoring --------------------------------------------------------------------------------------------


class Scorer:
    """One version's target, with what turns CSV cells into its inputs and checks them."""

    def __init__(self, spec: ProblemSpec, paths: RunPaths, served: Served):
        import tensorflow_transform as tft

        from components.core.artifacts import raw_input_columns, read_class_names, read_schema
        from components.scoring.runtimes import TensorFlowRuntime

        self.spec, self.served = spec, served
        lineage = training_lineage(paths, served)
        self.raw_spec = tft.TFTransformOutput(lineage.transform_uri).raw_feature_spec()
        reference = TensorFlowRuntime(str(served.folder))
        self.input_dtypes = reference.input_dtypes()
        columns = raw_input_columns(self.raw_spec)
        self.features = [columns.get(name, name) for name in self.input_dtypes]
        self.check = SchemaCheck(read_schema(lineage.schema_uri), self.features)
        self.predict = reference.predict if served.target["target"] == SERVING_TARGET else runtime(served)
        classes = read_class_names(served.folder) or served.manifest.get("classes")
        self.columns = Columns(spec, classes)

    def checked(self, path: Path, header: list[str], chunk: list[Row]) -> list[dict[str, str]]:
        """The chunk's rows as column -> cell (missing-value tokens emptied), after the schema check."""
        table_format = self.spec.data.csv_format
        indexes = [header.index(column) for column in self.features]
        cleaned = [(line, table_format.cells(cells)) for line, cells in chunk]
        problems = self.check.problems([[cells[i] for i in indexes] for _, cells in cleaned])
        if problems:
            raise PredictError(self._describe(path, header, cleaned, problems))
        return [dict(zip(header, cells, strict=True)) for _, cells in cleaned]

    def _describe(self, path: Path, header: list[str], rows: list[Row], problems: dict[str, str]) -> str:
        lines = []
        for column, problem in problems.items():
            where = ""
            dtype = self.raw_spec[column].dtype if column in self.raw_spec else None
            if dtype is not None and (dtype.is_floating or dtype.is_integer):
                found = first_bad_line(rows, header.index(column), dtype.is_integer)
                where = f" (first at line {found[0]}: {found[1]!r})" if found else ""
            lines.append(f"column '{column}': {problem}{where}")
        served = self.served
        return (
            f"'{path}' does not match the schema of '{served.model}' version {served.version} (the checks "
            "ingest runs); fix these cells or leave them empty (a missing value):\n  - "
            + "\n  - ".join(lines)
        )

    def predictions(self, rows: list[dict[str, str]]) -> np.ndarray:
        """The target's outputs for `rows`, [rows, outputs] (a probability per output for classifiers)."""
        from components.scoring.examples import to_raw_inputs

        inputs = to_raw_inputs(rows, self.input_dtypes, self.raw_spec)
        return np.asarray(self.predict(inputs), dtype=np.float32).reshape(len(rows), -1)

    def score(self, rows: list[dict[str, str]]) -> list[list[str]]:
        return self.columns.cells(self.predictions(rows))


def predict_file(
    spec: ProblemSpec,
    paths: RunPaths,
    input_path: Path,
    output_path: Path,
    target: str | None = None,
    version: int | None = None,
    keep: list[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Scored:
    """Scores `input_path` into `output_path`; raises PredictError (and writes nothing) on a bad file."""
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.resolve() == input_path.resolve():
        raise PredictError(f"--output '{output_path}' is the input file; name another file")
    served = served_version(paths.serving_dir, version, target)
    table_format = spec.data.csv_format
    header = read_checked_header(input_path, table_format)
    if keep:
        require_columns(input_path, header, keep, "--keep names it")
    scorer = Scorer(spec, paths, served)
    require_columns(
        input_path,
        header,
        scorer.features,
        f"version {served.version} of '{served.model}' takes it as a feature; add the column "
        "(empty cells are missing values)",
    )
    kept = keep or header
    clash = [name for name in scorer.columns.names if name in kept]
    if clash:
        raise PredictError(
            f"'{input_path}' already has the column(s) {', '.join(clash)} that predict adds; leave them "
            "out with --keep"
        )
    rows = 0
    with staged_output(output_path) as out:
        writer = csv.writer(out)
        writer.writerow([*kept, *scorer.columns.names])
        positions = [header.index(column) for column in kept]
        for chunk in chunks(data_rows(input_path, table_format), chunk_rows):
            added = scorer.score(scorer.checked(input_path, header, chunk))
            writer.writerows(
                [
                    [cells[i] for i in positions] + extra
                    for (_, cells), extra in zip(chunk, added, strict=True)
                ]
            )
            rows += len(chunk)
    return Scored(rows, output_path, served, scorer.columns.names)
