"""Which alerts new claims raise: the config's rules applied to claims. Pure.

An alert is keyed by the claim's words (its claim_key), not by the article, so the same claim
carried by several outlets raises one alert; the message then lists every outlet.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task

from schemas.config import AlertRule
from schemas.models import Claim, PlannedAlert
from tasks.ids import alert_id_for, text_key
from tasks.notify import mask_channel


def _speaker_matches(claim: Claim, speakers: Sequence[str]) -> bool:
    if not speakers:
        return True
    wanted = {text_key(s) for s in speakers}
    return any(text_key(name) in wanted for name in (claim.speaker, claim.speaker_entity)
               if name)


def plan_alerts(claims: Sequence[Claim], rules: Sequence[AlertRule]) -> list[PlannedAlert]:
    """Every alert the claims raise under the rules (rules as `Config.alert_rules()` gives)."""
    planned: dict[str, PlannedAlert] = {}
    for claim in claims:
        for rule in rules:
            if not _speaker_matches(claim, rule.speakers):
                continue
            for entity in claim.entities:
                if entity not in rule.entities:
                    continue
                for channel in rule.channels:
                    masked = mask_channel(channel)
                    alert_id = alert_id_for(claim.claim_key, entity, masked, rule.name)
                    planned.setdefault(alert_id, PlannedAlert(
                        alert_id=alert_id, claim_id=claim.claim_id, claim_key=claim.claim_key,
                        entity=entity, channel=masked, rule=rule.name,
                        mode=rule.mode or "immediate"))
    return list(planned.values())


plan_alerts_task = task(name="plan-alerts")(plan_alerts)
