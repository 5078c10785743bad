"""Reports: report.json (v2), report.md and a self-contained report.html."""

from interp_lab.report.write import report_bytes, write_report

__all__ = ["report_bytes", "write_report"]
