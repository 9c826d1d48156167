"""Scale up until it overfits, then regularize and tune (`tuner_fn`, called by TFX Tuner).

1. Capacity sweep: each network of `tuning.capacity` (narrow and shallow first) trains on the train
   split for up to `tuning.max_epochs`, validated on the eval split; the sweep stops at the first network
   that overfits (validation loss turned up while training loss kept falling) and keeps every curve.
2. KerasTuner (Bayesian optimization by default, or random search) over units, depth, dropout, L1/L2,
   learning rate and batch size around that network, the numeric encoding (z-score, or beside it an
   embedding of the training-quantile bucket) and, for a skewed regression label of values 0 or more,
   the label's scale (linear, or log(1 + label) with predictions back in the label's units); each
   trial is scored by the spec's evaluation protocol (hold-out, K-fold or iterated K-fold), the mean of
   the spec's metric over the validation folds, in the label's units. The test split is never read here.
Both share `tuning.budget_minutes` of wall time: the sweep stops after the network under way once it is
spent, and the oracle starts no new trial (beyond the first) after it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import keras_tuner as kt
import numpy as np
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from keras_tuner.engine import trial as trial_module
from scipy import stats
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.tuner.component import TunerFnResult

from components.core import evaluation
from components.core.spec import ProblemSpec, TaskType, TrainingSpec
from components.modules.folds import Arrays, Fold, arrays_from_dataset, fold_plan
from components.modules.model_builder import (
    FeatureInput,
    build_model,
    in_label_units,
    target_scale,
    training_labels,
    with_quantile_edges,
)
from components.modules.run_fn import feature_inputs, make_dataset, output_count, training_spec

DROPOUT_RANGE = (0.0, 0.5, 0.1)
L1_CHOICES = [0.0, 1e-5, 1e-4]
L2_CHOICES = [0.0, 1e-5, 1e-4, 1e-3]
LEARNING_RATES = [3e-4, 1e-3, 3e-3]
BATCH_SIZES = [32, 64, 128, 256]


@dataclass
class SweepStep:
    """One network of the capacity sweep and its learning curves."""

    hidden_units: list[int]
    loss: list[float]
    val_loss: list[float]
    best_epoch: int  # 1-based epoch of the lowest validation loss
    overfit: bool

    @property
    def name(self) -> str:
        return "x".join(str(units) for units in self.hidden_units)


def overfits(loss: list[float], val_loss: list[float], patience: int) -> bool:
    """Validation loss has not improved for `patience` epochs while training loss kept falling."""
    best = int(np.argmin(val_loss))
    return best <= len(val_loss) - 1 - patience and loss[-1] < loss[best]


def fit_quietly(
    model: keras.Model, train: Arrays, validation: Arrays, epochs: int, batch_size: int, callbacks
):
    return model.fit(
        train.features,
        train.labels,
        validation_data=(validation.features, validation.labels),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=callbacks,
        verbose=0,
    )


def capacity_sweep(
    build: Callable[[list[int]], keras.Model],
    train: Arrays,
    validation: Arrays,
    ladder: list[list[int]],
    max_epochs: int,
    patience: int,
    batch_size: int,
    deadline: float = math.inf,
) -> list[SweepStep]:
    """Trains each network of `ladder` in turn and stops at the first that overfits, or once the
    budget's `deadline` (time.monotonic) has passed."""
    steps: list[SweepStep] = []
    for hidden_units in ladder:
        if steps and time.monotonic() >= deadline:
            logging.info("Capacity sweep: the tuning budget is spent; %s is the widest tried", steps[-1].name)
            break
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience)
        history = fit_quietly(build(hidden_units), train, validation, max_epochs, batch_size, [stop])
        loss = [float(x) for x in history.history["loss"]]
        val_loss = [float(x) for x in history.history["val_loss"]]
        step = SweepStep(
            hidden_units, loss, val_loss, int(np.argmin(val_loss)) + 1, overfits(loss, val_loss, patience)
        )
        steps.append(step)
        logging.info(
            "Capacity sweep: %s trained %d epochs, best validation loss %.4f at epoch %d%s",
            step.name,
            len(loss),
            min(val_loss),
            step.best_epoch,
            ", overfits: stop" if step.overfit else "",
        )
        if step.overfit:
            break
    return steps


