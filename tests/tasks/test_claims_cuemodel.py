"""The learnt cue classifier and the content-boundary rules added with it."""

from __future__ import annotations

import json

from tasks.claims import cuemodel as claims_cuemodel
from tasks.claims import cues as claims_cues
from tasks.claims import extract_claims, load_nlp


def _score(text: str, word: str, construction: str) -> float:
    doc = load_nlp()(text)
    tok = next(t for t in doc if t.text == word)
    head = next(h for name, h in claims_cues.constructions(tok) if name == construction)
    return claims_cuemodel.score(tok, construction, head)


def test_the_model_ships_small_with_a_threshold_and_cue_words() -> None:
    raw = json.loads(claims_cuemodel.MODEL_PATH.read_text(encoding="utf-8"))
    assert 0.0 < raw["threshold"] < 1.0
    assert "say" in raw["lemmas"] and "be" not in raw["lemmas"]  # common non-cues left out
    assert claims_cuemodel.MODEL_PATH.stat().st_size < 1_500_000


def test_an_adjective_with_a_that_clause_is_a_cue_and_a_plain_object_is_not() -> None:
    threshold = claims_cuemodel.threshold()
    assert _score("Mayor Ruiz is skeptical that the tax will raise money.",
                  "skeptical", "ccomp") >= threshold
    assert _score("The factory makes steel for cars.", "makes", "dobj") < threshold


def test_a_learnt_adjectival_cue_takes_the_subject_of_its_copula() -> None:
    claims = extract_claims("Mayor Ruiz is skeptical that the tax will raise money.", [])
    assert [(c.speaker, c.content) for c in claims] == [
        ("Mayor Ruiz", "that the tax will raise money")]


def test_a_trailing_relative_clause_is_not_part_of_the_claim() -> None:
    claims = extract_claims(
        "Jane Smith said that the plan came from Tom Baker, who runs the agency.", [])
    assert [c.content for c in claims] == ["that the plan came from Tom Baker"]


def test_a_quotation_right_after_an_indirect_claim_carries_it_on() -> None:
    text = 'Jane Smith said she would not vote for the plan. "I am not convinced it works."'
    claims = extract_claims(text, [])
    assert [(c.speaker, c.content, c.quote_kind) for c in claims] == [
        ("Jane Smith", 'she would not vote for the plan. "I am not convinced it works."',
         "mixed")]


def test_a_quotation_with_its_own_cue_is_not_taken_in() -> None:
    text = ('Tom Baker said the plant would close. Jane Smith said she disagreed. '
            '"It will stay open," she added.')
    claims = extract_claims(text, [])
    assert [(c.speaker, c.content) for c in claims] == [
        ("Tom Baker", "the plant would close"), ("Jane Smith", "she disagreed"),
        ("Jane Smith", "It will stay open")]
