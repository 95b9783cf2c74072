"""Requests the fuzzer (tests/test_fuzz_webhooks.py) found answered with a 5xx, pinned
down one by one: each is now a 4xx, or stored with the impossible value left out."""

import json
from typing import Any

import pytest
from django.test import Client

from calls import vonage_adapter
from calls.models import Call, CallEvent, CallLeg
from calls.vonage_adapter import PlacedCall
from campaigns.models import TrackingNumber
from tests.conftest import callback_path, post_json
from tests.factories import CallFactory, CallLegFactory

REFUSED = "An event may not contain NUL characters, unpaired surrogates or numbers that are not finite."


@pytest.fixture
def leg(db: None) -> CallLeg:
    return CallLegFactory.create(uuid="agent-leg", role="agent", call=CallFactory.create())


def post_raw(client: Client, path: str, body: str) -> Any:
    return client.post(path, body, content_type="application/json")


# --- bodies PostgreSQL's jsonb cannot store (every event body is kept) ---------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"uuid": "agent-leg", "status": "started", "network": "\\u0000"}',
        '{"uuid": "agent-leg", "status": "started", "\\u0000": 1}',
        '{"uuid": "agent-leg", "status": "started", "extra": ["\\ud800"]}',
        '{"uuid": "agent-leg", "status": "started", "extra": {"deep": 1e400}}',
    ],
    ids=["nul-value", "nul-key", "lone-surrogate", "infinite-number"],
)
def test_an_event_that_cannot_be_stored_is_malformed_not_a_retry(client: Client, leg: CallLeg, body: str) -> None:
    response = post_raw(client, "/event", body)
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": [REFUSED]}
    assert not CallEvent.objects.exists()


def test_the_same_holds_for_an_event_sent_as_a_query_string(client: Client, leg: CallLeg) -> None:
    response = client.get("/event?uuid=agent-leg&status=started&network=%00")
    assert response.status_code == 400
    assert not CallEvent.objects.exists()


@pytest.mark.parametrize("path", ["/event", "/answer_inbound", "/fallback"])
def test_json_nested_too_deeply_to_parse_is_malformed(client: Client, db: None, path: str) -> None:
    body = '{"uuid": "x", "to": "447700900001", "extra": ' + "[" * 5000 + "]" * 5000 + "}"
    response = post_raw(client, path, body)
    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - the body is nested too deeply."}


# --- values out of any real range: stored without them -----------------------------------


def test_a_duration_beyond_the_column_is_left_out(client: Client, leg: CallLeg) -> None:
    payload = {"uuid": "agent-leg", "status": "completed", "duration": "99999999999", "price": "0.01"}
    assert post_json(client, "/event", payload).status_code == 200
    leg.refresh_from_db()
    assert (leg.status, leg.duration, str(leg.price)) == ("completed", None, "0.01000000")


@pytest.mark.parametrize("timestamp", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+12:00"])
def test_a_timestamp_outside_the_calendar_in_utc_is_left_out(client: Client, leg: CallLeg, timestamp: str) -> None:
    assert post_json(client, "/event", {"uuid": "agent-leg", "status": "started", "timestamp": timestamp}).json() == {
        "stored": True,
        "kind": "status",
    }
    leg.refresh_from_db()
    assert (leg.status, leg.started_at) == ("started", None)
    assert CallEvent.objects.get().occurred_at is None


def test_a_recording_lasting_centuries_has_no_length(client: Client, leg: CallLeg) -> None:
    payload = {
        "recording_url": "https://api.nexmo.com/v1/files/aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        "recording_uuid": "bbbbbbbb-bbbb-cccc-dddd-0123456789ab",
        "start_time": "0001-01-01T00:00:00Z",
        "end_time": "9999-01-01T00:00:00Z",
    }
    assert post_json(client, callback_path("event", call=leg.call_id), payload).status_code == 200
    call = Call.objects.get(pk=leg.call_id)
    assert call.recording_url == payload["recording_url"]
    assert call.recording_seconds is None


# --- form bodies ----------------------------------------------------------------------------


def test_a_form_encoded_answer_is_read_like_a_json_one(
    client: Client, summer_number: TrackingNumber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A form body is a QueryDict, whose values are lists: each field's value is used."""
    monkeypatch.setattr(
        vonage_adapter, "place_call", lambda **kwargs: PlacedCall(uuid="agent-1", conversation_uuid="CON-a", sent=True)
    )
    response = client.post(
        "/answer_inbound",
        "to=447700900001&from=447946000123&uuid=caller-1&conversation_uuid=CON-1",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert response.json()[0]["action"] == "talk"
    assert Call.objects.get().caller_number == "447946000123"

    response = client.post(
        "/event",
        "uuid=caller-1&status=started&conversation_uuid=CON-1",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert CallLeg.objects.get(uuid="caller-1").status == "started"
    assert json.dumps(CallEvent.objects.get().payload) == json.dumps(
        {"uuid": "caller-1", "status": "started", "conversation_uuid": "CON-1"}
    )


# --- identifiers: one check for control characters, NUL and lone surrogates -------------------


@pytest.mark.parametrize(
    ("body", "field", "error"),
    [
        ('{"uuid": "agent-leg\\u0000", "status": "started"}', "uuid", "Control characters are not allowed here."),
        ('{"uuid": "agent-leg", "status": "start\\u001bed"}', "status", "Control characters are not allowed here."),
        ('{"uuid": "agent-leg", "status": "sta\\u2028rted"}', "status", "Control characters are not allowed here."),
        ('{"uuid": "agent-leg\\ud800", "status": "started"}', "uuid", "Surrogate characters are not allowed: U+D800."),
        (
            '{"uuid": "agent-leg", "status": "\\udfffstarted"}',
            "status",
            "Surrogate characters are not allowed: U+DFFF.",
        ),
    ],
    ids=["nul", "escape", "line-separator", "high-surrogate", "low-surrogate"],
)
def test_an_identifier_with_a_character_vonage_never_sends_is_refused(
    client: Client, leg: CallLeg, body: str, field: str, error: str
) -> None:
    # DRF's own per-character NUL and surrogate checks are replaced by one search
    # (calls/webhooks/serializers.IdentifierField): each is still refused, once, by name.
    status = leg.status
    response = post_raw(client, "/event", body)

    assert response.status_code == 400
    assert response.json() == {field: [error]}
    assert not CallEvent.objects.exists()
    leg.refresh_from_db()
    assert leg.status == status


def test_a_caller_answer_posted_with_a_lone_surrogate_places_no_call(
    client: Client, summer_number: TrackingNumber
) -> None:
    body = '{"to": "447700900001", "from": "447700900123", "uuid": "caller-\\ud83d"}'
    response = post_raw(client, "/answer_inbound", body)

    assert response.status_code == 400
    assert response.json() == {"uuid": ["Surrogate characters are not allowed: U+D83D."]}
    assert not Call.objects.exists()
