"""Ringing the first agent without making the caller's answer wait on Vonage.

Vonage's REST API takes a few hundred milliseconds to create a call, and a TV advert
brings hundreds of callers a minute, so the caller's answer webhook does not wait for
it (conference strategy): the caller is answered at once with the greeting, a
checkpoint and the hold, and the agent call is placed on a worker thread of the same
process while the greeting plays.

The checkpoint is a ``notify`` action in the caller's NCCO: once the greeting is over
Vonage asks us (``/event?call=…&checkpoint=agent``) and runs our answer.
:func:`checkpoint_answer` lets the caller go on to the hold when the agent is being
rung, and otherwise answers with the call centre, directly: when Vonage refused the
agent call, or when it was never placed (the process died after answering). So a
caller is rescued without any REST request, even when the REST API is down.

``Call.agent_requested_at`` is the claim that makes placing the call a once-only step
across threads and processes (compare-and-set); the checkpoint gives up on a claim
that is older than the deadline, and ``reconcile_calls`` re-rings an attempt whose
claim went stale without an agent leg.

Pacing (``calls/pacing.py``): every agent call, and the connect strategy's ``connect``,
first claims a send time under ``VONAGE_CALLS_PER_SECOND``. A caller whose time is
later waits on hold with ``Call.ring_at`` set, and :func:`ring_when_due` rings at that
time (compare-and-set on ``ring_at``: once, whichever process's timer fires). The
checkpoint lets a queued caller go on to the hold at once. A 429 from Vonage is not a
failure of the agent call: the caller is queued again after a back-off (:func:`requeue`),
never connected directly (a ``connect`` counts against the same limit), and goes to the
fallback once the next try would come after the campaign's longest wait.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from campaigns.models import Strategy

from . import call_flow, pacing, route_cache, statements, vonage_adapter
from . import ncco as nccos
from .events import call_and_legs_locked, event_insert
from .leg_progress import StatusEvent
from .logging import call_context
from .models import Call, CallEvent, CallLeg, CallState, LegRole, Outcome
from .selectors import one_or_none
from .webhooks import replay

logger = logging.getLogger(__name__)

CHECKPOINT = "agent"


# --- placing the first agent call ---------------------------------------------------------


def ring_first_agent_soon(call_id: int, *, started_at: datetime | None = None) -> None:
    """Place the first agent call for ``call_id``: on a worker thread ("background"),
    or now, in this thread ("inline"). ``started_at``: the call's start, when the caller
    has it at hand (it is read otherwise)."""
    if settings.AGENT_CALL_DISPATCH == "inline":
        ring_first_agent(call_id, started_at=started_at)
        return
    _executor().submit(_ring_in_background, call_id, started_at)


def ring_first_agent(call_id: int, *, started_at: datetime | None = None) -> CallLeg | None:
    """Claim the first agent call and place it. A refusal moves the call to ``direct``:
    the caller's checkpoint then connects them straight to the call centre; or, when the
    caller is past the checkpoint already (it answers at once, without waiting for this
    call), on to the next destination or the fallback, as for any agent call refused.

    ``started_at`` is the call's start (its send time under the account's limit), as the
    caller's answer wrote it: given, it is not read again."""
    if pacing.pacing_on() and _late_requeued(call_id, started_at):
        return None
    call = statements.agent_call_claim(
        call_id=call_id, at=timezone.now(), strategy=Strategy.CONFERENCE, state=CallState.WAITING
    )
    if call is None:
        logger.info("dispatch.not_claimed call=%s: placed or given up elsewhere", call_id)
        return None
    route_cache.campaign_attach(call)
    try:
        placed = call_flow.agent_call_place(call=call, attempt=0)
    except vonage_adapter.VonageUnavailable as exc:
        if exc.status_code == 429:
            # Over the account's limit: a direct connect would be refused the same way.
            requeue(call_id=call_id, attempt=0)
            return None
        logger.warning("dispatch.agent_call_failed call=%s error=%s", call_id, exc)
        if _give_up(call_id, error=str(exc), unless_past_checkpoint=True) == _PAST_CHECKPOINT:
            call_flow.advance(call_id=call_id, from_attempt=0, reason="agent call not placed")
        return None
    return call_flow.agent_leg_record(call=call, attempt=0, placed=placed)


# --- callers queued under the account's limit (calls/pacing.py) ---------------------------


def _late_requeued(call_id: int, started_at: datetime | None) -> bool:
    """The caller's send time (the call's start) passed long ago, because this process
    stalled: claim a new one rather than crowd the calls paced after it. True when the
    caller was queued for later instead."""
    vonage_adapter.warm_up()
    if started_at is None:
        started_at = Call.objects.filter(pk=call_id).values_list("started_at", flat=True).first()
    if started_at is None or not pacing.late(started_at):
        return False
    slot = pacing.slot_claim()
    if slot.due:
        return False
    queued = Call.objects.filter(
        pk=call_id, attempt=0, state=CallState.WAITING, agent_requested_at__isnull=True, ring_at__isnull=True
    ).update(ring_at=slot.at)
    if queued:
        logger.info("dispatch.late call=%s: queued again", call_id)
        schedule(call_id=call_id, attempt=0, ring_at=slot.at)
    return True


