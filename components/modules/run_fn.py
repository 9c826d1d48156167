"""The Trainer step, generated from the problem spec (`run_fn`, called by TFX Trainer)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx_bsl.public import tfxio

from components.core.artifacts import HISTORY_FILE, PROBLEM_SPEC_KEY, RUN_PARAMETERS_KEY
from components.core.spec import FeatureKind, ProblemSpec, TaskType
from components.modules.datetimes import PARTS, elapsed_name, part_buckets, part_name
from components.modules.model_builder import (
    FeatureInput,
    build_model,
    in_label_units,
    target_scale,
    training_labels,
    with_quantile_edges,
)
from components.modules.preprocessing_fn import (
    LABEL_CLASSES_VOCABULARY,
    categorical_bucket_count,
    vocabulary_name,
)
from components.modules.signatures import raw_feature_kinds, save_with_signatures

PRUNING_FILE = "pruning.json"


def feature_inputs(spec: ProblemSpec, tft_output: tft.TFTransformOutput) -> list[FeatureInput]:
    """The model's inputs: each feature with its number of categorical buckets (0 if numeric)."""
    inputs = []
    oov = spec.preprocessing.vocabulary.oov_buckets
    for name, kind in raw_feature_kinds(spec, tft_output).items():
        if kind == FeatureKind.DATETIME:
            inputs += [FeatureInput(part_name(name, part), part_buckets(part)) for part in PARTS]
            if spec.preprocessing.datetime_elapsed:
                inputs.append(FeatureInput(elapsed_name(name)))
            continue
        buckets = 0
        if kind == FeatureKind.CATEGORICAL:
            size = len(tft_output.vocabulary_by_name(vocabulary_name(name)))
            buckets = categorical_bucket_count(size, oov)
        inputs.append(FeatureInput(name, buckets))
    return inputs


def output_count(spec: ProblemSpec, tft_output: tft.TFTransformOutput) -> int:
    """Units of the last layer: classes for multiclass, labels for multilabel, else 1."""
    if spec.task == TaskType.MULTICLASS:
        return len(tft_output.vocabulary_by_name(LABEL_CLASSES_VOCABULARY))
    if spec.task == TaskType.MULTILABEL:
        return len(spec.label_columns)
    return 1


# A split whose files hold at most this many bytes is transformed once and its rows kept in memory; a
# larger one is read and transformed again on every pass.
CACHE_MAX_FILE_BYTES = 256 * 1024**2
SHUFFLE_BUFFER_ROWS = 10_000  # as TFXIO's own shuffle


def files_bytes(files: list[str]) -> int:
    """The total size of the files the patterns name."""
    return sum(tf.io.gfile.stat(path).length for pattern in files for path in tf.io.gfile.glob(pattern))


