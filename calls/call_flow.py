"""What happens next in a call when something goes wrong: the hunt list, the fallback,
the caller who hangs up first, the agent who declines.

Decisions are taken with the call's row locked and recorded before any REST request
(``Call.attempt`` and ``Call.fallback_at`` act as compare-and-set markers), so two
webhooks racing on two processes take each step once: never two transfers of the
caller, never a second agent rung for the same attempt. REST requests to Vonage run
after the lock is released.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns.destinations import ringable
from campaigns.models import DEFAULT_CLOSED_MESSAGE, DEFAULT_FALLBACK_MESSAGE, ClosedAction, Fallback, Strategy
from campaigns.whisper import speaking_seconds

from . import ncco as nccos
from . import pacing, statements, vonage_adapter
from .call_records import call_refresh, events_adopt
from .leg_progress import is_terminal
from .models import Call, CallDirection, CallLeg, CallState, LegRole, NumberStatus, Outcome
from .outcomes import agent_gave_up
from .selectors import one_or_none
from .webhooks.callback_urls import callback_url

logger = logging.getLogger(__name__)

# VONAGE.md: an update 1–2 s after the call was created can fail with 400; retry briefly.
UPDATE_RETRY_SECONDS = 2.0
UPDATE_RETRY_INTERVAL = 0.4


# --- URLs and NCCOs for a call ---------------------------------------------------------


def public_url(name: str, **query: object) -> str:
    """A callback URL for Vonage, its parameters signed by us (calls.webhooks.callback_urls)."""
    return callback_url(name, **query)


def voice_for(call: Call) -> nccos.Voice:
    campaign = call.campaign if call.number_status == NumberStatus.TRACKED else None
    if campaign is None:
        return nccos.Voice()
    return nccos.Voice(language=campaign.language, style=campaign.style)


def destinations_for(call: Call) -> list[str]:
    """Every number this call may ring, in order; the call's own destination first."""
    campaign = call.campaign if call.number_status == NumberStatus.TRACKED else None
    if campaign is None:
        return [call.destination]
    rest = [n for n in campaign.destinations if n != call.destination]
    # Defence in depth: numbers outside ALLOWED_DESTINATION_PREFIXES (saved before it was
    # narrowed) are not rung; the call centre is, once.
    numbers, refused = ringable([call.destination, *rest])
    for number in refused:
        logger.warning(
            "call.destination_refused call=%s number=%s: outside ALLOWED_DESTINATION_PREFIXES, "
            "the call centre is rung instead",
            call.pk,
            number,
        )
    return numbers


def accept_prompt_for(call: Call) -> nccos.AcceptPrompt | None:
    if not call.accept_required or call.campaign is None:
        return None
    return nccos.AcceptPrompt(prompt=call.campaign.accept_prompt, event_url=public_url("calls:event", call=call.pk))


def fallback_ncco(call: Call) -> nccos.Ncco:
    """The caller's last step when no agent takes the call."""
    voice = voice_for(call)
    campaign = call.campaign if call.number_status == NumberStatus.TRACKED else None
    fallback = campaign.fallback if campaign else Fallback.MESSAGE
    if fallback == Fallback.VOICEMAIL and campaign is not None:
        return nccos.caller_leaves_voicemail(
            prompt=campaign.voicemail_prompt, event_url=public_url("calls:event", call=call.pk), voice=voice
        )
    if fallback == Fallback.HANGUP:
        return nccos.caller_hears_message(text="Sorry, nobody can take your call. Goodbye.", voice=voice)
    message = campaign.fallback_message if campaign else DEFAULT_FALLBACK_MESSAGE
    return nccos.caller_hears_message(text=message, voice=voice)


