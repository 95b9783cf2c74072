"""What an alert says: pure functions from the outbox rows to an email or an SMS text.

The caller's number is shown as the recipient is allowed to see it (``show_caller_number``,
set only by staff who may see callers' numbers: ``calls.privacy``), masked (``…0123``)
otherwise. Links open the call (and its voicemail) in the admin, behind its login.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse

from calls import privacy
from calls.models import Call

from .models import AlertDelivery, AlertEvent, AlertRecipient

# Vonage splits longer texts into parts, each billed: one part of GSM text is 160 characters.
SMS_MAX_CHARS = 160


@dataclass(frozen=True)
class CallLine:
    """One call as an alert tells it."""

    event: str  # AlertEvent label: "Missed call" or "Voicemail"
    campaign: str
    source: str
    caller: str
    when: datetime  # in the campaign's time zone
    when_text: str  # "Friday 4 December 2026, 10:42 GMT"
    outcome: str
    wait_seconds: int | None
    call_url: str
    voicemail_url: str


def call_line(delivery: AlertDelivery, *, recipient: AlertRecipient) -> CallLine:
    call: Call = delivery.call
    campaign_name = call.campaign.name if call.campaign is not None else "No campaign"
    when = call.started_at.astimezone(_zone(call))
    return CallLine(
        event=AlertEvent(delivery.event).label,
        campaign=campaign_name,
        source=call.source or "unknown source",
        caller=privacy.caller_display(call.caller_number, visible=recipient.show_caller_number),
        when=when,
        when_text=f"{when:%A} {when.day} {when:%B %Y, %H:%M %Z}",
        outcome=call.get_outcome_display(),
        wait_seconds=call.wait_seconds,
        call_url=settings.PUBLIC_URL + reverse("admin:calls_call_change", args=[call.pk]),
        voicemail_url=(
            settings.PUBLIC_URL + reverse("admin:calls_call_recording", args=[call.pk]) if call.recording_url else ""
        ),
    )


def call_email(delivery: AlertDelivery) -> EmailMessage:
    """One message about one call."""
    line = call_line(delivery, recipient=delivery.recipient)
    subject = f"{line.event}: {line.campaign} ({line.source}), caller {line.caller}"
    body = render_to_string("alerts/call_email.txt", {"line": line})
    return EmailMessage(subject=subject, body=body, to=[delivery.recipient.address])


def digest_email(recipient: AlertRecipient, deliveries: Sequence[AlertDelivery]) -> EmailMessage:
    """One message listing the hour's calls, oldest first."""
    lines = [call_line(delivery, recipient=recipient) for delivery in deliveries]
    count = len(lines)
    subject = f"{count} missed call{'s' * (count != 1)} or voicemail{'s' * (count != 1)}: {lines[0].campaign}"
    body = render_to_string("alerts/digest_email.txt", {"lines": lines, "campaign": lines[0].campaign})
    return EmailMessage(subject=subject, body=body, to=[recipient.address])


def call_sms(delivery: AlertDelivery) -> str:
    """One text about one call: the essentials and the link, within one SMS where it can."""
    line = call_line(delivery, recipient=delivery.recipient)
    text = (
        f"{line.event}: {line.campaign} ({line.source}), caller {line.caller}, {line.when:%d %b %H:%M}. {line.call_url}"
    )
    if len(text) > SMS_MAX_CHARS:
        # The link matters more than the source's full label.
        text = f"{line.event}: {line.campaign}, caller {line.caller}, {line.when:%d %b %H:%M}. {line.call_url}"
    return text


def _zone(call: Call) -> ZoneInfo:
    name = call.campaign.timezone if call.campaign is not None else settings.TIME_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.TIME_ZONE)
