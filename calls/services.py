"""Writes: what the app does when Vonage asks or tells it something.

Every function here is safe to repeat: Vonage retries answer webhooks with the same
``uuid`` and re-delivers events, so the unique constraints on ``CallLeg.uuid`` and
``CallEvent.dedupe_key`` turn a repeat into a no-op, and the answers given the first
time are stored and given again.
"""

import logging
import time
import uuid as uuid_lib
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.models import DEFAULT_GREETING, Strategy
from campaigns.phone import InvalidNumber, masked, normalize_number, spoken_digits
from campaigns.whisper import earlier_calls, render_template

from . import agent_dispatch, annotations, call_flow, pacing, route_cache, statements
from . import ncco as nccos
from .call_records import events_adopt
from .events import conversation_legs_adopt
from .leg_progress import is_terminal
from .logging import call_context_set
from .models import Call, CallLeg, CallState, LegRole, NumberStatus, Outcome
from .reconcile import max_wait_seconds
from .route_cache import route_cached
from .selectors import Route, caller_leg, one_or_none, route_for
from .webhooks import replay

logger = logging.getLogger(__name__)


class CallNotFound(Exception):
    """An agent's answer webhook named a call we have no record of."""


# --- the caller's answer webhook -------------------------------------------------------


def call_answer_inbound(
    *,
    uuid: str,
    to: str,
    from_: str,
    conversation_uuid: str = "",
    region_url: str = "",
    admission: replay.Admission | None = None,
) -> nccos.Ncco:
    """Record the call and tell Vonage what the caller hears; then ring the agent.

    The answer does not wait for Vonage's REST API: the agent call is placed after it
    (``agent_dispatch``). Idempotent per ``uuid``: a retried webhook gets the NCCO
    stored the first time and places no second agent call. Outside the campaign's
    hours the caller hears the closed message and nobody is rung; with the connect
    strategy Vonage rings the agent itself, so no REST request is made at all.

    With ``admission``, the request's signature is remembered by the call's first
    statement; ``replay.Replayed`` (nothing done) when it was used for another request.
    """
    # A retry is rare: it is told apart by the caller leg's unique uuid when the insert
    # fails, not looked for first on every call.
    caller = str(from_ or "")[:32]
    if admission is None:
        start = statements.call_start(caller=caller)
    else:
        start = statements.call_start(caller=caller, jti=admission.jti, digest=admission.digest)
    if admission is not None:
        replay.admission_settle(admission, remembered=start.admitted)
    route = route_cached(to, version=start.routes_version)
    if start.caller_blocked:
        return caller_blocked_answer(
            route=route, uuid=uuid, from_=from_, conversation_uuid=conversation_uuid, region_url=region_url
        )
    campaign = route.campaign if route.number_status == NumberStatus.TRACKED else None
    closed = campaign is not None and not campaign.is_open(timezone.now())
    # The agent call (or the connect) claims its send time under the account's limit
    # before the call is written: the pacer's row is held only for its own statement.
    slot = None if closed else pacing.slot_claim()
    call, leg = _call_build(
        route=route,
        uuid=uuid,
        from_=from_,
        conversation_uuid=conversation_uuid,
        region_url=region_url,
        strategy=campaign.strategy if campaign else Strategy.CONFERENCE,
        accept_required=bool(campaign and campaign.require_accept),
        closed=closed,
    )
    try:
        ncco, fields = _call_answer_record(call, leg, route, call_id=start.call_id, closed=closed, slot=slot)
    except IntegrityError:
        return _answer_again(uuid)
    _destination_refused_log(call, route)

    ring_at = fields.get("ring_at")
    if closed:
        logger.info("answer_inbound.closed call=%s campaign=%s", call.pk, call.campaign_id)
    elif fields.get("fallback_at"):
        logger.warning("answer_inbound.queue_too_long call=%s: the caller goes to the fallback", call.pk)
    elif call.strategy == Strategy.CONNECT:
        logger.info("answer_inbound.connect call=%s caller=%s queued=%s", call.pk, masked(from_), bool(ring_at))
        if isinstance(ring_at, datetime):
            agent_dispatch.schedule(call_id=call.pk, attempt=0, ring_at=ring_at)
    else:
        logger.info(
            "answer_inbound.waiting call=%s number_status=%s caller=%s",
            call.pk,
            route.number_status,
            masked(from_),
        )
        if isinstance(ring_at, datetime):
            agent_dispatch.schedule(call_id=call.pk, attempt=0, ring_at=ring_at)  # queued: rung at its time
        else:
            agent_dispatch.ring_first_agent_soon(call.pk, started_at=call.started_at)
    return ncco


