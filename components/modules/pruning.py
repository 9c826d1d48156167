"""Magnitude pruning with tensorflow-model-optimization, when the spec's `deployment.pruning` asks.

The trained model is fine-tuned while a polynomial schedule raises the share of zeroed weights in every
dense and embedding layer to the target, then the pruning wrappers are stripped. It runs inside the
Trainer, so the Evaluator judges, and every target ships, the pruned model.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from absl import logging

from components.core.spec import ProblemSpec
from components.modules.model_builder import compile_model

PRUNED_LAYERS = (keras.layers.Dense, keras.layers.Embedding)


def prune(
    model: keras.Model, train: tf.data.Dataset, validation: tf.data.Dataset, spec: ProblemSpec
) -> tuple[keras.Model, dict]:
    """(the pruned model without wrappers, its history and the sparsity reached)."""
    pruning = spec.deployment.pruning
    batches = spec.training.steps_per_epoch or sum(1 for _ in train)  # one pass when the spec fixes none
    steps = pruning.epochs * batches
    # Reach the target in the first 70% of the steps; the rest recovers accuracy at full sparsity.
    end_step = max(1, int(steps * 0.7))
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=pruning.target_sparsity,
        begin_step=0,
        end_step=end_step,
        frequency=max(1, end_step // 10),
    )

    def wrap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, PRUNED_LAYERS):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    wrapped = keras.models.clone_model(model, clone_function=wrap)
    compile_model(wrapped, spec)
    history = wrapped.fit(
        train,
        epochs=pruning.epochs,
        steps_per_epoch=spec.training.steps_per_epoch,
        validation_data=validation,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
        verbose=2,
    )
    pruned = tfmot.sparsity.keras.strip_pruning(wrapped)
    compile_model(pruned, spec)
    reached = sparsity(pruned)
    logging.info(
        "Pruned to %.1f%% zero weights (target %.0f%%)", reached * 100, pruning.target_sparsity * 100
    )
    return pruned, {
        "target_sparsity": pruning.target_sparsity,
        "sparsity": reached,
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
    }


def sparsity(model: keras.Model) -> float:
    """The share of exact zeros in the weights pruning applies to (kernels and embeddings)."""
    weights = [
        w.numpy()
        for layer in model.layers
        if isinstance(layer, PRUNED_LAYERS)
        for w in layer.weights
        if "bias" not in w.name
    ]
    total = sum(w.size for w in weights)
    return float(sum(int(np.count_nonzero(w == 0)) for w in weights) / total) if total else 0.0
