"""The call-back queue: callers nobody spoke to, and calling them back with a whisper.

**The queue.** A call that was missed, abandoned, ended in voicemail or came while the
campaign was closed leaves a caller (with a number: a withheld one cannot be called
back) waiting for someone to ring them. They stay in the queue until they have had an
answered call since, whichever way (they rang again and got through, or a call-back
reached them; any campaign: they have been spoken to), or a staff member marks them
handled with a note. One entry per caller per campaign: the oldest such call, with how
many times they tried. :func:`callback_queue` reads it in one bounded query.

**Call back.** The staff member's own phone (their :class:`~calls.models.StaffProfile`)
is rung first, from the campaign's number; when they answer, the answer webhook
(:func:`callback_answer`) whispers the campaign's call-back template ("Calling back a
caller who missed the summer offer, at 10:42 this morning") and then ``connect``s them
to the caller from the campaign's number. The call-back is a :class:`~calls.models.Call`
of its own (``direction`` callback, ``callback_of`` the missed call, ``placed_by`` the
staff member) whose staff leg is an agent leg and whose connect to the caller is its
caller leg: both report to the usual ``/event`` route, so outcome, legs, history and
reports work as for any call. It is answered when the caller's leg answers
(``outcomes.summarize_callback``). A double-click places one call: the database allows
one call-back in progress per missed call (``call_one_callback_in_progress``).
"""

from __future__ import annotations

import logging
import time
import uuid as uuid_lib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Subquery, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from campaigns.models import Campaign, Strategy, TrackingNumber
from campaigns.schedule import local_time
from campaigns.whisper import render_template

from . import call_flow, pacing, vonage_adapter
from . import ncco as nccos
from .call_records import events_adopt
from .logging import call_context_set
from .models import (
    Call,
    CallbackHandled,
    CallDirection,
    CallLeg,
    CallQuerySet,
    CallState,
    LegRole,
    NumberStatus,
    Outcome,
    StaffProfile,
)
from .selectors import one_or_none
from .services import CallNotFound, whisper_values
from .webhooks.callback_urls import callback_url

logger = logging.getLogger(__name__)

# Calls that leave a caller to be called back.
QUEUE_OUTCOMES: tuple[str, ...] = (Outcome.MISSED, Outcome.ABANDONED, Outcome.VOICEMAIL, Outcome.CLOSED)
# The queue lists at most this many callers (the longest waiting).
MAX_ENTRIES = 200
# A number that can be rung: E.164 digits (a withheld or "anonymous" caller cannot).
CALLABLE_NUMBER = r"^[1-9][0-9]{6,14}$"
# Pressing Call back waits at most this long for the account's next free send time.
PACING_WAIT_SECONDS = 5.0
MAX_NOTE_CHARS = 2000
DRY_RUN_REASON = "Vonage credentials are not configured, so the call was logged instead of placed."


class CallbackRefused(Exception):
    """Why a call-back or a handled mark was not done, in a sentence for the staff member."""


# --- the queue --------------------------------------------------------------------------


def unhandled_missed_calls() -> CallQuerySet:
    """Every call that leaves its caller to be called back, and is not dealt with yet."""
    answered_since = Call.objects.filter(
        caller_number=OuterRef("caller_number"), outcome=Outcome.ANSWERED, started_at__gt=OuterRef("started_at")
    )
    handled_since = CallbackHandled.objects.filter(
        call__campaign_id=OuterRef("campaign_id"),
        call__caller_number=OuterRef("caller_number"),
        handled_at__gte=OuterRef("started_at"),
    )
    return (
        Call.objects.filter(
            direction=CallDirection.INBOUND,
            outcome__in=QUEUE_OUTCOMES,
            campaign__isnull=False,
            caller_number__regex=CALLABLE_NUMBER,
        )
        .exclude(Exists(answered_since))
        .exclude(Exists(handled_since))
    )