def caller_blocked_answer(
    *, route: Route, uuid: str, from_: str, conversation_uuid: str, region_url: str
) -> nccos.Ncco:
    """A caller whose number is blocked (calls/annotations.py; looked up in the call's
    first statement, calls/statements.call_start): the call is recorded with the outcome
    ``blocked``, the caller hears a short message and Vonage hangs up; no agent is rung
    and no send time is claimed."""
    try:
        with transaction.atomic():
            call = _call_create(
                route=route, uuid=uuid, from_=from_, conversation_uuid=conversation_uuid, region_url=region_url
            )
            call_context_set(call.pk)
            ncco = annotations.blocked_caller_ncco(voice=call_flow.voice_for(call))
            # The state and resolution a closed call gets: the ended caller leg makes it "blocked".
            Call.objects.filter(pk=call.pk).update(
                caller_ncco=ncco, state=CallState.FALLBACK, resolution=Outcome.BLOCKED, fallback_at=timezone.now()
            )
            events_adopt(call_id=call.pk, leg_uuids=[uuid])
    except IntegrityError:
        return _answer_again(uuid)
    logger.info("answer_inbound.blocked call=%s caller=%s: not put through", call.pk, masked(from_))
    return ncco


def _answer_again(uuid: str) -> nccos.Ncco:
    """A retried (or concurrent) delivery of the caller's answer webhook: the answer
    stored the first time; and the agent rung, if the first delivery's process died
    before it could be."""
    existing = caller_leg(uuid)
    if existing is None or not existing.call.caller_ncco:
        # A concurrent delivery of the same webhook is still answering; answer as it does.
        logger.info("answer_inbound.concurrent uuid=%s", uuid)
        return _wait_for_caller_ncco(uuid)
    call_context_set(existing.call_id)
    logger.info("answer_inbound.retry call=%s uuid=%s", existing.call_id, uuid)
    if existing.call.agent_requested_at is None and existing.call.strategy == Strategy.CONFERENCE:
        if existing.call.ring_at is not None:
            agent_dispatch.schedule(call_id=existing.call_id, attempt=0, ring_at=existing.call.ring_at)
        else:
            agent_dispatch.ring_first_agent_soon(existing.call_id, started_at=existing.call.started_at)
    return list(existing.call.caller_ncco)


def _call_answer_record(
    call: Call, leg: CallLeg, route: Route, *, call_id: int | None, closed: bool, slot: pacing.Slot | None
) -> tuple[nccos.Ncco, dict[str, object]]:
    """Write the new call, its caller's leg and the caller's answer, and adopt any
    events that came first. PostgreSQL, where ``call_id`` was taken from the sequence
    beforehand: the answer is built first and all of it written in one statement.
    SQLite: in a transaction, the answer built once the call has its id."""
    if call_id is not None:
        call.pk = call_id
        leg.call = call  # its call_id, now that the call has one
        call_context_set(call.pk)
        ncco, fields = _caller_first_ncco(call, route, closed=closed, slot=slot)
        call.caller_ncco = ncco
        for name, value in fields.items():
            setattr(call, name, value)
        if statements.call_with_caller_leg_insert(call, leg):
            with transaction.atomic():
                events_adopt(call_id=call.pk, leg_uuids=[leg.uuid])
        return ncco, fields
    with transaction.atomic():
        _call_write(call, leg)
        call_context_set(call.pk)
        ncco, fields = _caller_first_ncco(call, route, closed=closed, slot=slot)
        Call.objects.filter(pk=call.pk).update(caller_ncco=ncco, **fields)
        events_adopt(call_id=call.pk, leg_uuids=[leg.uuid])
    return ncco, fields


