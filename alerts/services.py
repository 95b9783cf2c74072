"""The alert outbox: filled from finished calls, emptied by the sender. Both run in
``manage.py send_alerts`` (cron or a sidecar loop), never in a webhook.

Why off the webhook path, and not a row written where a call's outcome becomes final:
the event webhook is the hot path (Vonage waits on it, many processes share it), and an
outcome can still change after the call "ends" (a voicemail's ``record`` event arrives
after the caller's ``completed``; reconcile marks lost legs ended later). So the outbox is
filled by a scan of calls that ended at least ``SETTLE`` ago, over a look-back window
rather than from a stored high-water mark: a call whose end is recorded late (the webhook
spool replayed after a database outage, a leg reconcile ended) carries an end time older
than the last scan, and a mark would step over it. Rescanning is harmless: the outbox row
is unique per (recipient, call), and rows are inserted with ON CONFLICT DO NOTHING, so any
number of scans, by any number of processes at once, queue each call once per recipient.

Sending: each row (or, for a digest, each recipient's hour) is claimed with
``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, sent, and marked sent in the same
transaction, so two senders at the same time never send the same row: the second skips
what the first holds, and a row committed as sent no longer matches its query. SQLite
ignores the locks; there a single sender (development) is assumed. A sender that dies
after the mail server accepted a message but before its commit leaves the row pending, and
the next run sends it again: delivery is exactly once among live senders, at least once
across crashes (there is no two-phase commit with a mail server or Vonage).

Failures are retried with doubling back-off (``RETRY_FIRST`` … ``RETRY_MAX``) and given
up after ``MAX_ATTEMPTS`` tries; the row then shows "failed" and why in the admin.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from calls import vonage_adapter
from calls.models import Call, CallState, Outcome

from . import messages
from .models import AlertDelivery, AlertEvent, AlertRecipient, Channel, DeliveryState, Frequency

logger = logging.getLogger(__name__)

# Outcomes where the caller reached no one and left no message: someone should call back.
MISSED_OUTCOMES = frozenset(
    {Outcome.MISSED, Outcome.BUSY, Outcome.DECLINED, Outcome.ABANDONED, Outcome.FAILED, Outcome.CLOSED}
)
VOICEMAIL_OUTCOMES = frozenset({Outcome.VOICEMAIL})
# A call is alerted this long after it ended: a voicemail's recording (its ``record`` event)
# and lost legs' ends arrive after the caller's ``completed``.
SETTLE = timedelta(seconds=60)
# How far back each scan looks for ended calls (see the module's docstring).
LOOKBACK = timedelta(hours=24)
# A digest for an hour goes out this long after the hour ends (rows queued at 10:59:59
# are committed by then).
DIGEST_GRACE = timedelta(minutes=1)
MAX_ATTEMPTS = 8
RETRY_FIRST = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)
# Rows sent per run at most, so one run ends (the next picks up the rest).
BATCH_LIMIT = 500


@dataclass
class SendReport:
    queued: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def summary(self) -> str:
        return (
            f"Queued {self.queued} alert{'s' * (self.queued != 1)}; sent {self.sent}, "
            f"{self.retrying} to retry, {self.failed} given up."
        )


def event_for(outcome: str) -> str | None:
    if outcome in VOICEMAIL_OUTCOMES:
        return AlertEvent.VOICEMAIL
    if outcome in MISSED_OUTCOMES:
        return AlertEvent.MISSED
    return None


def recipient_calls(recipient: AlertRecipient, *, now: datetime) -> QuerySet[Call]:
    """Ended calls of the recipient's campaign that it should be told about and is not queued for yet."""
    outcomes = (MISSED_OUTCOMES if recipient.on_missed else frozenset()) | (
        VOICEMAIL_OUTCOMES if recipient.on_voicemail else frozenset()
    )
    return (
        Call.objects.filter(
            campaign_id=recipient.campaign_id,
            state=CallState.ENDED,
            outcome__in=sorted(outcomes),
            # The index (campaign, started_at) narrows it; no call lasts longer than the window.
            started_at__gte=now - LOOKBACK,
            # A recipient added today is not told about yesterday's calls.
            ended_at__gte=recipient.created_at,
            ended_at__lte=now - SETTLE,
        )
        .exclude(alert_deliveries__recipient=recipient)
        .only("id", "outcome")
    )


def alerts_enqueue(*, now: datetime | None = None) -> int:
    """Queue an outbox row for every (active recipient, call to tell it about); return how
    many rows this run tried to add (a concurrent run may have added some of them first)."""
    now = now or timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    queued = 0
    recipients = AlertRecipient.objects.filter(is_active=True).filter(Q(on_missed=True) | Q(on_voicemail=True))
    for recipient in recipients:
        rows = [
            AlertDelivery(
                recipient=recipient,
                call_id=call.pk,
                event=event_for(call.outcome) or AlertEvent.MISSED,
                digest_hour=hour if recipient.frequency == Frequency.HOURLY else None,
                next_attempt_at=now,
            )
            for call in recipient_calls(recipient, now=now)
        ]
        if rows:
            AlertDelivery.objects.bulk_create(rows, ignore_conflicts=True)
            queued += len(rows)
            logger.info("alerts.queued recipient=%s rows=%d", recipient.pk, len(rows))
    return queued


