"""Date-time features: a column of ISO-8601 text or Unix seconds becomes its hour of day, day of week and
month, each a category (index 0 = missing), in Transform and inside the raw signature alike.

The calendar arithmetic is integer-only (Howard Hinnant's days <-> civil date algorithms: floor division,
multiplication, selection), so the raw signature converts to TFLite builtin ops and runs in TF.js. Text is
read as the wall-clock time it writes (a time-zone suffix is ignored: "19:45+02:00" is hour 19), and Unix
seconds as UTC, so "2014-05-16T19:45:00" and 1400269500 give the same parts.

Device targets (TFLite, TF.js, the `serving_raw` signature) cannot parse text with builtin ops: they take
such a column as int32 Unix seconds (dates 1901-12-14 .. 2038-01-19), `MISSING_SECONDS` for a missing
value; `unix_seconds` converts a CSV cell the same way the graph reads it.
"""

from __future__ import annotations

import datetime
import re

import tensorflow as tf

from components.core.tables import ISO_DATE_TIME

# part -> how many values it takes (its index is 1 + the value counted from 0; 0 = missing)
PARTS = {"hour": 24, "weekday": 7, "month": 12}
MISSING_SECONDS = -(2**31)  # int32's lowest value: a missing date-time in the raw signature's input
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?")
_EPOCH = datetime.datetime(1970, 1, 1)


def part_name(feature: str, part: str) -> str:
    """The transformed feature of one part: `trip_start_timestamp_hour`."""
    return f"{feature}_{part}"


def elapsed_name(feature: str) -> str:
    """The transformed feature of the elapsed time (`preprocessing.datetime_elapsed`)."""
    return f"{feature}_elapsed"


def iso_text(seconds: int) -> str:
    """Unix seconds as the ISO-8601 text a CSV writes (the wall-clock time, no zone)."""
    return (_EPOCH + datetime.timedelta(seconds=int(seconds))).isoformat()


def part_buckets(part: str) -> int:
    return PARTS[part] + 1


def _floordiv(a: tf.Tensor, b: int) -> tf.Tensor:
    return tf.math.floordiv(a, tf.constant(b, a.dtype))


def days_from_civil(year: tf.Tensor, month: tf.Tensor, day: tf.Tensor) -> tf.Tensor:
    """Days since 1970-01-01 of a proleptic Gregorian date (all integer tensors of one dtype)."""
    year = year - tf.cast(month <= 2, year.dtype)
    era = _floordiv(year, 400)
    year_of_era = year - era * 400
    shifted_month = tf.where(month > 2, month - 3, month + 9)
    day_of_year = _floordiv(153 * shifted_month + 2, 5) + day - 1
    day_of_era = year_of_era * 365 + _floordiv(year_of_era, 4) - _floordiv(year_of_era, 100) + day_of_year
    return era * 146097 + day_of_era - 719468


def parts_from_seconds(seconds: tf.Tensor) -> dict[str, tf.Tensor]:
    """hour 0..23, weekday 0..6 (Monday = 0), month 1..12 of integer Unix seconds (any int dtype)."""
    days = _floordiv(seconds, 86400)
    hour = _floordiv(seconds - days * 86400, 3600)
    weekday = tf.math.floormod(days + 3, tf.constant(7, days.dtype))  # 1970-01-01 was a Thursday
    shifted = days + 719468
    era = _floordiv(shifted, 146097)
    day_of_era = shifted - era * 146097
    year_of_era = _floordiv(
        day_of_era
        - _floordiv(day_of_era, 1460)
        + _floordiv(day_of_era, 36524)
        - _floordiv(day_of_era, 146096),
        365,
    )
    day_of_year = day_of_era - (365 * year_of_era + _floordiv(year_of_era, 4) - _floordiv(year_of_era, 100))
    shifted_month = _floordiv(5 * day_of_year + 2, 153)
    month = tf.where(shifted_month < 10, shifted_month + 3, shifted_month - 9)
    return {"hour": hour, "weekday": weekday, "month": month}


def part_indices(seconds: tf.Tensor, present: tf.Tensor) -> dict[str, tf.Tensor]:
    """Each part as a category index: 1 + its value counted from 0, or 0 where `present` is False."""
    parts = parts_from_seconds(tf.where(present, seconds, tf.zeros_like(seconds)))
    firsts = {"hour": 0, "weekday": 0, "month": 1}
    return {
        part: tf.where(present, tf.cast(value - firsts[part] + 1, tf.int64), tf.zeros_like(value, tf.int64))
        for part, value in parts.items()
    }


def _number(text: tf.Tensor, has: tf.Tensor, start: int, width: int, default: str) -> tf.Tensor:
    """The digits at text[start:start + width] as int64 where `has`, else `default`."""
    chosen = tf.where(has, tf.strings.substr(text, start, width), default)
    return tf.strings.to_number(chosen, out_type=tf.int64)


def seconds_from_text(text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(int64 Unix seconds of the wall-clock time an ISO-8601 text writes, whether the text is one)."""
    text = tf.strings.strip(text)
    valid = tf.strings.regex_full_match(text, ISO_DATE_TIME)
    has_time = tf.strings.regex_full_match(text, r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*")
    has_seconds = tf.strings.regex_full_match(text, r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}.*")
    # Substr fails past a string's end, and runs on every row before the selection: read from a text
    # that is long enough everywhere (the suffix is never read where a part is present).
    text = tf.strings.join([tf.where(valid, text, "1970-01-01"), "T00:00:00"])
    year = _number(text, valid, 0, 4, "1970")
    month = _number(text, valid, 5, 2, "01")
    day = _number(text, valid, 8, 2, "01")
    hour = _number(text, has_time, 11, 2, "00")
    minute = _number(text, has_time, 14, 2, "00")
    second = _number(text, has_seconds, 17, 2, "00")
    days = days_from_civil(year, month, day)
    return days * 86400 + hour * 3600 + minute * 60 + second, valid


def unix_seconds(cell: str | float | int | None) -> int:
    """A CSV cell (ISO-8601 text or Unix seconds) as the raw signature takes it; MISSING_SECONDS when
    empty or not a date-time."""
    if cell is None:
        return MISSING_SECONDS
    text = str(cell).strip()
    if not text:
        return MISSING_SECONDS
    try:
        return int(float(text) // 1)
    except ValueError:
        pass
    found = _ISO.match(text)
    if found is None:
        return MISSING_SECONDS
    year, month, day, hour, minute, second = (int(group or 0) for group in found.groups())
    moment = datetime.datetime(year, month, day, hour, minute, second)
    return int((moment - _EPOCH).total_seconds())