def _caller_first_ncco(
    call: Call, route: Route, *, closed: bool, slot: pacing.Slot | None = None
) -> tuple[nccos.Ncco, dict[str, object]]:
    """What the caller hears first, and what that changes on the call.

    A caller whose send time (``slot``, calls/pacing.py) is later than now is queued:
    ``ring_at`` is kept on the call, and with ``CALL_QUEUE_ANNOUNCE_POSITION`` the
    greeting says the caller's place in line. With the connect strategy a queued caller
    holds in the call's conversation, with hold music, instead of the ``connect``, and
    is moved to it at that time (agent_dispatch.ring_when_due). A caller whose time
    would come after the campaign's longest wait hears the fallback at once.
    """
    if closed:
        return call_flow.closed_ncco(call), {"state": CallState.FALLBACK, "fallback_at": timezone.now()}
    greeting = render_template(route.greeting, whisper_values(call))
    fields: dict[str, object] = {}
    if slot is not None and not slot.due:
        if slot.at >= call.started_at + timedelta(seconds=max_wait_seconds(call)):
            fallback = call_flow.fallback_ncco(call)
            return [nccos.talk(greeting, voice=call_flow.voice_for(call)), *fallback], {
                "state": CallState.FALLBACK,
                "fallback_at": timezone.now(),
            }
        fields["ring_at"] = slot.at
        if settings.CALL_QUEUE_ANNOUNCE_POSITION:
            greeting = f"{greeting} You are number {slot.position} in line."
        if call.strategy == Strategy.CONNECT:
            return call_flow.caller_holds(call, greeting=greeting), fields
    if call.strategy == Strategy.CONNECT:
        return call_flow.connect_attempt_ncco(call, 0, greeting=greeting), {}
    # The agent is rung while the greeting plays; the checkpoint after it connects the
    # caller directly if Vonage refuses (agent_dispatch).
    ncco = nccos.caller_waits(
        greeting=greeting,
        conference_name=call.conference_name,
        hold_music_url=route.hold_music_url,
        voice=call_flow.voice_for(call),
        checkpoint_url=agent_dispatch.checkpoint_url(call.pk),
    )
    return ncco, fields


def _call_create(
    *,
    route: Route,
    uuid: str,
    from_: str,
    conversation_uuid: str,
    region_url: str,
    started_at: datetime | None = None,
) -> Call:
    """The call and its caller's leg, written; run inside the caller's transaction."""
    call, leg = _call_build(
        route=route,
        uuid=uuid,
        from_=from_,
        conversation_uuid=conversation_uuid,
        region_url=region_url,
        started_at=started_at,
    )
    _call_write(call, leg)
    _destination_refused_log(call, route)
    return call


def _call_build(
    *,
    route: Route,
    uuid: str,
    from_: str,
    conversation_uuid: str,
    region_url: str,
    strategy: str = Strategy.CONFERENCE,
    accept_required: bool = False,
    closed: bool = False,
    started_at: datetime | None = None,
) -> tuple[Call, CallLeg]:
    """A new call to ``route`` and its caller's leg, not yet written."""
    call = Call(
        started_at=started_at or timezone.now(),
        tracking_number=route.tracking_number,
        campaign=route.campaign,
        number_status=route.number_status,
        caller_number=str(from_ or "")[:32],
        called_number=route.called_number,
        source=route.source,
        destination=route.destination,
        conference_name=f"whisper-{uuid_lib.uuid4().hex}",
        strategy=strategy,
        accept_required=accept_required,
        resolution=Outcome.CLOSED if closed else "",
    )
    leg = CallLeg(
        uuid=uuid,
        call=call,
        role=LegRole.CALLER,
        conversation_uuid=conversation_uuid,
        from_number=str(from_ or "")[:32],
        to_number=route.called_number,
        direction="inbound",
        region_url=region_url,
    )
    return call, leg


def _destination_refused_log(call: Call, route: Route) -> None:
    if route.refused_destination:
        logger.warning(
            "call.destination_refused call=%s number=%s: outside ALLOWED_DESTINATION_PREFIXES, "
            "the call centre is rung instead",
            call.pk,
            route.refused_destination,
        )


def _call_write(call: Call, leg: CallLeg) -> None:
    """Save a built call and its caller's leg (the ORM's way: SQLite, and the rare paths)."""
    call.save()
    leg.call = call
    leg.save()


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
    return nccos.caller_connects_directly(
        greeting=DEFAULT_GREETING, destination=settings.CALL_CENTER_NUMBER, from_number=str(to or "")
    )


# --- calls answered while the database was unreachable (spool) ---------------------------

