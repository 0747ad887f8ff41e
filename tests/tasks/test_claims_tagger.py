"""The claims span tagger: its windows, its tags, and the shipped model on real text."""

from __future__ import annotations

import pytest

from tasks.claims import content_is_clean, extract_claims
from tasks.claims import tagged as claims_tagged
from tasks.claims.extractor import parse
from tasks.claims.quotes import QuoteIndex
from tasks.claims.speakers import EntityIndex, Resolver
from tasks.claims.tagger import (
    CLS,
    SEP,
    WINDOW,
    B,
    I,
    O,
    decode,
    load_tagger,
    role_tags,
    windows,
)
from tasks.stance.crossencoder import load_tokenizer

ARTICLE = (
    "Senators met on Tuesday to discuss the export rule. The meeting ran long.\n"
    "Commerce Secretary Ann Lee said the rule would protect national security. "
    "Critics disagreed sharply.\n"
    + " ".join(f"Sentence number {k} adds some words about chips and trade." for k in range(40))
)


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return load_tokenizer()


def test_windows_cover_the_text_once_in_order_and_fit(tokenizer) -> None:  # type: ignore[no-untyped-def]
    found = windows(ARTICLE, tokenizer)
    assert len(found) > 1
    seen: list[tuple[int, int]] = []
    for w in found:
        assert len(w.ids) <= WINDOW
        assert w.ids[0] == CLS and w.ids[-1] == SEP
        assert len(w.ids) == len(w.offsets)
        seen += [o for o in w.offsets if o[0] >= 0]
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)
    letters = {i for s, e in seen for i in range(s, e)}
    assert all(i in letters for i, ch in enumerate(ARTICLE) if ch.isalnum())


def test_a_paragraph_break_inside_a_window_is_a_sep(tokenizer) -> None:  # type: ignore[no-untyped-def]
    first = windows(ARTICLE, tokenizer)[0]
    inner = [k for k, i in enumerate(first.ids[1:-1], start=1) if i == SEP]
    assert inner, "the line break after the first paragraph should be marked"
    after = first.offsets[inner[0] + 1][0]
    assert ARTICLE[after:].startswith("Commerce")


def test_tags_decode_back_to_their_spans_across_windows(tokenizer) -> None:  # type: ignore[no-untyped-def]
    start = ARTICLE.index("the rule would")
    content = (start, ARTICLE.index(" Critics"))
    long_start = ARTICLE.index("Sentence number 3 ")
    long_span = (long_start, ARTICLE.index("Sentence number 30 ") - 1)
    spans = [content, long_span]
    found: list[tuple[int, int]] = []
    for w in windows(ARTICLE, tokenizer):
        tags = role_tags(w, spans)
        assert set(tags) <= {B, I, O, -100}
        pieces, continued = decode(w, [O if t == -100 else t for t in tags], ARTICLE)
        if continued:
            found[-1] = (found[-1][0], pieces[0][1])
            pieces = pieces[1:]
        found += pieces
    assert found == [content, long_span]


def test_the_shipped_tagger_marks_cue_source_and_content() -> None:
    tagger = load_tagger()
    assert tagger is not None, "tasks/claims/models/claims_tagger.npz should ship"
    text = ("WASHINGTON — The Commerce Department said on Monday that the new export rule "
            "would cut China's access to advanced chips.")
    tagged = tagger.tag(text)
    words = [text[s:e] for s, e in tagged.cue]
    assert any("said" in w for w in words)
    assert any("Commerce Department" in text[s:e] for s, e in tagged.source)
    assert any("export rule" in text[s:e] for s, e in tagged.content)


def _candidates(text: str) -> list[claims_tagged.Candidate]:
    tagger = load_tagger()
    assert tagger is not None
    doc = parse([text])[0]
    rules = extract_claims(text, [], use_tagger=False)
    quotes = QuoteIndex(text)
    index = EntityIndex.build(text, [])
    tagged = tagger.tag(text, skip=claims_tagged.rule_spans(rules),
                        worth=claims_tagged.parsed_sentences(doc))
    return claims_tagged.candidates(doc, text, tagged, rules, Resolver(doc, index, text, quotes),
                                    index, quotes)


@pytest.mark.parametrize(("text", "speaker", "cue", "content"), [
    ("Senator Maria Lopez has come out against the new chip export rule, and the vote is "
     "next week.", "Maria Lopez", "has come out against", "the new chip export rule"),
    ("Commerce Secretary Ann Lee talked of reforms to ensure that American chipmakers keep "
     "their lead.", "Ann Lee", "talked of",
     "reforms to ensure that American chipmakers keep their lead"),
])
def test_the_tagger_proposes_claims_the_rules_miss(text: str, speaker: str, cue: str,
                                                   content: str) -> None:
    assert extract_claims(text, [], use_tagger=False) == []
    (found,) = _candidates(text)
    claim = found.claim
    assert claim.speaker is not None and speaker in claim.speaker
    assert claim.cue == cue
    assert claim.content == content
    assert content_is_clean(claim)


