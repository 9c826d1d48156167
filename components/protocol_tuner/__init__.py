"""ProtocolTuner: TFX's Tuner that also keeps the capacity sweep, every trial's folds and the final
training budget (epochs and steps) next to the best hyperparameters."""

from components.protocol_tuner.component import ProtocolTuner

__all__ = ["ProtocolTuner"]