LATE_REASON = "Answered while the database was unreachable: connected directly, recorded afterwards."


def call_record_late(
    *,
    uuid: str,
    to: str,
    from_: str,
    conversation_uuid: str,
    region_url: str,
    ncco: nccos.Ncco,
    received_at: datetime,
    reason: str = "",
) -> Call | None:
    """Record a caller's call that was answered while the database was unreachable, or
    shed under overload (``reason``; the answer was the safe one: straight to the call
    centre), from the spool. Nothing when the caller's leg is recorded already (Vonage
    retried once the database was back, or a replay ran before). The ``connect`` leg
    Vonage then made shares the caller's conversation: its events, stored unmatched
    meanwhile, are adopted too."""
    if not uuid or caller_leg(uuid) is not None:
        return None
    route = route_for(to)
    try:
        with transaction.atomic():
            call = _call_create(
                route=route,
                uuid=uuid,
                from_=from_,
                conversation_uuid=conversation_uuid,
                region_url=region_url,
                started_at=received_at,
            )
            Call.objects.filter(pk=call.pk).update(
                caller_ncco=ncco or safe_default_ncco(to=to),
                state=CallState.DIRECT,
                agent_call_error=reason or LATE_REASON,
                recorded_late=True,
            )
            events_adopt(call_id=call.pk, leg_uuids=[uuid])
    except IntegrityError:
        return None
    conversation_legs_adopt(call_id=call.pk, conversation_uuid=conversation_uuid)
    logger.warning("call.recorded_late call=%s uuid=%s", call.pk, uuid)
    return call


def agent_leg_record_late(
    *, call_id: int, uuid: str, conversation_uuid: str, region_url: str, attempt: int | None
) -> bool:
    """Record an agent's leg whose answer webhook came while the database was
    unreachable (the agent was told the call could not be connected), from the spool."""
    if not uuid or CallLeg.objects.filter(uuid=uuid).exists():
        return False
    call = one_or_none(Call.objects.filter(pk=call_id))
    if call is None:
        return False
    try:
        with transaction.atomic():
            _agent_leg_create(
                call, uuid=uuid, attempt=attempt, conversation_uuid=conversation_uuid, region_url=region_url
            )
            events_adopt(call_id=call.pk, leg_uuids=[uuid])
    except IntegrityError:
        return False
    logger.warning("call.agent_leg_recorded_late call=%s agent_uuid=%s", call_id, uuid)
    return True


def _agent_leg_create(
    call: Call, *, uuid: str, attempt: int | None, conversation_uuid: str, region_url: str
) -> CallLeg:
    """An agent leg first heard of from Vonage (its answer or its events), not from our
    create-call, saved."""
    leg = _agent_leg_new(call, uuid=uuid, attempt=attempt, conversation_uuid=conversation_uuid, region_url=region_url)
    leg.save(force_insert=True)
    return leg


def _agent_leg_new(call: Call, *, uuid: str, attempt: int | None, conversation_uuid: str, region_url: str) -> CallLeg:
    """An agent leg first heard of from Vonage: rung from the campaign number to the call's
    destination. Not saved."""
    return CallLeg(
        uuid=uuid,
        call=call,
        role=LegRole.AGENT,
        attempt=attempt if attempt is not None else call.attempt,
        direction="outbound",
        to_number=call.destination,
        from_number=call.called_number,
        conversation_uuid=conversation_uuid,
        region_url=region_url,
    )


def _agent_leg_heard(
    call: Call, *, uuid: str, attempt: int | None, conversation_uuid: str, region_url: str
) -> tuple[CallLeg | None, bool]:
    """The agent leg an answer names but the call's legs, read under its lock, did not
    have: recorded here, or, when the thread that placed the call recorded it meanwhile
    (it writes without the call's lock; an agent's phone that answers at once, a PBX,
    races it), that thread's row. Returns the leg (None when the uuid is another call's
    leg) and whether it was recorded here."""
    leg = _agent_leg_new(call, uuid=uuid, attempt=attempt, conversation_uuid=conversation_uuid, region_url=region_url)
    leg, inserted = statements.insert_or_existing(leg, unique="uuid")
    if inserted:
        return leg, True
    if leg.call_id != call.pk:
        return None, False  # another call's leg: not this answer's to take
    logger.info("answer_outbound.leg_recorded_meanwhile call=%s agent_uuid=%s", call.pk, uuid)
    leg.call = call
    return leg, False


