"""The event webhook: store every delivery once, move legs forward, derive the call,
and decide what the flow does next.

Vonage posts every status change of every leg, plus ``transfer``, ``record``,
``input`` and error events, to the same URL; it duplicates and reorders them
(VONAGE.md). Each delivery is stored under a dedupe key inside the transaction that
applies it, with the call's row locked, so a redelivery is a no-op and two events
for one call are applied one after the other on any number of processes. REST
requests the flow needs (ring the next agent, move the caller, hang up) run after
the transaction, outside the lock.
"""

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from campaigns.models import Strategy

from . import call_flow, statements, vonage_adapter
from .call_records import call_outcome_log, call_refresh, call_summary_apply, events_adopt
from .leg_progress import (
    DETECTION_STATUSES,
    FAILURE_STATUSES,
    KNOWN_STATUSES,
    StatusEvent,
    apply_status,
    ignored_fields,
    is_terminal,
)
from .logging import call_context_set
from .models import Call, CallDirection, CallEvent, CallLeg, LegRole, Outcome
from .selectors import one_or_none
from .statements import row_insert_or_skip
from .webhooks import replay

logger = logging.getLogger(__name__)


@dataclass
class EventReceipt:
    stored: bool
    kind: str
    call_id: int | None
    # For an ``input`` event or a connect strategy's synchronous event: the NCCO
    # Vonage runs next on that leg.
    ncco: list[dict[str, Any]] | None = None
    follow_ups: list[Callable[[], None]] = field(default_factory=list, repr=False)
    # REST work that follows from ``ncco`` (the next agent, transfers, hang-ups): run after
    # Vonage has its answer, when the caller of ``event_record`` asks for that.
    after_answer: list[Callable[[], None]] = field(default_factory=list, repr=False)


def event_record(
    *,
    payload: dict[str, Any],
    call_id: int | None = None,
    attempt: int | None = None,
    defer: bool = False,
    admission: replay.Admission | None = None,
) -> EventReceipt:
    """Store one delivery to /event (once), apply it, and run what the flow needs next.

    ``call_id`` and ``attempt`` come from our own query string on the URLs we gave
    Vonage (the connect strategy's and the press-1 prompt's ``eventUrl``). With
    ``defer``, the REST work that follows an NCCO answer is left in
    ``receipt.after_answer`` for the webhook to run once it has answered. With
    ``admission``, the request's signature is remembered by the transaction's first
    statement; ``replay.Replayed`` (nothing done) when it was used for another request.
    """
    receipt = _event_apply(payload=payload, call_id=call_id, attempt=attempt, admission=admission)
    if receipt.stored and receipt.call_id is None and receipt.kind in ("status", "detection"):
        leg_events_adopt(str(payload.get("uuid") or payload.get("call_uuid") or "")[:64])
    for follow_up in receipt.follow_ups:
        follow_up()
    if not defer:
        for work in receipt.after_answer:
            work()
        receipt.after_answer = []
    return receipt


def leg_events_adopt(leg_uuid: str) -> None:
    """Apply the events stored without their leg, once the leg ``leg_uuid`` is recorded
    (nothing when it is not): for an agent leg, with what follows (the next step when
    that agent gave up).

    An event stored without its leg looks for the leg again once committed: a new agent
    leg's first event can reach us while another thread is recording the leg: each
    looks for the other before the other has committed, and neither sees it. Both
    write, commit, then look (the recorder adopts early events after committing the
    leg), so whichever commits second finds the other's row. ``reconcile_calls`` looks
    too, for any leg, finished or not.
    """
    leg = one_or_none(CallLeg.objects.filter(uuid=leg_uuid)) if leg_uuid else None
    if leg is None:
        return  # the leg's recorder will adopt this event
    logger.info("event.adopted_late call=%s uuid=%s", leg.call_id, leg_uuid)
    if leg.role == LegRole.AGENT:
        call_flow.early_events_adopt(call_id=leg.call_id, leg=leg, attempt=leg.attempt or 0)
    else:
        with transaction.atomic():
            events_adopt(call_id=leg.call_id, leg_uuids=[leg_uuid])


