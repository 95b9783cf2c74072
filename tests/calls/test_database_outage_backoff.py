"""After a failed connect to the database, webhooks answer without trying it for a while
(calls/database_outage.py): a burst of callers must not queue behind connect timeouts.

The connect failure itself is simulated here (the test database stays up); the real one,
PostgreSQL silent behind a proxy under gunicorn, is in tests/e2e/test_database_outage.py.
"""

import time
from typing import Any

import pytest
from django.db.utils import OperationalError
from django.test import Client
from pytest_django.fixtures import Settings

from calls import database_outage, statements
from calls.models import Call, CallEvent
from campaigns.models import TrackingNumber
from tests.conftest import callback_path, notify_body, post_json

ANSWER = {"to": "447700900001", "from": "447700900456", "uuid": "caller-1", "conversation_uuid": "CON-1"}


@pytest.fixture
def connect_fails(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The next answer's first database access fails to connect; later ones work."""
    failing = [True]
    call_start = statements.call_start

    def start_or_connect_error(**kwargs: Any) -> Any:
        if failing and failing.pop():
            raise OperationalError("connection to server at 127.0.0.1 failed: timeout expired")
        return call_start(**kwargs)

    monkeypatch.setattr(statements, "call_start", start_or_connect_error)
    monkeypatch.setattr(database_outage, "connect_failed", lambda: True)
    return failing


def test_after_a_failed_connect_callers_are_answered_without_the_database(
    client: Client,
    summer_number: TrackingNumber,
    connect_fails: list[bool],
    django_assert_num_queries: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = client.get("/answer_inbound", ANSWER)
    assert first.json()[-1]["endpoint"] == [{"type": "phone", "number": "447700900999"}]
    assert "database.unreachable" in caplog.text

    # Within the back-off: the safe answer at once, the database not even asked.
    with django_assert_num_queries(0):
        second = client.get("/answer_inbound", {**ANSWER, "uuid": "caller-2"})
        event = post_json(client, "/event", {"uuid": "caller-2", "status": "started", "direction": "inbound"})
        checkpoint = post_json(
            client, callback_path("event", call=1, checkpoint="agent"), notify_body({"checkpoint": "agent"})
        )
    assert second.status_code == 200
    assert second.json()[-1]["endpoint"] == [{"type": "phone", "number": "447700900999"}]
    assert event.status_code == 503
    assert checkpoint.json()[-1]["action"] == "connect"
    assert "answer_inbound.unexpected_error uuid=caller-2 call=None error=DatabaseSkipped" in caplog.text
    assert "database skipped" in caplog.text
    assert (Call.objects.count(), CallEvent.objects.count()) == (0, 0)


def test_the_database_is_tried_again_after_the_back_off(
    client: Client, summer_number: TrackingNumber, connect_fails: list[bool], settings: Settings
) -> None:
    settings.DATABASE_OUTAGE_BACKOFF_SECONDS = 0.2
    client.get("/answer_inbound", ANSWER)
    time.sleep(0.25)

    answer = client.get("/answer_inbound", {**ANSWER, "uuid": "caller-2"})

    assert [action["action"] for action in answer.json()] == ["talk", "notify", "conversation"]
    assert Call.objects.count() == 1


def test_other_database_errors_do_not_start_a_back_off(
    client: Client, summer_number: TrackingNumber, connect_fails: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A deadlock, a lock timeout: the connection is there, only that request failed.
    monkeypatch.setattr(database_outage, "connect_failed", lambda: False)
    client.get("/answer_inbound", ANSWER)

    answer = client.get("/answer_inbound", {**ANSWER, "uuid": "caller-2"})

    assert answer.json()[1]["action"] == "notify"
