"""Vonage's fallback URL serves answers *and* the events whose answer is an NCCO.

Vonage tries the original URL twice, then the fallback, with the original request's
fields plus ``reason`` and ``original_request {url, type}`` (VONAGE.md). Each case is
answered as the original route would have answered it, with the parameters of the
original URL; the agent's phone is never connected to anyone but its caller.
"""

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone

from calls import agent_dispatch, services
from calls.models import Call, CallEvent, CallLeg, CallState, Outcome
from campaigns.models import TrackingNumber
from tests.calls import test_call_flow as flow
from tests.calls.test_call_flow import CALLER_UUID, CONVERSATION, actions, agent_answers, dial, status
from tests.conftest import VonageRecorder, callback, notify_body, post_json

PUBLIC = "https://whisper.example.com"

# The call-flow tests' fixtures: a campaign number, its press-1 and connect variants, and
# a recorder in place of Vonage's REST API.
campaign, number, accept_number, connect_number = (
    flow.campaign,
    flow.number,
    flow.accept_number,
    flow.connect_number,
)


def fall_back(client: Client, method: str, fields: dict[str, Any], *, url: str, kind: str) -> Any:
    """What Vonage sends to the fallback URL after ``url`` failed twice.

    POST: the original fields with ``original_request`` as an object. GET: the same fields
    in the query string, nested objects as JSON text (``original_request``, ``dtmf``) or,
    for ``original_request``, as ``original_request[url]`` fields.
    """
    body = {**fields, "reason": "Connection timed out", "original_request": {"url": url, "type": kind}}
    if method == "POST":
        return post_json(client, "/fallback", body)
    query = {
        key: json.dumps(value) if isinstance(value, dict) else value
        for key, value in body.items()
        if key != "original_request"
    }
    query.update({"original_request[url]": url, "original_request[type]": kind})
    return client.get("/fallback?" + urlencode(query))


def agent_input(digits: str) -> dict[str, Any]:
    return {
        "uuid": "agent-1",
        "conversation_uuid": "CON-agent-1",
        "dtmf": {"digits": digits, "timed_out": not digits},
        "speech": {"results": []},
        "timestamp": timezone.now().isoformat(),
    }


def no_connect_from_the_agent(ncco: list[dict[str, Any]]) -> bool:
    return all(action["action"] != "connect" for action in ncco)


METHODS = pytest.mark.parametrize("method", ["GET", "POST"])


# --- a caller's answer --------------------------------------------------------------------


@METHODS
def test_fallen_back_caller_answer_gets_the_stored_ncco(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, method: str
) -> None:
    first = dial(client)
    fields = {"to": "447700900001", "from": "447946000123", "uuid": CALLER_UUID, "conversation_uuid": CONVERSATION}

    response = fall_back(client, method, fields, url=f"{PUBLIC}/answer_inbound", kind="answer")

    assert response.status_code == 200
    assert response.json() == first
    assert Call.objects.count() == 1
    assert len(vonage.placed) == 1


@METHODS
def test_fallen_back_caller_answer_never_answered_connects_the_caller_directly(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, method: str
) -> None:
    fields = {"to": "447700900001", "from": "447946000123", "uuid": CALLER_UUID, "conversation_uuid": CONVERSATION}

    response = fall_back(client, method, fields, url=f"{PUBLIC}/answer_inbound", kind="answer")

    assert actions(response.json()) == ["talk", "connect"]
    assert response.json()[-1]["endpoint"] == [{"type": "phone", "number": "447700900999"}]
    assert Call.objects.get().state == CallState.DIRECT
    assert vonage.placed == []


# --- an agent's answer ----------------------------------------------------------------------


@METHODS
def test_fallen_back_agent_answer_gets_the_whisper_for_the_call_in_the_original_url(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, method: str
) -> None:
    dial(client)
    call = Call.objects.get()
    fields = {"to": "447700900999", "from": "447700900001", "uuid": "agent-1", "conversation_uuid": "CON-agent-1"}

    response = fall_back(client, method, fields, url=callback("answer_outbound", call=call.pk), kind="answer")

    assert response.status_code == 200
    assert response.json() == [
        {"action": "talk", "text": "Incoming call regarding the summer offer", "language": "en-GB", "style": 0},
        {"action": "conversation", "name": call.conference_name, "startOnEnter": True, "endOnExit": True},
    ]
    assert Call.objects.get().whisper_text == "Incoming call regarding the summer offer"