def closed_ncco(call: Call) -> nccos.Ncco:
    """What a caller hears outside the campaign's hours or dates."""
    campaign = call.campaign
    voice = voice_for(call)
    message = campaign.closed_message if campaign else DEFAULT_CLOSED_MESSAGE
    if campaign is not None and campaign.closed_action == ClosedAction.VOICEMAIL:
        return nccos.caller_leaves_voicemail(
            prompt=message + " Please leave a message after the tone.",
            event_url=public_url("calls:event", call=call.pk),
            voice=voice,
        )
    return nccos.caller_hears_message(text=message, voice=voice)


def connect_attempt_ncco(call: Call, attempt: int, *, greeting: str = "") -> nccos.Ncco:
    """The connect strategy's NCCO for ringing destination ``attempt``."""
    campaign = call.campaign
    return nccos.caller_connects_to_agent(
        destination=destinations_for(call)[attempt],
        from_number=call.called_number,
        ring_seconds=campaign.ring_seconds if campaign else 20,
        on_answer_url=public_url("calls:answer_outbound", call=call.pk, attempt=attempt),
        event_url=public_url("calls:event", call=call.pk, attempt=attempt),
        greeting=greeting,
        voice=voice_for(call),
        ringback_tone_url=settings.RINGBACK_TONE_URL,
    )


def caller_holds(call: Call, *, greeting: str) -> nccos.Ncco:
    """The greeting, then hold music in the call's own conversation until the caller is
    moved on (the connect strategy's caller queued under the account's limit)."""
    campaign = call.campaign if call.number_status == NumberStatus.TRACKED else None
    return nccos.caller_waits(
        greeting=greeting,
        conference_name=call.conference_name,
        hold_music_url=(campaign.hold_music_url if campaign and campaign.hold_music_url else settings.HOLD_MUSIC_URL),
        voice=voice_for(call),
    )


def whisper_seconds(call: Call) -> float:
    return speaking_seconds(call.whisper_text)


# --- the conference strategy: the next agent, or the fallback ---------------------------


@dataclass(frozen=True)
class Step:
    """What ``advance`` decided: ring ``destination`` as ``attempt``, or the fallback."""

    attempt: int
    destination: str | None


def advance(*, call_id: int, from_attempt: int, reason: str) -> None:
    """The agent rung as ``from_attempt`` will not take the call: ring the next
    destination, or move the caller to the fallback. Runs once per attempt."""
    with transaction.atomic():
        call = _locked(call_id)
        if call is None or call.attempt != from_attempt or not _caller_waiting(call):
            return
        destinations = destinations_for(call)
        step = Step(
            attempt=from_attempt + 1,
            destination=destinations[from_attempt + 1] if from_attempt + 1 < len(destinations) else None,
        )
        call.attempt = step.attempt
        if step.destination:
            call.agent_requested_at = timezone.now()  # claimed for the next agent (agent_dispatch)
        call.save(update_fields=["attempt", "agent_requested_at"])
    logger.info("flow.advance call=%s from_attempt=%s reason=%s", call_id, from_attempt, reason)
    if step.destination is None:
        caller_to_fallback(call_id=call_id, reason=f"no destination left after {reason}")
        return
    agent_ring(call=call, attempt=step.attempt)


def agent_ring(*, call: Call, attempt: int, slot_claimed: bool = False, wait_for_slot: bool = False) -> CallLeg | None:
    """Ring destination ``attempt`` for ``call`` (conference strategy); on failure the
    caller goes to the next step.

    The agent call first claims a send time under the account's limit (calls/pacing.py)
    unless the caller already holds one (``slot_claimed``); when it is later, the caller
    stays on hold and is rung then (``agent_dispatch.queue``), or, with
    ``wait_for_slot`` (a batch job such as ``reconcile_calls``), this thread waits for it.
    A 429 queues the caller again after a back-off instead of moving on."""
    from . import agent_dispatch

    if not slot_claimed:
        slot = pacing.slot_claim()
        if not slot.due and not wait_for_slot:
            agent_dispatch.queue(call_id=call.pk, attempt=attempt, slot=slot)
            return None
        if not slot.due:
            time.sleep(slot.delay.total_seconds())
    try:
        placed = agent_call_place(call=call, attempt=attempt)
    except vonage_adapter.VonageUnavailable as exc:
        if exc.status_code == 429:
            agent_dispatch.requeue(call_id=call.pk, attempt=attempt)
            return None
        logger.warning("flow.agent_call_failed call=%s attempt=%s error=%s", call.pk, attempt, exc)
        advance(call_id=call.pk, from_attempt=attempt, reason="agent call not placed")
        return None
    return agent_leg_record(call=call, attempt=attempt, placed=placed)