def queue(*, call_id: int, attempt: int, slot: pacing.Slot) -> bool:
    """Keep the waiting caller's send time (``Call.ring_at``) and ring at it; or, when it
    comes after the campaign's longest wait, move the caller to the fallback now.
    False when the caller no longer waits for ``attempt``."""
    from .reconcile import max_wait_seconds

    with transaction.atomic():
        call = one_or_none(Call.objects.select_for_update(of=("self",)).with_related().filter(pk=call_id))
        if call is None or call.attempt != attempt or call.state != CallState.WAITING or call.fallback_at is not None:
            return False
        if slot.at >= call.started_at + timedelta(seconds=max_wait_seconds(call)):
            overdue = True
        else:
            overdue = False
            call.ring_at = slot.at
            call.save(update_fields=["ring_at"])
    if overdue:
        logger.warning("dispatch.queue_too_long call=%s attempt=%s: the caller goes to the fallback", call_id, attempt)
        if call.strategy == Strategy.CONNECT:
            connect_caller_to_fallback(call)
        else:
            call_flow.caller_to_fallback(call_id=call_id, reason="the queue for the account's call limit is too long")
        return False
    schedule(call_id=call_id, attempt=attempt, ring_at=slot.at)
    return True


def requeue(*, call_id: int, attempt: int) -> None:
    """Vonage answered 429 (too many new calls for the account): try again after a
    back-off that doubles with each refusal, in a slot claimed after it."""
    refusals = Call.objects.filter(pk=call_id).update(rate_limited=F("rate_limited") + 1)
    call = one_or_none(Call.objects.filter(pk=call_id))
    if not refusals or call is None:
        return
    backoff = pacing.backoff_seconds(call.rate_limited)
    slot = pacing.slot_claim(not_before=timezone.now() + timedelta(seconds=backoff))
    logger.warning(
        "dispatch.rate_limited call=%s attempt=%s refusals=%s retry_in_ms=%d",
        call_id,
        attempt,
        call.rate_limited,
        slot.delay.total_seconds() * 1000,
    )
    queue(call_id=call_id, attempt=attempt, slot=slot)


def schedule(*, call_id: int, attempt: int, ring_at: datetime) -> None:
    """Ring at ``ring_at`` on this process's timer; ``reconcile_calls`` rings a caller
    whose time passed unrung (this process died)."""

    def due() -> None:
        _executor().submit(_ring_when_due_background, call_id, attempt, ring_at)

    pacing.run_at(ring_at, due)


def ring_when_due(*, call_id: int, attempt: int, ring_at: datetime, wait_for_slot: bool = False) -> None:
    """The queued caller's time has come: claim it (once, compare-and-set on ``ring_at``)
    and ring the agent; with the connect strategy, move the caller from the hold to the
    ``connect`` (a REST transfer, which is not a new call). A timer that fires late (the
    process stalled) claims a new time rather than crowd the calls paced after it;
    ``wait_for_slot`` (``reconcile_calls``, whose process has no timer to leave it to)
    waits for that time in this thread."""
    vonage_adapter.warm_up()
    if pacing.late(ring_at):
        slot = pacing.slot_claim()
        if not slot.due and wait_for_slot:
            time.sleep(slot.delay.total_seconds())
        elif not slot.due:
            moved = Call.objects.filter(
                pk=call_id, attempt=attempt, state=CallState.WAITING, fallback_at__isnull=True, ring_at=ring_at
            ).update(ring_at=slot.at)
            if moved:
                logger.info("dispatch.late call=%s attempt=%s: queued again", call_id, attempt)
                schedule(call_id=call_id, attempt=attempt, ring_at=slot.at)
            return
    claimed = Call.objects.filter(
        pk=call_id, attempt=attempt, state=CallState.WAITING, fallback_at__isnull=True, ring_at=ring_at
    ).update(ring_at=None, agent_requested_at=timezone.now())
    if not claimed:
        logger.info("dispatch.not_due call=%s attempt=%s: rung, moved on or gone", call_id, attempt)
        return
    call = Call.objects.with_related().get(pk=call_id)
    if call.strategy == Strategy.CONNECT:
        _caller_transfer(call, call_flow.connect_attempt_ncco(call, attempt), attempt=attempt)
        return
    # The caller is past the checkpoint, on hold: a failure moves on (next agent, fallback).
    call_flow.agent_ring(call=call, attempt=attempt, slot_claimed=True)


