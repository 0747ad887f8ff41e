"""A claim's content is the reported words alone (docs/contract.md): never its own cue or
speaker. Checked on a generated set of quotation patterns and on the demo site's articles.

The checks read the text, not only the positions the extractor reports, so a wrong
position cannot hide a dirty content.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from schemas.config import Entity
from schemas.models import ClaimDraft
from tasks.claims import content_is_clean, extract_claims, extract_claims_many
from tasks.extract import parse_page

DEMO = Path(__file__).resolve().parent.parent.parent / "policywatch" / "demo_site"
BASE = "http://127.0.0.1:8765"

# quotations that hold none of the speaker or cue words below
FIRST = ("Yields are the whole story", "The rules on paper are already very tight",
         "Servicing was the last open door")
SECOND = ("Huawei has had competitive designs for a while.",
          "The question now is whether the agency has the staff to police them.",
          "A machine that cannot be maintained stops being useful within a year.")
# (speaker as written, a word of it that must not be in the content)
SPEAKERS = (("Kenji Watanabe", "Watanabe"), ("Watanabe", "Watanabe"), ("she", "she"),
            ("the analyst", "analyst"), ("a company spokesperson", "spokesperson"),
            ("Sen. Tom Baker", "Baker"))
CUES = ("said", "told reporters", "added", "wrote", "explained", "warned")
MARKS = (('"', '"'), ("“", "”"))


def _patterns() -> list[tuple[str, str, str, str, str, str]]:
    """(text, first quotation, second quotation or "", speaker word, cue word, marks)."""
    out = []
    combos = itertools.product(range(len(FIRST)), SPEAKERS, CUES, MARKS)
    for n, (k, (speaker, word), cue, (o, c)) in enumerate(combos):
        a, b = FIRST[k], SECOND[(k + n) % len(SECOND)]
        verb = cue.split()[0]
        inverted = f"{verb} {speaker}" + cue[len(verb):]
        cap = speaker[0].upper() + speaker[1:]
        templates = {
            "after": f"{o}{a},{c} {speaker} {cue}. {o}{b}{c}",
            "inverted": f"{o}{a},{c} {inverted}. {o}{b}{c}",
            "comma": f"{o}{a},{c} {speaker} {cue}, {o}{b[0].lower()}{b[1:]}{c}",
            "adjunct": f"{o}{a},{c} {speaker} {cue} on Tuesday. {o}{b}{c}",
            "single": f"{o}{a},{c} {speaker} {cue}.",
            "colon": f"{cap} {cue}: {o}{b}{c}",
        }
        if " " in cue:  # 'said she', but not 'told she reporters'
            del templates["inverted"]
        for name, text in templates.items():
            second = "" if name in ("single", "colon") else b
            first = b if name == "colon" else a
            out.append((f"Background paragraph.\n\n{text}", first, second, word,
                        verb, o + c + name))
    return out


PATTERNS = _patterns()


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[\w.]+(?<!\.)", text)}


@pytest.fixture(scope="module")
def pattern_claims() -> list[list[ClaimDraft]]:
    return extract_claims_many([p[0] for p in PATTERNS], [])


def test_generated_quotations_have_clean_contents(
        pattern_claims: list[list[ClaimDraft]]) -> None:
    assert len(PATTERNS) >= 500
    found = 0
    for (text, first, second, word, verb, _), claims in zip(PATTERNS, pattern_claims,
                                                           strict=True):
        for claim in claims:
            words = _words(claim.content)
            assert word.lower() not in words, (text, claim.content)
            assert verb not in words, (text, claim.content)
            assert content_is_clean(claim), (text, claim)
        quoted = [c for c in claims if first[:20] in c.content]
        if quoted:
            found += 1
            if second:
                assert second[1:20] in quoted[0].content, (text, quoted[0].content)
    # nearly every pattern gives its claim (the check above would pass on no claims)
    assert found >= 0.95 * len(PATTERNS)


def test_an_interrupted_quotation_is_its_parts_joined_as_written() -> None:
    text = ('"Yields are the whole story," Watanabe said. "Huawei has had competitive '
            'designs for a while."')
    (claim,) = extract_claims(text, [])
    assert claim.content == ('"Yields are the whole story," "Huawei has had competitive '
                             'designs for a while."')
    assert (claim.speaker, claim.cue, claim.quote_kind) == ("Watanabe", "said", "direct")
    assert [text[s:e] for s, e in claim.content_pieces] == [
        '"Yields are the whole story,"', '"Huawei has had competitive designs for a while."']
    assert text[claim.cue_spans[0][0]:claim.cue_spans[0][1]] == "said"
    assert claim.speaker_span is not None
    assert text[claim.speaker_span[0]:claim.speaker_span[1]] == "Watanabe"


def test_a_quotation_split_around_its_speaker_keeps_both_parts_and_the_speaker() -> None:
    # the parser takes the quotation's last name for a second subject of "said"
    text = ("\u201cAnd while I am at it, I hold in the highest esteem Sen. John McCain,\u201d "
            "Trump said, \u201cand I fully support his re-election.\u201d")
    (claim,) = extract_claims(text, [])
    assert claim.speaker == "Trump"
    assert [text[s:e] for s, e in claim.content_pieces] == [
        "\u201cAnd while I am at it, I hold in the highest esteem Sen. John McCain,\u201d",
        "\u201cand I fully support his re-election.\u201d"]


def test_a_relative_clause_on_the_speaker_does_not_end_the_quotation() -> None:
    text = ('"It is not going to be easy for him," said Representative Peter King of New '
            'York, who endorsed Mr. Rubio on Tuesday. "There is no doubt that Trump is the '
            'favorite."')
    claim = next(c for c in extract_claims(text, []) if c.speaker == "Peter King")
    assert [text[s:e] for s, e in claim.content_pieces] == [
        '"It is not going to be easy for him,"',
        '"There is no doubt that Trump is the favorite."']
    # and the relative clause's own claim does not take the main speaker's quotation
    assert [c.cue for c in extract_claims(text, []) if "favorite" in c.content] == ["said"]


def test_according_to_in_brackets_alone_reports_what_precedes() -> None:
    (claim,) = extract_claims("Sales rose 5 percent in May (according to Reuters).", [])
    assert claim.content == "Sales rose 5 percent in May"
    assert claim.speaker == "Reuters"


def test_according_to_inside_brackets_reports_the_aside() -> None:
    text = ("White states like Iowa (93 percent of voters there were white, according to "
            "exit polls), New Hampshire and Ohio are key to his plan.")
    claim = next(c for c in extract_claims(text, []) if c.cue == "according to")
    assert claim.content == "93 percent of voters there were white"
    assert claim.speaker == "exit polls"


def test_a_parenthetical_attribution_is_cut_out() -> None:
    (claim,) = extract_claims("The plan, Jane Miller said on Monday, is deeply flawed.", [])
    assert claim.content == "The plan is deeply flawed"
    assert claim.speaker == "Jane Miller"


def test_a_relative_before_the_attribution_is_dropped() -> None:
    text = "He cited the rules, which Tom Baker said were written for another era."
    claim = next(c for c in extract_claims(text, []) if c.speaker == "Tom Baker")
    # the noun the relative clause hangs on is what the claim is about
    assert claim.content == "the rules were written for another era"
    assert [text[s:e] for s, e in claim.content_pieces] == ["the rules",
                                                            "were written for another era"]


def test_content_is_clean_flags_a_cue_inside_the_content() -> None:
    dirty = ClaimDraft(speaker="X", cue="said", content='"A," X said. "B."', sentence="s",
                       quote_kind="direct", content_start=0, content_end=17,
                       content_pieces=((0, 17),), cue_spans=((7, 11),), speaker_span=(5, 6))
    assert not content_is_clean(dirty)
    assert content_is_clean(dirty.model_copy(update={"content_pieces": ((0, 4), (13, 17))}))


def test_event_verbs_make_events_not_claims() -> None:
    huawei = [Entity(name="Huawei", aliases=("Huawei Technologies",), kind="org",
                     tracked=True)]
    text = ("Huawei Technologies unveiled a new computing cluster on Tuesday. "
            "Huawei announced that its new chips would ship next year.")
    kinds = {c.cue: c.quote_kind for c in extract_claims(text, huawei)}
    assert kinds.get("announced") == "indirect"
    assert all(kind == "event" for cue, kind in kinds.items() if cue != "announced")
    text = "Huawei announced a new phone. Officials plan to restrict its sales."
    assert {c.quote_kind for c in extract_claims(text, huawei)} <= {"event"}
    text = ("DeepSeek released a new reasoning model on Monday that it says performs close "
            "to the leading American systems.")
    assert {c.quote_kind for c in extract_claims(text, [])} <= {"event"}


def _demo_bodies() -> list[str]:
    pages = [p for p in sorted((DEMO / "site").rglob("*.html")) if p.name != "index.html"]
    bodies = []
    for page in pages:
        html = page.read_text(encoding="utf-8").replace("{{BASE}}", BASE)
        url = f"{BASE}/{page.relative_to(DEMO / 'site')}"
        bodies.append(parse_page(html, url, fetched_at=datetime.now(UTC)).body or "")
    return bodies


_BETWEEN_QUOTES = re.compile(r"[,.!?][\"”]\s+[^\"“”]{1,120}?\b(said|told|added|says|wrote)\b"
                             r"[^\"“”]{0,80}[\"“]")


def test_demo_site_claims_hold_no_cue_or_speaker() -> None:
    config = yaml.safe_load((DEMO / "config.yaml").read_text(encoding="utf-8"))
    entities = [Entity(**e) for e in config["entities"]]
    bodies = _demo_bodies()
    assert len(bodies) >= 7 and all(bodies)
    claims = [c for found in extract_claims_many(bodies, entities) for c in found]
    assert len(claims) >= 80
    joined = 0
    for claim in claims:
        assert content_is_clean(claim), claim
        assert not _BETWEEN_QUOTES.search(claim.content), claim.content
        if claim.speaker and claim.cue:
            last = claim.speaker.split()[-1]
            for attribution in (f"{last} {claim.cue}", f"{claim.cue} {claim.speaker}"):
                assert attribution not in claim.content, claim.content
        joined += len(claim.content_pieces) > 1
        # a speaker names someone: not a fragment of a list ("and Southeast Asia"), and
        # not who a passive is about ("trading houses ... are accused of ...")
        assert claim.speaker is None or claim.speaker.split()[0].lower() not in (
            "and", "or", "but"), claim
        assert not (claim.cue or "").startswith(("are accused", "is accused")), claim
        # "a bill ... would require X": a modal is no speech cue
        assert (claim.cue or "").lower() not in ("would", "will", "could", "may"), claim
    assert joined >= 8  # the demo's interrupted quotations are there, joined
