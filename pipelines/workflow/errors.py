"""Errors as a user reads them, for the CLI and the Airflow run notes alike."""

from __future__ import annotations


def innermost_message(error: BaseException | str | None) -> str:
    """The most specific message of an exception chain: TFX wraps executor errors, and the innermost one
    names the file, column or field. Context hidden with `raise ... from None` stays hidden."""
    if error is None or isinstance(error, str):
        return error or "no message"
    seen, message = set(), ""
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        message = str(error) or type(error).__name__
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return message
