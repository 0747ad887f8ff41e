"""Comment markups beyond WordPress' default (issue #19): wpDiscuz, Blogger (threaded and the
classic definition list), and themes that put the comment text inside `.comment-author`.
Each comment is read with its author, time and parent, and none of it reaches the body."""

from __future__ import annotations

from datetime import UTC, datetime

from tasks.extract import parse_page

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
STORY = "".join(
    f"<p>Paragraph {i} of the story: regulators in Brussels said on Monday that the new "
    f"rules on data transfers would apply from next year, with fines for firms that fail to "
    f"comply.</p>" for i in range(6))


def _page(comments: str) -> str:
    return (f"<html><head><title>Data transfer rules</title></head><body><article>"
            f"<h1>Data transfer rules</h1>{STORY}</article>{comments}</body></html>")


def _read(comments: str) -> tuple[list[tuple[str | None, str, str | None]], str, list[object]]:
    page = parse_page(_page(comments), "https://blog.example/2026/11/rules", fetched_at=NOW)
    by_id = {c.local_id: c for c in page.comments}
    rows = [(c.author, c.body, by_id[c.parent_local_id].author if c.parent_local_id else None)
            for c in page.comments]
    return rows, page.body, [c.posted_at for c in page.comments]


def test_wpdiscuz() -> None:
    def item(cid: int, parent: int, author: str, text: str, replies: str = "") -> str:
        return (f'<div id="wpd-comm-{cid}_{parent}" class="wpd-comment wpd_comment_level-1">'
                f'<div class="wpd-comment-wrap"><div class="wpd-avatar"><img src="a.png"></div>'
                f'<div id="comment-{cid}" class="wpd-comment-right">'
                f'<div class="wpd-comment-header">'
                f'<div class="wpd-comment-author">{author}</div>'
                f'<div class="wpd-comment-date" title="November 27, 2026 9:00 am">2 days ago</div>'
                f'</div><div class="wpd-comment-text"><p>{text}</p></div>'
                f'<div class="wpd-comment-footer"><div class="wpd-reply-button">Reply</div></div>'
                f'</div></div><div class="wpd-reply-list">{replies}</div></div>')
    thread = item(12, 0, "Ines", "The fines are far too small to matter.",
                  item(13, 12, "Jo", "Small firms would disagree with you."))
    rows, body, times = _read(f'<div id="wpdcom" class="wpdiscuz_unauth wpd-default">'
                              f'<div class="wpd-thread-list">{thread}</div></div>')
    assert rows == [("Ines", "The fines are far too small to matter.", None),
                    ("Jo", "Small firms would disagree with you.", "Ines")]
    assert times[0] is not None and times[0].date().isoformat() == "2026-11-27"
    assert "fines are far too small" not in body and "Reply" not in body


def test_blogger_threaded() -> None:
    def li(cid: str, author: str, when: str, text: str, replies: str = "") -> str:
        return (f'<li class="comment" id="c{cid}"><div class="avatar-image-container">'
                f'<img src="a.png"></div><div class="comment-block"><div class="comment-header">'
                f'<cite class="user"><a href="/profile/{cid}">{author}</a></cite>'
                f'<span class="icon user"></span><span class="datetime secondary-text">'
                f'<a rel="nofollow" href="?showComment={cid}#c{cid}">{when}</a></span></div>'
                f'<p class="comment-content">{text}</p><span class="comment-actions '
                f'secondary-text"><a class="comment-reply" target="_self">Reply</a></span>'
                f'</div>' + (f'<div class="comment-replies"><div class="comment-thread '
                             f'inline-thread"><ol>{replies}</ol></div></div>' if replies else "")
                + "</li>")
    thread = li("101", "Kim", "November 26, 2026 at 8:15 AM", "Who enforces this?",
                li("102", "Lee", "November 26, 2026 at 9:40 AM", "The national authorities."))
    rows, body, times = _read(f'<div class="comments" id="comments"><h4>2 comments:</h4>'
                              f'<div class="comments-content"><div class="comment-thread '
                              f'toplevel-thread"><ol id="top-ra">{thread}</ol></div></div></div>')
    assert rows == [("Kim", "Who enforces this?", None),
                    ("Lee", "The national authorities.", "Kim")]
    assert [t.isoformat() if t else None for t in times] == [
        "2026-11-26T08:15:00+00:00", "2026-11-26T09:40:00+00:00"]
    assert "Who enforces" not in body


def test_definition_list_comments() -> None:
    block = "".join(
        f'<dt class="comment-author" id="c{cid}"><a name="c{cid}"></a>'
        f'<a href="/profile/{cid}">{author}</a> said...</dt>'
        f'<dd class="comment-body" id="Blog1_cmt-{cid}"><p>{text}</p></dd>'
        f'<dd class="comment-footer"><span class="comment-timestamp">'
        f'<a href="#c{cid}" title="comment permalink">{when}</a></span></dd>'
        for cid, author, text, when in (
            ("7", "Mo", "A sensible compromise, at last.", "11/25/2026 10:00 AM"),
            ("8", "Noor", "Compromise for whom, exactly?", "11/25/2026 11:30 AM")))
    rows, body, times = _read(f'<div id="comments"><h4>2 Comments</h4><dl id="comments-block">'
                              f'{block}</dl></div>')
    assert rows == [("Mo", "A sensible compromise, at last.", None),
                    ("Noor", "Compromise for whom, exactly?", None)]
    assert all(t is not None for t in times)
    assert "sensible compromise" not in body and "said..." not in body


def test_comment_text_inside_the_author_box() -> None:
    items = "".join(
        f'<li class="comment even" id="comment-{cid}"><div class="comment-author vcard">'
        f'<img class="avatar" src="a.png"><cite class="fn">{author}</cite> '
        f'<span class="says">says:</span><p>{text}</p></div>'
        f'<div class="comment-meta commentmetadata"><a href="#comment-{cid}">November 24, 2026 '
        f'at 3:00 pm</a></div><div class="reply"><a class="comment-reply-link" '
        f'href="?replytocom={cid}#respond">Reply</a></div></li>'
        for cid, author, text in ((21, "Olu", "The transfer rules ignore cloud backups."),
                                  (22, "Pat", "Backups are covered by article nine.")))
    rows, body, _ = _read(f'<div id="comments"><ol class="commentlist">{items}</ol></div>')
    assert rows == [("Olu", "The transfer rules ignore cloud backups.", None),
                    ("Pat", "Backups are covered by article nine.", None)]
    assert "cloud backups" not in body