def connect_caller_to_fallback(call: Call) -> None:
    """Connect strategy: a caller held under the account's limit waited past the longest wait."""
    _caller_transfer(call, call_flow.fallback_ncco(call), fallback=True)


def _caller_transfer(call: Call, ncco: nccos.Ncco, *, attempt: int = 0, fallback: bool = False) -> None:
    """Connect strategy: move the held caller to ``ncco`` with a REST transfer."""
    caller = CallLeg.objects.filter(call_id=call.pk, role=LegRole.CALLER).first()
    if caller is None or caller.uuid.startswith(vonage_adapter.DRY_RUN_PREFIX):
        return
    if fallback:
        Call.objects.filter(pk=call.pk, fallback_at__isnull=True).update(
            fallback_at=timezone.now(), state=CallState.FALLBACK
        )
    try:
        vonage_adapter.transfer_to_ncco(uuid=caller.uuid, ncco=ncco, region_url=caller.region_url)
    except vonage_adapter.VonageUnavailable as exc:
        if exc.status_code == 404:
            logger.info("dispatch.caller_gone call=%s", call.pk)
            return
        logger.warning("dispatch.connect_transfer_failed call=%s error=%s: trying again", call.pk, exc)
        if not fallback:
            requeue(call_id=call.pk, attempt=attempt)
        return
    logger.info("dispatch.caller_connecting call=%s attempt=%s fallback=%s", call.pk, attempt, fallback)


def _ring_when_due_background(call_id: int, attempt: int, ring_at: datetime) -> None:
    try:
        ring_when_due(call_id=call_id, attempt=attempt, ring_at=ring_at)
    except Exception:
        logger.exception("dispatch.queued_failed call=%s: reconcile_calls rings the caller", call_id)
    finally:
        close_old_connections()


def _ring_in_background(call_id: int, started_at: datetime | None) -> None:
    try:
        ring_first_agent(call_id, started_at=started_at)
    except Exception:
        logger.exception("dispatch.failed call=%s: the caller's checkpoint connects them directly", call_id)
    finally:
        # A worker thread has its own connection: close it when broken or too old.
        close_old_connections()