def layer_widths(base_units: list[int], units: int, depth: int) -> list[int]:
    """The swept network's shape scaled so its first layer has `units`, cut or extended (halving) to
    `depth` layers."""
    scale = units / base_units[0]
    widths = [max(2, round(width * scale)) for width in base_units][:depth]
    while len(widths) < depth:
        widths.append(max(2, widths[-1] // 2))
    return widths


@dataclass(frozen=True)
class SearchChoices:
    """Which data-dependent choices the search makes beside the network's: the numeric encoding (when
    there are numeric features) and the label's scale (when a regression label is skewed)."""

    numeric_encoding: bool
    log_label: bool


def search_space(hp: kt.HyperParameters, base_units: list[int], choices: SearchChoices) -> dict:
    """Registers the search space and returns the trial's TrainingSpec fields."""
    widest = base_units[0]
    units = hp.Choice("units", sorted({max(2, widest // 2), widest, widest * 2}))
    depth = hp.Int("depth", max(1, len(base_units) - 1), len(base_units) + 1)
    fields = {
        "hidden_units": layer_widths(base_units, units, depth),
        "dropout": hp.Float("dropout", *DROPOUT_RANGE[:2], step=DROPOUT_RANGE[2]),
        "l1": hp.Choice("l1", L1_CHOICES),
        "l2": hp.Choice("l2", L2_CHOICES),
        "learning_rate": hp.Choice("learning_rate", LEARNING_RATES),
        "batch_size": hp.Choice("batch_size", BATCH_SIZES),
    }
    if choices.numeric_encoding:
        fields["numeric_encoding"] = hp.Choice("numeric_encoding", ["zscore", "buckets"])
    if choices.log_label:
        fields["label_scale"] = hp.Choice("label_scale", ["linear", "log"])
    return fields


# A label's skewness (Fisher-Pearson) from which a log scale is worth a try: prices, counts, durations.
SKEWED_LABEL = 1.0


def skewed_label(spec: ProblemSpec, labels: np.ndarray) -> bool:
    """A regression label of values 0 or more whose distribution has a long right tail."""
    if spec.task != TaskType.REGRESSION or len(labels) < 3 or labels.min() < 0:
        return False
    return float(stats.skew(labels.ravel())) >= SKEWED_LABEL


class SpecHyperModel(kt.HyperModel):
    """The spec's network around the swept capacity, with the trial's regularization, learning rate,
    numeric encoding and label scale."""

    def __init__(
        self,
        spec: ProblemSpec,
        features: list[FeatureInput],
        outputs: int,
        base_units: list[int],
        labels: np.ndarray,
        choices: SearchChoices,
    ):
        super().__init__(name=f"{spec.name}_network")
        self.spec, self.features, self.outputs, self.base_units = spec, features, outputs, base_units
        self.labels, self.choices = labels, choices

    def training(self, hp: kt.HyperParameters) -> TrainingSpec:
        return self.spec.training.model_copy(update=search_space(hp, self.base_units, self.choices))

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        training = self.training(hp)
        return build_model(self.features, self.spec, self.outputs, training, self.scale(training))

    def scale(self, training: TrainingSpec) -> tuple[float, float] | None:
        if self.spec.task != TaskType.REGRESSION:
            return None
        return target_scale(training_labels(self.labels, training))


@dataclass
class TrialRecord:
    hidden_units: list[int]
    fold_scores: list[float]
    best_epochs: list[int]
    loss: list[float]  # first fold's learning curves
    val_loss: list[float]
    seconds: float = 0.0  # wall time of the trial, every fold
    admitted_at: float = 0.0  # seconds after the budget began (the sweep's start) that the oracle let it in


class ProtocolTuner(kt.Tuner):
    """KerasTuner whose trials are scored by the spec's evaluation protocol over in-memory folds."""

    def __init__(
        self,
        spec: ProblemSpec,
        data: Arrays,
        folds: list[Fold],
        sweep: list[SweepStep],
        started: float,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.spec, self.data, self.folds, self.sweep = spec, data, folds, sweep
        self.started = started  # time.monotonic() when the sweep began: the budget counts from here
        self.records: dict[str, TrialRecord] = {}

    @property
    def objective_name(self) -> str:
        return objective_name(self.spec)

    def run_trial(self, trial, *args, **kwargs) -> dict[str, float]:
        hypermodel: SpecHyperModel = self.hypermodel
        training = hypermodel.training(trial.hyperparameters)
        admitted_at = self.oracle.admitted[trial.trial_id] - self.started
        record = TrialRecord(training.hidden_units, [], [], [], [], admitted_at=admitted_at)
        started = time.monotonic()
        for fold in self.folds:
            score, history = self._fit_fold(trial.hyperparameters, fold)
            record.fold_scores.append(score)
            record.best_epochs.append(int(np.argmin(history["val_loss"])) + 1)
            if not record.loss:
                record.loss = [float(x) for x in history["loss"]]
                record.val_loss = [float(x) for x in history["val_loss"]]
        record.seconds = round(time.monotonic() - started, 2)
        self.records[trial.trial_id] = record
        mean = float(np.mean(record.fold_scores))
        logging.info(
            "Trial %s: %s %.4f over %d folds", trial.trial_id, self.objective_name, mean, len(self.folds)
        )
        return {self.objective_name: mean}

    def _fit_fold(self, hp: kt.HyperParameters, fold: Fold) -> tuple[float, dict]:
        """Fits on the fold's training rows (labels on the trial's scale) and scores the spec's metric
        on its validation rows in the label's units."""
        training = self.hypermodel.training(hp)
        model = self.hypermodel.build(hp)
        train, validation = self.data.take(fold.train), self.data.take(fold.validation)
        stop = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=self.spec.training.early_stopping_patience, restore_best_weights=True
        )
        history = fit_quietly(
            model,
            Arrays(train.features, training_labels(train.labels, training)),
            Arrays(validation.features, training_labels(validation.labels, training)),
            self.spec.tuning.max_epochs,
            training.batch_size,
            [stop],
        )
        metric = evaluation.keras_metric(self.spec)
        predictions = in_label_units(model, training).predict(validation.features, verbose=0)
        metric.update_state(validation.labels, predictions)
        return float(metric.result().numpy()), history.history

    def best_record(self) -> TrialRecord:
        best = self.oracle.get_best_trials(1)[0]
        return self.records[best.trial_id]

    def final_training_values(self) -> dict:
        """What the final Trainer needs beyond the searched values: the network, epochs and steps per
        epoch for one pass over train + eval (the best trial's mean best epoch)."""
        record = self.best_record()
        best = self.oracle.get_best_trials(1)[0].hyperparameters
        batch_size = self.hypermodel.training(best).batch_size
        return {
            "hidden_units": record.hidden_units,
            "epochs": max(1, round(float(np.mean(record.best_epochs)))),
            "steps_per_epoch": max(1, math.ceil(len(self.data) / batch_size)),
        }

    def budget_report(self) -> dict:
        """What the budget allowed and what the sweep and the search spent (wall time)."""
        budget = self.spec.tuning.budget_minutes * 60
        spent = time.monotonic() - self.started
        trials = len(self.records)
        return {
            "budget_seconds": round(budget, 1),
            "spent_seconds": round(spent, 1),
            "search": self.spec.tuning.search,
            "trials_run": trials,
            "max_trials": self.spec.tuning.trials,
            "stopped_by": "trials" if trials >= self.spec.tuning.trials else "budget",
            "best": dict(self.oracle.get_best_trials(1)[0].hyperparameters.values),
        }

    def protocol_report(self) -> dict:
        return {
            "protocol": self.spec.evaluation.describe(),
            "objective": self.objective_name,
            "folds": [
                {
                    "repetition": f.repetition,
                    "fold": f.index,
                    "train_rows": len(f.train),
                    "validation_rows": len(f.validation),
                }
                for f in self.folds
            ],
            "pool_rows": len(self.data),
            "trials": {trial_id: asdict(record) for trial_id, record in self.records.items()},
            "capacity_sweep": [{**asdict(step), "name": step.name} for step in self.sweep],
            "budget": self.budget_report(),
        }


def objective_name(spec: ProblemSpec) -> str:
    return f"val_{spec.metric.name}"


class BudgetedOracle:
    """An oracle mixin that starts no new trial once the budget's deadline (time.monotonic) has passed,
    except the first: KerasTuner's search loop ends when `populate_space` answers STOPPED. `admitted`
    keeps, per trial, the time the deadline was checked against when the trial was let through."""

    def __init__(self, *args, deadline: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.deadline = deadline
        self.admitted: dict[str, float] = {}

    def populate_space(self, trial_id: str) -> dict:
        now = time.monotonic()
        if self.trials and now >= self.deadline:
            logging.info("Tuning budget spent: no trial after %d", len(self.trials))
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        self.admitted[trial_id] = now
        return super().populate_space(trial_id)


class BudgetedBayesianOracle(BudgetedOracle, kt.oracles.BayesianOptimizationOracle):
    """Bayesian optimization (a Gaussian process over the search space), within the budget."""


class BudgetedRandomOracle(BudgetedOracle, kt.oracles.RandomSearchOracle):
    """Random search, within the budget."""


def make_oracle(spec: ProblemSpec, deadline: float) -> kt.Oracle:
    oracle = BudgetedBayesianOracle if spec.tuning.search == "bayesian" else BudgetedRandomOracle
    return oracle(
        objective=kt.Objective(objective_name(spec), "max" if spec.metric.higher_is_better else "min"),
        max_trials=spec.tuning.trials,
        seed=spec.tuning.seed,
        deadline=deadline,
    )


def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
    spec = training_spec(fn_args.custom_config)
    if spec.tuning is None:
        raise ValueError("the Tuner runs only when the spec has a 'tuning' section")
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    features, outputs = feature_inputs(spec, tft_output), output_count(spec, tft_output)
    train = arrays_from_dataset(
        make_dataset(fn_args.train_files, fn_args.data_accessor, tft_output, spec, repeat=False)
    )
    held_out = arrays_from_dataset(
        make_dataset(fn_args.eval_files, fn_args.data_accessor, tft_output, spec, repeat=False)
    )
    logging.info(
        "Tuning on %d train and %d eval rows (%s)", len(train), len(held_out), spec.evaluation.describe()
    )

    scale = target_scale(train.labels) if spec.task == TaskType.REGRESSION else None
    features = with_quantile_edges(features, train.features)
    pool = Arrays.concat(train, held_out)
    choices = SearchChoices(
        numeric_encoding=any(not feature.is_categorical for feature in features),
        log_label=skewed_label(spec, pool.labels),
    )
    logging.info(
        "Search space: numeric encoding %s, label scale %s",
        "z-score or quantile buckets" if choices.numeric_encoding else "none (no numeric feature)",
        "linear or log (skewed label)" if choices.log_label else "linear",
    )

    def plain_network(hidden_units: list[int]) -> keras.Model:
        plain = spec.training.model_copy(
            update={
                "hidden_units": hidden_units,
                "dropout": 0.0,
                "l1": 0.0,
                "l2": 0.0,
                "numeric_encoding": "zscore",
                "label_scale": "linear",
            }
        )
        return build_model(features, spec, outputs, plain, scale)

    started = time.monotonic()
    deadline = started + spec.tuning.budget_minutes * 60
    logging.info(
        "Tuning budget: %.1f minutes for the capacity sweep and the search", spec.tuning.budget_minutes
    )
    keras.utils.set_random_seed(spec.tuning.seed)
    sweep = capacity_sweep(
        plain_network,
        train,
        held_out,
        spec.tuning.capacity,
        spec.tuning.max_epochs,
        spec.training.early_stopping_patience,
        spec.training.batch_size,
        deadline,
    )
    chosen = next((step for step in sweep if step.overfit), sweep[-1])
    tuner = ProtocolTuner(
        spec=spec,
        data=pool,
        folds=fold_plan(len(train), len(held_out), spec.evaluation),
        sweep=sweep,
        started=started,
        hypermodel=SpecHyperModel(spec, features, outputs, chosen.hidden_units, pool.labels, choices),
        oracle=make_oracle(spec, deadline),
        directory=fn_args.working_dir,
        project_name=f"{spec.name}_tuning",
        overwrite=True,
    )
    return TunerFnResult(tuner=tuner, fit_kwargs={})