def test_fallen_back_agent_answer_takes_the_call_from_the_original_url_not_the_body(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    dial(client)
    call = Call.objects.get()
    fields = {"uuid": "agent-1", "conversation_uuid": "CON-agent-1", "call": "999999"}

    response = fall_back(client, "POST", fields, url=callback("answer_outbound", call=call.pk), kind="answer")

    assert response.json()[-1]["name"] == call.conference_name


def test_fallen_back_agent_answer_for_an_unknown_call_is_refused_as_the_original_would_be(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    fields = {"uuid": "agent-1", "conversation_uuid": "CON-agent-1"}

    response = fall_back(client, "POST", fields, url=callback("answer_outbound", call=424242), kind="answer")

    assert response.status_code == 404
    assert CallLeg.objects.count() == 0


@METHODS
def test_fallen_back_agent_answer_that_fails_unexpectedly_is_told_never_connected(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    dial(client)
    call = Call.objects.get()

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(services, "call_answer_agent", broken)
    fields = {"to": "447700900999", "from": "447700900001", "uuid": "agent-1"}

    response = fall_back(client, method, fields, url=callback("answer_outbound", call=call.pk), kind="answer")

    assert response.status_code == 200
    assert response.json() == [{"action": "talk", "text": "Sorry, this call could not be connected."}]


def test_fallback_for_an_agent_leg_without_original_request_never_connects_it(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    dial(client)
    call = Call.objects.get()
    agent_answers(client, call, "agent-1")

    response = client.get("/fallback", {"to": "447700900999", "from": "447700900001", "uuid": "agent-1"})

    assert no_connect_from_the_agent(response.json())
    assert Call.objects.count() == 1


# --- an agent's key press (press 1 to accept) -------------------------------------------------


@METHODS
def test_fallen_back_press_1_joins_the_agent_to_its_caller(
    client: Client, accept_number: TrackingNumber, vonage: VonageRecorder, method: str
) -> None:
    dial(client)
    call = Call.objects.get()
    agent_answers(client, call, "agent-1")
    status(client, "agent-1", "answered")

    response = fall_back(client, method, agent_input("1"), url=callback("event", call=call.pk), kind="event")

    assert response.status_code == 200
    assert response.json() == [
        {"action": "conversation", "name": call.conference_name, "startOnEnter": True, "endOnExit": True}
    ]
    call.refresh_from_db()
    assert call.outcome == Outcome.ANSWERED
    assert CallLeg.objects.get(uuid="agent-1").accepted_at is not None
    # Stored as the input it was, once.
    stored = CallEvent.objects.get(kind="input")
    assert stored.payload["dtmf"] == {"digits": "1", "timed_out": False}
    assert "original_request" not in stored.payload
    assert vonage.transfers == []


@METHODS
def test_fallen_back_decline_passes_the_caller_on_and_tells_the_agent(
    client: Client, accept_number: TrackingNumber, vonage: VonageRecorder, method: str
) -> None:
    dial(client)
    call = Call.objects.get()
    agent_answers(client, call, "agent-1")
    status(client, "agent-1", "answered")

    response = fall_back(client, method, agent_input("2"), url=callback("event", call=call.pk), kind="event")

    assert response.json() == [{"action": "talk", "text": "The caller will be passed on. Goodbye."}]
    # The caller is moved to the campaign's voicemail, once; the agent is never connected.
    assert [uuid for uuid, _ in vonage.transfers] == [CALLER_UUID]
    assert CallLeg.objects.get(uuid="agent-1").declined_at is not None


@METHODS
def test_fallen_back_key_press_that_fails_unexpectedly_never_rings_anyone_from_the_agents_phone(
    client: Client, accept_number: TrackingNumber, vonage: VonageRecorder, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    dial(client)
    call = Call.objects.get()
    agent_answers(client, call, "agent-1")

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("calls.events.event_record", broken)

    response = fall_back(client, method, agent_input("1"), url=callback("event", call=call.pk), kind="event")

    assert response.status_code == 200
    assert no_connect_from_the_agent(response.json())


# --- the caller's checkpoint (notify) ----------------------------------------------------------


def checkpoint_body() -> dict[str, Any]:
    return notify_body({"checkpoint": "agent"}, conversation_uuid=CONVERSATION)


@METHODS
def test_fallen_back_checkpoint_lets_the_caller_wait_while_the_agent_is_rung(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, method: str
) -> None:
    ncco = dial(client)
    checkpoint_url = ncco[1]["eventUrl"][0]

    response = fall_back(client, method, checkpoint_body(), url=checkpoint_url, kind="event")

    assert response.status_code == 204
    assert response.content == b""
    assert Call.objects.get().state == CallState.WAITING
    assert len(vonage.placed) == 1


@METHODS
def test_fallen_back_checkpoint_connects_the_caller_when_the_agent_call_failed(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, method: str
) -> None:
    from calls.vonage_adapter import VonageUnavailable

    vonage.place_error = VonageUnavailable("Vonage answered 500 to create_call.", status_code=500)
    ncco = dial(client)
    call = Call.objects.get()
    assert call.state == CallState.DIRECT

    response = fall_back(client, method, checkpoint_body(), url=ncco[1]["eventUrl"][0], kind="event")

    assert response.status_code == 200
    assert actions(response.json()) == ["talk", "connect"]
    assert response.json()[-1]["endpoint"] == [{"type": "phone", "number": "447700900999"}]


def test_fallen_back_checkpoint_without_the_call_in_its_url_is_refused(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    dial(client)

    response = fall_back(client, "POST", checkpoint_body(), url=callback("event", checkpoint="agent"), kind="event")

    assert response.status_code == 400
    assert CallEvent.objects.filter(kind="notify").count() == 0


# --- the connect strategy's synchronous event --------------------------------------------------


@METHODS
def test_fallen_back_synchronous_connect_event_gets_the_callers_next_ncco(
    client: Client, connect_number: TrackingNumber, vonage: VonageRecorder, method: str
) -> None:
    dial(client)
    call = Call.objects.get()
    busy = {
        "uuid": "connect-1",
        "status": "busy",
        "direction": "outbound",
        "conversation_uuid": CONVERSATION,
        "timestamp": timezone.now().isoformat(),
    }

    response = fall_back(client, method, busy, url=callback("event", call=call.pk, attempt=0), kind="event")

    assert actions(response.json()) == ["connect"]
    assert response.json()[0]["endpoint"][0]["number"] == "447700900998"
    assert CallLeg.objects.get(uuid="connect-1").attempt == 0
    assert vonage.transfers == [] and vonage.placed == []


def test_checkpoint_answer_is_untouched_by_the_fallback_route(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    """The same handler answers both routes: the original's answer and the fallback's agree."""
    ncco = dial(client)
    call = Call.objects.get()
    assert agent_dispatch.checkpoint_answer(call_id=call.pk, body=checkpoint_body()) is None
    assert fall_back(client, "POST", checkpoint_body(), url=ncco[1]["eventUrl"][0], kind="event").status_code == 204


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_fallback_is_no_way_around_our_url_signature(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, method: str
) -> None:
    """The original URL's parameters must be the ones we signed, for that route: a forged
    press-1 naming a live call, sent straight to the fallback, changes nothing."""
    dial(client)
    call = Call.objects.get()
    before = (list(Call.objects.values()), list(CallEvent.objects.values_list("pk", flat=True)))
    unsigned = f"{PUBLIC}/event?call={call.pk}"
    signed_for_another_call = callback("event", call=call.pk + 1).replace(f"call={call.pk + 1}", f"call={call.pk}")

    for url in (unsigned, signed_for_another_call):
        response = fall_back(client, method, agent_input("1"), url=url, kind="event")
        assert response.status_code == 403

    assert (list(Call.objects.values()), list(CallEvent.objects.values_list("pk", flat=True))) == before
    assert vonage.transfers == [] and vonage.hangups == [] and len(vonage.placed) == 1