def agent_call_place(*, call: Call, attempt: int) -> vonage_adapter.PlacedCall:
    """Ask Vonage to ring destination ``attempt``; raises ``VonageUnavailable``."""
    campaign = call.campaign if call.number_status == NumberStatus.TRACKED else None
    return vonage_adapter.place_call(
        to=destinations_for(call)[attempt],
        from_=call.called_number,
        answer_url=public_url("calls:answer_outbound", call=call.pk),
        event_url=public_url("calls:event"),
        deadline_seconds=settings.AGENT_CALL_DEADLINE_SECONDS,
        ringing_timer=campaign.ring_seconds if campaign else None,
        # An answering machine must not take the whisper, and then the caller.
        machine_detection="hangup",
    )


def agent_leg_record(*, call: Call, attempt: int, placed: vonage_adapter.PlacedCall) -> CallLeg:
    """Record the agent leg Vonage created, apply its early events, and stop it if the
    caller stopped waiting while Vonage was creating it."""
    leg = CallLeg(
        uuid=placed.uuid,
        call=call,
        role=LegRole.AGENT,
        attempt=attempt,
        conversation_uuid=placed.conversation_uuid,
        from_number=call.called_number,
        to_number=destinations_for(call)[attempt],
        direction="outbound",
    )
    # Recorded already when an event, or the agent's answer, attached it first.
    leg, _ = statements.insert_or_existing(leg, unique="uuid")
    logger.info("flow.agent_rung call=%s attempt=%s agent_uuid=%s sent=%s", call.pk, attempt, placed.uuid, placed.sent)
    early_events_adopt(call_id=call.pk, leg=leg, attempt=attempt)
    return leg


def early_events_adopt(*, call_id: int, leg: CallLeg, attempt: int) -> None:
    """Vonage posts a new leg's first events (``failed`` for a number that cannot be
    rung) as soon as it creates the call, often before ``create_call`` answers us: they
    were stored unmatched. Apply them now, and move on if this agent already gave up.
    An agent rung for a caller who meanwhile hung up or was moved on is stopped.

    Usually no event came first: then one unlocked read decides. The leg is committed
    before it, so a caller who leaves meanwhile is seen either here or by the caller's
    event, which ends the agent legs it finds."""
    call, legs, early = statements.call_legs_and_early_events(call_id=call_id, leg_uuid=leg.uuid)
    if early:
        with transaction.atomic():
            if events_adopt(call_id=call_id, leg_uuids=[leg.uuid]):
                leg.refresh_from_db()
            # Only the call's own fields are read here: no campaign, so no join to compile.
            call = one_or_none(Call.objects.select_for_update().filter(pk=call_id))
            gave_up, stale = _new_agent_leg_verdict(call, leg, attempt=attempt)
    else:
        leg = next((each for each in legs if each.uuid == leg.uuid), leg)
        gave_up, stale = _new_agent_leg_verdict(call, leg, attempt=attempt, legs=legs)
    if gave_up:
        advance(call_id=call_id, from_attempt=attempt, reason=f"agent {leg.status}")
    elif stale:
        leg_end(leg=leg, why="the caller stopped waiting while the agent call was placed")


