"""The annotation loop: `pipelines audit` asks people for labels, `pipelines land --annotations` lands them.

"Send some fraction of the production data to be manually annotated, and compare the model's predictions
to the new annotations; pay special attention to samples that seem difficult for your current model"
(Deep Learning with Python, ch. 6). An audit file holds a random sample of a span's rows and the rows the
model in service is least sure about (smallest margin between its two most probable answers), each with
the model's answer and an empty label column. Landed back, the annotated rows are compared with the
answers the file recorded (agreement per class with a Wilson interval; the sample and the hardest rows
apart, since only the sample estimates how the model does in the wild) and land as a span of their own,
which the next training window holds like any other span.
"""

from __future__ import annotations

import csv
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.core import annotations
from components.core.artifacts import read_class_names
from components.core.spec import NEGATIVE_WORDS, POSITIVE_WORDS, ProblemSpec, TaskType
from pipelines.ops import predict
from pipelines.paths import RunPaths
from pipelines.workflow import landing

AUDIT_SPAN = "audit_span"
AUDIT_ROW = "audit_row"  # the row's position in the audited span (0-based, over its files in order)
AUDIT_SAMPLE = "audit_sample"
AUDIT_HARDEST = "audit_hardest"
MODEL_VERSION = "model_version"
MODEL_MARGIN = "model_margin"  # 0: the model cannot choose; 1: it is sure
AUDIT_COLUMNS = [AUDIT_SPAN, AUDIT_ROW, AUDIT_SAMPLE, AUDIT_HARDEST, MODEL_VERSION]
YES, NO = "yes", "no"
CONFIDENCE = 0.95


class AuditError(ValueError):
    """An audit or an annotated file that cannot be used; the message names the file, column or row."""


@dataclass(frozen=True)
class Audit:
    """What `audit_span` wrote."""

    output: Path
    span: int
    version: int
    span_rows: int
    sampled: int
    hardest: int
    rows: int  # sampled and hardest rows, each once


# --- Writing the audit file -----------------------------------------------------------------------------


def margins(task: TaskType, predictions: np.ndarray) -> np.ndarray:
    """How sure the model is of each row, in [0, 1]: the gap between its two most probable answers
    (|2p - 1| for one probability; the least sure label of a multilabel row)."""
    if task == TaskType.MULTICLASS:
        top_two = np.sort(predictions, axis=1)[:, -2:]
        return top_two[:, 1] - top_two[:, 0]
    return np.min(np.abs(2.0 * predictions - 1.0), axis=1)


def choose_rows(
    row_margins: np.ndarray, fraction: float, hardest: int, seed: int
) -> tuple[set[int], set[int]]:
    """(a seeded random sample of `fraction` of the rows, the `hardest` rows of smallest margin)."""
    count = len(row_margins)
    sampled = round(fraction * count) if fraction > 0 else 0
    sample = np.random.default_rng(seed).choice(count, size=max(sampled, 1 if fraction else 0), replace=False)
    least_sure = np.argsort(row_margins, kind="stable")[:hardest]
    return {int(i) for i in sample}, {int(i) for i in least_sure}


def _check_request(spec: ProblemSpec, fraction: float, hardest: int) -> None:
    if not 0 <= fraction <= 1:
        raise AuditError(f"--fraction {fraction:g} is not a share of the span's rows; pass 0 to 1 (0.05: 5%)")
    if hardest < 0:
        raise AuditError(f"--hardest {hardest} is negative; pass how many of the least sure rows to add")
    if fraction == 0 and hardest == 0:
        raise AuditError("--fraction 0 and --hardest 0 ask for no rows; pass at least one of them")
    if spec.task == TaskType.REGRESSION and hardest:
        raise AuditError(
            f"model '{spec.name}' is a regression: it gives no probability to be unsure about, so there are "
            "no hardest rows to choose; pass --hardest 0 (the random sample alone)"
        )


def _scored_span(
    spec: ProblemSpec, scorer: predict.Scorer, files: list[str]
) -> tuple[list[str], list[dict[str, str]], np.ndarray]:
    """(the span's columns, its rows as column -> cell, the model's predictions), checked as ingest checks."""
    table_format, columns, rows, outputs = spec.data.csv_format, [], [], []
    for name in files:
        path = Path(name)
        header = predict.read_checked_header(path, table_format)
        predict.require_columns(path, header, scorer.features, "the model in service takes it as a feature")
        columns += [column for column in header if column not in columns]
        for chunk in predict.chunks(predict.data_rows(path, table_format), predict.CHUNK_ROWS):
            checked = scorer.checked(path, header, chunk)
            rows += checked
            outputs.append(scorer.predictions(checked))
    return columns, rows, np.concatenate(outputs) if outputs else np.zeros((0, 1), np.float32)