def test_what_the_filter_keeps_is_what_scores_at_least_its_threshold() -> None:
    text = ("Commerce Secretary Ann Lee talked of reforms to ensure that American chipmakers "
            "keep their lead. Senator Maria Lopez has come out against the new chip export "
            "rule. The Biden administration unveiled its AI diffusion rule in January. "
            "The report did not say how many chips were used. It vowed to take necessary "
            "measures.")
    found = _candidates(text)
    kept = [c.claim for c in found
            if claims_tagged.score(c.features) >= claims_tagged.threshold()]
    rules = extract_claims(text, [], use_tagger=False)
    assert extract_claims(text, []) == rules + kept
    assert any(c.cue == "talked of" for c in kept), "a clear claim should pass the filter"
    # a negated cue is no claim and an unresolved "It" no speaker, as for the rules
    assert not any("did not say" in (c.claim.cue or "") for c in found)
    assert not any((c.claim.speaker or "").lower() == "it" for c in found)
    # an event verb makes an event, not alerted by default
    (unveiled,) = [c.claim for c in found if (c.claim.cue or "").startswith("unveil")]
    assert unveiled.quote_kind == "event"


def test_the_tagger_leaves_sentences_with_rule_claims_to_the_rules() -> None:
    text = ("Commerce Secretary Ann Lee said the rule would protect national security. "
            "Senator Maria Lopez has come out against the new chip export rule.")
    rules = extract_claims(text, [], use_tagger=False)
    assert rules and all("Lopez" not in (c.speaker or "") for c in rules)
    assert [c.claim.cue for c in _candidates(text)] == ["has come out against"]


def test_a_window_follows_only_what_it_goes_straight_on_from(tokenizer) -> None:  # type: ignore[no-untyped-def]
    long_sentence = "The rule " + " ".join(f"covers chip{k}" for k in range(120)) + "."
    text = f"{long_sentence} Next sentence here.\nA new paragraph starts.\n"
    cut = windows(text, tokenizer)
    assert len(cut) >= 2 and not cut[0].follows and cut[1].follows  # the cut sentence
    skipped = windows("One claim here. Two more words. Three ends it.", tokenizer,
                      skip=[(17, 20)])
    assert len(skipped) == 1 and not skipped[0].follows
    # a window goes on from the one before only over blanks and stops: never over a
    # skipped sentence or a paragraph break
    full = " ".join(["chips"] * 110)
    a, c = f"First {full}.", f"Third {full}."
    plain = windows(f"{a} {c}", tokenizer)
    assert [w.follows for w in plain] == [False, True]
    gap = f"{a} Skip this one. {c}"
    skipped_between = windows(gap, tokenizer, skip=[(gap.index("Skip"), gap.index("Skip") + 4)])
    assert [w.follows for w in skipped_between] == [False, False]
    assert [w.follows for w in windows(f"{a}\n{c}", tokenizer)] == [False, False]


def test_empty_and_blank_bodies_have_no_claims() -> None:
    assert extract_claims("", []) == []
    assert extract_claims(" \n\n ", []) == []


@pytest.mark.parametrize("text", [
    "Senator Maria Lopez hasn't come out against the new chip export rule.",
    "A spokesman for Senator Maria Lopez wouldn't comment on the new chip export rule or "
    "its timing.",
])
def test_negated_cues_and_refusals_are_no_claims(text: str) -> None:
    assert not any(c.cue and ("n't" in c.cue or "comment" in c.cue)
                   for c in extract_claims(text, []))


def test_int8_token_states_follow_the_float_graph_with_its_own_embeddings(tokenizer) -> None:  # type: ignore[no-untyped-def]
    """The tagger's states: embeddings summed in numpy, layers quantized to int8. Checked
    against the float32 graph that embeds the word pieces itself (`build_graph` with its
    embeddings), so an error in either the numpy embeddings or the quantization shows."""
    import numpy as np

    from tasks.claims.tagger import MODEL_FILE, models_dir
    from tasks.stance import TokenStates
    from tasks.stance.encoder import model_dir, read_safetensors
    from tasks.stance.graph import build_graph, make_session

    with np.load(models_dir() / MODEL_FILE) as saved:
        layers = {k: saved[k] for k in saved.files if k.startswith("encoder.")}
        depth = int(saved["layers"])
    weights = read_safetensors(model_dir() / "model.safetensors",
                               lambda name: name.startswith("embeddings."))
    weights.update({k: v.astype(np.float32) for k, v in layers.items()})
    reference = make_session(build_graph(weights, 0, depth, depth=depth + 1), threads=1)
    batch = windows(ARTICLE, tokenizer)[:2]
    length = max(len(w.ids) for w in batch)
    ids = np.zeros((len(batch), length), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, w in enumerate(batch):
        ids[i, : len(w.ids)], mask[i, : len(w.ids)] = w.ids, 1
    want = reference.run(["state"], {"input_ids": ids, "attention_mask": mask})[0]
    real = mask.astype(bool)
    as_float = TokenStates(layers, depth, int8=False)(ids, mask)
    assert np.abs(as_float - want)[real].max() < 1e-3
    as_int8 = TokenStates(layers, depth)(ids, mask)[real]
    assert np.abs(as_int8 - want[real]).max() > 1e-3  # quantized, not the float graph
    cosine = (as_int8 * want[real]).sum(-1) / (
        np.linalg.norm(as_int8, axis=-1) * np.linalg.norm(want[real], axis=-1))
    assert cosine.mean() > 0.98 and cosine.min() > 0.9


@pytest.mark.parametrize(("text", "cue", "passive"), [
    ("Trading houses are accused of relabeling servers.", "are accused", True),
    ("The firm was charged with smuggling chips.", "was charged", True),
    ("The rule was criticized by Senator Lopez as too broad.", "was criticized", False),
    ("Senator Lopez said the rule was too broad.", "said", False),
])
def test_an_agentless_passive_cue_names_no_speaker(text: str, cue: str, passive: bool) -> None:
    start = text.index(cue)
    span = (start, start + len(cue))
    assert claims_tagged._is_agentless_passive(text, span, cue.lower()) is passive