@dataclass(frozen=True)
class QueueEntry:
    """One caller to call back for one campaign: their oldest unhandled call."""

    call: Call
    attempts: int
    callback_in_progress: bool
    last_callback_outcome: str | None

    @property
    def last_callback_label(self) -> str:
        if self.last_callback_outcome is None:
            return ""
        return str(Outcome(self.last_callback_outcome).label)


def callback_queue(*, campaign_id: int | None = None, limit: int = MAX_ENTRIES) -> list[QueueEntry]:
    """The queue, oldest first: one SQL statement whatever its length."""
    per_caller = [F("campaign_id"), F("caller_number")]
    callbacks = Call.objects.filter(callback_of=OuterRef("pk"), direction=CallDirection.CALLBACK)
    calls = unhandled_missed_calls()
    if campaign_id is not None:
        calls = calls.filter(campaign_id=campaign_id)
    rows = (
        calls.annotate(
            attempts=Window(Count("id"), partition_by=per_caller),
            place=Window(RowNumber(), partition_by=per_caller, order_by=[F("started_at").asc(), F("id").asc()]),
            callback_in_progress=Exists(callbacks.exclude(state=CallState.ENDED)),
            last_callback_outcome=Subquery(callbacks.order_by("-started_at", "-id").values("outcome")[:1]),
        )
        .filter(place=1)
        .select_related("campaign")
        .order_by("started_at", "id")[:limit]
    )
    return [
        QueueEntry(
            call=row,
            attempts=row.attempts,
            callback_in_progress=row.callback_in_progress,
            last_callback_outcome=row.last_callback_outcome,
        )
        for row in rows
    ]


def queue_campaigns() -> list[Campaign]:
    """The campaigns with anyone in the queue, for its filter."""
    ids = unhandled_missed_calls().values("campaign_id")
    return list(Campaign.objects.filter(pk__in=ids).order_by("name"))


# --- marking a caller handled -----------------------------------------------------------


def callback_handle(*, call_id: int, user: Any, note: str) -> CallbackHandled:
    """Mark the queue entry ``call_id`` handled with ``note``: it leaves the queue, and
    the note stays on the call's page."""
    note = note.strip()
    if not note:
        raise CallbackRefused("Write a note saying how the caller was dealt with.")
    if len(note) > MAX_NOTE_CHARS:
        raise CallbackRefused(f"The note is {len(note)} characters; keep it under {MAX_NOTE_CHARS}.")
    missed = one_or_none(unhandled_missed_calls().filter(pk=call_id))
    if missed is None:
        raise CallbackRefused("This caller is no longer in the call-back queue: nothing was changed.")
    try:
        with transaction.atomic():
            handled = CallbackHandled.objects.create(call=missed, handled_by=user, note=note)
    except IntegrityError:
        raise CallbackRefused("This caller was marked handled already: nothing was changed.") from None
    logger.info("callback.handled call=%s user=%s", missed.pk, user.pk)
    return handled


# --- calling back -----------------------------------------------------------------------


def staff_phone(user: Any) -> str:
    """The staff member's own phone (E.164 digits), or "" when their profile has none."""
    return StaffProfile.objects.filter(user_id=user.pk).values_list("phone", flat=True).first() or ""


def callback_from(missed: Call) -> TrackingNumber | None:
    """The campaign number the call-back comes from: the one the caller dialled, while
    it is still the campaign's and active, else another active number of the campaign."""
    numbers = TrackingNumber.objects.filter(campaign=missed.campaign, is_active=True)
    return one_or_none(numbers.filter(number=missed.called_number)) or numbers.order_by("pk").first()


