"""The landing zone: data arrives as numbered spans (`<landing>/span-N/*.csv`), each landed atomically.

A spec whose `data.source` holds `{SPAN}` (e.g. `../data/landing/taxi/span-{SPAN}/*.csv`) reads from
a landing zone. ExampleGen ingests the newest span; the monitoring DAG checks each new span first.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

from components.core import sources
from components.core.spec import SPAN_TOKEN, ProblemSpec

INCOMING_PREFIX = ".incoming-"


class LandingError(ValueError):
    """A span that cannot be landed or read; the message names the folder and what to do."""


def _span_folder_pattern(spec: ProblemSpec) -> tuple[Path, str, str]:
    """(landing folder, span folder pattern, file pattern inside it) for a spanned spec."""
    if not spec.data.spanned:
        raise LandingError(f"data.source '{spec.data.source}' has no {SPAN_TOKEN}; it does not read spans")
    parts = Path(spec.data.source).parts
    index = next(i for i, part in enumerate(parts) if SPAN_TOKEN in part)
    return (
        Path(*parts[:index]),
        parts[index],
        str(Path(*parts[index + 1 :])) if index + 1 < len(parts) else "*",
    )


def landing_folder(spec: ProblemSpec) -> Path:
    return _span_folder_pattern(spec)[0]


def span_folder(spec: ProblemSpec, span: int) -> Path:
    root, folder, _ = _span_folder_pattern(spec)
    return root / folder.replace(SPAN_TOKEN, str(span))


def span_files_pattern(spec: ProblemSpec, span: int) -> str:
    """The glob of one span's files (the source pattern with the span filled in)."""
    return spec.data.source.replace(SPAN_TOKEN, str(span))


def landed_spans(spec: ProblemSpec) -> dict[int, list[str]]:
    """Every landed span number with its files (a span folder with no files maps to [])."""
    root, folder, inner = _span_folder_pattern(spec)
    matcher = re.compile("^" + re.escape(folder).replace(re.escape(SPAN_TOKEN), r"(\d+)") + "$")
    spans: dict[int, list[str]] = {}
    if not root.is_dir():
        return spans
    for entry in root.iterdir():
        found = matcher.match(entry.name)
        if found and entry.is_dir():
            spans[int(found.group(1))] = sources.glob_files(str(entry / inner))
    return dict(sorted(spans.items()))


def newest_span(spec: ProblemSpec) -> int | None:
    spans = landed_spans(spec)
    return max(spans) if spans else None


def land_span(spec: ProblemSpec, files: list[str | Path], span: int | None = None) -> int:
    """Copies `files` in as a new span (the next number unless given) and returns its number.

    The files are copied into a hidden folder next to the span folders, then renamed into place,
    so ExampleGen and the monitoring DAG never see half a span.
    """
    if not files:
        raise LandingError("no files given to land; pass the CSV file(s) of the new span")
    for file in files:
        if not Path(file).is_file():
            raise LandingError(f"'{file}' is not a file; pass the CSV file(s) of the new span")
    existing = landed_spans(spec)
    span = span if span is not None else (max(existing) + 1 if existing else 1)
    target = span_folder(spec, span)
    if target.exists():
        raise LandingError(f"span {span} has already landed at '{target}'; spans are never overwritten")
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = target.parent / f"{INCOMING_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}"
    incoming.mkdir()
    try:
        for file in files:
            shutil.copy2(file, incoming / Path(file).name)
        os.rename(incoming, target)
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    return span