def make_dataset(
    files: list[str],
    data_accessor: DataAccessor,
    tft_output: tft.TFTransformOutput,
    spec: ProblemSpec,
    repeat: bool,
    shuffle: bool | None = None,
) -> tf.data.Dataset:
    """(features, label) batches of raw examples put through the transform graph; the labels are
    stacked for multilabel. Shuffled (again each pass, seeded) when repeated unless told otherwise.

    A split of modest size is read and transformed once and its transformed rows cached in memory: on
    the 64-column digits table, reading and transforming the rows again on every pass was most of
    the Trainer's time."""
    cached = files_bytes(files) <= CACHE_MAX_FILE_BYTES
    shuffle = repeat if shuffle is None else shuffle
    dataset = data_accessor.tf_dataset_factory(
        files,
        tfxio.TensorFlowDatasetOptions(
            batch_size=spec.training.batch_size,
            num_epochs=1 if cached or not repeat else None,
            shuffle=shuffle and not cached,
            shuffle_seed=spec.training.seed,
        ),
        tft_output.raw_metadata.schema,
    )
    labels = spec.label_columns
    transform_layer = tft_output.transform_features_layer()

    # Traced as it is: AutoGraph would rewrite TF Transform's and Keras' call paths for every dataset
    # (seconds each) and the function has no tensor-dependent Python control flow.
    @tf.autograph.experimental.do_not_convert
    def split(raw_batch: dict[str, tf.Tensor]):
        batch = transform_layer(raw_batch)
        label_values = [batch.pop(name) for name in labels]
        if spec.task == TaskType.MULTILABEL:
            return batch, tf.concat([tf.cast(v, tf.float32) for v in label_values], axis=1)
        return batch, label_values[0]

    dataset = dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE)
    if cached:
        dataset = dataset.unbatch().cache()
        if shuffle:
            dataset = dataset.shuffle(
                SHUFFLE_BUFFER_ROWS, seed=spec.training.seed, reshuffle_each_iteration=True
            )
        if repeat:
            dataset = dataset.repeat()
        dataset = dataset.batch(spec.training.batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


def training_spec(custom_config: dict) -> ProblemSpec:
    """The spec, with this run's epochs / steps_per_epoch when the run was given any."""
    spec = ProblemSpec.from_config(custom_config[PROBLEM_SPEC_KEY])
    overrides = {
        name: int(value)
        for name, value in custom_config.get(RUN_PARAMETERS_KEY, {}).items()
        if str(value).strip() not in ("", "None")
    }
    for name, value in overrides.items():
        if value < 1:
            raise ValueError(f"run parameter '{name}' must be 1 or more, got {value}")
    if not overrides:
        return spec
    logging.info("Run parameters override the spec's training budget: %s", overrides)
    training = spec.training.model_copy(update=overrides)
    return spec.model_copy(update={"training": training})


SAMPLE_BATCHES = 50


@dataclass(frozen=True)
class TrainingSample:
    """The first training batches: numeric features' values and the labels, for what the network is
    built around (quantile edges, the regression target's scale)."""

    numeric: dict[str, np.ndarray]
    labels: np.ndarray

    @classmethod
    def take(cls, train: tf.data.Dataset, features: list[FeatureInput]) -> TrainingSample:
        numeric = {feature.name: [] for feature in features if not feature.is_categorical}
        labels = []
        for batch, batch_labels in train.take(SAMPLE_BATCHES):
            for name, values in numeric.items():
                values.append(batch[name].numpy())
            labels.append(batch_labels.numpy())
        return cls({name: np.concatenate(v) for name, v in numeric.items()}, np.concatenate(labels))


def model_target_scale(spec: ProblemSpec, labels: np.ndarray) -> tuple[float, float] | None:
    """A regression label's mean and standard deviation (of log(1 + label) on the log scale)."""
    if spec.task != TaskType.REGRESSION:
        return None
    if spec.training.label_scale == "log" and labels.min() < 0:
        raise ValueError(
            f"label column '{spec.label_columns[0]}' holds negative values (as low as {labels.min():g}): "
            "'training.label_scale: log' needs labels of 0 or more; set it to linear"
        )
    return target_scale(training_labels(labels, spec.training))


def on_log_scale(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """(features, log(1 + label)) batches: what a network on the log scale is fitted to."""
    return dataset.map(lambda features, label: (features, tf.math.log1p(label)))


TUNED_FIELDS = (
    "hidden_units",
    "dropout",
    "l1",
    "l2",
    "learning_rate",
    "batch_size",
    "epochs",
    "steps_per_epoch",
    "numeric_encoding",
    "label_scale",
)


def tuned_spec(spec: ProblemSpec, hyperparameters: dict | None) -> ProblemSpec:
    """The spec with the Tuner's best values (network, regularization, learning rate, budget), if any."""
    if not hyperparameters:
        return spec
    values = hyperparameters["values"]
    update = {name: values[name] for name in TUNED_FIELDS if name in values}
    logging.info("Final model with the tuned values: %s", update)
    return spec.model_copy(update={"training": spec.training.model_copy(update=update)})


class TrainingDivergedError(ValueError):
    """The training loss became NaN or infinite: the weights are ruined; nothing after may use them."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is not a finite number, naming the batch and what to
    change. Keras' TerminateOnNaN stops quietly and leaves a model that predicts NaN; early stopping's
    restored weights could hide the divergence behind a shorter training."""

    def __init__(self, learning_rate: float):
        super().__init__()
        self.learning_rate = learning_rate
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = float((logs or {}).get("loss", 0.0))
        if not np.isfinite(loss):
            raise TrainingDivergedError(
                f"training diverged: the loss became {loss} at epoch {self.epoch + 1}, batch {batch + 1} "
                f"(training.learning_rate = {self.learning_rate:g}); lower training.learning_rate (for "
                f"example to {self.learning_rate / 10:g}), or look for extreme values in the numeric features"
            )


def fit(model: keras.Model, spec: ProblemSpec, train: tf.data.Dataset, validation: tf.data.Dataset | None):
    """Trains with early stopping on the eval split; the final model of a tuned run (trained on train +
    eval, no validation data left) trains for the tuned number of epochs. A loss that is not a finite
    number stops training with `TrainingDivergedError`."""
    callbacks: list[keras.callbacks.Callback] = [StopOnNonFiniteLoss(spec.training.learning_rate)]
    if validation is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=spec.training.early_stopping_patience, restore_best_weights=True
            )
        )
    return model.fit(
        train,
        epochs=spec.training.epochs,
        steps_per_epoch=spec.training.steps_per_epoch,
        validation_data=validation,
        callbacks=callbacks,
        verbose=2,
    )


def run_fn(fn_args: FnArgs) -> None:
    spec = tuned_spec(training_spec(fn_args.custom_config), fn_args.hyperparameters)
    keras.utils.set_random_seed(spec.training.seed)
    tf.config.experimental.enable_op_determinism()
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    # With no steps per epoch, an epoch is one pass over the training rows: a finite, reshuffled dataset.
    fixed_steps = spec.training.steps_per_epoch is not None
    train = make_dataset(
        fn_args.train_files, fn_args.data_accessor, tft_output, spec, repeat=fixed_steps, shuffle=True
    )
    validation = make_dataset(fn_args.eval_files, fn_args.data_accessor, tft_output, spec, repeat=False)
    features = feature_inputs(spec, tft_output)
    scale = None
    if spec.task == TaskType.REGRESSION or spec.training.numeric_encoding == "buckets":
        sample = TrainingSample.take(train, features)
        scale = model_target_scale(spec, sample.labels)
        if spec.training.numeric_encoding == "buckets":
            features = with_quantile_edges(features, sample.numeric)
    model = build_model(features, spec, outputs=output_count(spec, tft_output), target_scale=scale)
    if spec.training.label_scale == "log":
        train, validation = on_log_scale(train), on_log_scale(validation)
    history = fit(model, spec, train, None if fn_args.hyperparameters else validation)
    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    if spec.deployment.pruning is not None:
        from components.modules.pruning import prune

        model, pruning_record = prune(model, train, validation, spec)
        with open(os.path.join(fn_args.model_run_dir, PRUNING_FILE), "w") as handle:
            json.dump(pruning_record, handle, indent=1)
    exported = in_label_units(model, spec.training)
    save_with_signatures(exported, spec, tft_output, fn_args.serving_model_dir, features)
    with open(os.path.join(fn_args.model_run_dir, HISTORY_FILE), "w") as handle:
        json.dump({k: [float(x) for x in v] for k, v in history.history.items()}, handle, indent=1)
    logging.info("Model saved to %s after %d epochs", fn_args.serving_model_dir, len(history.epoch))
