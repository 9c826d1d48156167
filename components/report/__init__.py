"""StakeholderReportGen: the run's report for stakeholders (`executor` gathers the figures from the run's
artifacts, `render` writes the self-contained HTML page)."""

from components.report.component import StakeholderReportGen

__all__ = ["StakeholderReportGen"]