_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """One pool per process, made after gunicorn forks its workers."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(settings.AGENT_CALL_THREADS, thread_name_prefix="agent-call"))
        return _pool[1]


_PAST_CHECKPOINT = "past checkpoint"


def _give_up(call_id: int, *, error: str, unless_past_checkpoint: bool = False) -> str:
    """The first agent will not be rung: the caller is to be connected directly (by the
    checkpoint). Only while the caller still waits with no agent leg, and (with
    ``unless_past_checkpoint``) has not yet reached the checkpoint: an answer already
    given cannot be changed, so the error is recorded and ``_PAST_CHECKPOINT`` returned.
    Returns ``"direct"`` when the call was moved to ``direct``, else ``""``.

    Serialised with :func:`checkpoint_answer` by the call's row lock: each reads the call
    and the notify with the call locked, and the checkpoint stores its notify so.
    """
    with transaction.atomic():
        call = one_or_none(Call.objects.select_for_update(of=("self",)).filter(pk=call_id))
        if call is None or call.state != CallState.WAITING or call.attempt != 0:
            return ""
        if CallLeg.objects.filter(call_id=call_id, role=LegRole.AGENT).exists():
            return ""
        call.agent_call_error = error[:1000]
        if unless_past_checkpoint and CallEvent.objects.filter(dedupe_key=_notify_key(call_id)).exists():
            call.save(update_fields=["agent_call_error"])
            return _PAST_CHECKPOINT
        call.state = CallState.DIRECT
        call.save(update_fields=["state", "agent_call_error"])
    return "direct"


# --- REST work after an NCCO answer ---------------------------------------------------------


def after_answer(works: list[Callable[[], None]], *, call_id: int | None) -> None:
    """Run REST work that follows an NCCO answer (an agent's key press: the next agent,
    the caller's transfer, hang-ups) once the answer is decided: Vonage asks for the
    NCCO-returning events to be answered at once (VONAGE.md). On a worker thread
    ("background"), or in this thread ("inline": the test suite's choice)."""
    for work in works:
        if settings.AGENT_CALL_DISPATCH == "inline":
            _run_after_answer(work, call_id)
        else:
            _executor().submit(_run_after_answer, work, call_id, background=True)


def _run_after_answer(work: Callable[[], None], call_id: int | None, *, background: bool = False) -> None:
    try:
        with call_context(call_id):
            work()
    except Exception:
        # Each step claimed itself before its REST request: reconcile_calls finds a
        # hunt that stalled, or a fallback transfer that failed, and takes it on.
        logger.exception("dispatch.after_answer_failed call=%s: reconcile_calls takes it on", call_id)
    finally:
        if background:
            close_old_connections()


# --- the caller's checkpoint after the greeting -------------------------------------------


def checkpoint_url(call_id: int) -> str:
    return call_flow.public_url("calls:event", call=call_id, checkpoint=CHECKPOINT)


def checkpoint_answer(
    *, call_id: int, body: dict[str, object], admission: replay.Admission | None = None
) -> nccos.Ncco | None:
    """Vonage reached the caller's checkpoint. ``None``: go on to the hold (the agent is
    being rung, or the call moved on); an NCCO: connect the caller directly instead.

    ``body`` is Vonage's notify request: ``{conversation_uuid, payload, timestamp}``, the
    ``payload`` of our NCCO wrapped, and no leg ``uuid`` (VONAGE.md); our query string
    names the call.

    Answered at once, from the database: Vonage asks for the NCCO-returning events to be
    answered "as fast as possible", so this never waits for the agent call being placed.
    While it is (a claim younger than the deadline) the caller goes on to the hold, and
    should Vonage then refuse it, the placing thread sees that the checkpoint is passed
    and moves the caller on itself (``ring_first_agent``). A claim older than the
    deadline with no agent leg (the placing process died) is given up here.

    With ``admission``, the request's signature is remembered by the first statement;
    ``replay.Replayed`` (nothing done) when it was used for another request.
    """
    patience = timedelta(seconds=settings.AGENT_CALL_DEADLINE_SECONDS + 1)
    with transaction.atomic():
        call, agent_rung = _call_and_agent_rung(call_id, admission)
        _notify_store(call_id, call, body)
        if call is None:
            logger.warning("checkpoint.unknown_call call=%s", call_id)
            return None
        if call.state == CallState.DIRECT:
            logger.info("checkpoint.direct call=%s error=%s", call_id, call.agent_call_error)
            return direct_ncco(call)
        if call.state != CallState.WAITING or call.outcome == Outcome.ANSWERED or call.attempt > 0:
            return None
        if agent_rung or call.ring_at is not None:
            return None  # rung, or queued under the account's limit: rung at its time
        since = call.agent_requested_at or call.started_at
        if timezone.now() - since <= patience:
            return None
        call.state = CallState.DIRECT
        call.agent_call_error = "The agent call was not placed in time (checkpoint)."
        call.save(update_fields=["state", "agent_call_error"])
    logger.warning("checkpoint.agent_call_missing call=%s: connecting the caller directly", call_id)
    return direct_ncco(call)


def _call_and_agent_rung(call_id: int, admission: replay.Admission | None) -> tuple[Call | None, bool]:
    """The call, its row locked, and whether any agent leg has been recorded for it (one
    statement, the request's signature remembered in it with ``admission``)."""
    call, legs = call_and_legs_locked("", call_id=call_id, admission=admission)
    return call, any(leg.role == LegRole.AGENT for leg in legs)


def direct_ncco(call: Call) -> nccos.Ncco:
    """The caller, past the greeting, goes straight to the call centre."""
    pacing.slot_claim()  # the connect is a new call for Vonage's limit: later ones are spaced after it
    return nccos.caller_connects_directly(
        greeting="Connecting you now.",
        destination=call.destination,
        from_number=call.called_number,
        event_url=call_flow.public_url("calls:event"),
        voice=call_flow.voice_for(call),
    )


def notify_record_late(*, call_id: int, body: dict[str, object]) -> bool:
    """Store a checkpoint's notify that came while the database was unreachable (the
    caller was then put straight through), from the spool; True if stored now."""
    with transaction.atomic():
        call = one_or_none(Call.objects.select_for_update(of=("self",)).filter(pk=call_id))
        if call is None:
            return False
        stored = _notify_store(call_id, call, body)
        if stored and call.state == CallState.WAITING and call.outcome != Outcome.ANSWERED:
            # The answer it got (the call centre, directly) is what the caller heard.
            call.state = CallState.DIRECT
            call.agent_call_error = "The checkpoint was answered while the database was unreachable."
            call.save(update_fields=["state", "agent_call_error"])
    return stored


def _notify_key(call_id: int) -> str:
    return f"notify:{call_id}:{CHECKPOINT}"


def _notify_store(call_id: int, call: Call | None, body: dict[str, object]) -> bool:
    """Kept like every other event (once: a redelivery is answered but not stored). A
    notify names no leg, only the caller's conversation. Stored with the call's row
    locked: it tells the thread placing the agent call that the checkpoint is passed
    (``_give_up``)."""
    return event_insert(
        dedupe_key=_notify_key(call_id),
        call_id=call.pk if call else None,
        conversation_uuid=str(body.get("conversation_uuid") or "")[:64],
        kind="notify",
        occurred_at=StatusEvent.from_payload(body).timestamp,
        payload=body,
    )