def callback_place(*, call_id: int, user: Any) -> Call:
    """Press Call back on the queue entry ``call_id``: ring ``user``'s own phone; the
    answer webhook then whispers and rings the caller. Raises CallbackRefused."""
    phone = staff_phone(user)
    if not phone:
        raise CallbackRefused(
            "Your staff profile has no phone number: add your own phone there first. No call was placed."
        )
    missed = one_or_none(unhandled_missed_calls().select_related("campaign").filter(pk=call_id))
    if missed is None:
        raise CallbackRefused("This caller is no longer in the call-back queue. No call was placed.")
    number = callback_from(missed)
    if number is None or missed.campaign is None or not missed.campaign.is_active:
        raise CallbackRefused("The campaign has no active number to call from. No call was placed.")
    try:
        with transaction.atomic():
            callback = Call.objects.create(
                direction=CallDirection.CALLBACK,
                callback_of=missed,
                placed_by=user,
                campaign=missed.campaign,
                tracking_number=number,
                number_status=NumberStatus.TRACKED,
                caller_number=missed.caller_number,
                called_number=number.number,
                source=missed.source,
                destination=phone,
                conference_name=f"callback-{uuid_lib.uuid4().hex}",
                # Vonage bridges the two legs itself (a connect): nothing is rung by us
                # after the staff leg, and the conference flow's steps never apply.
                strategy=Strategy.CONNECT,
                agent_requested_at=timezone.now(),
            )
    except IntegrityError:
        raise CallbackRefused("A call-back to this caller is already under way. No second call was placed.") from None
    call_context_set(callback.pk)
    _wait_for_send_time()
    try:
        placed = vonage_adapter.place_call(
            to=phone,
            from_=number.number,
            answer_url=callback_url("calls:answer_callback", call=callback.pk),
            # Bare: the staff leg is recorded from place_call's answer, and its events
            # that come first are adopted then (call_records.events_adopt).
            event_url=callback_url("calls:event"),
            deadline_seconds=settings.AGENT_CALL_DEADLINE_SECONDS,
            ringing_timer=missed.campaign.ring_seconds,
            # A voicemail must not take the whisper, and then the caller.
            machine_detection="hangup",
        )
    except vonage_adapter.VonageUnavailable as exc:
        Call.objects.filter(pk=callback.pk).update(
            state=CallState.ENDED, outcome=Outcome.FAILED, ended_at=timezone.now(), agent_call_error=str(exc)[:500]
        )
        logger.warning("callback.not_placed call=%s missed=%s error=%s", callback.pk, missed.pk, exc)
        raise CallbackRefused(f"Vonage did not place the call: {exc}") from None
    if not placed.sent:
        # No Vonage credentials (development): logged, not placed. Ended at once, or the
        # entry would wait for a call-back that never comes.
        Call.objects.filter(pk=callback.pk).update(
            state=CallState.ENDED, outcome=Outcome.FAILED, ended_at=timezone.now(), agent_call_error=DRY_RUN_REASON
        )
        logger.info("callback.dry_run call=%s missed=%s", callback.pk, missed.pk)
        raise CallbackRefused(f"{DRY_RUN_REASON} No call was placed.")
    with transaction.atomic():
        try:
            with transaction.atomic():
                CallLeg.objects.create(
                    uuid=placed.uuid,
                    call=callback,
                    role=LegRole.AGENT,
                    attempt=0,
                    conversation_uuid=placed.conversation_uuid,
                    from_number=number.number,
                    to_number=phone,
                    direction="outbound",
                )
        except IntegrityError:  # recorded already
            pass
        events_adopt(call_id=callback.pk, leg_uuids=[placed.uuid])
    logger.info(
        "callback.placed call=%s missed=%s user=%s staff_uuid=%s sent=%s",
        callback.pk,
        missed.pk,
        user.pk,
        placed.uuid,
        placed.sent,
    )
    return callback


def _wait_for_send_time() -> None:
    """The staff call counts against the account's new calls per second (calls/pacing.py):
    wait for its send time, a few seconds at most (a person pressed a button)."""
    slot = pacing.slot_claim()
    if not slot.due:
        time.sleep(min(slot.delay.total_seconds(), PACING_WAIT_SECONDS))


