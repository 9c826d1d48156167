"""The problem spec: the default loads; every mistake is one message naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.core.spec import FeatureKind, SpecError, TaskType, load_spec
from tests.helpers.data import TAXI_SPEC

VALID = yaml.safe_load(TAXI_SPEC.read_text())


def write_spec(
    tmp_path: Path, changes: dict | None = None, remove: tuple[str, ...] = (), text: str | None = None
) -> Path:
    path = tmp_path / "spec.yaml"
    if text is not None:
        path.write_text(text)
        return path
    spec = {**VALID, **(changes or {})}
    for key in remove:
        spec.pop(key)
    path.write_text(yaml.safe_dump(spec))
    return path


def error_for(path: Path) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert str(path) in message, message
    return message


def test_default_taxi_spec_loads():
    spec = load_spec(TAXI_SPEC)
    assert spec.task == TaskType.BINARY
    assert spec.label == "big_tipper"
    assert "tips" in spec.exclude
    assert Path(spec.data.source).is_file()
    assert spec.features["payment_type"] == FeatureKind.CATEGORICAL
    assert spec.split.hash_buckets() == {"train": 80, "eval": 10, "test": 10}


def test_feature_list_means_kinds_are_inferred(tmp_path):
    spec = load_spec(write_spec(tmp_path, {"features": ["fare", "company"]}))
    assert spec.features == {"fare": FeatureKind.AUTO, "company": FeatureKind.AUTO}


def test_without_features_every_other_column_is_used(tmp_path):
    spec = load_spec(write_spec(tmp_path, remove=("features",)))
    used = spec.feature_columns(["fare", "tips", "big_tipper", "company", "trip_start_timestamp"])
    assert list(used) == ["fare", "company"]


def test_unknown_task_type(tmp_path):
    message = error_for(write_spec(tmp_path, {"task": "clustering"}))
    assert "field 'task'" in message and "clustering" in message and "binary" in message


def test_label_not_in_data(tmp_path):
    message = error_for(write_spec(tmp_path, {"label": "tip_amount"}))
    assert "field 'label'" in message and "tip_amount" in message and "not in the data" in message


def test_data_file_does_not_exist(tmp_path):
    message = error_for(write_spec(tmp_path, {"data": {"source": "missing/trips.csv"}}))
    assert "field 'data.source'" in message and "no file matches" in message


def test_package_not_installed(tmp_path):
    message = error_for(write_spec(tmp_path, {"data": {"source": "pkg://no_such_package/data.csv"}}))
    assert "field 'data.source'" in message and "not installed" in message


def test_negative_ratio(tmp_path):
    message = error_for(write_spec(tmp_path, {"split": {"train": 1.1, "eval": -0.2, "test": 0.1}}))
    assert "field 'split'" in message and "between 0 and 1" in message


def test_ratios_must_add_up_to_one(tmp_path):
    message = error_for(write_spec(tmp_path, {"split": {"train": 0.5, "eval": 0.1, "test": 0.1}}))
    assert "field 'split'" in message and "add up to 1" in message


def test_unknown_key(tmp_path):
    message = error_for(write_spec(tmp_path, {"epochs": 3}))
    assert "field 'epochs'" in message and "unknown field" in message


def test_unknown_nested_key(tmp_path):
    message = error_for(write_spec(tmp_path, {"training": {"epoch": 3}}))
    assert "field 'training.epoch'" in message and "unknown field" in message


def test_unknown_metric(tmp_path):
    message = error_for(write_spec(tmp_path, {"metric": {"name": "f7", "threshold": 0.5}}))
    assert "field 'metric.name'" in message and "f7" in message


def test_metric_must_fit_the_task(tmp_path):
    message = error_for(write_spec(tmp_path, {"metric": {"name": "mse", "threshold": 0.5}}))
    assert "field 'metric.name'" in message and "binary" in message and "auc" in message


def test_feature_column_not_in_data(tmp_path):
    message = error_for(write_spec(tmp_path, {"features": {"fare": "numeric", "tip_pct": "numeric"}}))
    assert "field 'features'" in message and "tip_pct" in message


def test_unknown_feature_kind(tmp_path):
    message = error_for(write_spec(tmp_path, {"features": {"fare": "continuous"}}))
    assert "field 'features.fare'" in message


def test_label_cannot_be_a_feature(tmp_path):
    message = error_for(write_spec(tmp_path, {"features": {"big_tipper": "numeric"}}))
    assert "field 'features'" in message and "big_tipper" in message


def test_excluded_column_must_exist(tmp_path):
    message = error_for(write_spec(tmp_path, {"exclude": ["tipz"]}))
    assert "field 'exclude'" in message and "tipz" in message


def test_missing_required_field(tmp_path):
    message = error_for(write_spec(tmp_path, remove=("label",)))
    assert "field 'label'" in message


def test_bad_training_budget(tmp_path):
    message = error_for(write_spec(tmp_path, {"training": {"epochs": 0}}))
    assert "field 'training.epochs'" in message


def test_multilabel_needs_several_labels(tmp_path):
    message = error_for(write_spec(tmp_path, {"task": "multilabel"}))
    assert "field 'label'" in message and "multilabel" in message


def test_model_name_must_be_a_safe_folder_name(tmp_path):
    message = error_for(write_spec(tmp_path, {"name": "../taxi"}))
    assert "field 'name'" in message


def test_not_a_mapping(tmp_path):
    assert "YAML mapping" in error_for(write_spec(tmp_path, text="- just\n- a list\n"))


def test_yaml_object_tags_are_rejected(tmp_path):
    text = TAXI_SPEC.read_text() + "\nextra: !!python/object/apply:os.system ['echo pwned']\n"
    assert "not a valid YAML spec" in error_for(write_spec(tmp_path, text=text))


def test_spec_file_not_found(tmp_path):
    assert "spec file not found" in error_for(tmp_path / "nope.yaml")


def test_relative_source_is_relative_to_the_spec_file(tmp_path, taxi_slice):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "trips.csv").write_bytes(taxi_slice.read_bytes())
    spec = load_spec(write_spec(tmp_path, {"data": {"source": "data/trips.csv"}}))
    assert spec.data.source == str(tmp_path / "data" / "trips.csv")


def test_glob_source(tmp_path, taxi_slice):
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_bytes(taxi_slice.read_bytes())
    spec = load_spec(write_spec(tmp_path, {"data": {"source": "*.csv"}}))
    assert spec.data.source.endswith("*.csv")


def test_files_with_different_headers(tmp_path, taxi_slice):
    (tmp_path / "a.csv").write_bytes(taxi_slice.read_bytes())
    (tmp_path / "b.csv").write_text("x,y\n1,2\n")
    message = error_for(write_spec(tmp_path, {"data": {"source": "*.csv"}}))
    assert "field 'data.source'" in message and "other columns" in message


def test_empty_csv(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    message = error_for(write_spec(tmp_path, {"data": {"source": "empty.csv"}}))
    assert "field 'data.source'" in message and "empty" in message


def test_schedule_must_be_cron_or_preset(tmp_path):
    message = error_for(write_spec(tmp_path, {"schedule": {"training": "every monday"}}))
    assert "field 'schedule.training'" in message and "cron" in message
    spec = load_spec(write_spec(tmp_path, {"schedule": {"training": "0 3 * * 1", "monitoring": "@hourly"}}))
    assert spec.schedule.training == "0 3 * * 1"


def test_drift_thresholds_are_fractions_of_known_columns(tmp_path):
    message = error_for(write_spec(tmp_path, {"drift": {"numeric_jsd": 1.5}}))
    assert "field 'drift.numeric_jsd'" in message
    message = error_for(write_spec(tmp_path, {"drift": {"features": {"fares": 0.2}}}))
    assert "field 'drift.features'" in message and "'fares'" in message


def test_spanned_source_before_any_span_landed(tmp_path):
    data = {**VALID["data"], "source": "landing/span-{SPAN}/*.csv", "window_spans": 2}
    spec = load_spec(write_spec(tmp_path, {"data": data}))
    assert spec.data.spanned and spec.data.window_spans == 2
    assert spec.data.source == str(tmp_path / "landing/span-{SPAN}/*.csv")


def test_span_token_only_once(tmp_path):
    data = {**VALID["data"], "source": "span-{SPAN}/part-{SPAN}.csv"}
    assert "field 'data.source'" in error_for(write_spec(tmp_path, {"data": data}))


def test_deployment_defaults_build_every_target():
    deployment = load_spec(TAXI_SPEC).deployment
    assert deployment.tflite == ["float32", "dynamic", "int8"]
    assert deployment.tfjs == ["float32", "uint8"]
    assert deployment.parity.tolerance == 0.01


def test_unknown_tflite_variant_is_named(tmp_path):
    message = error_for(write_spec(tmp_path, {"deployment": {"tflite": ["float32", "int4"]}}))
    assert "field 'deployment.tflite.1'" in message and "'int8'" in message


def test_variant_listed_twice(tmp_path):
    message = error_for(write_spec(tmp_path, {"deployment": {"tfjs": ["uint8", "uint8"]}}))
    assert "field 'deployment.tfjs'" in message and "uint8 listed more than once" in message


def test_pruning_sparsity_must_be_a_fraction(tmp_path):
    message = error_for(write_spec(tmp_path, {"deployment": {"pruning": {"target_sparsity": 1.5}}}))
    assert "field 'deployment.pruning.target_sparsity'" in message and "less than 1" in message


def test_feature_list_of_non_names(tmp_path):
    """Found by test_spec_fuzz.py: `features: [[]]` raised TypeError instead of a SpecError."""
    message = error_for(write_spec(tmp_path, {"features": [[]]}))
    assert "field 'features': a list of features must hold column names only" in message


def test_positive_class_applies_to_binary_tasks_only(tmp_path):
    changes = {"task": "regression", "metric": {"name": "mse", "threshold": 1.0}, "positive_class": "yes"}
    message = error_for(write_spec(tmp_path, changes))
    assert "positive_class" in message and "applies to binary tasks, not regression" in message


def write_examples(path: Path, rows: list[dict[str, float | str]]) -> Path:
    """A gzip TFRecord file of tf.Examples, as an earlier pipeline or another tool writes them."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in rows:
            feature = {
                name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
                if isinstance(value, str)
                else tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
                for name, value in row.items()
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return path


def test_tfrecord_and_parquet_sources_are_checked_against_their_columns(tmp_path):
    import pandas as pd

    from pipelines.paths import RunPaths
    from pipelines.workflow import training

    rows = [{"fare": 4.5, "company": "Flash", "big_tipper": 1.0}] * 3
    records = write_examples(tmp_path / "trips.tfrecord.gz", rows)
    base = {
        "label": "big_tipper",
        "features": {"fare": "numeric", "company": "categorical"},
        "exclude": [],
        "evaluation": {},
    }
    spec = load_spec(write_spec(tmp_path, {**base, "data": {"source": str(records), "format": "tfrecord"}}))
    components = {c.id: c for c in training.create_components(spec, RunPaths.for_spec(spec.name, tmp_path))}
    assert type(components["ImportExampleGen"]).__name__ == "ImportExampleGen"
    message = error_for(
        write_spec(
            tmp_path, {**base, "label": "tips", "data": {"source": str(records), "format": "tfrecord"}}
        )
    )
    assert "column 'tips' is not in the data (columns: big_tipper, company, fare)" in message
    pd.DataFrame(rows).to_parquet(tmp_path / "trips.parquet")
    parquet = {"source": str(tmp_path / "trips.parquet"), "format": "parquet"}
    spec = load_spec(write_spec(tmp_path, {**base, "data": parquet}))
    components = {c.id: c for c in training.create_components(spec, RunPaths.for_spec(spec.name, tmp_path))}
    assert type(components["ParquetExampleGen"]).__name__ == "ParquetExampleGen"
    message = error_for(write_spec(tmp_path, {**base, "data": {"source": str(records), "format": "parquet"}}))
    assert "is not a Parquet file" in message and "check data.format" in message
    spanned = {"source": str(tmp_path / "span-{SPAN}" / "*.parquet"), "format": "parquet"}
    assert "spans and their drift check read CSV files only" in error_for(
        write_spec(tmp_path, {**base, "data": spanned})
    )


def test_auto_columns_of_iso_dates_are_found_as_datetime(tmp_path):
    import pandas as pd

    from components.core.spec import FeatureKind

    rows = {
        "pickup": ["2014-05-16T19:45:00", "2014-05-17 08:00", "NA", "2014-05-18"],
        "note": ["2014-05-16", "soon", "", "2014-05-18"],
        "code": ["2014-05-16", "2014-05-17", "2014-05-18", "2014-05-19"],
        "fare": ["4.5", "6", "7", "8"],
        "big_tipper": ["1", "0", "1", "0"],
    }
    source = tmp_path / "trips.csv"
    pd.DataFrame(rows).to_csv(source, index=False)
    five_lines = {"data": {"source": str(source)}, "features": None, "exclude": [], "evaluation": {}}
    spec = load_spec(write_spec(tmp_path, five_lines, remove=("tuning",)))
    assert spec.found_datetimes == ("pickup", "code")  # 'note' holds text that is no date
    kinds = spec.feature_columns(list(rows))
    assert kinds["pickup"] == FeatureKind.DATETIME and kinds["note"] == FeatureKind.AUTO
    named = load_spec(
        write_spec(tmp_path, {**five_lines, "features": {"code": "categorical", "pickup": "auto"}})
    )
    assert named.found_datetimes == ("pickup",)  # a kind the spec names is kept
    frame = pd.DataFrame(
        {"pickup": pd.to_datetime(rows["code"]), "fare": [4.5, 6, 7, 8], "big_tipper": [1, 0, 1, 0]}
    )
    frame.to_parquet(tmp_path / "trips.parquet")
    parquet = {**five_lines, "data": {"source": str(tmp_path / "trips.parquet"), "format": "parquet"}}
    assert load_spec(write_spec(tmp_path, parquet)).found_datetimes == ("pickup",)


def test_a_numeric_positive_class_names_the_value_as_written(tmp_path):
    assert load_spec(write_spec(tmp_path, {"positive_class": 4})).positive_class == "4"
    assert load_spec(write_spec(tmp_path, {"positive_class": "yes"})).positive_class == "yes"


def test_tuning_is_on_by_default_and_off_when_the_spec_says_so(tmp_path):
    from components.core.spec import DEFAULT_TUNING_MINUTES, ProblemSpec

    default = load_spec(
        write_spec(tmp_path, remove=("tuning",)) if "tuning" in VALID else write_spec(tmp_path)
    )
    assert default.tuning is not None and default.tuning.budget_minutes == DEFAULT_TUNING_MINUTES
    assert default.tuning.search == "bayesian"
    for written in ("tuning: off", "tuning: false", "tuning: no", "tuning: null", "tuning: 'off'"):
        text = (
            yaml.safe_dump({key: value for key, value in VALID.items() if key != "tuning"}) + written + "\n"
        )
        spec = load_spec(write_spec(tmp_path, text=text))
        assert spec.tuning is None, written
        assert ProblemSpec.from_config(spec.to_config()).tuning is None, "off survives the round trip"
    on = load_spec(write_spec(tmp_path, {"tuning": True}))
    assert on.tuning == default.tuning
    budget = load_spec(write_spec(tmp_path, {"tuning": {"budget_minutes": 0.5, "search": "random"}}))
    assert (budget.tuning.budget_minutes, budget.tuning.search) == (0.5, "random")
    assert "tuning.budget_minutes" in error_for(write_spec(tmp_path, {"tuning": {"budget_minutes": 0}}))


def test_an_epoch_is_one_pass_over_the_training_rows_unless_the_spec_fixes_its_steps(tmp_path):
    spec = load_spec(write_spec(tmp_path, {"training": {"batch_size": 64}}))
    assert spec.training.steps_per_epoch is None and spec.training.total_steps is None
    assert spec.training.epochs == 100 and spec.training.early_stopping_patience == 3
    fixed = load_spec(write_spec(tmp_path, {"training": {"epochs": 5, "steps_per_epoch": 20}}))
    assert fixed.training.total_steps == 100


def test_a_log_label_scale_is_for_regression_only(tmp_path):
    message = error_for(write_spec(tmp_path, {"training": {"label_scale": "log"}}))  # the taxi spec: binary
    assert "training.label_scale" in message and "regression" in message
    regression = {"task": "regression", "label": "fare", "metric": {"name": "mae", "threshold": 5.0}}
    features = {name: kind for name, kind in VALID["features"].items() if name != "fare"}
    spec = load_spec(
        write_spec(tmp_path, {**regression, "features": features, "training": {"label_scale": "log"}})
    )
    assert spec.training.label_scale == "log" and spec.training.numeric_encoding == "zscore"
    assert "training.numeric_encoding" in error_for(
        write_spec(tmp_path, {"training": {"numeric_encoding": "x"}})
    )


def test_a_gated_slice_names_a_column_of_the_data(tmp_path):
    gated = load_spec(write_spec(tmp_path, {"evaluation": {"slice_thresholds": {"company": 0.8}}}))
    assert gated.evaluation.sliced_features == ["company"] and gated.evaluation.slice_min_rows == 30
    message = error_for(write_spec(tmp_path, {"evaluation": {"slice_thresholds": {"compny": 0.8}}}))
    assert "evaluation.slice_thresholds" in message and "compny" in message
