"""What is recorded about a call, below the flow: attaching the events that arrived
before their leg, and the call's state, outcome and timings derived from its legs.

Both ``events`` (recording what Vonage posts) and ``call_flow`` (deciding what happens
next) use these; neither is imported here, so the two never import each other.
"""

import logging

from campaigns.whisper import speaking_seconds

from . import statements
from .leg_progress import KNOWN_STATUSES, StatusEvent, apply_status
from .models import Call, CallDirection, CallEvent, CallLeg
from .outcomes import summarize, summarize_callback

logger = logging.getLogger("calls.events")


def events_adopt(*, call_id: int, leg_uuids: list[str]) -> int:
    """Attach and apply the events that reached /event before their leg was recorded.

    Vonage posts a new leg's first events (``started``; ``failed`` for a number that
    cannot be rung) as soon as it creates the call, often before ``create_call`` has
    answered us and the leg is saved; a caller leg's ``started`` can likewise beat the
    answer webhook. Those were stored unmatched (``leg`` empty); without this they
    would never count, and their redelivery is deduplicated away. Returns how many.
    """
    early = list(CallEvent.objects.filter(leg_uuid__in=leg_uuids, leg__isnull=True).order_by("received_at", "id"))
    if not early:
        return 0
    call = Call.objects.select_for_update(of=("self",)).get(pk=call_id)
    legs = list(call.legs.all())
    changed: dict[str, set[str]] = {}
    for leg in legs:
        mine = [event for event in early if event.leg_uuid == leg.uuid]
        if not mine:
            continue
        CallEvent.objects.filter(pk__in=[event.pk for event in mine]).update(call=call, leg=leg)
        for event in mine:
            if event.kind in ("status", "detection") and event.status in KNOWN_STATUSES:
                fields = apply_status(leg, StatusEvent.from_payload(event.payload))
                changed.setdefault(leg.uuid, set()).update(fields)
    for leg in legs:
        if changed.get(leg.uuid):
            leg.save(update_fields=sorted(changed[leg.uuid]))
    logger.info("event.adopted call=%s events=%s", call.pk, len(early))
    call_refresh(call, legs)
    return len(early)


def call_refresh(call: Call, legs: list[CallLeg]) -> None:
    """Recompute the call's state, outcome and timings from its legs (call row locked)."""
    changed = call_summary_apply(call, legs)
    if changed:
        statements.save_fields(call, changed)
        call_outcome_log(call, changed)


def call_summary_apply(call: Call, legs: list[CallLeg]) -> list[str]:
    """Set the call's state, outcome and timings from its legs, in memory; return the
    names of the fields changed, for the caller to save."""
    if call.direction == CallDirection.CALLBACK:
        summary = summarize_callback(started_at=call.started_at, legs=legs)
    else:
        summary = summarize(
            started_at=call.started_at,
            state=call.state,
            legs=legs,
            whisper_seconds=speaking_seconds(call.whisper_text),
            accept_required=call.accept_required,
            resolution=call.resolution,
            fallback_at=call.fallback_at,
        )
    changed = []
    for name in ("state", "outcome", "agent_answered_at", "ended_at", "wait_seconds", "talk_seconds"):
        value = getattr(summary, name)
        if getattr(call, name) != value:
            setattr(call, name, value)
            changed.append(name)
    return changed


def call_outcome_log(call: Call, changed: list[str]) -> None:
    if "outcome" in changed:
        logger.info("call.outcome call=%s outcome=%s", call.pk, call.outcome)
