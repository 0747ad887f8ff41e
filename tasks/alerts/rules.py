"""Which alerts new claims raise: the config's rules applied to claims. Pure.

An alert is keyed by the claim's words (its claim_key), not by the article, so the same claim
carried by several outlets raises one alert; the message then lists every outlet.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task

from schemas.config import AlertRule, Topic
from schemas.ids import alert_id_for, text_key
from schemas.models import Claim, PlannedAlert
from tasks.alerts.delivery import rule_channel_labels


def _speaker_matches(claim: Claim, speakers: Sequence[str]) -> bool:
    if not speakers:
        return True
    wanted = {text_key(s) for s in speakers}
    return any(text_key(name) in wanted for name in (claim.speaker, claim.speaker_entity)
               if name)


def topic_similarities(claims: Sequence[Claim], topics: Sequence[Topic]
                       ) -> dict[tuple[str, str], float]:
    """(claim id, topic name) -> cosine similarity of the claim's sentence and the topic's
    position, with the MiniLM encoder the stance classifier uses."""
    if not claims or not topics:
        return {}
    import numpy as np  # only when a rule asks for topics, as the encoder

    from tasks.stance import load_minilm

    vectors = load_minilm().encode([*(t.description for t in topics),
                                    *(c.sentence for c in claims)])
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
    scores = vectors[len(topics):] @ vectors[:len(topics)].T
    return {(claim.claim_id, topic.name): float(scores[i, j])
            for i, claim in enumerate(claims) for j, topic in enumerate(topics)}


def plan_alerts(claims: Sequence[Claim], rules: Sequence[AlertRule],
                topics: Sequence[Topic] = ()) -> list[PlannedAlert]:
    """Every alert the claims raise under the rules (rules as `Config.alert_rules()` gives);
    `topics` are the config's, needed by rules that name topics."""
    wanted = {name for rule in rules for name in rule.topics}
    similarity = topic_similarities(claims, [t for t in topics if t.name in wanted])
    planned: dict[str, PlannedAlert] = {}
    labels = rule_channel_labels(rules)
    for claim in claims:
        for rule in rules:
            if claim.quote_kind == "event" and not rule.include_events:
                continue  # a product launch or a signing is news, not a claim
            if not _speaker_matches(claim, rule.speakers):
                continue
            if rule.topics and max(similarity.get((claim.claim_id, name), 0.0)
                                   for name in rule.topics) < rule.topic_similarity:
                continue
            for entity in claim.entities:
                if entity not in rule.entities:
                    continue
                for channel in rule.channels:
                    masked = labels[channel]
                    alert_id = alert_id_for(claim.claim_key, entity, masked, rule.name)
                    planned.setdefault(alert_id, PlannedAlert(
                        alert_id=alert_id, claim_id=claim.claim_id, claim_key=claim.claim_key,
                        entity=entity, channel=masked, rule=rule.name,
                        mode=rule.mode or "immediate"))
    return list(planned.values())


plan_alerts_task = task(name="plan-alerts")(plan_alerts)
