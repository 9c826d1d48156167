"""ProtocolTuner component: TFX's own Tuner component with the executor in this package."""

from __future__ import annotations

from tfx.components.tuner.component import Tuner
from tfx.dsl.components.base import executor_spec

from components.protocol_tuner.executor import Executor


class ProtocolTuner(Tuner):
    """TFX Tuner (same inputs, outputs and `tuner_fn`) whose outputs also hold:

    - `best_hyperparameters`: the searched values plus `hidden_units`, `epochs` and `steps_per_epoch`
      for retraining the final model on train + eval;
    - `tuner_results`: TFX's `tuner_results.json` plus `protocol.json` (the evaluation protocol, its
      folds, every trial's fold scores and learning curves, and the capacity sweep's curves).
    """

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