def alerts_send(*, now: datetime | None = None, limit: int = BATCH_LIMIT) -> SendReport:
    """Send what is due: each-call rows one by one, then the digests of hours that ended."""
    now = now or timezone.now()
    report = SendReport()
    while report.sent + report.retrying + report.failed < limit:
        if not _one_call_alert_send(now=now, report=report):
            break
    for recipient_id, hour in _digests_due(now=now):
        _digest_send(recipient_id=recipient_id, hour=hour, now=now, report=report)
    return report


def alerts_run(*, now: datetime | None = None) -> SendReport:
    """One run of ``send_alerts``: fill the outbox, then send what is due."""
    now = now or timezone.now()
    queued = alerts_enqueue(now=now)
    report = alerts_send(now=now)
    report.queued = queued
    return report


def retry_delay(attempts: int) -> timedelta:
    """After the ``attempts``-th failure: 1, 2, 4 … minutes, at most an hour."""
    return min(RETRY_FIRST * 2 ** max(attempts - 1, 0), RETRY_MAX)


def _due(now: datetime) -> QuerySet[AlertDelivery]:
    return AlertDelivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)


def _one_call_alert_send(*, now: datetime, report: SendReport) -> bool:
    """Claim, send and settle one each-call row; False when none is left to claim."""
    with transaction.atomic():
        delivery = (
            _due(now)
            .filter(digest_hour__isnull=True)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("recipient", "call", "call__campaign")
            .order_by("next_attempt_at", "id")
            .first()
        )
        if delivery is None:
            return False
        error = _deliver(delivery.recipient, [delivery])
        _settle([delivery], recipient=delivery.recipient, error=error, now=now, report=report)
    return True


def _digests_due(*, now: datetime) -> list[tuple[int, datetime]]:
    ended_hours = _due(now).filter(digest_hour__lte=now - timedelta(hours=1) - DIGEST_GRACE)
    pairs = ended_hours.values_list("recipient_id", "digest_hour").distinct().order_by("digest_hour")
    return [(recipient_id, hour) for recipient_id, hour in pairs if hour is not None]


def _digest_send(*, recipient_id: int, hour: datetime, now: datetime, report: SendReport) -> None:
    """One message for a recipient's hour. The recipient's row is the claim: a second
    sender skips the whole digest, not some of its rows (which would split it in two)."""
    with transaction.atomic():
        recipient = AlertRecipient.objects.select_for_update(skip_locked=True).filter(pk=recipient_id).first()
        if recipient is None:
            return
        deliveries = list(
            _due(now)
            .filter(recipient_id=recipient_id, digest_hour=hour)
            .select_for_update(of=("self",))
            .select_related("call", "call__campaign")
            .order_by("call__started_at", "id")
        )
        if not deliveries:
            return  # another sender sent it and committed while this one waited
        error = _deliver(recipient, deliveries)
        _settle(deliveries, recipient=recipient, error=error, now=now, report=report)


def _deliver(recipient: AlertRecipient, deliveries: list[AlertDelivery]) -> str:
    """Send; return why it failed, or "" when the mail server or Vonage accepted it."""
    if not recipient.is_active:
        return "The recipient was turned off before this was sent."
    try:
        if recipient.channel == Channel.SMS:
            (delivery,) = deliveries
            vonage_adapter.sms_send(
                to=recipient.address, from_=delivery.call.called_number, text=messages.call_sms(delivery)
            )
        elif recipient.frequency == Frequency.HOURLY:
            messages.digest_email(recipient, deliveries).send(fail_silently=False)
        else:
            messages.call_email(deliveries[0]).send(fail_silently=False)
    except Exception as exc:  # SMTP errors, refused connections, timeouts, VonageUnavailable
        logger.warning(
            "alerts.send_failed recipient=%s calls=%s error=%s: %s",
            recipient.pk,
            [delivery.call_id for delivery in deliveries],
            type(exc).__name__,
            exc,
        )
        return f"{type(exc).__name__}: {exc}"[:1000]
    return ""


def _settle(
    deliveries: list[AlertDelivery], *, recipient: AlertRecipient, error: str, now: datetime, report: SendReport
) -> None:
    for delivery in deliveries:
        delivery.attempts += 1
        if not error:
            delivery.state = DeliveryState.SENT
            delivery.sent_at = timezone.now()
            delivery.last_error = ""
            report.sent += 1
        elif delivery.attempts >= MAX_ATTEMPTS or not recipient.is_active:
            delivery.state = DeliveryState.FAILED
            delivery.last_error = error
            report.failed += 1
        else:
            delivery.last_error = error
            delivery.next_attempt_at = now + retry_delay(delivery.attempts)
            report.retrying += 1
        delivery.save(update_fields=["attempts", "state", "sent_at", "last_error", "next_attempt_at"])
        logger.info(
            "alerts.settled delivery=%s call=%s state=%s attempts=%s",
            delivery.pk,
            delivery.call_id,
            delivery.state,
            delivery.attempts,
        )
