"""Writes: what the app does when Vonage asks or tells it something.

Every function here is safe to repeat: Vonage retries answer webhooks with the same
``uuid`` and re-delivers events, so the unique constraints on ``CallLeg.uuid`` and
``CallEvent.dedupe_key`` turn a repeat into a no-op, and the answers given the first
time are stored and given again.
"""

import hashlib
import json
import logging
import time
import uuid as uuid_lib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse

from campaigns.phone import masked, spoken_digits
from campaigns.whisper import render_template

from . import ncco as nccos
from . import vonage_adapter
from .leg_progress import DETECTION_STATUSES, KNOWN_STATUSES, StatusEvent, apply_status, is_terminal
from .models import Call, CallEvent, CallLeg, CallState, LegRole, NumberStatus
from .outcomes import summarize
from .selectors import Route, caller_leg, route_for

logger = logging.getLogger(__name__)


class CallNotFound(Exception):
    """An agent's answer webhook named a call we have no record of."""


# --- the caller's answer webhook -------------------------------------------------------


def call_answer_inbound(
    *, uuid: str, to: str, from_: str, conversation_uuid: str = "", region_url: str = ""
) -> nccos.Ncco:
    """Record the call, ring the agent, and tell Vonage what the caller hears.

    Idempotent per ``uuid``: a retried webhook gets the NCCO stored the first time and
    places no second agent call.
    """
    existing = caller_leg(uuid)
    if existing is not None:
        logger.info("answer_inbound.retry call=%s uuid=%s", existing.call_id, uuid)
        return _stored_caller_ncco(existing.call)

    route = route_for(to)
    try:
        call = _call_create(
            route=route, uuid=uuid, from_=from_, conversation_uuid=conversation_uuid, region_url=region_url
        )
    except IntegrityError:
        # A concurrent delivery of the same webhook won the insert; answer as it does.
        logger.info("answer_inbound.concurrent uuid=%s", uuid)
        return _wait_for_caller_ncco(uuid)

    try:
        placed = vonage_adapter.place_call(
            to=route.destination,
            from_=route.called_number,
            answer_url=_public_url("calls:answer_outbound") + f"?call={call.pk}",
            event_url=_public_url("calls:event"),
            deadline_seconds=settings.AGENT_CALL_DEADLINE_SECONDS,
        )
    except vonage_adapter.VonageUnavailable as exc:
        logger.warning("answer_inbound.agent_call_failed call=%s error=%s", call.pk, exc)
        ncco = nccos.caller_connects_directly(
            greeting=route.greeting,
            destination=route.destination,
            from_number=route.called_number,
            event_url=_public_url("calls:event"),
        )
        with transaction.atomic():
            Call.objects.filter(pk=call.pk).update(
                caller_ncco=ncco, state=CallState.DIRECT, agent_call_error=str(exc)[:1000]
            )
            _events_adopt(call_id=call.pk, leg_uuids=[uuid])
        return ncco

    ncco = nccos.caller_waits(
        greeting=route.greeting, conference_name=call.conference_name, hold_music_url=route.hold_music_url
    )
    with transaction.atomic():
        CallLeg.objects.get_or_create(
            uuid=placed.uuid,
            defaults={
                "call": call,
                "role": LegRole.AGENT,
                "conversation_uuid": placed.conversation_uuid,
                "from_number": route.called_number,
                "to_number": route.destination,
                "direction": "outbound",
            },
        )
        Call.objects.filter(pk=call.pk).update(caller_ncco=ncco)
        _events_adopt(call_id=call.pk, leg_uuids=[uuid, placed.uuid])
    logger.info(
        "answer_inbound.waiting call=%s number_status=%s caller=%s agent_uuid=%s sent=%s",
        call.pk,
        route.number_status,
        masked(from_),
        placed.uuid,
        placed.sent,
    )
    return ncco


