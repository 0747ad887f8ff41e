"""A night's analysis: claims from the new articles and stances from the new comments, in
one pool of worker processes so neither stage waits for the other. Start at `analyse_task`.
"""

from __future__ import annotations

from tasks.analyse.pool import (
    analyse_task,
    chunked,
    classify_comment_stances,
    classify_stances_task,
    cut_for_analysis,
    extract_article_claims,
    extract_claims_task,
)

__all__ = [
    "analyse_task",
    "chunked",
    "classify_comment_stances",
    "classify_stances_task",
    "cut_for_analysis",
    "extract_article_claims",
    "extract_claims_task",
]
