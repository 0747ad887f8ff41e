"""The briefing page: one self-contained HTML file per run, read from the store.

Start at `write_report` (`page`); `data` reads the figures, `svg` draws the charts.
"""

from __future__ import annotations

from tasks.report.page import copy_report_task, render_report, write_report, write_report_task

__all__ = ["copy_report_task", "render_report", "write_report", "write_report_task"]
