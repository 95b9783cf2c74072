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
import time
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
from .models import Call, CallEvent, CallLeg, CallState, LegRole, Outcome
from .selectors import one_or_none

logger = logging.getLogger(__name__)

CHECKPOINT = "agent"
# How often the checkpoint looks again while the agent call is being placed.
_POLL_SECONDS = 0.05


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
    the caller's checkpoint then connects them straight to the call centre."""
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
        _give_up(call_id, error=str(exc))
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


def _give_up(call_id: int, *, error: str) -> bool:
    """The first agent will not be rung: the caller is to be connected directly (by the
    checkpoint). Only while the caller still waits with no agent leg; True if so."""
    with transaction.atomic():
        call = one_or_none(Call.objects.select_for_update(of=("self",)).filter(pk=call_id))
        if call is None or call.state != CallState.WAITING or call.attempt != 0:
            return False
        if CallLeg.objects.filter(call_id=call_id, role=LegRole.AGENT).exists():
            return False
        call.state = CallState.DIRECT
        call.agent_call_error = error[:1000]
        call.save(update_fields=["state", "agent_call_error"])
    return True


# --- the caller's checkpoint after the greeting -------------------------------------------


def checkpoint_url(call_id: int) -> str:
    return call_flow.public_url("calls:event", call=call_id, checkpoint=CHECKPOINT)


def checkpoint_answer(*, call_id: int, payload: dict[str, object]) -> nccos.Ncco | None:
    """Vonage reached the caller's checkpoint. ``None``: go on to the hold (the agent is
    being rung, or the call moved on); an NCCO: connect the caller directly instead.

    Waits while the agent call is being placed, at most the deadline from the claim.
    """
    call, agent_rung = _call_and_agent_rung(call_id)
    _notify_store(call_id, call, payload)
    patience = timedelta(seconds=settings.AGENT_CALL_DEADLINE_SECONDS + 1)
    while True:
        if call is None:
            logger.warning("checkpoint.unknown_call call=%s", call_id)
            return None
        if call.state == CallState.DIRECT:
            logger.info("checkpoint.direct call=%s error=%s", call_id, call.agent_call_error)
            return direct_ncco(call)
        if call.state != CallState.WAITING or call.outcome == Outcome.ANSWERED or call.attempt > 0:
            return None
        if agent_rung:
            return None
        since = call.agent_requested_at or call.started_at
        if timezone.now() - since > patience:
            if _give_up(call_id, error="The agent call was not placed in time (checkpoint)."):
                logger.warning("checkpoint.agent_call_missing call=%s: connecting the caller directly", call_id)
        else:
            time.sleep(_POLL_SECONDS)
        call, agent_rung = _call_and_agent_rung(call_id)


def _call_and_agent_rung(call_id: int) -> tuple[Call | None, bool]:
    """The call, and whether any agent leg has been recorded for it (one query)."""
    agent_legs = CallLeg.objects.filter(call=OuterRef("pk"), role=LegRole.AGENT)
    call = one_or_none(Call.objects.annotate(agent_rung=Exists(agent_legs)).filter(pk=call_id))
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


def _notify_store(call_id: int, call: Call | None, payload: dict[str, object]) -> None:
    """Kept like every other event (once: a redelivery is answered but not stored)."""
    event_insert(
        CallEvent(
            dedupe_key=f"notify:{call_id}:{CHECKPOINT}",
            call=call,
            leg_uuid=str(payload.get("uuid") or "")[:64],
            conversation_uuid=str(payload.get("conversation_uuid") or "")[:64],
            kind="notify",
            payload=payload,
        )
    )
