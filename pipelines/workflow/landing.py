"""The landing zone: data arrives as numbered spans (`<landing>/span-N/*.csv`), each landed atomically.

A spec whose `data.source` holds `{SPAN}` (e.g. `../data/landing/taxi/span-{SPAN}/*.csv`) reads from
a landing zone. ExampleGen ingests the newest span; the monitoring DAG checks each new span first.
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from absl import logging

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


def source_under(spec: ProblemSpec, root: Path) -> str:
    """The spec's `data.source` with its landing folder moved to `root` (span folders and files alike)."""
    _, folder, inner = _span_folder_pattern(spec)
    return str(root / folder / inner)


def landing_folder(spec: ProblemSpec) -> Path:
    return _span_folder_pattern(spec)[0]


def span_folder(spec: ProblemSpec, span: int) -> Path:
    root, folder, _ = _span_folder_pattern(spec)
    return root / folder.replace(SPAN_TOKEN, str(span))


def span_files_pattern(spec: ProblemSpec, span: int) -> str:
    """The glob of one span's files (the source pattern with the span filled in)."""
    return spec.data.source.replace(SPAN_TOKEN, str(span))


def landed_spans(spec: ProblemSpec) -> dict[int, list[str]]:
    """Every landed span number with its files (a span folder with no files maps to []).

    Raises LandingError for a span number written two ways (`span-01` beside `span-1`) or zero-padded:
    ExampleGen reads span N from the folder named with N as it is written here.
    """
    root, folder, inner = _span_folder_pattern(spec)
    matcher = re.compile("^" + re.escape(folder).replace(re.escape(SPAN_TOKEN), r"(\d+)") + "$")
    folders: dict[int, list[str]] = {}
    if not root.is_dir():
        return {}
    for entry in root.iterdir():
        found = matcher.match(entry.name)
        if found and entry.is_dir():
            folders.setdefault(int(found.group(1)), []).append(entry.name)
    for span, names in folders.items():
        canonical = folder.replace(SPAN_TOKEN, str(span))
        if names != [canonical]:
            raise LandingError(
                f"span {span} is in folder(s) {', '.join(sorted(names))} under '{root}': a span is one "
                f"folder named '{canonical}' (no leading zeros); merge or rename them"
            )
    return {
        span: sources.glob_files(str(root / folder.replace(SPAN_TOKEN, str(span)) / inner))
        for span in sorted(folders)
    }


def newest_span(spec: ProblemSpec) -> int | None:
    spans = landed_spans(spec)
    return max(spans) if spans else None


def landed_names(files: list[str | Path]) -> list[str]:
    """The name each file gets in its span folder: its own, or `<stem>-<n><suffixes>` when an earlier
    file has that name (two `part.csv` from different folders both land)."""
    names: list[str] = []
    for file in files:
        name = Path(file).name
        stem, dot, suffixes = name.partition(".")
        candidate, n = name, 1
        while candidate in names:
            n += 1
            candidate = f"{stem}-{n}{dot}{suffixes}"
        names.append(candidate)
    return names


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One lander at a time per landing zone (an flock on the folder itself: no lock file to leave)."""
    root.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def remove_abandoned_staging(root: Path) -> list[str]:
    """Deletes `.incoming-*` folders left by a `land` that was killed; called with the lock held, when no
    live lander is staging."""
    abandoned = sorted(p.name for p in root.iterdir() if p.name.startswith(INCOMING_PREFIX))
    for name in abandoned:
        logging.warning("Removing %s, left by a landing that did not finish", root / name)
        shutil.rmtree(root / name, ignore_errors=True)
    return abandoned


def land_span(spec: ProblemSpec, files: list[str | Path], span: int | None = None) -> int:
    """Copies `files` in as a new span (the next number unless given) and returns its number.

    The files are copied into a hidden folder next to the span folders, then renamed into place,
    so ExampleGen and the monitoring DAG never see half a span. Landers take turns (a lock on the
    landing folder), so two at once get two numbers; each file keeps its name unless an earlier file
    of the span has it (`landed_names`).
    """
    if not files:
        raise LandingError("no files given to land; pass the CSV file(s) of the new span")
    for file in files:
        if not Path(file).is_file():
            raise LandingError(f"'{file}' is not a file; pass the CSV file(s) of the new span")
    root, _, inner = _span_folder_pattern(spec)
    names = landed_names(files)
    unread = [name for name in names if not fnmatch.fnmatch(name, inner)]
    if unread:
        raise LandingError(
            f"{', '.join(unread)} would land where ExampleGen does not read: the spec reads '{inner}' in "
            "each span folder; rename the file(s) or change data.source"
        )
    with _locked(root):
        remove_abandoned_staging(root)
        existing = landed_spans(spec)
        span = span if span is not None else (max(existing) + 1 if existing else 1)
        target = span_folder(spec, span)
        if target.exists():
            raise LandingError(f"span {span} has already landed at '{target}'; spans are never overwritten")
        incoming = root / f"{INCOMING_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}"
        incoming.mkdir()
        try:
            for file, name in zip(files, names, strict=True):
                shutil.copy2(file, incoming / name)
            os.rename(incoming, target)
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            raise
    return span
