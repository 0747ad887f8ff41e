"""From a fetched page to records: article, body, metadata and comments. Pure: no I/O.

Start at `parse_page` (one HTML page to a `ParsedPage`; the body from a chain of evidence,
`chain`) and `process_pages` (a source's
fetched pages to article and comment records with stable ids, in worker processes for a
large batch).
"""

from __future__ import annotations

from tasks.extract.comments import comment_time, comments_by_selectors, extract_comments
from tasks.extract.page import parse_page
from tasks.extract.pages import comment_records, process_context, process_pages
from tasks.extract.text import decode_html, parse_tree

__all__ = [
    "comment_records",
    "comment_time",
    "comments_by_selectors",
    "decode_html",
    "extract_comments",
    "parse_page",
    "parse_tree",
    "process_context",
    "process_pages",
]