def audit_span(
    spec: ProblemSpec,
    paths: RunPaths,
    output: Path,
    span: int | None = None,
    fraction: float = 0.05,
    hardest: int = 20,
    seed: int = 0,
) -> Audit:
    """Writes the audit file of `span` (default: the newest landed) for annotators; nothing on error."""
    _check_request(spec, fraction, hardest)
    try:
        spans = landing.landed_spans(spec)
    except landing.LandingError as error:
        raise AuditError(f"{error}; an audit reads a landed span") from None
    span = span if span is not None else (max(spans) if spans else None)
    if span is None or span not in spans:
        where = landing.landing_folder(spec)
        raise AuditError(
            f"span {span} has not landed under '{where}'" if span else f"no span under '{where}'"
        )
    try:
        served = predict.served_version(paths.serving_dir, None, None)
        scorer = predict.Scorer(spec, paths, served)
        columns, rows, outputs = _scored_span(spec, scorer, spans[span])
    except predict.PredictError as error:
        raise AuditError(str(error)) from None
    if not rows:
        raise AuditError(f"span {span} holds no rows to audit")
    sample, least_sure = choose_rows(margins(spec.task, outputs), fraction, hardest, seed)
    chosen = sorted(sample | least_sure)
    labels = spec.label_columns
    data_columns = [column for column in columns if column not in labels]
    header = [*AUDIT_COLUMNS, *scorer.columns.names, MODEL_MARGIN, *labels, *data_columns]
    answers = scorer.columns.cells(outputs[chosen])
    row_margins = margins(spec.task, outputs[chosen])
    with predict.staged_output(Path(output)) as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for index, answer, margin in zip(chosen, answers, row_margins, strict=True):
            row = rows[index]
            flags = [YES if index in sample else NO, YES if index in least_sure else NO]
            writer.writerow(
                [span, index, *flags, served.version, *answer, predict.number(margin)]
                + ["" for _ in labels]
                + [row.get(column, "") for column in data_columns]
            )
    return Audit(Path(output), span, served.version, len(rows), len(sample), len(least_sure), len(chosen))


# --- Landing the annotated file -------------------------------------------------------------------------


@dataclass(frozen=True)
class Annotated:
    """The annotated rows of an audit file, with the answers the model gave them."""

    path: Path
    audited_span: int
    version: int
    rows: list[dict[str, str]]
    unlabelled: int


def read_annotated(spec: ProblemSpec, path: Path) -> Annotated:
    """The rows of an audit file that annotators labelled (rows whose label cells are all empty are left
    for later); refuses a file that is not an audit file of this model or mixes audits."""
    table_format = spec.data.csv_format
    try:
        header = predict.read_checked_header(path, table_format)
        predict.require_columns(
            path, header, [*AUDIT_COLUMNS, *spec.label_columns], "`pipelines audit` writes it; land its file"
        )
        rows = [
            dict(zip(header, table_format.cells(cells), strict=True))
            for _, cells in predict.data_rows(path, table_format)
        ]
    except predict.PredictError as error:
        raise AuditError(str(error)) from None
    audits = {(row[AUDIT_SPAN], row[MODEL_VERSION]) for row in rows}
    if len(audits) != 1:
        raise AuditError(
            f"'{path}' mixes rows of {len(audits)} audits (span, version: "
            f"{', '.join(sorted(map(str, audits)))}); land one audit's file at a time"
        )
    span, version = next(iter(audits))
    labelled = [row for row in rows if any(row[label].strip() for label in spec.label_columns)]
    if not labelled:
        raise AuditError(
            f"'{path}': no row has a value in {', '.join(spec.label_columns)}; fill the label column(s) "
            "of the rows you annotated (rows left empty are not landed)"
        )
    return Annotated(path, int(span), int(version), labelled, len(rows) - len(labelled))


def class_indexes(spec: ProblemSpec, classes: list[str], annotated: Annotated) -> np.ndarray:
    """The annotators' answers as the model's output indexes ([rows] or [rows, labels] for multilabel)."""
    if spec.task == TaskType.MULTILABEL:
        return np.array(
            [[_flag(annotated, row, column) for column in spec.label_columns] for row in annotated.rows]
        )
    column = spec.label_columns[0]
    folded = {_fold(name): index for index, name in enumerate(classes)}
    found = []
    for position, row in enumerate(annotated.rows):
        index = folded.get(_fold(row[column]))
        if index is None:
            raise AuditError(
                f"'{annotated.path}', annotated row {position + 1} (audit_row {row[AUDIT_ROW]}): {column} "
                f"{row[column]!r} is not a class of the model ({', '.join(classes)}); write one of them"
            )
        found.append(index)
    return np.array(found)


def _fold(value: str) -> str:
    text = value.strip().lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def _flag(annotated: Annotated, row: dict[str, str], column: str) -> int:
    value = row[column].strip().lower()
    if value in (*POSITIVE_WORDS, *NEGATIVE_WORDS):
        return int(value in POSITIVE_WORDS)
    raise AuditError(
        f"'{annotated.path}' (audit_row {row[AUDIT_ROW]}): {column} {row[column]!r} is not 1/0, yes/no or "
        "true/false; write one of them (or leave every label of the row empty to skip it)"
    )