def _event_apply(
    *, payload: dict[str, Any], call_id: int | None, attempt: int | None, admission: replay.Admission | None
) -> EventReceipt:
    kind = event_kind(payload)
    leg_uuid = str(payload.get("uuid") or payload.get("call_uuid") or "")[:64]
    status = str(payload.get("status") or "")[:32]
    # Its times and prices, parsed once: for the leg, the stored event and the log.
    parsed = StatusEvent.from_payload(payload)
    with transaction.atomic():
        call, legs = call_and_legs_locked(leg_uuid, call_id=call_id, admission=admission)
        leg = next((each for each in legs if each.uuid == leg_uuid), None) if leg_uuid else None
        if leg is None and leg_uuid and kind in ("status", "detection"):
            leg = _leg_adopt(payload, leg_uuid, call_id=call_id, attempt=attempt)
            if leg is not None:
                # The leg's earlier events, stored while nobody knew it, count from now on.
                events_adopt(call_id=leg.call_id, leg_uuids=[leg_uuid])
                call, legs = call_and_legs_locked(leg_uuid, call_id=leg.call_id)
                leg = next(each for each in legs if each.pk == leg.pk)
        call_context_set(call.pk if call else None)
        # A status moves its leg and the call: worked out now, saved with the event in
        # one statement, and only if the event is new (a redelivery changes nothing).
        change, saves = None, []
        if call is not None and leg is not None and kind in ("status", "detection"):
            if kind == "detection" or status in KNOWN_STATUSES:
                change = _status_change(call, legs, leg, parsed)
                saves = [(leg, change.leg_fields), (call, change.call_fields)]
        stored = event_insert(
            then_save=saves,
            dedupe_key=dedupe_key(payload, kind=kind, leg_uuid=leg_uuid, status=status),
            call_id=call.pk if call else None,
            leg_id=leg.pk if leg else None,
            leg_uuid=leg_uuid,
            conversation_uuid=str(payload.get("conversation_uuid") or "")[:64],
            kind=kind,
            status=status,
            occurred_at=parsed.timestamp,
            payload=payload,
        )
        if stored and (ignored := ignored_fields(payload, parsed)):
            # Stored as sent (the payload is evidence) and applied without these.
            logger.warning(
                "event.fields_ignored call=%s uuid=%s fields=%s: not a usable number or time",
                call.pk if call else None,
                leg_uuid,
                ",".join(ignored),
            )
        if not stored:
            logger.info(
                "event.duplicate call=%s uuid=%s kind=%s status=%s", call.pk if call else None, leg_uuid, kind, status
            )
            receipt = EventReceipt(stored=False, kind=kind, call_id=call.pk if call else None)
            # A redelivered synchronous event, or key press, gets the same answer as the first.
            if call is not None and leg is not None and status and attempt is not None:
                receipt.ncco = _connect_answer(call, leg, status, attempt)
            elif call is not None and kind == "input":
                _input_answer(call, leg_uuid, payload, receipt)
            return receipt

        receipt = EventReceipt(stored=True, kind=kind, call_id=call.pk if call else None)
        if call is None:
            logger.info("event.unmatched uuid=%s kind=%s status=%s", leg_uuid, kind, status)
            return receipt
        if kind == "record":
            _recording_store(call, payload)
        elif kind == "input":
            _input_answer(call, leg_uuid, payload, receipt)
        elif kind == "status" and status not in KNOWN_STATUSES:
            logger.warning("event.unknown_status call=%s uuid=%s status=%s", call.pk, leg_uuid, status)
        elif change is not None and leg is not None:
            _status_follow(call, legs, leg, change, payload, receipt, attempt)
        logger.info("event.stored call=%s uuid=%s kind=%s status=%s", call.pk, leg_uuid, kind, status)
    return receipt


@dataclass(frozen=True)
class _StatusChange:
    """What a status (or detection) event changes, worked out before it is stored."""

    gave_up_before: bool  # the agent's leg had given up before this event
    caller_ended_before: bool  # the caller's leg had ended before this event
    leg_fields: list[str]  # the leg's fields this event changes, set in memory
    call_fields: list[str]  # the call's, from its legs' new summary


