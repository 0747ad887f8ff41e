"""Claims from article bodies and stances from comments, with their stable ids.

Pure and batched: one call per run (or per batch of articles) so the NLP pipeline's start-up
cost and spaCy's batching are paid once, not per article.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task

from schemas.config import Entity, Topic
from schemas.models import Article, Claim, Comment, Stance
from tasks.claims import extract_claims_many
from tasks.ids import claim_id_for, claim_key_for
from tasks.stance import classify_stances


def extract_article_claims(articles: Sequence[Article], entities: Sequence[Entity],
                           *, n_process: int = 1) -> list[Claim]:
    drafts = extract_claims_many([a.body for a in articles], entities, n_process=n_process)
    claims: dict[str, Claim] = {}
    for article, found in zip(articles, drafts, strict=True):
        for draft in found:
            claim_id = claim_id_for(article.article_id, draft.speaker, draft.content)
            claims.setdefault(claim_id, Claim(
                claim_id=claim_id, article_id=article.article_id, speaker=draft.speaker,
                speaker_entity=draft.speaker_entity, cue=draft.cue, content=draft.content,
                sentence=draft.sentence, quote_kind=draft.quote_kind,
                entities=tuple(dict.fromkeys(draft.entities)),
                claim_key=claim_key_for(draft.content)))
    return list(claims.values())


def classify_comment_stances(comments: Sequence[Comment],
                             topics: Sequence[Topic]) -> list[Stance]:
    if not comments or not topics:
        return []
    results = classify_stances([c.body for c in comments], topics)
    return [Stance(comment_id=comment.comment_id, topic=topic.name, label=label,
                   score=min(1.0, max(0.0, float(score))))
            for comment, row in zip(comments, results, strict=True)
            for topic, (label, score) in zip(topics, row, strict=True)]


extract_claims_task = task(name="extract-claims")(extract_article_claims)
classify_stances_task = task(name="classify-stances")(classify_comment_stances)
