"""`tasks.crawl.night`'s pure helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.models import Comment
from tasks.crawl import adopt_stored_comments

T = datetime(2026, 11, 28, 9, tzinfo=UTC)


def c(comment_id: str, body: str, *, author: str | None = "Ann", article: str = "a1",
      posted_at: datetime | None = T, parent: str | None = None) -> Comment:
    return Comment(comment_id=comment_id, article_id=article, author=author, body=body,
                   posted_at=posted_at, parent_id=parent)


def test_a_stored_comment_under_another_id_keeps_the_stored_id_and_its_replies_follow() -> None:
    stored = [("a1", "old-1", "Ann", "Rules are overdue!", T),
              ("a1", "old-2", "Bo", "Agreed.", T)]
    batch = [c("new-1", "Rules are  overdue"), c("new-2", "Agreed.", author="Bo",
                                                    parent="new-1"),
             c("new-3", "Something else", parent="new-1")]
    out = adopt_stored_comments(batch, stored)
    assert [(x.comment_id, x.parent_id) for x in out] == [
        ("old-1", None), ("old-2", "old-1"), ("new-3", "old-1")]


def test_only_unmatched_comments_of_the_same_article_and_author_are_adopted() -> None:
    stored = [("a1", "old-1", "Ann", "Agreed.", T), ("a2", "old-9", "Ann", "Same.", T)]
    batch = [
        c("old-1", "Agreed."),                      # seen again under its own id
        c("new-1", "Agreed."),                      # a second, real "Agreed." by Ann
        c("new-2", "Same."),                        # same text, other article
        c("new-3", "Agreed.", author="Cy"),         # other author
    ]
    assert [x.comment_id for x in adopt_stored_comments(batch, stored)] == \
        ["old-1", "new-1", "new-2", "new-3"]


def test_each_stored_comment_is_adopted_once_and_only_within_a_day() -> None:
    stored = [("a1", "old-1", "Ann", "Yes.", T)]
    far = c("new-0", "Yes.", posted_at=T + timedelta(days=3))
    assert adopt_stored_comments([far], stored)[0].comment_id == "new-0"
    twice = adopt_stored_comments([c("new-1", "Yes."), c("new-2", "Yes.")], stored)
    assert [x.comment_id for x in twice] == ["old-1", "new-2"]
    undated = adopt_stored_comments([c("new-3", "Yes.", posted_at=None)], stored)
    assert undated[0].comment_id == "old-1"
