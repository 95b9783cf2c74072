"""Alert emails through Django's SMTP backend to a real SMTP server on 127.0.0.1 (aiosmtpd)."""

import socket
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone
from pytest_django.fixtures import Settings

from alerts import services
from alerts.models import AlertDelivery, DeliveryState
from calls.models import Outcome
from campaigns.models import Campaign
from tests.alerts.conftest import ended_call, recipient, summer_campaign

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

FROM = "Call Whisper <alerts@whisper.example.com>"


class Inbox:
    """What the SMTP server accepted: each message as the recipient's mail program reads it."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"


class SmtpServer:
    """An SMTP server on a free port of 127.0.0.1 that can be stopped and started again."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp(settings: Settings) -> Iterator[SmtpServer]:
    server = SmtpServer()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = FROM
    yield server
    server.stop()


@pytest.fixture
def campaign(db: None) -> Campaign:
    return summer_campaign()


def test_a_missed_call_produces_exactly_one_email(smtp: SmtpServer, campaign: Campaign) -> None:
    smtp.start()
    recipient(campaign, "sales@example.com")
    call = ended_call(campaign, Outcome.MISSED)

    for _ in range(3):  # cron runs again; a second instance runs too
        services.alerts_run()

    assert smtp.inbox.envelopes == [("alerts@whisper.example.com", ["sales@example.com"])]
    (message,) = smtp.inbox.messages
    assert message["From"] == FROM
    assert message["To"] == "sales@example.com"
    # Django folds a non-ASCII subject onto a continuation line ("Subject: \n =?utf-8?q?…"),
    # which reads back with a leading space.
    assert message["Subject"].strip() == "Missed call: Summer offer (M4 billboard), caller …0123"
    body = message.get_content()
    assert "Caller:   …0123" in body
    assert f"https://whisper.example.com/admin/calls/call/{call.pk}/change/" in body
    assert AlertDelivery.objects.get().state == DeliveryState.SENT


def test_while_the_mail_server_is_down_the_alert_waits_and_is_sent_once_it_is_back(
    smtp: SmtpServer, campaign: Campaign
) -> None:
    recipient(campaign, "sales@example.com")
    ended_call(campaign, Outcome.VOICEMAIL)
    now = timezone.now()

    report = services.alerts_run(now=now)  # nothing listens on the port yet

    assert (report.sent, report.retrying) == (0, 1)
    delivery = AlertDelivery.objects.get()
    assert delivery.state == DeliveryState.PENDING and delivery.attempts == 1
    assert delivery.last_error.startswith("ConnectionRefusedError")

    smtp.start()
    assert services.alerts_send(now=now + timedelta(seconds=30)).sent == 0  # still backing off
    assert services.alerts_send(now=now + services.RETRY_FIRST).sent == 1
    assert services.alerts_send(now=now + timedelta(hours=1)).sent == 0

    (message,) = smtp.inbox.messages
    assert message["Subject"].strip().startswith("Voicemail: Summer offer")
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_error) == (DeliveryState.SENT, 2, "")