def _call_create(*, route: Route, uuid: str, from_: str, conversation_uuid: str, region_url: str) -> Call:
    with transaction.atomic():
        call = Call.objects.create(
            tracking_number=route.tracking_number,
            campaign=route.campaign,
            number_status=route.number_status,
            caller_number=str(from_ or "")[:32],
            called_number=route.called_number,
            source=route.source,
            destination=route.destination,
            conference_name=f"whisper-{uuid_lib.uuid4().hex}",
        )
        CallLeg.objects.create(
            uuid=uuid,
            call=call,
            role=LegRole.CALLER,
            conversation_uuid=conversation_uuid,
            from_number=str(from_ or "")[:32],
            to_number=route.called_number,
            direction="inbound",
            region_url=region_url,
        )
    return call


def _stored_caller_ncco(call: Call) -> nccos.Ncco:
    if call.caller_ncco:
        return list(call.caller_ncco)
    return _wait_for_caller_ncco(call.legs.get(role=LegRole.CALLER).uuid)


def _wait_for_caller_ncco(uuid: str) -> nccos.Ncco:
    """Another process is answering this call; wait for its NCCO within Vonage's budget."""
    deadline = time.monotonic() + settings.AGENT_CALL_DEADLINE_SECONDS + 0.5
    while time.monotonic() < deadline:
        leg = caller_leg(uuid)
        if leg is not None and leg.call.caller_ncco:
            return list(leg.call.caller_ncco)
        time.sleep(0.05)
    leg = caller_leg(uuid)
    to = leg.to_number if leg else ""
    logger.warning("answer_inbound.no_stored_ncco uuid=%s: connecting directly", uuid)
    return safe_default_ncco(to=to)


def safe_default_ncco(*, to: str) -> nccos.Ncco:
    """What a caller hears when nothing else can be worked out: the call centre, directly.

    Built from settings alone so that it works with the database down.
    """
    from campaigns.models import DEFAULT_GREETING

    return nccos.caller_connects_directly(
        greeting=DEFAULT_GREETING, destination=settings.CALL_CENTER_NUMBER, from_number=str(to or "")
    )


# --- the agent's answer webhook ----------------------------------------------------------


def call_answer_agent(
    *, call_id: int, uuid: str, conversation_uuid: str = "", region_url: str = ""
) -> nccos.Ncco:
    """The agent picked up: whisper, then join the caller's conversation.

    The whisper is rendered from the campaign as it is now (an edit in the admin
    applies to the very next call) and stored as spoken; a retry replays it.
    """
    with transaction.atomic():
        call = (
            # PostgreSQL cannot lock the nullable side of an outer join: lock the call only.
            Call.objects.select_for_update(of=("self",))
            .select_related("campaign", "tracking_number")
            .filter(pk=call_id)
            .first()
        )
        if call is None:
            raise CallNotFound(call_id)
        other_agents = call.legs.filter(role=LegRole.AGENT).exclude(uuid=uuid)
        if other_agents.exists() and not CallLeg.objects.filter(uuid=uuid).exists():
            # An agent call we were never told about: the SDK re-sends a POST whose
            # connection dropped (VONAGE.md), and Vonage may have created the first one
            # too. Only the leg ``place_call`` returned joins the caller; this one is
            # told so, not recorded, and ends when the talk does.
            logger.warning("answer_outbound.unknown_agent_leg call=%s agent_uuid=%s", call.pk, uuid)
            return nccos.agent_hears_call_taken()
        leg, _ = CallLeg.objects.get_or_create(
            uuid=uuid,
            defaults={
                "call": call,
                "role": LegRole.AGENT,
                "direction": "outbound",
                "to_number": call.destination,
                "from_number": call.called_number,
            },
        )
        updates = [
            f
            for f, v in (("conversation_uuid", conversation_uuid), ("region_url", region_url))
            if v and not getattr(leg, f)
        ]
        if updates:
            leg.conversation_uuid = leg.conversation_uuid or conversation_uuid
            leg.region_url = leg.region_url or region_url
            leg.save(update_fields=updates)

        caller = call.legs.filter(role=LegRole.CALLER).first()
        if call.state in (CallState.ENDED, CallState.DIRECT) or (caller and is_terminal(caller.status)):
            logger.info("answer_outbound.caller_gone call=%s agent_uuid=%s", call.pk, uuid)
            return nccos.agent_hears_caller_left()

        if not call.whisper_text:
            call.whisper_text = whisper_for(call)
            call.save(update_fields=["whisper_text"])
    logger.info("answer_outbound.whisper call=%s agent_uuid=%s", call.pk, uuid)
    return nccos.agent_hears_whisper(whisper=call.whisper_text, conference_name=call.conference_name)


