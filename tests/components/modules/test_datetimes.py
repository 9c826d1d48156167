"""Date-time features: the integer calendar arithmetic against Python's datetime, text and seconds alike,
and the raw path as TFLite runs it with builtin ops only."""

from __future__ import annotations

import datetime

import numpy as np
import pytest
import tensorflow as tf

from components.modules import datetimes
from components.modules.preprocessing_fn import datetime_parts_and_seconds
from tests.helpers.transform import transform_and_raw

EPOCH = datetime.datetime(1970, 1, 1)
# Every int32 second a device can be given, from 1901 to 2038, with month ends and leap days among them.
SECONDS = np.concatenate(
    [
        np.random.default_rng(0).integers(-(2**31) + 1, 2**31 - 1, size=5000),
        [0, -1, 951782400, 951868799, 951868800, 1400269500, 4107542399 - 2**31, 2**31 - 1],
    ]
)


def expected_parts(seconds: int) -> dict[str, int]:
    moment = EPOCH + datetime.timedelta(seconds=int(seconds))
    return {"hour": moment.hour, "weekday": moment.weekday(), "month": moment.month}


@pytest.mark.parametrize("dtype", [tf.int32, tf.int64])
def test_hour_weekday_and_month_of_unix_seconds_match_python(dtype):
    parts = datetimes.parts_from_seconds(tf.constant(SECONDS, dtype))
    for name in ("hour", "weekday", "month"):
        assert parts[name].numpy().tolist() == [expected_parts(s)[name] for s in SECONDS], name


def test_iso_text_is_read_as_the_wall_clock_time_it_writes():
    cells = [
        "2014-05-16T19:45:00",
        "2014-05-16 19:45",
        "2014-05-16",
        "2016-02-29T23:59:59.5+02:00",
        "soon",
        "",
    ]
    seconds, valid = datetimes.seconds_from_text(tf.constant(cells))
    assert valid.numpy().tolist() == [True, True, True, True, False, False]
    assert seconds.numpy().tolist()[:4] == [datetimes.unix_seconds(cell) for cell in cells[:4]]
    assert datetimes.unix_seconds("2014-05-16T19:45:00") == 1400269500 == datetimes.unix_seconds("1400269500")
    assert datetimes.unix_seconds("soon") == datetimes.unix_seconds("") == datetimes.MISSING_SECONDS


def test_a_column_of_text_or_seconds_gives_the_same_categories_and_zero_when_missing():
    as_text, text_seconds = datetime_parts_and_seconds(
        tf.constant(["2014-05-16T19:45:00", "", "not a date"]), "pickup"
    )
    as_seconds, _ = datetime_parts_and_seconds(tf.constant([1400269500, 0, 0], tf.int64), "pickup")
    seconds = text_seconds.numpy()
    assert seconds[0] == np.float32(1400269500) and np.isnan(seconds[1:]).all()  # missing is NaN
    assert as_text["pickup_hour"].numpy().ravel().tolist() == [20, 0, 0]  # hour 19 is index 20
    assert as_text["pickup_weekday"].numpy().ravel().tolist() == [5, 0, 0]  # Friday (Monday = 1)
    assert as_text["pickup_month"].numpy().ravel().tolist() == [5, 0, 0]
    assert as_seconds["pickup_hour"].numpy()[0, 0] == 20 and as_seconds["pickup_month"].numpy()[0, 0] == 5


def test_the_raw_path_runs_in_tflite_with_builtin_ops_only(tmp_path):
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.int32, name="moment")])
    def parts(moment):
        present = tf.not_equal(moment, datetimes.MISSING_SECONDS)
        return datetimes.part_indices(moment, present)

    module.parts = parts
    tf.saved_model.save(module, str(tmp_path), signatures={"parts": parts.get_concrete_function()})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path), signature_keys=["parts"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = tf.lite.Interpreter(
        model_content=converter.convert(),
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN,
    )
    runner = interpreter.get_signature_runner("parts")
    moments = np.append(SECONDS[:200], datetimes.MISSING_SECONDS).astype(np.int32).reshape(-1, 1)
    got = runner(moment=moments)
    want = parts(tf.constant(moments))
    for name in ("hour", "weekday", "month"):
        np.testing.assert_array_equal(got[name], want[name].numpy())
    assert [int(got[name][-1, 0]) for name in ("hour", "weekday", "month")] == [0, 0, 0]


def test_the_raw_signature_computes_every_date_time_output_as_transform_does(tmp_path):
    """Transform on ISO-8601 text (hour, weekday, month and the elapsed time), and the raw transform on
    the same moments given as int32 Unix seconds, as TFLite and TF.js are: the same values."""
    from components.core.spec import ProblemSpec

    spec = ProblemSpec.model_validate(
        {
            "name": "unit",
            "data": {"source": "/dev/null"},
            "label": "big_tipper",
            "task": "binary",
            "features": {"pickup": "datetime", "fare": "numeric"},
            "metric": {"name": "auc", "threshold": 0.5},
            "preprocessing": {"datetime_elapsed": True},
        }
    )
    feature_spec = {
        "pickup": tf.io.VarLenFeature(tf.string),
        "fare": tf.io.VarLenFeature(tf.float32),
        "big_tipper": tf.io.FixedLenFeature([1], tf.int64),
    }
    seconds = [int(s) for s in SECONDS[:60] if s > 0] + [datetimes.MISSING_SECONDS]
    rows = [
        {
            "pickup": [] if s == datetimes.MISSING_SECONDS else [datetimes.iso_text(s).encode()],
            "fare": [float(i)],
            "big_tipper": [i % 2],
        }
        for i, s in enumerate(seconds)
    ]
    transformed, raw = transform_and_raw(spec, feature_spec, rows, tmp_path)
    assert raw.output_names() == ["pickup_hour", "pickup_weekday", "pickup_month", "pickup_elapsed", "fare"]
    got = raw(
        {
            "pickup": tf.constant(np.array(seconds, np.int32).reshape(-1, 1)),
            "fare": tf.constant(np.arange(len(seconds), dtype=np.float32).reshape(-1, 1)),
        }
    )
    for name in raw.output_names():
        want = np.array([row[name][0] for row in transformed])
        np.testing.assert_allclose(got[name].numpy().ravel(), want, atol=1e-5, err_msg=name)
    elapsed = np.array([row["pickup_elapsed"][0] for row in transformed])
    assert elapsed[-1] == pytest.approx(0.0) and np.std(elapsed[:-1]) == pytest.approx(1.0, abs=1e-3)