def callback_answer(*, call_id: int, uuid: str, conversation_uuid: str = "", region_url: str = "") -> nccos.Ncco:
    """The staff member answered their phone: the whisper, then the caller rung from the
    campaign's number. A retried webhook gets the same answer (the whisper is stored)."""
    call_context_set(call_id)
    with transaction.atomic():
        locked = Call.objects.select_for_update(of=("self",)).select_related("campaign", "callback_of__campaign")
        call = one_or_none(locked.filter(pk=call_id, direction=CallDirection.CALLBACK))
        if call is None:
            raise CallNotFound(call_id)
        legs = list(call.legs.order_by())
        leg = next((each for each in legs if each.uuid == uuid), None)
        if leg is None and any(each.role == LegRole.AGENT for each in legs):
            # A second staff call Vonage created for a re-sent POST (VONAGE.md): told so.
            logger.warning("answer_callback.unknown_staff_leg call=%s uuid=%s", call.pk, uuid)
            return nccos.agent_hears_call_taken()
        if leg is None:
            leg = CallLeg.objects.create(
                uuid=uuid,
                call=call,
                role=LegRole.AGENT,
                attempt=0,
                direction="outbound",
                to_number=call.destination,
                from_number=call.called_number,
                conversation_uuid=conversation_uuid,
                region_url=region_url,
            )
            events_adopt(call_id=call.pk, leg_uuids=[uuid])
        elif (conversation_uuid and not leg.conversation_uuid) or (region_url and not leg.region_url):
            leg.conversation_uuid = leg.conversation_uuid or conversation_uuid
            leg.region_url = leg.region_url or region_url
            leg.save(update_fields=["conversation_uuid", "region_url"])
        if not call.whisper_text:
            call.whisper_text = callback_whisper(call)
            call.save(update_fields=["whisper_text"])
    # The connect to the caller is a new call for the account's limit too: its send time
    # is claimed so the calls paced after it keep their distance (not waited for here).
    pacing.slot_claim()
    logger.info("answer_callback.whisper call=%s staff_uuid=%s", call.pk, uuid)
    campaign = call.campaign
    return nccos.staff_calls_back(
        whisper=call.whisper_text,
        caller=call.caller_number,
        from_number=call.called_number,
        event_url=callback_url("calls:event", call=call.pk),
        ring_seconds=campaign.ring_seconds if campaign else None,
        voice=call_flow.voice_for(call),
    )


def callback_whisper(call: Call) -> str:
    """What the staff member hears for the call-back ``call``: the campaign's call-back
    template, with the missed call's variables and when it came."""
    missed = call.callback_of or call
    campaign = call.campaign
    if campaign is None:
        return "Calling back a caller who missed a call."
    values = {**whisper_values(missed), "time": spoken_time(missed.started_at, zone=campaign.timezone)}
    return render_template(campaign.callback_template, values)


def spoken_time(moment: datetime, *, zone: str, now: datetime | None = None) -> str:
    """``moment`` as a person says it, in the time zone ``zone``: "10:42 this morning",
    "16:05 yesterday afternoon", "09:30 on Monday morning", "11:15 on 3 December"."""
    local = local_time(moment, zone)
    today = local_time(now or timezone.now(), zone).date()
    part = "morning" if local.hour < 12 else "afternoon" if local.hour < 18 else "evening"
    days = (today - local.date()).days
    if days <= 0:
        when = f"this {part}"
    elif days == 1:
        when = f"yesterday {part}"
    elif days < 7:
        when = f"on {local:%A} {part}"
    else:
        when = f"on {local.day} {local:%B}"
    return f"{local:%H:%M} {when}"


def callbacks_of(call: Call) -> list[Call]:
    """The call-backs made for ``call``, newest first (its page lists them)."""
    return list(
        Call.objects.filter(callback_of=call, direction=CallDirection.CALLBACK)
        .select_related("placed_by")
        .order_by("-started_at", "-id")[:50]
    )
