"""Quotation spans in an article body, found on the raw text before any parsing.

The parser splits a long quotation into several sentences, so the extractor asks this
module which quotation a claim starts in and stretches the claim over all of it. Straight
and curly double quotes are paired in order; a paragraph that ends inside a quotation and
a next paragraph that opens with a quote mark is the usual way of quoting several
paragraphs, so the quotation runs on.
"""

from __future__ import annotations

import re
from bisect import bisect_right

_OPEN = frozenset("“«„")
_CLOSE = frozenset("”»")
_STRAIGHT = '"'
_MARKS = re.compile('[\n"“«„”»]')

QuoteSpan = tuple[int, int]  # [start, end) including the quote marks


def normalise(text: str) -> str:
    """`text` with each `''` written as `"'` (same length), so one scan covers both styles."""
    return text.replace("''", "\"'") if "''" in text else text


def quote_spans(text: str) -> list[QuoteSpan]:
    """Every double-quoted stretch of `text`, in order, marks included."""
    text = normalise(text)
    spans: list[QuoteSpan] = []
    start = -1
    n = len(text)
    skip = 0
    # only line breaks and quote marks change the state: jump from one to the next
    for match in _MARKS.finditer(text):
        i = match.start()
        if i < skip:
            continue
        ch = text[i]
        if ch == "\n":
            if start < 0:
                continue
            j = i
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and (text[j] in _OPEN or text[j] == _STRAIGHT):
                skip = j + 1  # multi-paragraph quotation: the opening mark re-opens it
                continue
            spans.append((start, i))  # an unclosed quotation stops at its paragraph
            start = -1
        elif start < 0 and (ch in _OPEN or ch == _STRAIGHT):
            start = i
        elif start >= 0 and (ch in _CLOSE or ch == _STRAIGHT):
            # a closing `''` ends after both apostrophes
            spans.append((start, i + 2 if text.startswith("\"'", i) else i + 1))
            start = -1
    if start >= 0:
        spans.append((start, n))
    return spans


class QuoteIndex:
    """Fast look-ups over the quotation spans of one text."""

    def __init__(self, text: str) -> None:
        self.spans = quote_spans(text)
        self._starts = [s for s, _ in self.spans]

    def containing(self, pos: int) -> QuoteSpan | None:
        """The quotation that covers character `pos`, if any."""
        k = bisect_right(self._starts, pos) - 1
        if k >= 0 and self.spans[k][0] <= pos < self.spans[k][1]:
            return self.spans[k]
        return None

    def starting_at(self, pos: int, text: str) -> QuoteSpan | None:
        """The quotation that opens at `pos` after skipping blanks."""
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        span = self.containing(pos)
        return span if span is not None and span[0] == pos else None

    def overlapping(self, start: int, end: int) -> list[QuoteSpan]:
        k = max(bisect_right(self._starts, start) - 1, 0)
        out: list[QuoteSpan] = []
        for span in self.spans[k:]:
            if span[0] >= end:
                break
            if span[1] > start:
                out.append(span)
        return out
