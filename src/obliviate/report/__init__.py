"""Tables and plots that compare evaluated models."""

from obliviate.report.tables import TABLE_COLUMNS, comparison_table, format_value
from obliviate.report.writer import write_report

__all__ = ["TABLE_COLUMNS", "comparison_table", "format_value", "write_report"]
