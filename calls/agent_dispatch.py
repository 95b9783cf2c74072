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
"""

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from campaigns.models import Strategy

from . import call_flow, vonage_adapter
from . import ncco as nccos
from .events import event_insert
from .leg_progress import StatusEvent
from .logging import call_context
from .models import Call, CallEvent, CallLeg, CallState, LegRole, Outcome
from .selectors import one_or_none

logger = logging.getLogger(__name__)

CHECKPOINT = "agent"


# --- placing the first agent call ---------------------------------------------------------


def ring_first_agent_soon(call_id: int) -> None:
    """Place the first agent call for ``call_id``: on a worker thread ("background"),
    or now, in this thread ("inline")."""
    if settings.AGENT_CALL_DISPATCH == "inline":
        ring_first_agent(call_id)
        return
    _executor().submit(_ring_in_background, call_id)


def ring_first_agent(call_id: int) -> CallLeg | None:
    """Claim the first agent call and place it. A refusal moves the call to ``direct``:
    the caller's checkpoint then connects them straight to the call centre; or, when the
    caller is past the checkpoint already (it answers at once, without waiting for this
    call), on to the next destination or the fallback, as for any agent call refused."""
    claimed = Call.objects.filter(
        pk=call_id, strategy=Strategy.CONFERENCE, attempt=0, state=CallState.WAITING, agent_requested_at__isnull=True
    ).update(agent_requested_at=timezone.now())
    if not claimed:
        logger.info("dispatch.not_claimed call=%s: placed or given up elsewhere", call_id)
        return None
    call = Call.objects.with_related().get(pk=call_id)
    try:
        placed = call_flow.agent_call_place(call=call, attempt=0)
    except vonage_adapter.VonageUnavailable as exc:
        logger.warning("dispatch.agent_call_failed call=%s error=%s", call_id, exc)
        if _give_up(call_id, error=str(exc), unless_past_checkpoint=True) == _PAST_CHECKPOINT:
            call_flow.advance(call_id=call_id, from_attempt=0, reason="agent call not placed")
        return None
    return call_flow.agent_leg_record(call=call, attempt=0, placed=placed)


def _ring_in_background(call_id: int) -> None:
    try:
        ring_first_agent(call_id)
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


def checkpoint_answer(*, call_id: int, body: dict[str, object]) -> nccos.Ncco | None:
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
    """
    patience = timedelta(seconds=settings.AGENT_CALL_DEADLINE_SECONDS + 1)
    with transaction.atomic():
        call, agent_rung = _call_and_agent_rung(call_id)
        _notify_store(call_id, call, body)
        if call is None:
            logger.warning("checkpoint.unknown_call call=%s", call_id)
            return None
        if call.state == CallState.DIRECT:
            logger.info("checkpoint.direct call=%s error=%s", call_id, call.agent_call_error)
            return direct_ncco(call)
        if call.state != CallState.WAITING or call.outcome == Outcome.ANSWERED or call.attempt > 0 or agent_rung:
            return None
        since = call.agent_requested_at or call.started_at
        if timezone.now() - since <= patience:
            return None
        call.state = CallState.DIRECT
        call.agent_call_error = "The agent call was not placed in time (checkpoint)."
        call.save(update_fields=["state", "agent_call_error"])
    logger.warning("checkpoint.agent_call_missing call=%s: connecting the caller directly", call_id)
    return direct_ncco(call)


def _call_and_agent_rung(call_id: int) -> tuple[Call | None, bool]:
    """The call, its row locked, and whether any agent leg has been recorded for it (one
    query)."""
    agent_legs = CallLeg.objects.filter(call=OuterRef("pk"), role=LegRole.AGENT)
    locked = Call.objects.select_for_update(of=("self",)).annotate(agent_rung=Exists(agent_legs))
    call = one_or_none(locked.filter(pk=call_id))
    return call, bool(call is not None and call.__dict__.get("agent_rung"))


def direct_ncco(call: Call) -> nccos.Ncco:
    """The caller, past the greeting, goes straight to the call centre."""
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
        CallEvent(
            dedupe_key=_notify_key(call_id),
            call=call,
            conversation_uuid=str(body.get("conversation_uuid") or "")[:64],
            kind="notify",
            occurred_at=StatusEvent.from_payload(body).timestamp,
            payload=body,
        )
    )
