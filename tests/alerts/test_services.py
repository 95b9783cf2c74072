"""The outbox: filled once per (recipient, call) from finished calls, sent off the webhook
path, retried with back-off and given up on, with Django's locmem mail backend."""

from datetime import timedelta
from smtplib import SMTPServerDisconnected
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from alerts import services
from alerts.management.commands import send_alerts
from alerts.models import AlertDelivery, AlertEvent, Channel, DeliveryState, Frequency
from calls import vonage_adapter
from calls.models import Outcome
from campaigns.models import Campaign
from tests.factories import CampaignFactory, TrackingNumberFactory

from .conftest import CALLER, ended_call, recipient

pytestmark = pytest.mark.django_db


class FailingMail:
    """The SMTP backend's failures, as the sender sees them: ``times`` sends refused."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, times: int) -> None:
        self.left = times
        original = mail.EmailMessage.send

        def send(message: mail.EmailMessage, fail_silently: bool = False) -> int:
            if self.left:
                self.left -= 1
                raise SMTPServerDisconnected("Connection unexpectedly closed")
            return original(message, fail_silently=fail_silently)

        monkeypatch.setattr(mail.EmailMessage, "send", send)


# --- filling the outbox -------------------------------------------------------------------


def test_a_missed_call_queues_one_alert_per_recipient_however_often_the_outbox_is_filled(
    campaign: Campaign,
) -> None:
    sales, boss = recipient(campaign, "sales@example.com"), recipient(campaign, "boss@example.com")
    call = ended_call(campaign, Outcome.MISSED)

    for _ in range(3):
        services.alerts_enqueue()

    rows = AlertDelivery.objects.order_by("recipient__address")
    assert [(row.recipient, row.call, row.event, row.state) for row in rows] == [
        (boss, call, AlertEvent.MISSED, DeliveryState.PENDING),
        (sales, call, AlertEvent.MISSED, DeliveryState.PENDING),
    ]


@pytest.mark.parametrize(
    ("outcome", "event"),
    [
        (Outcome.MISSED, AlertEvent.MISSED),
        (Outcome.BUSY, AlertEvent.MISSED),
        (Outcome.ABANDONED, AlertEvent.MISSED),
        (Outcome.CLOSED, AlertEvent.MISSED),
        (Outcome.VOICEMAIL, AlertEvent.VOICEMAIL),
        (Outcome.ANSWERED, None),
    ],
)
def test_which_calls_are_alerted(campaign: Campaign, outcome: str, event: str | None) -> None:
    recipient(campaign)
    ended_call(campaign, outcome)

    services.alerts_enqueue()

    assert list(AlertDelivery.objects.values_list("event", flat=True)) == ([event] if event else [])


def test_a_recipient_is_told_only_about_the_events_it_chose(campaign: Campaign) -> None:
    voicemail_only = recipient(campaign, "vm@example.com", on_missed=False)
    missed_only = recipient(campaign, "missed@example.com", on_voicemail=False)
    missed, voicemail = ended_call(campaign, Outcome.MISSED), ended_call(campaign, Outcome.VOICEMAIL)

    services.alerts_enqueue()

    assert set(AlertDelivery.objects.values_list("recipient", "call")) == {
        (voicemail_only.pk, voicemail.pk),
        (missed_only.pk, missed.pk),
    }


def test_calls_still_settling_in_progress_or_of_other_campaigns_are_not_queued(campaign: Campaign) -> None:
    recipient(campaign)
    ended_call(campaign, ended_ago=timedelta(seconds=10))  # its voicemail may still be on its way
    ended_call(campaign, Outcome.IN_PROGRESS, state="waiting", ended_at=None)
    other = CampaignFactory(name="Winter sale")
    TrackingNumberFactory(campaign=other)
    ended_call(other)

    services.alerts_enqueue()

    assert not AlertDelivery.objects.exists()


def test_a_new_recipient_is_not_told_about_calls_that_ended_before_it_was_added(campaign: Campaign) -> None:
    ended_call(campaign, ended_ago=timedelta(hours=3))
    recipient(campaign, created_at=timezone.now() - timedelta(hours=1))

    services.alerts_enqueue()

    assert not AlertDelivery.objects.exists()


def test_a_call_whose_end_was_recorded_late_is_still_queued(campaign: Campaign) -> None:
    """No high-water mark to step over it: a spool replay records an end hours old."""
    recipient(campaign)
    services.alerts_enqueue()  # an earlier run, before this call's end was recorded
    late = ended_call(campaign, ended_ago=timedelta(hours=1))

    services.alerts_enqueue()

    assert list(AlertDelivery.objects.values_list("call", flat=True)) == [late.pk]


def test_inactive_recipients_are_not_queued_for(campaign: Campaign) -> None:
    recipient(campaign, is_active=False)
    ended_call(campaign)

    services.alerts_enqueue()

    assert not AlertDelivery.objects.exists()


# --- sending one email per call -----------------------------------------------------------


def test_the_email_tells_campaign_source_masked_caller_time_outcome_and_links(campaign: Campaign) -> None:
    recipient(campaign)
    call = ended_call(
        campaign, Outcome.VOICEMAIL, recording_url="https://api.nexmo.com/v1/files/aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
    )
    services.alerts_enqueue()

    report = services.alerts_send()

    assert (report.sent, report.retrying, report.failed) == (1, 0, 0)
    (message,) = mail.outbox
    assert message.to == ["sales@example.com"]
    assert message.subject == "Voicemail: Summer offer (M4 billboard), caller …0123"
    assert "Campaign: Summer offer" in message.body
    assert "Source:   M4 billboard" in message.body
    assert "Caller:   …0123" in message.body
    assert CALLER not in message.body and "7946 000123" not in message.body
    assert "Outcome:  Voicemail (waited 40 s)" in message.body
    when = call.started_at.astimezone(ZoneInfo("Europe/London"))
    assert f"When:     {when:%A} {when.day} {when:%B %Y, %H:%M %Z}" in message.body
    assert f"https://whisper.example.com/admin/calls/call/{call.pk}/change/" in message.body
    assert f"https://whisper.example.com/admin/calls/call/{call.pk}/recording/" in message.body
    delivery = AlertDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_error) == (DeliveryState.SENT, 1, "")
    assert delivery.sent_at is not None


def test_a_recipient_allowed_to_see_callers_numbers_gets_the_whole_number(campaign: Campaign) -> None:
    recipient(campaign, show_caller_number=True)
    ended_call(campaign)
    services.alerts_run()

    (message,) = mail.outbox
    assert "Caller:   +44 7946 000123" in message.body


def test_the_time_is_in_the_campaigns_time_zone(campaign: Campaign) -> None:
    campaign.timezone = "America/New_York"
    campaign.save()
    recipient(campaign)
    call = ended_call(campaign)
    services.alerts_run()

    local = call.started_at.astimezone(ZoneInfo("America/New_York"))
    assert f"{local:%H:%M} E" in mail.outbox[0].body  # EST or EDT


def test_a_sent_alert_is_not_sent_again(campaign: Campaign) -> None:
    recipient(campaign)
    ended_call(campaign)

    services.alerts_run()
    services.alerts_run()

    assert len(mail.outbox) == 1


def test_a_missed_call_without_a_voicemail_has_no_voicemail_link(campaign: Campaign) -> None:
    recipient(campaign)
    ended_call(campaign, Outcome.MISSED)
    services.alerts_run()

    assert "/recording/" not in mail.outbox[0].body and "The voicemail:" not in mail.outbox[0].body
    assert mail.outbox[0].subject.startswith("Missed call: Summer offer")


# --- failures: retried with back-off, then given up -----------------------------------------


def test_a_failed_send_is_kept_with_why_and_retried_after_the_back_off(
    campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipient(campaign)
    ended_call(campaign)
    FailingMail(monkeypatch, times=1)
    now = timezone.now()

    report = services.alerts_run(now=now)

    assert (report.sent, report.retrying) == (0, 1)
    delivery = AlertDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 1)
    assert delivery.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    assert delivery.next_attempt_at == now + services.RETRY_FIRST
    # Not before the back-off has passed:
    assert services.alerts_send(now=now + timedelta(seconds=30)).sent == 0
    assert mail.outbox == []

    assert services.alerts_send(now=now + services.RETRY_FIRST).sent == 1

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_error) == (DeliveryState.SENT, 2, "")
    assert len(mail.outbox) == 1


def test_back_off_doubles_up_to_an_hour() -> None:
    assert [services.retry_delay(n).total_seconds() / 60 for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_after_the_last_attempt_it_is_given_up_with_why_kept(
    campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipient(campaign)
    ended_call(campaign)
    FailingMail(monkeypatch, times=services.MAX_ATTEMPTS + 5)
    now = timezone.now()
    services.alerts_enqueue(now=now)

    for _ in range(services.MAX_ATTEMPTS + 2):
        now += services.RETRY_MAX
        services.alerts_send(now=now)

    delivery = AlertDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, services.MAX_ATTEMPTS)
    assert "SMTPServerDisconnected" in delivery.last_error
    assert mail.outbox == []


def test_one_failing_recipient_does_not_hold_up_the_others(campaign: Campaign, monkeypatch: pytest.MonkeyPatch) -> None:
    recipient(campaign, "a@example.com")
    recipient(campaign, "b@example.com")
    ended_call(campaign)
    FailingMail(monkeypatch, times=1)

    report = services.alerts_run()

    assert (report.sent, report.retrying) == (1, 1)
    assert len(mail.outbox) == 1


def test_a_recipient_turned_off_after_queueing_is_not_sent_to(campaign: Campaign) -> None:
    off = recipient(campaign)
    ended_call(campaign)
    services.alerts_enqueue()
    off.is_active = False
    off.save()

    services.alerts_send()

    assert mail.outbox == []
    delivery = AlertDelivery.objects.get()
    assert delivery.state == DeliveryState.FAILED
    assert delivery.last_error == "The recipient was turned off before this was sent."


# --- hourly digests -----------------------------------------------------------------------


def test_an_hourly_digest_lists_the_hours_calls_in_one_message_after_the_hour(campaign: Campaign) -> None:
    recipient(campaign, "digest@example.com", frequency=Frequency.HOURLY)
    first = ended_call(campaign, Outcome.MISSED, ended_ago=timedelta(minutes=20))
    second = ended_call(campaign, Outcome.VOICEMAIL, caller_number="447946000999")
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    services.alerts_enqueue(now=now)

    assert services.alerts_send(now=now).sent == 0  # the hour has not ended
    assert services.alerts_send(now=hour + timedelta(minutes=59)).sent == 0
    report = services.alerts_send(now=hour + timedelta(hours=1) + services.DIGEST_GRACE)

    assert report.sent == 2
    (message,) = mail.outbox
    assert message.to == ["digest@example.com"]
    assert message.subject == "2 missed calls or voicemails: Summer offer"
    body = message.body
    assert body.index(f"/admin/calls/call/{first.pk}/change/") < body.index(f"/admin/calls/call/{second.pk}/change/")
    assert "Missed call from …0123" in body and "Voicemail from …0999" in body
    assert set(AlertDelivery.objects.values_list("state", flat=True)) == {DeliveryState.SENT}

    services.alerts_send(now=hour + timedelta(hours=3))
    assert len(mail.outbox) == 1


def test_a_failed_digest_is_retried_whole(campaign: Campaign, monkeypatch: pytest.MonkeyPatch) -> None:
    recipient(campaign, "digest@example.com", frequency=Frequency.HOURLY)
    ended_call(campaign)
    ended_call(campaign, caller_number="447946000999")
    now = timezone.now()
    services.alerts_enqueue(now=now)
    FailingMail(monkeypatch, times=1)
    after_the_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1, minutes=1)

    assert services.alerts_send(now=after_the_hour).retrying == 2
    assert services.alerts_send(now=after_the_hour + services.RETRY_FIRST).sent == 2

    (message,) = mail.outbox
    assert message.subject.startswith("2 missed calls")
    assert set(AlertDelivery.objects.values_list("attempts", flat=True)) == {2}


# --- SMS, through the adapter -------------------------------------------------------------


def test_an_sms_alert_is_one_short_text_from_the_campaign_number(
    campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(vonage_adapter, "sms_send", lambda **kwargs: sent.append(kwargs) or "msg-1")
    recipient(campaign, "447700900555", channel=Channel.SMS)
    call = ended_call(campaign)

    assert services.alerts_run().sent == 1

    (sms,) = sent
    assert (sms["to"], sms["from_"]) == ("447700900555", "447700900001")
    assert sms["text"].startswith("Missed call: Summer offer (M4 billboard), caller …0123, ")
    assert sms["text"].endswith(f"https://whisper.example.com/admin/calls/call/{call.pk}/change/")
    assert len(sms["text"]) <= 160


def test_without_account_credentials_an_sms_fails_with_why(campaign: Campaign) -> None:
    recipient(campaign, "447700900555", channel=Channel.SMS)
    ended_call(campaign)

    services.alerts_run()

    delivery = AlertDelivery.objects.get()
    assert delivery.state == DeliveryState.PENDING and delivery.attempts == 1
    assert delivery.last_error == "VonageUnavailable: VONAGE_API_KEY and VONAGE_API_SECRET are needed to send an SMS."


# --- the command --------------------------------------------------------------------------


def test_send_alerts_command_queues_sends_and_reports(campaign: Campaign, capsys: pytest.CaptureFixture[str]) -> None:
    recipient(campaign)
    ended_call(campaign)

    call_command("send_alerts")

    assert capsys.readouterr().out.strip() == "Queued 1 alert; sent 1, 0 to retry, 0 given up."
    assert len(mail.outbox) == 1


def test_send_alerts_loop_runs_the_given_number_of_times(
    campaign: Campaign, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test's transaction is not in autocommit, which close_old_connections takes for a broken connection.
    monkeypatch.setattr(send_alerts, "close_old_connections", lambda: None)
    recipient(campaign)
    ended_call(campaign)

    call_command("send_alerts", loop=0.01, max_runs=2)

    assert capsys.readouterr().out.splitlines() == [
        "Queued 1 alert; sent 1, 0 to retry, 0 given up.",
        "Queued 0 alerts; sent 0, 0 to retry, 0 given up.",
    ]
