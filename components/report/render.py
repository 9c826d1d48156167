"""The stakeholder report as one self-contained HTML page.

`render_report(data)` takes the JSON-able report dict (see the report component) and returns a page with
inline CSS and every plot embedded as a base64 PNG: it opens from a file, an e-mail attachment or an
artifact store without network access or JavaScript. Sections whose data is missing are left out.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Sequence

import numpy as np
from matplotlib.figure import Figure

MAX_SCATTER_POINTS = 2000
MAX_TRIALS_SHOWN = 25
MAX_LABEL_PANELS = 12
PLOT_DPI = 100
METRIC_DIGITS = 5  # a target's metric beside the SavedModel's: MAE 148.33 against 148.38 must differ


class Html(str):
    """Markup that is already safe; every other string put on the page is escaped."""


def _escape(value) -> str:
    return html.escape(str(value), quote=True)


def _format(value, digits: int = 3) -> str:
    """Numbers for people: None as a dash, ints with separators, large floats as whole numbers and the rest
    to `digits` significant places (never in exponent notation above 1)."""
    if value is None:
        return "\u2014"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return _format_float(float(value), digits)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format(v, digits) for v in value) + "]"
    return str(value)


def _format_float(value: float, digits: int) -> str:
    if math.isnan(value):
        return "\u2014"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _cell(value) -> str:
    return value if isinstance(value, Html) else _escape(_format(value))


def _percent(fraction) -> str:
    return "\u2014" if fraction is None else f"{100.0 * float(fraction):.1f}%"


def _missing_share(fraction) -> str:
    """None missing says "none"; a handful of empty cells among thousands is not rounded away to 0.0%."""
    if fraction is None:
        return "\u2014"
    if fraction == 0:
        return "none"
    return "under 0.1%" if fraction < 0.001 else _percent(fraction)


def _interval(bounds) -> str:
    return "\u2014" if not bounds else f"{_format(bounds[0])} to {_format(bounds[1])}"


def _table(headers: Sequence[str], rows: Iterable[Sequence], css_class: str = "") -> Html:
    head = "".join(f"<th>{_escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    class_attr = f' class="{_escape(css_class)}"' if css_class else ""
    return Html(f"<table{class_attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _section(section_id: str, heading: str, *parts: str) -> str:
    content = "\n".join(p for p in parts if p)
    return f'<section id="{section_id}"><h2>{_escape(heading)}</h2>\n{content}\n</section>'


def _paragraph(text: str, css_class: str = "") -> str:
    class_attr = f' class="{css_class}"' if css_class else ""
    return f"<p{class_attr}>{_escape(text)}</p>" if text else ""


def _plot_text(text, limit: int = 40) -> str:
    """Text for matplotlib, shortened, with '$' escaped so user names are never parsed as math."""
    text = str(text)
    shortened = text if len(text) <= limit else text[: limit - 1] + "\u2026"
    return shortened.replace("$", r"\$")


def _image(figure: Figure, alt: str) -> Html:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PLOT_DPI, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return Html(f'<img class="plot" alt="{_escape(alt)}" src="data:image/png;base64,{encoded}">')


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height))
    figure.set_layout_engine("constrained")
    return figure


def _metric_lookup(data: dict) -> dict | None:
    name = (data.get("metric") or {}).get("name")
    return next((m for m in data.get("test_metrics") or [] if m.get("name") == name), None)


TASK_WORDS = {
    "binary": "yes or no",
    "multiclass": "one class of several",
    "multilabel": "yes or no for each label",
    "regression": "a number",
}


def _predicts(data: dict) -> str | None:
    """What the model answers, in words: "big_tipper (yes or no)"."""
    labels, task = data.get("label"), data.get("task")
    if not labels:
        return TASK_WORDS.get(task, task)
    named = ", ".join(labels) if isinstance(labels, list) else str(labels)
    return f"{named} ({TASK_WORDS.get(task, task)})" if task else named


def _header(data: dict) -> str:
    title = data.get("title") or data.get("spec_name") or "Model report"
    description = data.get("description") or ""
    facts = [
        ("Model", None if str(data.get("spec_name")) in title else data.get("spec_name")),
        ("Predicts", _predicts(data)),
        ("Run", data.get("run_id")),
        ("Created", data.get("created")),
    ]
    listed = "".join(
        f"<span><b>{_escape(k)}</b> {_escape(v)}</span>" for k, v in facts if v not in (None, "")
    )
    # Reports written before the title stopped repeating the description hold it twice: say it once.
    shown = "" if description and description in title else description
    return (
        f"<header><h1>{_escape(title)}</h1>{_paragraph(shown, 'description')}"
        f'<div class="facts">{listed}</div></header>'
    )


def _headline(data: dict) -> str:
    metric = data.get("metric") or {}
    measured = _metric_lookup(data)
    if not metric or measured is None:
        return ""
    wanted = "at least" if metric.get("higher_is_better", True) else "at most"
    threshold = metric.get("threshold")
    goal = f"; the goal is {wanted} {_format(threshold)}" if threshold is not None else ""
    interval = measured.get("interval")
    spread = f" (95% interval {_interval(interval)})" if interval else ""
    value = _format(measured.get("value"))
    return _paragraph(f"Test {metric.get('name')}: {value}{spread}{goal}.", "headline")


def _verdict(data: dict) -> str:
    verdict = data.get("verdict")
    if not verdict:
        return ""
    blessed = bool(verdict.get("blessed"))
    status = "Blessed: the model passed every check" if blessed else "Not blessed: do not ship this model"
    listed = verdict.get("reasons") or []
    reasons = "".join(f"<li>{_escape(_sentence(r))}</li>" for r in listed)
    baseline = data.get("baseline") or {}
    said = "" if baseline.get("message") in listed else _paragraph(_baseline_sentence(data))
    return (
        f'<section id="verdict" class="verdict {"good" if blessed else "bad"}">'
        f'<p class="status">{_escape(status)}</p>{_headline(data)}'
        f"{f'<ul>{reasons}</ul>' if reasons else ''}{said}</section>"
    )


def _baseline_sentence(data: dict) -> str:
    """The dumb-baseline comparison in one sentence (the gate's message, for older reports)."""
    part, metric = data.get("baseline") or {}, (data.get("metric") or {}).get("name", "metric")
    figures = ("model_metric", "dumb_metric", "improvement_interval", "margin")
    if any(part.get(key) is None for key in figures):
        return _sentence(part.get("message") or "")
    low, high = part["improvement_interval"]
    verb = "beats" if part.get("statistical_power") else "does not clearly beat"
    clears = "clears" if part.get("statistical_power") else "does not clear"
    return (
        f"The model {verb} the dumb baseline, {part.get('description') or 'a trivial predictor'}: {metric} "
        f"{part['model_metric']:.4f} against {part['dumb_metric']:.4f}; the improvement's 95% interval, "
        f"{low:.4f} to {high:.4f}, {clears} the {part['margin']:g} required."
    )


def _sentence(text: str) -> str:
    """A message written to be logged ("beats the dumb baseline ...") as a sentence for the page."""
    text = text.strip()
    if not text:
        return ""
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def _balance_plot(balance: list[dict]) -> Html:
    figure = _new_figure(6, 0.35 * len(balance) + 1)
    axes = figure.add_subplot()
    names = [_plot_text(f"{b.get('label', '')}={b.get('value', '')}") for b in balance]
    axes.barh(range(len(balance)), [b.get("fraction", 0.0) for b in balance], color="#4c78a8")
    axes.set_yticks(range(len(balance)), names)
    axes.invert_yaxis()
    axes.set_xlabel("share of rows")
    return _image(figure, "label balance")


def _label_section(data_part: dict) -> str:
    balance = data_part.get("label_balance")
    if balance:
        rows = [
            (b.get("label"), b.get("value"), b.get("count"), Html(_percent(b.get("fraction"))))
            for b in balance
        ]
        return (
            "<h3>Label balance</h3>"
            + _table(["label", "value", "rows", "share"], rows)
            + _balance_plot(balance)
        )
    summary = data_part.get("label_summary")
    if summary:
        rows = [[summary.get(k) for k in ("mean", "std", "min", "max")]]
        return "<h3>Label</h3>" + _table(["mean", "std", "min", "max"], rows)
    return ""


def _data_section(data: dict) -> str:
    part = data.get("data")
    if not part:
        return ""
    splits = part.get("rows") or {}
    split_table = _table(["split", "rows"], splits.items()) if splits else ""
    features = [
        (f.get("name"), f.get("kind"), Html(_missing_share(f.get("missing_fraction"))), f.get("distinct"))
        for f in part.get("features") or []
    ]
    feature_table = _table(["feature", "kind", "missing", "distinct values"], features) if features else ""
    return _section(
        "data",
        "The data",
        split_table,
        "<h3>Features</h3>" if features else "",
        feature_table,
        _unused_columns(part.get("unused_columns")),
        _left_out_columns(part.get("left_out_columns")),
        _label_section(part),
    )


def _unused_columns(columns: list[str] | None) -> str:
    if not columns:
        return ""
    names = ", ".join(columns)
    return (
        f'<p class="warning">Not used: {_escape(names)}: in the data, but neither a feature, the label '
        "nor excluded in the spec. Add them to <code>features</code> or <code>exclude</code>.</p>"
    )


def _left_out_columns(columns: dict[str, str] | None) -> str:
    if not columns:
        return ""
    items = "".join(f"<li><code>{_escape(name)}</code>: {_escape(why)}</li>" for name, why in columns.items())
    return (
        "<p>Left out of the features (a row identifier would be memorized, not learned from; a column "
        f"with no value has nothing to learn from):</p><ul>{items}</ul>"
    )


def _leakage_section(data: dict) -> str:
    part = data.get("data") or {}
    if "leakage" not in part or part["leakage"] is None:
        return ""
    warnings = part["leakage"]
    if not warnings:
        none_found = "No single feature predicts the label well enough on its own to suggest leakage."
        return _section("leakage", "Target leakage", _paragraph(none_found))
    items = "".join(
        f'<li class="warning">{_escape(w.get("message", w.get("feature")))}</li>' for w in warnings
    )
    rows = [(w.get("feature"), w.get("measure"), w.get("score")) for w in warnings]
    return _section(
        "leakage", "Target leakage", f"<ul>{items}</ul>", _table(["feature", "measure", "score"], rows)
    )


def _baseline_section(data: dict) -> str:
    part = data.get("baseline")
    if not part:
        return ""
    metric = (data.get("metric") or {}).get("name", "metric")
    rows = [
        (f"dumb baseline: {part.get('description', '')}", part.get("dumb_metric")),
        ("the model", part.get("model_metric")),
        ("improvement, 95% interval", Html(_escape(_interval(part.get("improvement_interval"))))),
        ("improvement required (evaluation.baseline_margin)", part.get("margin")),
        ("beats it by that, with 95% confidence", part.get("statistical_power")),
    ]
    # The gate's own sentence is in the verdict at the top; the table says the same in figures.
    return _section(
        "baseline",
        "Against a dumb baseline and a simple model",
        _table(["", metric], rows),
        _simple_model(part.get("simple_model"), metric),
    )


def _simple_model(simple: dict | None, metric: str) -> str:
    """The network beside gradient-boosted trees on the same test rows: it informs, it gates nothing."""
    if not simple:
        return ""
    rows = [
        ("the network", simple.get("model_metric")),
        (simple.get("description", "gradient-boosted trees"), simple.get("simple_metric")),
        ("the network's lead, 95% interval", Html(_escape(_interval(simple.get("improvement_interval"))))),
        ("test rows (the Evaluator's)", simple.get("test_rows")),
    ]
    # The message repeats the table's figures; only a network worse than the trees needs saying.
    warning = (
        _paragraph(_sentence(simple.get("message", "")), "warning") if simple.get("network_worse") else ""
    )
    return _table(["", metric], rows) + warning


def _residual_plot(residuals: dict) -> str:
    labels = np.asarray(residuals.get("labels") or [], dtype=float)
    predictions = np.asarray(residuals.get("predictions") or [], dtype=float)
    if labels.size == 0 or labels.size != predictions.size:
        return ""
    if labels.size > MAX_SCATTER_POINTS:
        keep = np.random.default_rng(0).choice(labels.size, MAX_SCATTER_POINTS, replace=False)
        labels, predictions = labels[keep], predictions[keep]
    figure = _new_figure(5, 5)
    axes = figure.add_subplot()
    axes.scatter(labels, predictions, s=8, alpha=0.5, color="#4c78a8")
    low, high = float(min(labels.min(), predictions.min())), float(max(labels.max(), predictions.max()))
    axes.plot([low, high], [low, high], color="#999", linestyle="--", label="perfect")
    axes.set_xlabel("actual")
    axes.set_ylabel("predicted")
    axes.legend(loc="upper left")
    return '<h3 id="residuals">Predicted against actual</h3>' + _image(figure, "predicted against actual")


def validation_gap_message(
    name: str, validation: float | None, test: float, higher_is_better: bool, gap: float, flagged: bool
) -> str:
    """Test against validation in words, the difference always positive and called better or worse.

    `gap` is `evaluation.test_gap`: an absolute difference when higher is better, a fraction of the
    validation figure otherwise (mse, mae have no scale of their own)."""
    if validation is None:
        return f"Test {name} {test:.4f}; no validation figure to compare it with."
    difference = test - validation if higher_is_better else validation - test
    if abs(difference) < 5e-5:
        return f"Test {name} {test:.4f} is as good as validation {validation:.4f}: consistent."
    direction = "better" if difference > 0 else "worse"
    compared = (
        f"Test {name} {test:.4f} is {direction} than validation {validation:.4f} by {abs(difference):.4f}"
    )
    allowed = f"{gap:g}" if higher_is_better else f"{gap:.0%} of validation"
    if flagged:
        return (
            f"{compared}, more than the {allowed} allowed (evaluation.test_gap): the model selection may "
            "have overfitted the validation data."
        )
    if direction == "better":
        return f"{compared}: consistent."
    return f"{compared}, within the {allowed} allowed (evaluation.test_gap): consistent."


def _validation_note(data: dict) -> str:
    check = data.get("validation_vs_test")
    if not check:
        return ""
    css = "warning" if check.get("flagged") else ""
    return _paragraph(check.get("message") or "", css)


def _test_metrics_section(data: dict) -> str:
    metrics = data.get("test_metrics")
    if not metrics:
        return ""
    rows = [(m.get("name"), m.get("value"), Html(_escape(_interval(m.get("interval"))))) for m in metrics]
    return _section(
        "test-metrics",
        "Final test (measured once)",
        _table(["metric", "value", "95% interval"], rows),
        _validation_note(data),
        _residual_plot(data.get("residuals") or {}),
    )


def _matrix_table(matrix: dict) -> Html:
    """Rows are the actual classes, columns the predicted ones; row headers name the actual class."""
    names = matrix.get("labels") or []
    head = "<th>actual \u2193 / predicted \u2192</th>" + "".join(f"<th>{_escape(n)}</th>" for n in names)
    body = "".join(
        f"<tr><th>{_escape(name)}</th>" + "".join(f"<td>{_cell(c)}</td>" for c in counts) + "</tr>"
        for name, counts in zip(names, matrix.get("matrix") or [], strict=True)
    )
    return Html(f'<table class="confusion"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def _draw_heatmap(axes, matrix: dict, title: str = "") -> None:
    counts = np.asarray(matrix.get("matrix") or [[0]], dtype=float)
    names = [_plot_text(n, 16) for n in matrix.get("labels") or []]
    axes.imshow(counts, cmap="Blues")
    for (row, column), count in np.ndenumerate(counts):
        light = count > counts.max() / 2
        axes.text(
            column, row, f"{int(count):,}", ha="center", va="center", color="white" if light else "black"
        )
    axes.set_xticks(range(len(names)), names, rotation=45 if len(names) > 4 else 0)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    if title:
        axes.set_title(_plot_text(title))


def _heatmaps(matrices: dict[str, dict]) -> Html:
    shown = list(matrices.items())[:MAX_LABEL_PANELS]
    columns = min(3, len(shown))
    rows = math.ceil(len(shown) / columns)
    size = max(3.0, 0.6 * max(len(m.get("labels") or []) for _, m in shown) + 2)
    figure = _new_figure(size * columns, size * rows)
    for position, (title, matrix) in enumerate(shown, start=1):
        _draw_heatmap(figure.add_subplot(rows, columns, position), matrix, title)
    return _image(figure, "confusion matrix heatmap")


def _threshold_note(matrix: dict) -> str:
    threshold = matrix.get("threshold")
    if threshold is None:
        return _paragraph("Each row is predicted as its most probable class.")
    return _paragraph(f"A row is predicted positive when its score is at least {_format(threshold)}.")


def _confusion_section(data: dict) -> str:
    matrix = data.get("confusion_matrix")
    if not matrix:
        return ""
    heading = "Confusion matrix"
    if "per_label" in matrix:
        per_label = matrix["per_label"]
        tables = "".join(f"<h3>{_escape(name)}</h3>{_matrix_table(m)}" for name, m in per_label.items())
        first = next(iter(per_label.values()), {})
        return _section("confusion-matrix", heading, _threshold_note(first), tables, _heatmaps(per_label))
    return _section(
        "confusion-matrix", heading, _threshold_note(matrix), _matrix_table(matrix), _heatmaps({"": matrix})
    )


def _threshold_plot(table: list[dict]) -> Html:
    figure = _new_figure(6.5, 3.8)
    axes = figure.add_subplot()
    thresholds = [row["threshold"] for row in table]
    for key, label, style in (
        ("false_positive_rate", "false positive rate", "-"),
        ("false_negative_rate", "false negative rate", "-"),
        ("flagged_fraction", "share flagged", ":"),
    ):
        values = [np.nan if row.get(key) is None else row[key] for row in table]
        axes.plot(thresholds, values, style, marker="o", markersize=3, label=label)
    axes.set_xlabel("decision threshold")
    axes.set_ylabel("rate")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend()
    return _image(figure, "false positive and false negative rates by threshold")


def _thresholds_section(data: dict) -> str:
    table = data.get("thresholds")
    if not table:
        return ""
    headers = [
        "threshold",
        "flagged",
        "recall (TPR)",
        "false positive rate",
        "false negative rate",
        "precision",
        "TP",
        "FP",
        "TN",
        "FN",
    ]
    rows = [
        (
            row.get("threshold"),
            Html(_percent(row.get("flagged_fraction"))),
            *(
                Html(_percent(row.get(k)))
                for k in ("true_positive_rate", "false_positive_rate", "false_negative_rate", "precision")
            ),
            row.get("tp"),
            row.get("fp"),
            row.get("tn"),
            row.get("fn"),
        )
        for row in table
    ]
    names = (data.get("confusion_matrix") or {}).get("labels") or ["0", "1"]
    note = (
        f"A flagged row is predicted '{names[1]}' (the positive class), the others '{names[0]}'. "
        "Raising the threshold flags fewer rows: fewer false alarms, more missed positives."
    )
    return _section(
        "thresholds",
        "Choosing a decision threshold",
        _paragraph(note),
        _threshold_plot(table),
        _table(headers, rows, "thresholds"),
    )


def _row_value(value) -> str:
    """A test row's cell: an empty text, a NaN or None is a missing value, and says so."""
    missing = value is None or value == "" or (isinstance(value, float) and math.isnan(value))
    return "(missing)" if missing else _format(value)


def _features_cell(row: dict) -> Html:
    items = "".join(f"<li><b>{_escape(k)}</b> {_escape(_row_value(v))}</li>" for k, v in (row or {}).items())
    return Html(f'<ul class="row">{items}</ul>')


def _class_name(class_id, class_names: list[str]) -> str:
    is_id = isinstance(class_id, (int, float)) and float(class_id).is_integer()
    return class_names[int(class_id)] if is_id and 0 <= class_id < len(class_names) else _format(class_id)


def _failure_cells(task: str, failure: dict, matrix: dict) -> tuple[str, str]:
    """The actual and predicted answers of a failed row, by class name where the task has classes."""
    label, prediction = failure.get("label"), failure.get("prediction")
    names = matrix.get("labels") or []
    if task == "binary" and isinstance(prediction, (int, float)):
        predicted = _class_name(int(prediction >= (matrix.get("threshold") or 0.5)), names)
        return _class_name(label, names), f"{predicted} (score {_format(prediction)})"
    if task == "multiclass" and isinstance(prediction, list) and prediction:
        best = int(np.argmax(prediction))
        return _class_name(label, names), f"{_class_name(best, names)} (p={_format(prediction[best])})"
    return _format(label), _format(prediction)


def _failures_section(data: dict) -> str:
    failures = data.get("failures")
    if not failures:
        return ""
    task, matrix = data.get("task"), data.get("confusion_matrix") or {}
    with_rows = any(f.get("row") for f in failures)
    rows = [
        (f.get("index"), *_failure_cells(task, f, matrix), f.get("confidence"))
        + ((_features_cell(f.get("row")),) if with_rows else ())
        for f in failures
    ]
    measure = "absolute error" if task == "regression" else "confidence"
    headers = ["row", "actual", "predicted", measure] + (["features"] if with_rows else [])
    note = "The test rows the model got wrong while being most sure of itself."
    return _section(
        "failures", "Most confident failures", _paragraph(note), _table(headers, rows, "failures")
    )


def _slice_metric_names(slices: list[dict]) -> list[str]:
    return list(dict.fromkeys(name for s in slices for name in (s.get("metrics") or {})))


def _agreement_rows(record: dict) -> list[tuple]:
    rows = []
    for name in ("sample", "hardest"):
        group = record.get("groups", {}).get(name) or {}
        if not group.get("rows"):
            continue
        value = _format(group["value"]) if record.get("measure") == "mae" else _percent(group["value"])
        rows.append((record["span"], name, "all", group["rows"], value, _interval(group["interval"])))
        for label, part in (group.get("per_class") or {}).items():
            if part.get("rows"):
                rows.append(
                    ("", "", label, part["rows"], _percent(part["value"]), _interval(part["interval"]))
                )
    return rows


def _annotations_section(data: dict) -> str:
    records = data.get("annotations")
    if not records:
        return ""
    measure = "mean absolute difference" if records[0].get("measure") == "mae" else "agreement"
    note = (
        "Rows people labelled (`pipelines audit`, then `pipelines land --annotations`) that this "
        f"model trained on, and the {measure} of the model in service when they were chosen with "
        "those labels: on a random sample of the span (how it does on the data in the wild) and on the "
        "rows it was least sure about. Intervals: 95% (Wilson for shares, bootstrap for the mean "
        "absolute difference)."
    )
    rows = [row for record in records for row in _agreement_rows(record)]
    summaries = "".join(_paragraph(record["summary"]) for record in records)
    return _section(
        "annotations",
        "Annotated rows",
        _paragraph(note),
        summaries,
        _table(["span", "rows chosen", "class", "annotated", measure, "95% interval"], rows),
    )


def _slices_section(data: dict) -> str:
    slices = data.get("slices")
    if not slices:
        return ""
    names = _slice_metric_names(slices)
    rows = [
        (s.get("feature"), s.get("value"), s.get("count"), *((s.get("metrics") or {}).get(n) for n in names))
        for s in slices
    ]
    note = "The same metrics computed on each group of test rows; small groups give noisy figures."
    return _section(
        "slices", "By slice", _paragraph(note), _table(["feature", "value", "rows", *names], rows)
    )


def _draw_curve(axes, entry: dict, title: str) -> None:
    for key, label in (("loss", "training loss"), ("val_loss", "validation loss")):
        if entry.get(key):
            axes.plot(range(1, len(entry[key]) + 1), entry[key], label=label)
    if entry.get("best_epoch") is not None:
        axes.axvline(entry["best_epoch"], color="#999", linestyle="--", label="best epoch")
    axes.set_title(_plot_text(title))
    axes.set_xlabel("epoch")
    axes.legend(fontsize="small")


def _curves_plot(curves: dict) -> str:
    panels = [(f"capacity {c.get('name', '')}", c) for c in curves.get("capacity_sweep") or []]
    if (curves.get("final") or {}).get("loss"):
        panels.append(("final model", curves["final"]))
    if not panels:
        return ""
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = _new_figure(4 * columns, 3 * rows)
    for position, (title, entry) in enumerate(panels, start=1):
        _draw_curve(figure.add_subplot(rows, columns, position), entry, title)
    return _image(figure, "learning curves")


def _curves_section(data: dict) -> str:
    curves = data.get("learning_curves")
    if not curves:
        return ""
    sweep = curves.get("capacity_sweep") or []
    rows = [(c.get("name"), c.get("best_epoch"), c.get("overfit")) for c in sweep]
    table = _table(["capacity", "best epoch", "overfits"], rows) if rows else ""
    note = "Models grow until validation loss turns up (overfitting): the capacity is then large enough."
    return _section("learning-curves", "Learning curves", _paragraph(note), table, _curves_plot(curves))


def _lower_is_better(objective: str) -> bool:
    return any(word in objective.lower() for word in ("loss", "mse", "mae", "error"))


def _tuning_section(data: dict) -> str:
    tuning = data.get("tuning")
    if not tuning:
        return ""
    objective = str(tuning.get("objective") or "score")
    trials = sorted(
        tuning.get("trials") or [],
        key=lambda t: t.get("score") if t.get("score") is not None else math.inf,
        reverse=not _lower_is_better(objective),
    )
    names = list(dict.fromkeys(n for t in trials for n in (t.get("hyperparameters") or {})))
    rows = [
        (t.get("trial_id"), t.get("score"), *((t.get("hyperparameters") or {}).get(n) for n in names))
        for t in trials[:MAX_TRIALS_SHOWN]
    ]
    best = tuning.get("best") or {}
    summary = (
        f"Protocol: {tuning.get('protocol', 'unknown')}; objective: {objective}; "
        f"{len(trials)} trials. Best: " + ", ".join(f"{k}={_format(v)}" for k, v in best.items())
    )
    return _section("tuning", "Tuning", _paragraph(summary), _table(["trial", objective, *names], rows))


def _size(size_bytes) -> str:
    if size_bytes is None:
        return "\u2014"
    size = float(size_bytes)
    for unit in ("B", "kB", "MB"):  # decimal units, as the CLI's table and the TF.js page write them
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _targets_section(data: dict) -> str:
    targets = data.get("targets")
    if not targets:
        return ""
    metric = (data.get("metric") or {}).get("name", "metric")
    rows = [
        (
            t.get("name"),
            Html(_size(t.get("size_bytes"))),
            _format(t.get("metric"), METRIC_DIGITS),
            _difference_cell(t),
            t.get("p50_ms"),
            t.get("pushed"),
            t.get("reason"),
        )
        for t in targets
    ]
    units = "in the label's units" if data.get("task") == "regression" else "in probability"
    headers = [
        "target",
        "size",
        metric,
        f"max difference vs SavedModel on one row ({units})",
        "median latency (ms)",
        "pushed",
        "why",
    ]
    return _section(
        "targets",
        "Deployment targets",
        _parity_rule(data.get("parity"), metric),
        _table(headers, rows),
        _large_difference_note(targets),
    )


def _difference_cell(target: dict):
    value = target.get("max_abs_diff")
    if not target.get("max_abs_diff_flagged"):
        return value
    return Html(f'<span class="warning">{_escape(_format(value))} (large)</span>')


def _parity_rule(parity: dict | None, metric: str) -> str:
    """The gate in words: an absolute tolerance for a metric in [0, 1], relative for mse / mae."""
    tolerance = (parity or {}).get("tolerance")
    if tolerance is None:
        return ""
    if parity.get("tolerance_kind") == "relative":
        rule = (
            f"at most {tolerance * 100:g}% worse than the SavedModel's (relative: {metric} is in the label's "
            f"units and has no scale of its own; {_format(parity.get('allowed_loss'))} here)"
        )
    else:
        rule = f"at most {tolerance:g} below the SavedModel's (absolute: {metric} lies between 0 and 1)"
    return _paragraph(
        f"A target is pushed when its {metric} on the test split is {rule}, and its latency and size are "
        "within the spec's compute budgets (deployment.max_latency_ms, max_size_kb, max_slowdown), if any; "
        "each refused target's reason is in its row."
    )


def _large_difference_note(targets: list[dict]) -> str:
    flagged = [str(t.get("name")) for t in targets if t.get("max_abs_diff_flagged")]
    if not flagged:
        return ""
    mae = next((t["reference_mae"] for t in targets if t.get("reference_mae") is not None), None)
    return _paragraph(
        f"{', '.join(flagged)}: on at least one test row the prediction is further from the SavedModel's "
        f"than the SavedModel's mean absolute error ({_format(mae)}). The gate judges the metric, not single "
        "rows, so this alone does not stop a push: check the target on the rows that matter before relying "
        "on it.",
        "warning",
    )


def _importance_section(data: dict) -> str:
    rows = data.get("importance")
    if not rows:
        return ""
    metric = (data.get("metric") or {}).get("name", "metric")
    table = _table(
        ["feature", f"drop in {metric} when shuffled", "sd", "benefit"],
        [
            (
                r["feature"],
                r["drop"],
                r["sd"],
                Html("yes" if r["beneficial"] else '<span class="warning">none measurable</span>'),
            )
            for r in rows
        ],
    )
    useless = [r["feature"] for r in rows if not r["beneficial"]]
    note = (
        f"No measurable benefit on the test split: {', '.join(useless)}. Consider dropping them "
        "(each feature costs a column to collect, validate and serve)."
        if useless
        else "Every feature helps on the test split."
    )
    explain = (
        "Permutation importance: each feature's test values are shuffled (3 times) and the model scored "
        "again; a feature helps when the drop is more than two standard deviations above zero."
    )
    return _section("importance", "What the model relies on", _paragraph(explain), table, _paragraph(note))


SECTIONS = (
    _data_section,
    _leakage_section,
    _baseline_section,
    _test_metrics_section,
    _confusion_section,
    _thresholds_section,
    _failures_section,
    _importance_section,
    _slices_section,
    _annotations_section,
    _curves_section,
    _tuning_section,
    _targets_section,
)

CSS = """
:root { --ink: #1f2933; --muted: #52606d; --line: #d9e2ec; --good: #1e7b45; --bad: #b42318; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0; background: #f5f7fa; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
header h1 { margin: 0 0 4px; font-size: 28px; }
.facts { display: flex; flex-wrap: wrap; gap: 16px; color: var(--muted); font-size: 13px; }
.description { color: var(--muted); }
section { background: white; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px;
          margin: 16px 0; overflow-x: auto; }
h2 { margin: 0 0 12px; font-size: 20px; }
h3 { font-size: 16px; margin: 16px 0 8px; }
.verdict { border-width: 2px; }
.verdict.good { border-color: var(--good); background: #ecfdf3; }
.verdict.bad { border-color: var(--bad); background: #fef3f2; }
.verdict .status { font-size: 22px; font-weight: 700; margin: 0 0 6px; }
.verdict.good .status { color: var(--good); }
.verdict.bad .status { color: var(--bad); }
.headline { font-size: 17px; }
.warning { color: var(--bad); font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
thead th { background: #eef2f7; }
td { font-variant-numeric: tabular-nums; }
table.confusion td { text-align: right; min-width: 56px; }
ul.row { list-style: none; margin: 0; padding: 0; font-size: 12px; columns: 2; }
img.plot { display: block; max-width: 100%; height: auto; margin: 8px 0; }
"""


def render_report(data: dict) -> str:
    """The whole report as one HTML page; every string from `data` is escaped."""
    title = data.get("title") or data.get("spec_name") or "Model report"
    sections = [_verdict(data), *(make(data) for make in SECTIONS)]
    body = "\n".join(section for section in sections if section)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{_header(data)}\n{body}</main></body></html>\n"
    )