# --- the agent's answer webhook ----------------------------------------------------------


def call_answer_agent(
    *,
    call_id: int,
    uuid: str,
    conversation_uuid: str = "",
    region_url: str = "",
    attempt: int | None = None,
    admission: replay.Admission | None = None,
) -> nccos.Ncco:
    """The agent picked up: whisper, then join the caller (or, with press 1 to accept,
    the prompt). With the connect strategy this is the ``onAnswer`` NCCO: the whisper
    only, and Vonage bridges the two legs itself.

    The whisper is rendered from the campaign as it is now (an edit in the admin
    applies to the very next call) and stored as spoken; a retry replays it.

    With ``admission``, the request's signature is remembered by the transaction's first
    statement; ``replay.Replayed`` (nothing done) when it was used for another request.
    """
    call_context_set(call_id)
    with transaction.atomic():
        if admission is None:
            call, legs, routes_version = statements.call_and_legs_with_routes_version(call_id=call_id)
        else:
            call, legs, routes_version, remembered = statements.call_and_legs_with_routes_version_admitting(
                call_id=call_id, jti=admission.jti, digest=admission.digest
            )
            replay.admission_settle(admission, remembered=remembered)
        if call is None:
            raise CallNotFound(call_id)
        # The campaign as it is now: from memory unless a routing change came since.
        route_cache.campaign_attach(call, version=routes_version)
        leg = next((each for each in legs if each.uuid == uuid), None)
        if leg is None and call.strategy == Strategy.CONFERENCE and any(each.role == LegRole.AGENT for each in legs):
            # An agent call we were never told about: the SDK re-sends a POST whose
            # connection dropped (VONAGE.md), and Vonage may have created the first one
            # too. Only the leg ``place_call`` returned joins the caller; this one is
            # told so, not recorded, and ends when the talk does.
            logger.warning("answer_outbound.unknown_agent_leg call=%s agent_uuid=%s", call.pk, uuid)
            return nccos.agent_hears_call_taken()
        recorded_here = False
        if leg is None:
            heard, recorded_here = _agent_leg_heard(
                call, uuid=uuid, attempt=attempt, conversation_uuid=conversation_uuid, region_url=region_url
            )
            if heard is None:
                logger.warning("answer_outbound.leg_of_another_call call=%s agent_uuid=%s", call.pk, uuid)
                return nccos.agent_hears_call_taken()
            leg = heard
            legs.append(leg)
        # What Vonage tells of the leg and the whisper as spoken, written together at the
        # end (one statement on PostgreSQL).
        saves: list[tuple[Call | CallLeg, list[str]]] = []
        if recorded_here:
            # Its first events may have come before it was recorded (a late agent call, or
            # the placing worker killed after Vonage created it): they count from now on.
            if events_adopt(call_id=call.pk, leg_uuids=[uuid]):
                leg.refresh_from_db()
        else:
            updates = [
                f
                for f, v in (("conversation_uuid", conversation_uuid), ("region_url", region_url))
                if v and not getattr(leg, f)
            ]
            leg.conversation_uuid = leg.conversation_uuid or conversation_uuid
            leg.region_url = leg.region_url or region_url
            saves.append((leg, updates))

        not_joined = _agent_not_joined(call, legs, leg, uuid=uuid)
        if not_joined is None and not call.whisper_text:
            call.whisper_text = whisper_for(call)
            saves.append((call, ["whisper_text"]))
        statements.save_fields_together(saves)
    if not_joined is not None:
        return not_joined
    logger.info("answer_outbound.whisper call=%s agent_uuid=%s", call.pk, uuid)
    voice = call_flow.voice_for(call)
    accept = call_flow.accept_prompt_for(call)
    if call.strategy == Strategy.CONNECT:
        return nccos.agent_whisper_on_answer(whisper=call.whisper_text, voice=voice, accept=accept)
    return nccos.agent_hears_whisper(
        whisper=call.whisper_text, conference_name=call.conference_name, voice=voice, accept=accept
    )