def whisper_for(call: Call) -> str:
    """The words the agent hears for ``call``."""
    number = spoken_digits(call.called_number)
    if call.number_status == NumberStatus.UNKNOWN or call.campaign is None:
        return f"Incoming call to an unrecognised number, {number}."
    if call.number_status == NumberStatus.INACTIVE:
        return f"Incoming call to the inactive number {number}, last used for {call.campaign.name}."
    campaign = call.campaign
    return render_template(
        campaign.whisper_template,
        {"topic": campaign.topic, "campaign": campaign.name, "source": call.source, "number": number},
    )


# --- Vonage's fallback answer URL -------------------------------------------------------


def call_answer_fallback(*, uuid: str, to: str, from_: str, reason: str = "") -> nccos.Ncco:
    """Vonage could not use our answer URL: keep the caller's call going regardless.

    If our first answer was recorded, the caller gets it (the agent is already being
    rung); otherwise the caller is connected straight to the call centre.
    """
    leg = caller_leg(uuid) if uuid else None
    if leg is not None and leg.call.caller_ncco:
        logger.warning("fallback.replay call=%s reason=%s", leg.call_id, reason)
        return list(leg.call.caller_ncco)
    route = route_for(to)
    ncco = nccos.caller_connects_directly(
        greeting=route.greeting,
        destination=route.destination,
        from_number=route.called_number,
        event_url=_public_url("calls:event"),
    )
    if uuid and leg is None:
        try:
            call = _call_create(route=route, uuid=uuid, from_=from_, conversation_uuid="", region_url="")
        except IntegrityError:
            return ncco
        with transaction.atomic():
            Call.objects.filter(pk=call.pk).update(
                caller_ncco=ncco,
                state=CallState.DIRECT,
                agent_call_error=f"Vonage used the fallback answer URL ({reason or 'no reason given'}).",
            )
            _events_adopt(call_id=call.pk, leg_uuids=[uuid])
        logger.warning("fallback.direct call=%s reason=%s", call.pk, reason)
    return ncco


# --- the event webhook -------------------------------------------------------------------


@dataclass(frozen=True)
class EventReceipt:
    stored: bool
    kind: str
    call_id: int | None


def event_record(*, payload: dict[str, Any]) -> EventReceipt:
    """Store one delivery to /event (once) and apply it to its leg and call."""
    kind = event_kind(payload)
    leg_uuid = str(payload.get("uuid") or payload.get("call_uuid") or "")[:64]
    status = str(payload.get("status") or "")[:32]
    with transaction.atomic():
        leg = _leg_for_event(payload, leg_uuid, kind)
        call = Call.objects.select_for_update().get(pk=leg.call_id) if leg else None
        try:
            with transaction.atomic():
                CallEvent.objects.create(
                    dedupe_key=dedupe_key(payload, kind=kind, leg_uuid=leg_uuid, status=status),
                    call=call,
                    leg=leg,
                    leg_uuid=leg_uuid,
                    conversation_uuid=str(payload.get("conversation_uuid") or "")[:64],
                    kind=kind,
                    status=status,
                    occurred_at=StatusEvent.from_payload(payload).timestamp,
                    payload=payload,
                )
        except IntegrityError:
            logger.info(
                "event.duplicate call=%s uuid=%s kind=%s status=%s",
                call.pk if call else None,
                leg_uuid,
                kind,
                status,
            )
            return EventReceipt(stored=False, kind=kind, call_id=call.pk if call else None)

        if leg is None or call is None:  # one is None only with the other
            logger.info("event.unmatched uuid=%s kind=%s status=%s", leg_uuid, kind, status)
            return EventReceipt(stored=True, kind=kind, call_id=None)
        if kind == "status" and status not in KNOWN_STATUSES:
            logger.warning("event.unknown_status call=%s uuid=%s status=%s", call.pk, leg_uuid, status)
        elif kind in ("status", "detection"):
            # Read after the call row is locked: every writer of a leg's status holds
            # that lock, so these are current and nobody else changes them meanwhile.
            legs = list(call.legs.all())
            leg = next(each for each in legs if each.pk == leg.pk)
            changed = apply_status(leg, StatusEvent.from_payload(payload))
            if changed:
                leg.save(update_fields=changed)
            _call_refresh(call, legs)
        logger.info("event.stored call=%s uuid=%s kind=%s status=%s", call.pk, leg_uuid, kind, status)
    return EventReceipt(stored=True, kind=kind, call_id=call.pk)


