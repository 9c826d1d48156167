"""Which model a new candidate is compared against: the latest blessed model other than itself."""

from __future__ import annotations

from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.common import resolver

MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
CANDIDATE_KEY = "candidate"


class PreviousBlessedModelStrategy(resolver.ResolverStrategy):
    """Resolves the latest blessed Model, skipping the candidate the Evaluator is about to judge.

    TFX's LatestBlessedModelStrategy returns the candidate itself when a run re-uses a cached model,
    which changes the Evaluator's inputs and re-runs it (and the Pusher) on a run with no new data.
    Excluding the candidate keeps a no-change re-run fully cached and still compares every genuinely
    new model with the one in production.

    Inputs: `model` (all Model artifacts), `model_blessing` (all ModelBlessing artifacts) and
    `candidate` (the Trainer's output). Outputs the same keys; `model` and `model_blessing` are empty
    when there is no earlier blessed model (the first run).
    """

    def resolve_artifacts(
        self, store, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        # LocalDagRunner passes this run's model; Airflow's (legacy) resolver passes every model the
        # Trainer ever made. The newest one is the candidate either way.
        candidate = max(input_dict.get(CANDIDATE_KEY, []), key=lambda a: a.id, default=None)
        candidates = {candidate.id} if candidate else set()
        blessings = {
            blessing.get_int_custom_property(
                evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY
            ): blessing
            for blessing in input_dict.get(MODEL_BLESSING_KEY, [])
            if blessing.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
        }
        result = {
            MODEL_KEY: [],
            MODEL_BLESSING_KEY: [],
            CANDIDATE_KEY: [candidate] if candidate else [],
        }
        for model in sorted(input_dict.get(MODEL_KEY, []), key=lambda a: a.id, reverse=True):
            if model.id in blessings and model.id not in candidates:
                result[MODEL_KEY] = [model]
                result[MODEL_BLESSING_KEY] = [blessings[model.id]]
                break
        return result
