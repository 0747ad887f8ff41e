"""Claims from article bodies and stances from comments, with their stable ids.

Pure and batched: one call per run (or per batch of articles) so the NLP pipeline's start-up
cost and spaCy's batching are paid once, not per article. A text the extractor chokes on
becomes a reject (stage "extract") and the rest of the batch goes on.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task

from schemas.config import Entity, Topic
from schemas.models import Article, Claim, ClaimDraft, Comment, Reject, Stance
from tasks.claims import extract_claims_many
from tasks.ids import claim_id_for, claim_key_for
from tasks.stance import classify_stances


def _drafts(articles: Sequence[Article], entities: Sequence[Entity], n_process: int
            ) -> tuple[list[list[ClaimDraft] | None], list[Reject]]:
    try:
        return list(extract_claims_many([a.body for a in articles], entities,
                                        n_process=n_process)), []
    except Exception:  # find the article at fault, keep the others
        found: list[list[ClaimDraft] | None] = []
        rejects = []
        for article in articles:
            try:
                found.append(extract_claims_many([article.body], entities)[0])
            except Exception as exc:  # recorded as a reject with its reason
                found.append(None)
                rejects.append(Reject(url=article.url, source=article.source, stage="extract",
                                      reason=f"claims: {type(exc).__name__}: {exc}"[:300]))
        return found, rejects


def extract_article_claims(articles: Sequence[Article], entities: Sequence[Entity],
                           *, n_process: int = 1) -> tuple[list[Claim], list[Reject]]:
    """Claims of every article, and a reject for any article the extractor failed on."""
    drafts, rejects = _drafts(articles, entities, n_process)
    claims: dict[str, Claim] = {}
    for article, found in zip(articles, drafts, strict=True):
        for draft in found or ():
            claim_id = claim_id_for(article.article_id, draft.speaker, draft.content)
            claims.setdefault(claim_id, Claim(
                claim_id=claim_id, article_id=article.article_id, speaker=draft.speaker,
                speaker_entity=draft.speaker_entity, cue=draft.cue, content=draft.content,
                sentence=draft.sentence, quote_kind=draft.quote_kind,
                entities=tuple(dict.fromkeys(draft.entities)),
                claim_key=claim_key_for(draft.content)))
    return list(claims.values()), rejects


def classify_comment_stances(comments: Sequence[Comment], topics: Sequence[Topic]
                             ) -> tuple[list[Stance], list[Reject]]:
    """A stance per comment and topic; if the classifier fails, one reject says why."""
    if not comments or not topics:
        return [], []
    try:
        results = classify_stances([c.body for c in comments], topics)
    except Exception as exc:  # the run goes on without stances
        return [], [Reject(url="(comments)", source="*", stage="extract",
                           reason=f"stance: {type(exc).__name__}: {exc}"[:300])]
    return [Stance(comment_id=comment.comment_id, topic=topic.name, label=label,
                   score=min(1.0, max(0.0, float(score))))
            for comment, row in zip(comments, results, strict=True)
            for topic, (label, score) in zip(topics, row, strict=True)], []


extract_claims_task = task(name="extract-claims")(extract_article_claims)
classify_stances_task = task(name="classify-stances")(classify_comment_stances)