def event_kind(payload: dict[str, Any]) -> str:
    status = payload.get("status")
    if status in DETECTION_STATUSES:
        return "detection"
    if status:
        return "status"
    if "recording_url" in payload:
        return "record"
    if "dtmf" in payload or "speech" in payload:
        return "input"
    if "conversation_uuid_to" in payload or payload.get("type") == "transfer":
        return "transfer"
    if "reason" in payload:
        return "error"
    return "other"


def dedupe_key(payload: dict[str, Any], *, kind: str, leg_uuid: str, status: str) -> str:
    """Status events are one per (leg, status) whatever else differs (VONAGE.md);
    anything else is a redelivery only when the whole body is the same."""
    if kind in ("status", "detection") and leg_uuid:
        return f"status:{leg_uuid}:{status}"[:100]
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return f"{kind}:{hashlib.sha256(body.encode()).hexdigest()}"


def _leg_for_event(payload: dict[str, Any], leg_uuid: str, kind: str) -> CallLeg | None:
    if not leg_uuid:
        return None
    leg = CallLeg.objects.filter(uuid=leg_uuid).first()
    if leg is not None or kind != "status":
        return leg
    # A leg we did not create (the ``connect`` to the call centre when no whisper was
    # possible) shares the caller's conversation: attach it to that call as an agent leg.
    conversation = str(payload.get("conversation_uuid") or "")
    if not conversation or payload.get("direction") != "outbound":
        return None
    caller = CallLeg.objects.filter(conversation_uuid=conversation, role=LegRole.CALLER).first()
    if caller is None:
        return None
    try:
        with transaction.atomic():
            return CallLeg.objects.create(
                uuid=leg_uuid,
                call_id=caller.call_id,
                role=LegRole.AGENT,
                conversation_uuid=conversation,
                from_number=str(payload.get("from") or "")[:32],
                to_number=str(payload.get("to") or "")[:32],
                direction="outbound",
            )
    except IntegrityError:
        return CallLeg.objects.filter(uuid=leg_uuid).first()


def _events_adopt(*, call_id: int, leg_uuids: list[str]) -> None:
    """Attach and apply the events that reached /event before their leg was recorded.

    Vonage posts a new leg's first events (``started``; ``failed`` for a number that
    cannot be rung) as soon as it creates the call, often before ``create_call`` has
    answered us and the leg is saved; a caller leg's ``started`` can likewise beat the
    answer webhook. Those were stored unmatched (``leg`` empty); without this they
    would never count, and their redelivery is deduplicated away.
    """
    early = list(
        CallEvent.objects.filter(leg_uuid__in=leg_uuids, leg__isnull=True).order_by("received_at", "id")
    )
    if not early:
        return
    call = Call.objects.select_for_update().get(pk=call_id)
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
    _call_refresh(call, legs)


def _call_refresh(call: Call, legs: list[CallLeg]) -> None:
    """Recompute the call's state, outcome and timings from its legs (call row locked)."""
    summary = summarize(started_at=call.started_at, state=call.state, legs=legs)
    changed = []
    for field in ("state", "outcome", "agent_answered_at", "ended_at", "wait_seconds", "talk_seconds"):
        value = getattr(summary, field)
        if getattr(call, field) != value:
            setattr(call, field, value)
            changed.append(field)
    if changed:
        call.save(update_fields=changed)
        if "outcome" in changed:
            logger.info("call.outcome call=%s outcome=%s", call.pk, call.outcome)


def _public_url(name: str) -> str:
    return settings.PUBLIC_URL + reverse(name)
