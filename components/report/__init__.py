"""The stakeholder report: `component.StakeholderReportGen` (TFX component + executor), `analysis` (pure
metrics, intervals, thresholds, failures, leakage) and `render` (the self-contained HTML page)."""