def _new_agent_leg_verdict(
    call: Call | None, leg: CallLeg, *, attempt: int, legs: list[CallLeg] | None = None
) -> tuple[bool, bool]:
    """Whether a just-recorded agent leg already gave up (move on), or rings for a caller
    who is no longer waiting for it (stop it). A call-back's staff leg
    (calls/callbacks.py) has no hunt to move on and no waiting caller to be stale for:
    its events are only recorded."""
    inbound = call is not None and call.direction == CallDirection.INBOUND
    gave_up = inbound and call is not None and agent_leg_gives_up(call, leg)
    stale = call is None or (
        inbound
        and not gave_up
        and not is_terminal(leg.status)
        and call.outcome != Outcome.ANSWERED
        and (not _caller_waiting(call, legs) or call.attempt != attempt)
    )
    return gave_up, stale


def caller_to_fallback(*, call_id: int, reason: str) -> bool:
    """Move the waiting caller to the campaign's fallback with a REST transfer.

    Claimed once through ``fallback_at``; if Vonage refuses the transfer for a reason
    other than the caller being gone, the claim is released so ``reconcile_calls``
    tries again. Ringing agent legs are hung up first.
    """
    with transaction.atomic():
        call = _locked(call_id)
        if call is None or call.fallback_at is not None or not _caller_waiting(call):
            return False
        call.fallback_at = timezone.now()
        call.state = CallState.FALLBACK
        call.save(update_fields=["fallback_at", "state"])
        caller = call.legs.filter(role=LegRole.CALLER).first()
        # A leg that declined ends by itself after hearing so; the others are stopped.
        agents = [
            leg
            for leg in call.legs.filter(role=LegRole.AGENT)
            if not is_terminal(leg.status) and leg.declined_at is None
        ]
    for leg in agents:
        leg_end(leg=leg, why="the caller moved to the fallback")
    if caller is None or caller.uuid.startswith(vonage_adapter.DRY_RUN_PREFIX):
        return True
    ncco = fallback_ncco(call)
    try:
        _with_retry_on_400(
            lambda: vonage_adapter.transfer_to_ncco(uuid=caller.uuid, ncco=ncco, region_url=caller.region_url)
        )
    except vonage_adapter.VonageUnavailable as exc:
        if exc.status_code == 404:
            logger.info("flow.fallback_caller_gone call=%s", call_id)
            return False
        logger.error("flow.fallback_transfer_failed call=%s error=%s: reconcile_calls will retry", call_id, exc)
        Call.objects.filter(pk=call_id).update(fallback_at=None, state=CallState.WAITING)
        return False
    logger.info("flow.fallback call=%s reason=%s", call_id, reason)
    return True


def caller_left(*, call_id: int) -> None:
    """The caller hung up before an agent took the call: stop ringing and tell any
    agent already listening to the whisper."""
    agents = [
        leg
        for leg in CallLeg.objects.filter(call_id=call_id, role=LegRole.AGENT)
        if not is_terminal(leg.status) and leg.declined_at is None
    ]
    for leg in agents:
        leg_end(leg=leg, why="the caller hung up")


def leg_end(*, leg: CallLeg, why: str) -> None:
    """End an agent leg: a ringing one is hung up, an answered one hears why first."""
    if leg.uuid.startswith(vonage_adapter.DRY_RUN_PREFIX):
        logger.info("vonage.dry_run hangup uuid=%s why=%s", leg.uuid, why)
        return
    try:
        # A person who answered hears why; a ringing phone or an answering machine is hung up.
        if leg.answered_at is not None and leg.machine_detected != "machine":
            # An agent who declined is told the caller is passed on, not that they hung up.
            told = nccos.agent_declined() if leg.declined_at is not None else nccos.agent_hears_caller_left()
            _with_retry_on_400(
                lambda: vonage_adapter.transfer_to_ncco(uuid=leg.uuid, ncco=told, region_url=leg.region_url)
            )
        else:
            _with_retry_on_400(lambda: vonage_adapter.hang_up(uuid=leg.uuid, region_url=leg.region_url))
        logger.info("flow.agent_released call=%s agent_uuid=%s why=%s", leg.call_id, leg.uuid, why)
    except vonage_adapter.VonageUnavailable as exc:
        if exc.status_code == 404:
            return  # already gone
        logger.error("flow.agent_release_failed call=%s agent_uuid=%s error=%s", leg.call_id, leg.uuid, exc)