def _status_change(call: Call, legs: list[CallLeg], leg: CallLeg, event: StatusEvent) -> _StatusChange:
    # ``legs`` were read after the call row was locked: every writer of a leg holds that
    # lock, so they are current and nobody else changes them meanwhile.
    gave_up_before = call_flow.agent_leg_gives_up(call, leg)
    caller_ended_before = leg.role == LegRole.CALLER and is_terminal(leg.status)
    leg_fields = apply_status(leg, event)
    return _StatusChange(
        gave_up_before=gave_up_before,
        caller_ended_before=caller_ended_before,
        leg_fields=leg_fields,
        call_fields=call_summary_apply(call, legs),
    )


def _status_follow(
    call: Call,
    legs: list[CallLeg],
    leg: CallLeg,
    change: _StatusChange,
    payload: dict[str, Any],
    receipt: EventReceipt,
    attempt: int | None,
) -> None:
    """What follows a stored status event, its leg and call saved with it: the connect
    strategy's answer, the next agent, the caller's departure."""
    call_outcome_log(call, change.call_fields)
    if call.strategy == Strategy.CONNECT:
        if attempt is not None and leg.role == LegRole.AGENT:
            receipt.ncco = _connect_answer(call, leg, str(payload.get("status") or ""), attempt)
        return
    if (
        leg.role == LegRole.AGENT
        and not change.gave_up_before
        and call_flow.agent_leg_gives_up(call, leg)
        and call_flow.caller_may_still_wait(call, legs)
    ):
        from_attempt = leg.attempt if leg.attempt is not None else call.attempt
        reason = leg.status if leg.status in FAILURE_STATUSES else (leg.machine_detected or "hung up")
        call_id = call.pk
        receipt.follow_ups.append(
            lambda: call_flow.advance(call_id=call_id, from_attempt=from_attempt, reason=f"agent {reason}")
        )
    if leg.role == LegRole.CALLER and not change.caller_ended_before and is_terminal(leg.status):
        if call.outcome != Outcome.ANSWERED:
            call_id = call.pk
            receipt.follow_ups.append(lambda: call_flow.caller_left(call_id=call_id))


def _input_answer(call: Call, leg_uuid: str, payload: dict[str, Any], receipt: EventReceipt) -> None:
    """The agent's key press (press 1 to accept): decided after this transaction, since
    the handler takes the call's lock itself and may ring the next agent."""
    dtmf = payload.get("dtmf")
    digits = str(dtmf.get("digits") or "") if isinstance(dtmf, dict) else ""
    call_id = call.pk

    def answer() -> None:
        receipt.ncco, then = call_flow.agent_input(call_id=call_id, leg_uuid=leg_uuid, digits=digits)
        if then is not None:
            receipt.after_answer.append(then)

    receipt.follow_ups.append(answer)


def _connect_answer(call: Call, leg: CallLeg, status: str, attempt: int) -> list[dict[str, Any]] | None:
    """Connect strategy: the answer to a synchronous event is the caller's next NCCO when
    the agent rung as ``attempt`` did not take the call; otherwise nothing."""
    if call.strategy != Strategy.CONNECT or leg.role != LegRole.AGENT:
        return None
    if status not in FAILURE_STATUSES and status != "machine":
        return None
    return call_flow.connect_next_ncco(call_id=call.pk, failed_attempt=attempt)


def _recording_store(call: Call, payload: dict[str, Any]) -> None:
    url = str(payload.get("recording_url") or "")
    if call.recording_url:
        return
    if not vonage_adapter.recording_url_valid(url):
        # Kept as evidence in the stored event, never fetched with our JWT.
        logger.warning("event.recording_url_refused call=%s url=%.200s: not Vonage's files path", call.pk, url)
        return
    start, end = StatusEvent.from_payload({"timestamp": payload.get("start_time")}).timestamp, None
    end = StatusEvent.from_payload({"timestamp": payload.get("end_time")}).timestamp
    call.recording_url = url
    call.recording_seconds = round((end - start).total_seconds()) if start and end and (end - start).days == 0 else None
    if call.resolution != Outcome.CLOSED:
        call.resolution = Outcome.VOICEMAIL
    call.save(update_fields=["recording_url", "recording_seconds", "resolution"])
    call_refresh(call, list(call.legs.all()))
    logger.info("event.voicemail call=%s seconds=%s", call.pk, call.recording_seconds)


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


