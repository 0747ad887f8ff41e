"""From a fetched page to records: article, body, metadata and comments. Pure: no I/O.

Start at `parse_page` (one HTML page to a `ParsedPage`) and `process_pages` (a source's
fetched pages to article and comment records with stable ids, in worker processes for a
large batch).
"""

from __future__ import annotations

from tasks.extract.comments import comment_time
from tasks.extract.page import parse_page
from tasks.extract.pages import comment_records, process_context, process_pages

__all__ = [
    "comment_records",
    "comment_time",
    "parse_page",
    "process_context",
    "process_pages",
]
