"""Campaign triggers: the one builder of campaign-triggers records, with their deterministic ids."""
from __future__ import annotations

from projections.effects import CampaignTriggered
from projections.state import CustomerState
from schemas.outputs import campaign_trigger
from schemas.timeutil import format_ms


def campaign(state: CustomerState, name: str, period: str, at_ms: int, details: dict) -> CampaignTriggered:
    """Build a campaign trigger with its deterministic id."""
    trigger_id = f"{name}:{state.customer_id}:{period}"
    return CampaignTriggered(campaign_trigger(
        trigger_id=trigger_id, campaign=name, customer_id=state.customer_id,
        at=format_ms(at_ms), tier=state.tier, status=state.status, points_balance=state.points_balance,
        details=details), name, trigger_id)