# --- press 1 to accept ------------------------------------------------------------------


def agent_input(*, call_id: int, leg_uuid: str, digits: str) -> tuple[nccos.Ncco, Callable[[], None] | None]:
    """The agent's answer to "press 1": join the caller, or pass the caller on.

    Returns the agent's next NCCO, decided from the database alone, and the REST work
    that follows from it (ring the next agent, move the caller, end the agent's leg):
    Vonage waits for the NCCO, so that work runs after the answer (agent_dispatch). The
    decision (``declined_at``) is recorded first; each step of the work claims itself
    (``advance``'s compare-and-set on ``Call.attempt``), so it runs once, and a process
    that dies before it ran leaves a hunt that ``reconcile_calls`` sees as stalled."""
    accepted = digits.strip()[:1] == nccos.ACCEPT_DIGIT
    with transaction.atomic():
        call = _locked(call_id)
        leg = CallLeg.objects.filter(uuid=leg_uuid, call_id=call_id).first() if call else None
        if call is None or leg is None:
            logger.warning("flow.input_unknown call=%s agent_uuid=%s", call_id, leg_uuid)
            return nccos.agent_hears_caller_left(), None
        if not _caller_waiting(call) and leg.accepted_at is None:
            return nccos.agent_hears_caller_left(), None
        if accepted and leg.declined_at is None:
            if leg.accepted_at is None:
                leg.accepted_at = timezone.now()
                leg.save(update_fields=["accepted_at"])
            _refresh(call)
            logger.info("flow.accepted call=%s agent_uuid=%s", call_id, leg_uuid)
            if call.strategy == Strategy.CONNECT:
                return nccos.agent_accepted_connect(), None
            return [nccos.agent_joins(conference_name=call.conference_name)], None
        if leg.declined_at is None and leg.accepted_at is None:
            leg.declined_at = timezone.now()
            leg.save(update_fields=["declined_at"])
        attempt = leg.attempt if leg.attempt is not None else call.attempt
        strategy = call.strategy
        _refresh(call)
    logger.info("flow.declined call=%s agent_uuid=%s digits=%r", call_id, leg_uuid, digits)

    def pass_on() -> None:
        if strategy == Strategy.CONNECT:
            _connect_pass_on(call_id=call_id, from_attempt=attempt, agent=leg)
        else:
            advance(call_id=call_id, from_attempt=attempt, reason="agent declined")

    return nccos.agent_declined(), pass_on


def _connect_pass_on(*, call_id: int, from_attempt: int, agent: CallLeg) -> None:
    """Connect strategy: the agent declined after Vonage bridged nothing yet; move the
    caller (REST transfer) to the next step and end the agent's leg."""
    ncco = connect_next_ncco(call_id=call_id, failed_attempt=from_attempt)
    caller = CallLeg.objects.filter(call_id=call_id, role=LegRole.CALLER).first()
    if caller is not None and not caller.uuid.startswith(vonage_adapter.DRY_RUN_PREFIX):
        try:
            _with_retry_on_400(
                lambda: vonage_adapter.transfer_to_ncco(uuid=caller.uuid, ncco=ncco, region_url=caller.region_url)
            )
        except vonage_adapter.VonageUnavailable as exc:
            logger.error("flow.pass_on_failed call=%s error=%s", call_id, exc)
    leg_end(leg=agent, why="the agent declined")


# --- the connect strategy: answers to synchronous events ---------------------------------


