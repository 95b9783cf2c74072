"""Two instances at once on PostgreSQL: the outbox is filled once and each alert sent once.

Each thread has its own database connection, as two machines would; the test database is
committed to (``transaction=True``) so each sees the other's rows.
"""

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import connection
from django.utils import timezone
from pytest_django.fixtures import Settings

from alerts import services
from alerts.models import AlertDelivery, DeliveryState, Frequency
from campaigns.models import Campaign

from .conftest import ended_call, recipient

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED is PostgreSQL's; SQLite runs one sender"),
]


class MeetingBackend(EmailBackend):
    """The locmem backend, whose first send in each of two threads waits for the other's:
    both senders are then holding a claimed alert at the same moment. Had the second
    waited for the first's row lock instead of skipping it, the meeting would time out
    and the send fail."""

    meeting: threading.Barrier
    met: set[int]
    lock = threading.Lock()

    def send_messages(self, messages: Sequence[mail.EmailMessage]) -> int:
        with self.lock:
            first = threading.get_ident() not in self.met
            self.met.add(threading.get_ident())
        if first:
            self.meeting.wait()
        return super().send_messages(messages)


@pytest.fixture
def meeting_mail(settings: Settings) -> Iterator[None]:
    MeetingBackend.meeting = threading.Barrier(2, timeout=15)
    MeetingBackend.met = set()
    settings.EMAIL_BACKEND = f"{__name__}.MeetingBackend"
    yield


def at_once(work: Callable[[], Any]) -> list[Any]:
    """Run ``work`` in two threads started together; return both results."""
    start = threading.Barrier(2, timeout=15)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            results.append(work())
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return results


def test_two_instances_filling_the_outbox_at_once_queue_each_call_once(campaign: Campaign) -> None:
    recipient(campaign, "a@example.com")
    recipient(campaign, "b@example.com")
    calls = [ended_call(campaign, caller_number=f"44794600{n:04d}") for n in range(30)]
    now = timezone.now()

    at_once(lambda: services.alerts_enqueue(now=now))

    assert AlertDelivery.objects.count() == 2 * len(calls)


def test_two_senders_at_once_send_each_alert_exactly_once(campaign: Campaign, meeting_mail: None) -> None:
    recipient(campaign)
    calls = [ended_call(campaign, caller_number=f"44794600{n:04d}") for n in range(20)]
    now = timezone.now()
    services.alerts_enqueue(now=now)

    reports = at_once(lambda: services.alerts_send(now=now))

    assert MeetingBackend.met and len(MeetingBackend.met) == 2  # both sent, at the same time
    assert sum(report.sent for report in reports) == len(calls)
    assert all(report.retrying == report.failed == 0 for report in reports)
    bodies = [message.body for message in mail.outbox]
    assert len(bodies) == len(calls)
    for call in calls:
        assert sum(f"/admin/calls/call/{call.pk}/change/" in body for body in bodies) == 1
    assert set(AlertDelivery.objects.values_list("state", "attempts")) == {(DeliveryState.SENT, 1)}


def test_two_senders_at_once_send_an_hourly_digest_once_and_whole(campaign: Campaign) -> None:
    recipient(campaign, "digest@example.com", frequency=Frequency.HOURLY)
    for n in range(5):
        ended_call(campaign, caller_number=f"44794600{n:04d}")
    now = timezone.now()
    services.alerts_enqueue(now=now)
    after_the_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1) + services.DIGEST_GRACE

    reports = at_once(lambda: services.alerts_send(now=after_the_hour))

    assert sorted(report.sent for report in reports) == [0, 5]
    (message,) = mail.outbox
    assert message.subject.startswith("5 missed calls")