def model_answers(spec: ProblemSpec, classes: list[str] | None, annotated: Annotated) -> np.ndarray:
    """What the audited model answered, from the file's columns (the file records its answers)."""
    if spec.task == TaskType.REGRESSION:
        return np.array([float(row[f"{predict.PREDICTED_PREFIX}{spec.label}"]) for row in annotated.rows])
    if spec.task == TaskType.MULTILABEL:
        names = [f"{predict.PROBABILITY_PREFIX}{name}" for name in classes]
        return np.array([[float(row[name]) >= 0.5 for name in names] for row in annotated.rows], dtype=int)
    predicted = f"{predict.PREDICTED_PREFIX}{spec.label}"
    return np.array([classes.index(row[predicted]) for row in annotated.rows])


def share_with_interval(agreed: np.ndarray) -> dict:
    """Share of True with its Wilson 95% interval (scipy)."""
    from scipy.stats import binomtest

    rows, hits = len(agreed), int(np.sum(agreed))
    if rows == 0:
        return {"rows": 0}
    interval = binomtest(hits, rows).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return {"rows": rows, "agreed": hits, "value": hits / rows, "interval": [interval.low, interval.high]}


def agreement(spec: ProblemSpec, classes: list[str] | None, answers: np.ndarray, truth: np.ndarray) -> dict:
    """The model's agreement with the annotators: overall and per class (per label for multilabel);
    the mean absolute difference with a bootstrap interval for regression."""
    if spec.task == TaskType.REGRESSION:
        from components.scoring import metrics

        if len(truth) == 0:
            return {"rows": 0}
        value = metrics.metric_value("mae", "regression", truth, answers)
        interval = metrics.bootstrap_interval("mae", "regression", truth, answers, level=CONFIDENCE)
        return {"rows": len(truth), "value": value, "interval": list(interval)}
    agreed = answers == truth
    group = share_with_interval(agreed.all(axis=1) if agreed.ndim == 2 else agreed)
    if spec.task == TaskType.MULTILABEL:
        group["per_class"] = {name: share_with_interval(agreed[:, i]) for i, name in enumerate(classes)}
    else:
        group["per_class"] = {
            name: share_with_interval(agreed[truth == i])
            for i, name in enumerate(classes)
            if np.any(truth == i)
        }
    return group


def land_annotations(spec: ProblemSpec, paths: RunPaths, path: Path) -> dict:
    """Measures the audited model's agreement with the annotators, lands the annotated rows as the next
    span (the audited span's columns, labels filled in) and writes the span's annotation record."""
    annotated = read_annotated(spec, Path(path))
    folder = paths.serving_dir / str(annotated.version)
    classes = read_class_names(folder) if folder.is_dir() else None
    if spec.task != TaskType.REGRESSION and classes is None:
        raise AuditError(
            f"'{path}' was written with version {annotated.version} of '{spec.name}', which is not under "
            f"'{paths.serving_dir}'; land it with the --home the audit was made in"
        )
    truth = (
        np.array([float(row[spec.label]) for row in _numbers(annotated, spec.label)])
        if spec.task == TaskType.REGRESSION
        else class_indexes(spec, classes, annotated)
    )
    answers = model_answers(spec, classes, annotated)
    groups = {}
    for name, flag in ((annotations.SAMPLE, AUDIT_SAMPLE), (annotations.HARDEST, AUDIT_HARDEST)):
        chosen = np.array([row[flag].strip().lower() == YES for row in annotated.rows], dtype=bool)
        groups[name] = agreement(spec, classes, answers[chosen], truth[chosen])
    span = _land_rows(spec, annotated)
    record = {
        "span": span,
        "audited_span": annotated.audited_span,
        "version": annotated.version,
        "file": str(annotated.path),
        "landed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": len(annotated.rows),
        "unlabelled_rows": annotated.unlabelled,
        "measure": "mae" if spec.task == TaskType.REGRESSION else "agreement",
        "groups": groups,
    }
    annotations.write_record(paths.monitoring_dir, record)
    return record


def _numbers(annotated: Annotated, column: str) -> list[dict[str, str]]:
    for row in annotated.rows:
        try:
            float(row[column])
        except ValueError:
            raise AuditError(
                f"'{annotated.path}' (audit_row {row[AUDIT_ROW]}): {column} {row[column]!r} is not a number"
            ) from None
    return annotated.rows


def _land_rows(spec: ProblemSpec, annotated: Annotated) -> int:
    """Lands the annotated rows with the audited span's columns in its order, as a file the spec reads."""
    files = landing.landed_spans(spec).get(annotated.audited_span) or []
    columns: list[str] = []
    for name in files:
        columns += [
            c for c in predict.read_checked_header(Path(name), spec.data.csv_format) if c not in columns
        ]
    columns += [label for label in spec.label_columns if label not in columns]
    with tempfile.TemporaryDirectory() as staging:
        landed = Path(staging) / landing_file_name(spec)
        with open(landed, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            writer.writerows([[row.get(column, "") for column in columns] for row in annotated.rows])
        return landing.land_span(spec, [landed])


def landing_file_name(spec: ProblemSpec) -> str:
    """A file name the spec's span pattern reads (`*.csv` -> `annotations.csv`)."""
    pattern = landing.span_files_pattern(spec, 0).rsplit("/", 1)[-1]
    return pattern.replace("*", "annotations", 1).replace("*", "").replace("?", "a") or "annotations.csv"
