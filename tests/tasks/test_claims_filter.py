"""The learnt claim filter (`tasks.claims.filter`): it ships, it is used, and it tells a
clear attribution from a fragment."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tasks.claims import claims_with_keys, extract_claims
from tasks.claims import filter as claims_filter
from tasks.claims.extractor import parse

TEXT = ("Jane Miller, a trade lawyer, said that the new export rules would hurt American "
        "chipmakers more than their rivals. "
        "The agency is expected to be denied. "
        "A company spokesperson pointed to its CloudMatrix systems. "
        "Tom Baker, the chief executive of Acme, told reporters that the company would "
        "appeal the decision.")


@pytest.fixture
def no_override() -> Iterator[None]:
    yield
    claims_filter.reset()


def test_the_model_ships_with_a_threshold_chosen_on_train() -> None:
    raw = json.loads(claims_filter.MODEL_PATH.read_text(encoding="utf-8"))
    assert 0.0 < raw["threshold"] < 1.0
    assert len(raw["weights"]) > 100
    assert "PolNeAR train" in raw["about"]


def test_clear_claims_pass_and_the_filter_is_applied(no_override: None) -> None:
    doc = parse([TEXT])[0]
    claims_filter.use(None)
    feats: list[list[str]] = []
    unfiltered = [c for c, _ in claims_with_keys(doc, [], TEXT, feats)]
    assert len(feats) == len(unfiltered)
    model = claims_filter.model()
    assert model is None
    claims_filter.reset()
    model = claims_filter.model()
    assert model is not None
    scores = {c.content: claims_filter.score(f, model) for c, f in zip(unfiltered, feats,
                                                                       strict=True)}
    said = next(s for content, s in scores.items() if "the new export" in content)
    told = next(s for content, s in scores.items() if "appeal the decision" in content)
    assert said >= model[2] and told >= model[2]
    kept = extract_claims(TEXT, [])
    # what the filter keeps is what scores at least the threshold, nothing else
    assert {c.content for c in kept} == {c for c, s in scores.items() if s >= model[2]}
    # a threshold above every score leaves nothing: the filter does decide
    claims_filter.use((model[0], model[1], 1.01))
    assert claims_with_keys(doc, [], TEXT) == []


def test_a_bare_noun_phrase_is_no_claim() -> None:
    claims = extract_claims("A company spokesperson pointed to its CloudMatrix systems.", [])
    assert claims == []
    # a longer object stays a claim (PolNeAR annotates "pointed to X as evidence of Y")
    claims = extract_claims("David Sacks pointed to a recent breakthrough by Chinese AI firm "
                            "DeepSeek as evidence of China's continued progress.", [])
    assert [c.cue for c in claims] == ["pointed to"]


def test_without_a_model_every_candidate_stays(no_override: None) -> None:
    claims_filter.use(None)
    assert len(extract_claims(TEXT, [])) >= len([c for c, _ in claims_with_keys(
        parse([TEXT])[0], [], TEXT)])
