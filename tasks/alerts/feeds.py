"""An Atom feed of new claims per tracked entity, rewritten each run.

A zero-configuration alert channel: any feed reader can follow `<entity>.atom`. Entries keep
their claim id as Atom id, so readers show each claim once however often the file is
rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree as ET

from prefect import task

from tasks.store import query

ATOM = "http://www.w3.org/2005/Atom"
FEED_SIZE = 50


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "entity"


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    element.text = text
    return element


def entity_feed(entity: str, rows: Sequence[tuple[object, ...]], now: datetime) -> bytes:
    """Atom XML for one entity; rows are (claim_id, speaker, cue, content, sentence, title,
    source, url, published_at, first_seen_at)."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "id", f"urn:policywatch:entity:{slug(entity)}")
    _text(feed, "title", f"policywatch: new claims about {entity}")
    _text(feed, "updated", now.isoformat())
    for claim_id, speaker, cue, content, sentence, title, source, url, published, seen in rows:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(entry, "id", f"urn:policywatch:claim:{claim_id}")
        _text(entry, "title", f"{speaker or 'Unattributed'} {cue or 'said'}: {content}"[:300])
        stamp = seen if isinstance(seen, datetime) else now
        _text(entry, "updated", stamp.isoformat())
        if isinstance(published, datetime):
            _text(entry, "published", published.isoformat())
        ET.SubElement(entry, f"{{{ATOM}}}link", {"href": str(url), "rel": "alternate"})
        author = ET.SubElement(entry, f"{{{ATOM}}}author")
        _text(author, "name", str(source))
        _text(entry, "summary", f"{sentence}\n\n{title or ''} ({source})")
    return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))


def write_entity_feeds(db_path: Path | str, entities: Sequence[str], out_dir: Path | str
                       ) -> list[Path]:
    """Write `<out_dir>/<entity-slug>.atom` for every tracked entity; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    written = []
    for entity in entities:
        _, rows = query(db_path, """
            SELECT c.claim_id, c.speaker, c.cue, c.content, c.sentence, a.title, a.source,
                   a.url, a.published_at, c.first_seen_at
            FROM claim_entities ce JOIN claims c USING (claim_id)
            JOIN articles a ON a.article_id = c.article_id
            WHERE ce.entity = ? ORDER BY c.first_seen_at DESC, a.published_at DESC NULLS LAST
            LIMIT ?""", [entity, FEED_SIZE])
        path = out / f"{slug(entity)}.atom"
        temporary = path.with_suffix(".atom.tmp")
        temporary.write_bytes(entity_feed(entity, rows, now))
        temporary.replace(path)  # readers never see a half-written feed
        written.append(path)
    return written


write_entity_feeds_task = task(name="write-entity-feeds")(write_entity_feeds)
