"""DumbBaselineGate: blesses a model only when it beats the trivial predictor with statistical power."""

from components.dumb_baseline_gate.component import DumbBaselineGate

__all__ = ["DumbBaselineGate"]