def _agent_not_joined(call: Call, legs: list[CallLeg], leg: CallLeg, *, uuid: str) -> nccos.Ncco | None:
    """What an agent who answered hears instead of the whisper when there is no caller to
    join: the caller left, or was moved on (connected directly, the fallback, the next
    agent). None: the agent is whispered to and joins."""
    caller = next((each for each in legs if each.role == LegRole.CALLER), None)
    if (caller is not None and is_terminal(caller.status)) or call.state == CallState.ENDED:
        logger.info("answer_outbound.caller_gone call=%s agent_uuid=%s", call.pk, uuid)
        return nccos.agent_hears_caller_left()
    stale = leg.attempt is not None and leg.attempt < call.attempt
    if call.state in (CallState.DIRECT, CallState.FALLBACK) or stale:
        logger.info("answer_outbound.caller_moved_on call=%s agent_uuid=%s", call.pk, uuid)
        return nccos.agent_hears_caller_moved_on()
    return None


def whisper_values(call: Call) -> dict[str, Any]:
    """The variables a campaign's whisper and greeting may use, for this call."""
    campaign = call.campaign
    try:
        caller = spoken_digits(normalize_number(call.caller_number))
    except InvalidNumber:
        caller = "a withheld number"
    return {
        "topic": campaign.topic if campaign else "",
        "campaign": campaign.name if campaign else "",
        "source": call.source,
        "number": spoken_digits(call.called_number),
        "caller": caller,
        "calls_before": _LazyCount(call),
    }


class _LazyCount(str):
    """``{calls_before}``: counted only when a template uses it (one query)."""

    call: Call

    def __new__(cls, call: Call) -> "_LazyCount":
        instance = super().__new__(cls, "")
        instance.call = call
        return instance

    def __format__(self, spec: str) -> str:
        call = self.call
        if call.campaign_id is None or not call.caller_number:
            return earlier_calls(0)
        return earlier_calls(
            Call.objects.filter(
                campaign_id=call.campaign_id, caller_number=call.caller_number, started_at__lt=call.started_at
            ).count()
        )


def whisper_for(call: Call) -> str:
    """The words the agent hears for ``call``."""
    number = spoken_digits(call.called_number)
    if call.number_status == NumberStatus.UNKNOWN or call.campaign is None:
        return f"Incoming call to an unrecognised number, {number}."
    if call.number_status == NumberStatus.INACTIVE:
        return f"Incoming call to the inactive number {number}, last used for {call.campaign.name}."
    return render_template(call.campaign.whisper_template, whisper_values(call))


# --- Vonage's fallback answer URL -------------------------------------------------------


def call_answer_fallback(*, uuid: str, to: str, from_: str, reason: str = "") -> nccos.Ncco:
    """Vonage could not use our answer URL: keep the caller's call going regardless.

    If our first answer was recorded, the caller gets it (the agent is already being
    rung); otherwise the caller is connected straight to the call centre.
    """
    leg = caller_leg(uuid) if uuid else None
    call_context_set(leg.call_id if leg else None)
    if leg is None and uuid and CallLeg.objects.filter(uuid=uuid, role=LegRole.AGENT).exists():
        # An agent's leg, whatever the request claimed to be: never connect the agent's
        # phone to the call centre.
        logger.warning("fallback.agent_leg uuid=%s reason=%s", uuid, reason)
        return nccos.agent_hears_call_failed()
    if leg is not None and leg.call.caller_ncco:
        logger.warning("fallback.replay call=%s reason=%s", leg.call_id, reason)
        return list(leg.call.caller_ncco)
    route = route_for(to)
    ncco = nccos.caller_connects_directly(
        greeting=route.greeting,
        destination=route.destination,
        from_number=route.called_number,
        event_url=call_flow.public_url("calls:event"),
    )
    if uuid and leg is None:
        try:
            with transaction.atomic():
                call = _call_create(route=route, uuid=uuid, from_=from_, conversation_uuid="", region_url="")
        except IntegrityError:
            return ncco
        call_context_set(call.pk)
        with transaction.atomic():
            Call.objects.filter(pk=call.pk).update(
                caller_ncco=ncco,
                state=CallState.DIRECT,
                agent_call_error=f"Vonage used the fallback answer URL ({reason or 'no reason given'}).",
            )
            events_adopt(call_id=call.pk, leg_uuids=[uuid])
        logger.warning("fallback.direct call=%s reason=%s", call.pk, reason)
    return ncco
