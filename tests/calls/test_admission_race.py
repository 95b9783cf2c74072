"""An event's signature is remembered by the event's own first statement, inside its
transaction (calls/statements.call_and_legs_admitting). Two requests carrying the same
token at the same moment: the second waits on the first's uncommitted ``jti`` and is
refused once it commits (a replay) or answered as a redelivery (Vonage's retry), with no
deadlock on the call's row. PostgreSQL only: SQLite lets one writer in at a time."""

import threading
from typing import Any

import pytest
from django.db import connection

from calls import events
from calls.models import CallEvent, CallLeg, LegStatus, SignedWebhook
from calls.webhooks import replay
from tests.factories import CallLegFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]

ANSWERED = {"uuid": "caller-leg", "status": "answered", "direction": "inbound", "timestamp": "2026-12-07T09:00:00.000Z"}


def two_at_once(second_digest: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first request holds its transaction open after its first statement while the
    second starts; half a second later the first is let go, and both finish. Returns
    what each did. (On a machine too busy for the second to reach its statement in that
    half second, it finds the first's token committed instead: the same outcome.)"""
    CallLegFactory(uuid="caller-leg", status=LegStatus.RINGING)
    first_read, first_let_go = threading.Event(), threading.Event()
    results: dict[str, dict[str, Any]] = {"first": {}, "second": {}}
    status_change = events._status_change

    def held(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "first":
            first_read.set()
            first_let_go.wait(5)
        return status_change(*args, **kwargs)

    def deliver(name: str, digest: str) -> None:
        try:
            receipt = events.event_record(payload=ANSWERED, admission=replay.Admission(jti="one-token", digest=digest))
            results[name]["stored"] = receipt.stored
        except Exception as exc:  # recorded, compared below
            results[name]["error"] = type(exc)
        finally:
            connection.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(events, "_status_change", held)
        first = threading.Thread(target=deliver, args=("first", "digest-a"), name="first")
        second = threading.Thread(target=deliver, args=("second", second_digest), name="second")
        first.start()
        assert first_read.wait(5)
        second.start()
        second.join(0.5)  # it waits on the first's uncommitted token: it cannot finish yet
        assert second.is_alive()
        first_let_go.set()
        first.join(10)
        second.join(10)
    return results["first"], results["second"]


def test_a_replay_racing_the_request_it_copies_is_refused_once_that_commits() -> None:
    first, second = two_at_once(second_digest="digest-b")

    assert first == {"stored": True}
    assert second == {"error": replay.Replayed}
    assert CallEvent.objects.count() == 1
    assert CallLeg.objects.get(uuid="caller-leg").status == LegStatus.ANSWERED
    assert list(SignedWebhook.objects.values_list("jti", "digest")) == [("one-token", "digest-a")]


def test_vonages_retry_racing_the_original_is_a_redelivery() -> None:
    first, second = two_at_once(second_digest="digest-a")

    assert first == {"stored": True}
    assert second == {"stored": False}
    assert CallEvent.objects.count() == 1 and SignedWebhook.objects.count() == 1
