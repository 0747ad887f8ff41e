"""Parsing only the sentences that may hold a claim, and the rules added with it."""

from __future__ import annotations

from tasks.claims import extract_claims, load_nlp
from tasks.claims.extractor import parse
from tasks.claims.parse import sentences
from tasks.claims.quotes import quote_spans


def _cut(text: str) -> list[str]:
    doc = load_nlp().make_doc(text)
    words = [t.text for t in doc]
    spaces = [bool(t.whitespace_) for t in doc]
    return [doc[s:e].text.strip() for s, e in sentences(words, spaces)]


def test_sentences_cut_at_ends_quotes_and_paragraphs() -> None:
    text = ('Mr. Baker left the U.S. in May. "We won." He smiled.\nA headline\n\n'
            'The end!')
    assert _cut(text) == ["Mr. Baker left the U.S. in May.", '"We won."', "He smiled.",
                          "A headline", "The end!"]


def test_a_sentence_without_cue_words_is_not_parsed_but_keeps_its_names() -> None:
    text = ("Jane Miller drove to the plant in Ohio on Monday. "
            "She said that the plant would close.")
    doc = parse([text])[0]
    first = [t for t in doc if t.idx < text.index("She")]
    assert {t.dep_ for t in first} == {"ROOT", "dep"}  # a flat tree: not parsed
    assert [t.text for t in first if t.tag_ == "NNP"][:2] == ["Jane", "Miller"]
    said = next(t for t in doc if t.text == "said")
    assert said.dep_ == "ROOT" and any(c.dep_ == "ccomp" for c in said.children)
    claims = extract_claims(text, [])
    assert [(c.speaker, c.content) for c in claims] == [
        ("Jane Miller", "that the plant would close")]


def test_claims_match_a_full_parse() -> None:
    text = ("The mayor spoke at length on Friday. He argued that taxes must rise. "
            "Rain fell all day. According to the report, prices doubled.")
    nlp = load_nlp()
    from tasks.claims import claims_with_keys

    ours = [c for c, _ in claims_with_keys(parse([text])[0], [])]
    full = [c for c, _ in claims_with_keys(nlp(text), [])]
    assert [(c.speaker, c.content) for c in ours] == [(c.speaker, c.content) for c in full]
    assert len(ours) == 2


def test_quote_first_when_the_quote_hangs_on_the_verb() -> None:
    text = ("Tom Baker spoke in Paris.\n“If the Americans choose him, that will have "
            "consequences, because it is a world election,” he said.\n")
    claim = next(c for c in extract_claims(text, []) if c.cue == "said")
    assert claim.content.startswith("If the Americans choose him")
    assert claim.speaker == "Tom Baker"
    assert claim.quote_kind == "direct"


def test_the_clause_after_the_verb_wins_over_a_fronted_one() -> None:
    text = ("In a statement released after the senator suspended his campaign, Cruz said "
            "he is certain Rubio will win.")
    claim = next(c for c in extract_claims(text, []) if c.cue == "said")
    assert claim.content == "he is certain Rubio will win"
    assert claim.speaker == "Cruz"


def test_seeming_is_the_writers_impression() -> None:
    claims = extract_claims("The governor seemed to be shrinking in political stature.", [])
    # unattributed; the subject is part of what is claimed, the cue word is not
    assert [(c.speaker, c.cue, c.content) for c in claims] == [
        (None, "seemed", "The governor to be shrinking in political stature")]


def test_quote_spans_across_paragraphs_and_unclosed() -> None:
    text = 'He said: "One.\n\n"Two." Then "open\nnext'
    assert [text[s:e] for s, e in quote_spans(text)] == ['"One.\n\n"Two."', '"open']