def call_and_legs_locked(
    leg_uuid: str, *, call_id: int | None, admission: replay.Admission | None = None
) -> tuple[Call | None, list[CallLeg]]:
    """The call a webhook is about, its row locked, and its legs read under the lock:
    the call that owns leg ``leg_uuid``, else the call our own query string names. With
    ``admission``, the request's signature remembered in the same statement, and
    ``replay.Replayed`` raised when it was used for another request."""
    if admission is None:
        return statements.call_and_legs(leg_uuid=leg_uuid, call_id=call_id)
    call, legs, remembered = statements.call_and_legs_admitting(
        leg_uuid=leg_uuid, call_id=call_id, jti=admission.jti, digest=admission.digest
    )
    replay.admission_settle(admission, remembered=remembered)
    return call, legs


def event_insert(*, then_save: statements.Saves = (), **fields: Any) -> bool:
    """Store the event ``CallEvent(**fields)`` (by attname: ``call_id``, ``leg_id``)
    unless its dedupe key is taken (a redelivery): one ``INSERT … ON CONFLICT DO
    NOTHING``, on PostgreSQL and SQLite alike; and, only if it was stored, the fields
    ``then_save`` names (in the same statement on PostgreSQL). True if stored."""
    return row_insert_or_skip(CallEvent, unique="dedupe_key", then_save=then_save, **fields) is not None


def _leg_adopt(payload: dict[str, Any], leg_uuid: str, *, call_id: int | None, attempt: int | None) -> CallLeg | None:
    """A leg we did not create: the connect strategy's agent leg (our eventUrl names the
    call and attempt), or the ``connect`` to the call centre when no whisper was
    possible (it shares the caller's conversation). Attach it as an agent leg; but a
    call-back's ``connect`` rings the caller (calls/callbacks.py): its caller leg."""
    found = (
        list(Call.objects.filter(pk=call_id).order_by().values_list("direction", flat=True)[:1])
        if call_id is not None
        else []
    )
    direction = found[0] if found else None
    owner = call_id if direction is not None else None
    conversation = str(payload.get("conversation_uuid") or "")
    if owner is None:
        if not conversation or payload.get("direction") != "outbound":
            return None
        caller = one_or_none(CallLeg.objects.filter(conversation_uuid=conversation, role=LegRole.CALLER))
        if caller is None:
            return None
        owner = caller.call_id
    try:
        with transaction.atomic():
            return CallLeg.objects.create(
                uuid=leg_uuid,
                call_id=owner,
                role=LegRole.CALLER if direction == CallDirection.CALLBACK else LegRole.AGENT,
                attempt=attempt,
                conversation_uuid=conversation[:64],
                from_number=str(payload.get("from") or "")[:32],
                to_number=str(payload.get("to") or "")[:32],
                direction="outbound",
            )
    except IntegrityError:
        return CallLeg.objects.filter(uuid=leg_uuid).first()


def conversation_legs_adopt(*, call_id: int, conversation_uuid: str) -> int:
    """Attach the outbound legs of the caller's conversation that only their events
    know (the ``connect`` to the call centre of a caller put straight through), from
    events stored unmatched, and apply those events. Returns how many legs."""
    if not conversation_uuid:
        return 0
    unmatched = CallEvent.objects.filter(
        conversation_uuid=conversation_uuid, leg__isnull=True, kind__in=("status", "detection")
    ).exclude(leg_uuid="")
    adopted = 0
    for event in unmatched.order_by("received_at", "id"):
        if CallLeg.objects.filter(uuid=event.leg_uuid).exists():
            continue
        leg = _leg_adopt(event.payload, event.leg_uuid, call_id=None, attempt=None)
        if leg is not None and leg.call_id == call_id:
            with transaction.atomic():
                events_adopt(call_id=call_id, leg_uuids=[leg.uuid])
            adopted += 1
    return adopted