def connect_next_ncco(*, call_id: int, failed_attempt: int) -> nccos.Ncco:
    """Connect strategy: destination ``failed_attempt`` did not take the call. Our answer
    to Vonage's synchronous event is the caller's next NCCO. A redelivery of the same
    event gets the same answer: the step depends only on which attempt failed."""
    with transaction.atomic():
        call = _locked(call_id)
        if call is None:
            return nccos.caller_hears_message(text=DEFAULT_FALLBACK_MESSAGE)
        destinations = destinations_for(call)
        next_attempt = failed_attempt + 1
        # A caller who hung up (the agent's leg is then reported cancelled) is not moved on:
        # the answer is harmless, but the call must not be marked as at the fallback.
        waiting = _caller_waiting(call)
        if waiting and call.attempt < next_attempt:
            call.attempt = next_attempt
            call.save(update_fields=["attempt"])
        if next_attempt < len(destinations):
            # The next connect is a new call for the account's limit (calls/pacing.py):
            # when its time is later, the caller holds and is moved to it then. (The call's
            # row is locked here; the pacer's row is always taken after a call's, never before.)
            if waiting and call.ring_at is not None and call.attempt == next_attempt:
                return caller_holds(call, greeting="Please hold.")  # a redelivery: queued already
            slot = pacing.slot_claim()
            if waiting and not slot.due:
                call.ring_at = slot.at
                call.save(update_fields=["ring_at"])
                from . import agent_dispatch

                transaction.on_commit(
                    lambda: agent_dispatch.schedule(call_id=call_id, attempt=next_attempt, ring_at=slot.at)
                )
                logger.info("flow.connect_queued call=%s attempt=%s", call_id, next_attempt)
                return caller_holds(call, greeting="Please hold.")
            logger.info("flow.connect_next call=%s attempt=%s", call_id, next_attempt)
            return connect_attempt_ncco(call, next_attempt)
        if waiting and call.fallback_at is None:
            call.fallback_at = timezone.now()
            call.state = CallState.FALLBACK
            call.save(update_fields=["fallback_at", "state"])
            logger.info("flow.connect_fallback call=%s", call_id)
        return fallback_ncco(call)


# --- helpers -------------------------------------------------------------------------------


def agent_leg_gives_up(call: Call, leg: CallLeg) -> bool:
    return leg.role == LegRole.AGENT and agent_gave_up(
        leg, whisper_seconds=whisper_seconds(call), accept_required=call.accept_required
    )


def caller_may_still_wait(call: Call, legs: list[CallLeg]) -> bool:
    """False once the caller can never wait for an agent again, whatever happens next:
    an agent was put through (the outcome is answered) or the caller's leg ended. Both
    are final, so an agent leg that ends then needs no ``advance`` (which would find the
    same under the call's lock, in a transaction of its own): the usual end of a call.
    ``legs``: the call's legs, read under its lock."""
    if call.outcome == Outcome.ANSWERED:
        return False
    caller = next((leg for leg in legs if leg.role == LegRole.CALLER), None)
    return caller is None or not is_terminal(caller.status)


def _caller_waiting(call: Call, legs: list[CallLeg] | None = None) -> bool:
    """The caller is still on hold for an agent: not gone, not put through, not moved on.
    ``legs``: the call's legs, when read already."""
    if call.fallback_at is not None or call.outcome == Outcome.ANSWERED:
        return False
    if call.state not in (CallState.WAITING,):
        return False
    if legs is not None:
        caller = next((leg for leg in legs if leg.role == LegRole.CALLER), None)
    else:
        caller = one_or_none(call.legs.filter(role=LegRole.CALLER))
    return caller is not None and not is_terminal(caller.status)


def _locked(call_id: int) -> Call | None:
    return one_or_none(
        Call.objects.select_for_update(of=("self",)).select_related("campaign", "tracking_number").filter(pk=call_id)
    )


def _refresh(call: Call) -> None:
    call_refresh(call, list(call.legs.all()))


def _with_retry_on_400(request: Callable[[], object]) -> None:
    deadline = time.monotonic() + UPDATE_RETRY_SECONDS
    while True:
        try:
            request()
            return
        except vonage_adapter.VonageUnavailable as exc:
            if exc.status_code != 400 or time.monotonic() >= deadline:
                raise
            time.sleep(UPDATE_RETRY_INTERVAL)
