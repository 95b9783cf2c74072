"""Vonage's webhooks over HTTP: what Vonage sends, what it gets back, and what is written."""

import io
import json
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.db.utils import OperationalError
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings

from calls import agent_dispatch, call_flow, events, services, statements, vonage_adapter
from calls.models import Call, CallEvent, CallLeg, CallState, LegRole, LegStatus, NumberStatus, Outcome
from calls.vonage_adapter import PlacedCall, VonageUnavailable
from calls.webhooks import views as webhooks
from campaigns.models import Campaign, TrackingNumber
from campaigns.whisper import speaking_seconds
from tests.conftest import callback, callback_path, load_fixture, notify_body, post_json, with_fields
from tests.factories import CallFactory, CallLegFactory, CampaignFactory, TrackingNumberFactory

ANSWER = load_fixture("vonage/answer_inbound.json")
AGENT_ANSWER = load_fixture("vonage/answer_outbound.json")
CALLER_UUID = ANSWER["uuid"]
AGENT_UUID = AGENT_ANSWER["uuid"]
OTHER_CENTRE = "447700900111"
EVENT_FIXTURES = [
    *(f"inbound_{s}" for s in ("started", "ringing", "answered", "completed")),
    *(
        f"outbound_{s}"
        for s in (
            "started",
            "ringing",
            "answered",
            "completed",
            "busy",
            "timeout",
            "unanswered",
            "rejected",
            "failed",
            "cancelled",
        )
    ),
    "human",
    "machine",
    "transfer",
    "record",
    "input",
    "error",
]


def event(name: str) -> dict[str, Any]:
    return load_fixture(f"vonage/event_{name}.json")


def rows() -> tuple[int, int, int]:
    return Call.objects.count(), CallLeg.objects.count(), CallEvent.objects.count()


def refused(caplog: pytest.LogCaptureFixture, status: int) -> bool:
    return any(
        r.levelno == logging.WARNING and "webhook.refused" in r.getMessage() and f"status={status}" in r.getMessage()
        for r in caplog.records
    )


@pytest.fixture
def agent_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Agent calls the app places, recorded instead of placed; the leg gets the fixtures' uuid."""
    placed: list[dict[str, Any]] = []

    def place_call(**kwargs: Any) -> PlacedCall:
        placed.append(kwargs)
        return PlacedCall(uuid=AGENT_UUID, conversation_uuid=AGENT_ANSWER["conversation_uuid"], sent=True)

    monkeypatch.setattr(vonage_adapter, "place_call", place_call)
    return placed


@pytest.fixture
def answered(client: Client, summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]) -> Call:
    """A caller waiting on the summer number while the agent is rung."""
    assert client.get("/answer_inbound", ANSWER).status_code == 200
    return Call.objects.get(legs__uuid=ANSWER["uuid"])


def _query(path: str) -> str:
    return path[path.index("?") :]


def agent_answers(client: Client, call: Call, **params: Any) -> Any:
    own = {key: params.pop(key) for key in ("attempt",) if key in params}
    return client.get(with_fields(callback_path("answer_outbound", call=call.pk, **own), {**AGENT_ANSWER, **params}))


# --- /answer_inbound: idempotent per uuid -----------------------------------------------


def test_caller_hears_the_greeting_then_waits_for_the_agent_with_hold_music(
    client: Client, summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    response = client.get("/answer_inbound", ANSWER)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    greeting, checkpoint, conversation = response.json()
    # Spoken in the campaign's language and voice style.
    assert greeting == {"action": "talk", "text": "Please wait while we connect you.", "language": "en-GB", "style": 0}
    call = Call.objects.get()
    # After the greeting Vonage asks whether the agent is being rung (agent_dispatch).
    assert checkpoint == {
        "action": "notify",
        "payload": {"checkpoint": "agent"},
        "eventUrl": [callback("event", call=call.pk, checkpoint="agent")],
    }
    assert conversation == {
        "action": "conversation",
        "name": call.conference_name,
        "startOnEnter": False,
        # A caller who hangs up ends the conversation: no agent in an empty room.
        "endOnExit": True,
        "musicOnHoldUrl": ["https://nexmo-community.github.io/ncco-examples/assets/voice_api_audio_streaming.mp3"],
    }
    assert b'"startOnEnter":false' in response.content


@pytest.mark.parametrize("accept", ["text/html", "application/xml;q=1", "image/*", "nonsense"])
def test_an_answer_and_an_event_are_json_whatever_the_accept_header_says(
    client: Client, summer_number: TrackingNumber, agent_calls: list[dict[str, Any]], accept: str
) -> None:
    # DRF's negotiation answered 406 to an Accept it could not serve: a caller in silence.
    response = client.get("/answer_inbound", ANSWER, headers={"Accept": accept})

    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert [action["action"] for action in response.json()] == ["talk", "notify", "conversation"]
    event_response = client.post(
        "/event", json.dumps(event("inbound_ringing")), content_type="application/json", headers={"Accept": accept}
    )
    assert event_response.status_code == 200 and event_response.json()["stored"] is True
    assert CallLeg.objects.get(uuid=CALLER_UUID).status == LegStatus.RINGING


def test_call_and_both_legs_are_recorded_as_vonage_described_them(
    client: Client, answered: Call, agent_calls: list[dict[str, Any]]
) -> None:
    assert answered.number_status == NumberStatus.TRACKED
    assert answered.campaign.name == "Summer offer"
    assert answered.source == "M4 billboard"
    assert (answered.caller_number, answered.called_number) == ("447700900456", "447700900001")
    assert answered.state == CallState.WAITING
    caller = answered.legs.get(role=LegRole.CALLER)
    assert caller.uuid == CALLER_UUID
    assert caller.conversation_uuid == ANSWER["conversation_uuid"]
    assert caller.region_url == "https://api-eu-1.vonage.com"
    agent = answered.legs.get(role=LegRole.AGENT)
    assert (agent.uuid, agent.to_number, agent.from_number) == (AGENT_UUID, "447700900999", "447700900001")
    assert agent_calls[0]["answer_url"] == callback("answer_outbound", call=answered.pk)


def test_campaigns_own_greeting_and_hold_music_are_used(
    client: Client, db: None, agent_calls: list[dict[str, Any]]
) -> None:
    campaign = CampaignFactory(
        greeting="Thanks for calling about the sale.", hold_music_url="https://example.com/a.mp3"
    )
    TrackingNumberFactory(number=ANSWER["to"], campaign=campaign)

    greeting, _, conversation = client.get("/answer_inbound", ANSWER).json()

    assert greeting["text"] == "Thanks for calling about the sale."
    assert conversation["musicOnHoldUrl"] == ["https://example.com/a.mp3"]


def test_every_call_gets_its_own_conversation(
    client: Client, summer_number: TrackingNumber, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        vonage_adapter,
        "place_call",
        lambda **kwargs: PlacedCall(uuid="agent-" + kwargs["answer_url"][-12:], conversation_uuid="", sent=True),
    )

    first = client.get("/answer_inbound", {**ANSWER, "uuid": "caller-1"}).json()
    second = client.get("/answer_inbound", {**ANSWER, "uuid": "caller-2"}).json()

    assert first[-1]["name"] != second[-1]["name"]


def test_retried_answer_webhook_places_one_agent_call(
    client: Client, summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    first = client.get("/answer_inbound", ANSWER)
    again = client.get("/answer_inbound", ANSWER)

    assert again.status_code == 200
    assert again.json() == first.json()
    assert len(agent_calls) == 1
    assert Call.objects.count() == 1
    assert CallLeg.objects.filter(role=LegRole.CALLER).count() == 1
    assert CallLeg.objects.filter(role=LegRole.AGENT).count() == 1


def test_retried_answer_webhook_posted_as_json_places_one_agent_call(
    client: Client, summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    first = post_json(client, "/answer_inbound", ANSWER)
    again = post_json(client, "/answer_inbound", ANSWER)

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert len(agent_calls) == 1
    assert rows()[:2] == (1, 2)


def test_answer_by_get_then_by_post_is_the_same_call(
    client: Client, summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    by_get = client.get("/answer_inbound", ANSWER).json()
    by_post = post_json(client, "/answer_inbound", ANSWER).json()

    assert by_post == by_get
    assert len(agent_calls) == 1
    assert rows()[:2] == (1, 2)


# --- /answer_inbound: never a 500 --------------------------------------------------------


def test_agent_call_that_cannot_be_placed_connects_the_caller_to_the_campaign_destination(
    client: Client, summer_number: TrackingNumber, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    settings.CALL_CENTER_NUMBER = OTHER_CENTRE
    Campaign.objects.filter(pk=summer_number.campaign_id).update(destination="447700900555")

    def place_call(**kwargs: Any) -> PlacedCall:
        raise VonageUnavailable("Vonage did not create the call within 3 s.")

    monkeypatch.setattr(vonage_adapter, "place_call", place_call)

    response = client.get("/answer_inbound", ANSWER)

    assert response.status_code == 200
    greeting, checkpoint, _hold = response.json()
    assert greeting["action"] == "talk"
    assert checkpoint["action"] == "notify"
    call = Call.objects.get()
    assert call.state == CallState.DIRECT
    assert call.agent_call_error == "Vonage did not create the call within 3 s."
    assert not call.legs.filter(role=LegRole.AGENT).exists()

    # After the greeting Vonage posts the notify; our answer replaces the hold.
    answer = client.post(
        _local(checkpoint["eventUrl"][0]),
        json.dumps(notify_body(checkpoint["payload"])),
        content_type="application/json",
    )
    assert answer.status_code == 200
    talk, connect = answer.json()
    assert talk["action"] == "talk"
    assert connect == {
        "action": "connect",
        "endpoint": [{"type": "phone", "number": "447700900555"}],
        "from": "447700900001",
        "eventUrl": ["https://whisper.example.com/event"],
    }
    # A retried answer webhook replays the first answer; it does not try the agent call again.
    assert client.get("/answer_inbound", ANSWER).json() == response.json()
    # A redelivered notify is answered the same, and stored once.
    again = client.post(
        _local(checkpoint["eventUrl"][0]),
        json.dumps(notify_body(checkpoint["payload"])),
        content_type="application/json",
    )
    assert again.json() == answer.json()
    assert CallEvent.objects.filter(call=call, kind="notify").count() == 1


def test_checkpoint_lets_the_caller_wait_when_the_agent_is_rung(
    client: Client, summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    checkpoint = client.get("/answer_inbound", ANSWER).json()[1]

    answer = client.post(
        _local(checkpoint["eventUrl"][0]),
        json.dumps(notify_body(checkpoint["payload"])),
        content_type="application/json",
    )

    assert answer.status_code == 204
    assert answer.content == b""
    assert len(agent_calls) == 1


def test_checkpoint_connects_the_caller_when_no_agent_call_was_ever_placed(
    client: Client, summer_number: TrackingNumber, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process that answered died before ringing the agent: once the deadline has
    passed the checkpoint gives up on it and connects the caller directly."""
    monkeypatch.setattr(agent_dispatch, "ring_first_agent_soon", lambda call_id, **_: None)
    settings.AGENT_CALL_DEADLINE_SECONDS = 0
    checkpoint = client.get("/answer_inbound", ANSWER).json()[1]
    Call.objects.update(started_at=timezone.now() - timedelta(seconds=2))

    answer = client.post(
        _local(checkpoint["eventUrl"][0]),
        json.dumps(notify_body(checkpoint["payload"])),
        content_type="application/json",
    )

    assert answer.json()[-1]["endpoint"] == [{"type": "phone", "number": "447700900999"}]
    call = Call.objects.get()
    assert call.state == CallState.DIRECT
    assert "not placed in time" in call.agent_call_error
    # The agent call cannot be claimed any more.
    assert agent_dispatch.ring_first_agent(call.pk) is None


def test_checkpoint_reads_the_notify_as_vonage_wraps_it(
    client: Client, summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    checkpoint = client.get("/answer_inbound", ANSWER).json()[1]
    body = notify_body(checkpoint["payload"], conversation_uuid=ANSWER["conversation_uuid"])

    answer = post_json(client, _local(checkpoint["eventUrl"][0]), body)

    assert answer.status_code == 204
    stored = CallEvent.objects.get(kind="notify")
    assert stored.payload == body
    assert stored.payload["payload"] == {"checkpoint": "agent"}
    assert stored.conversation_uuid == ANSWER["conversation_uuid"]
    assert stored.leg_uuid == ""
    assert stored.occurred_at is not None


@pytest.mark.parametrize("payload", [{"checkpoint": "other"}, "agent", ["agent"]])
def test_checkpoint_whose_payload_is_not_ours_is_400_and_writes_nothing(
    client: Client, answered: Call, payload: Any
) -> None:
    before = rows()

    response = post_json(client, callback_path("event", call=answered.pk, checkpoint="agent"), notify_body(payload))

    assert response.status_code == 400
    assert "payload" in response.json()
    assert rows() == before


def test_checkpoint_needs_the_call(client: Client, db: None) -> None:
    response = post_json(client, callback_path("event", checkpoint="agent"), notify_body({"checkpoint": "agent"}))

    assert response.status_code == 400
    assert "call" in response.json()


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("route_cached", RuntimeError("a bug")),
        ("route_cached", OperationalError("could not connect to server")),
    ],
    ids=["bug", "database-down"],
)
def test_unexpected_error_still_connects_the_caller_to_the_call_centre(
    client: Client,
    summer_number: TrackingNumber,
    agent_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    method: str,
    target: str,
    error: Exception,
) -> None:
    settings.CALL_CENTER_NUMBER = OTHER_CENTRE

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(services, target, broken)

    if method == "GET":
        response = client.get("/answer_inbound", ANSWER)
    else:
        response = post_json(client, "/answer_inbound", ANSWER)

    assert response.status_code == 200
    greeting, connect = response.json()
    assert greeting["action"] == "talk"
    assert connect["action"] == "connect"
    assert connect["endpoint"] == [{"type": "phone", "number": OTHER_CENTRE}]
    assert connect["from"] == ANSWER["to"]
    assert agent_calls == []
    assert any(
        r.levelno == logging.ERROR and "answer_inbound.unexpected_error" in r.getMessage() for r in caplog.records
    )


def test_unknown_number_waits_for_the_call_centre_and_is_whispered_digit_by_digit(
    client: Client, db: None, agent_calls: list[dict[str, Any]], settings: Settings
) -> None:
    settings.CALL_CENTER_NUMBER = OTHER_CENTRE

    ncco = client.get("/answer_inbound", {**ANSWER, "to": "447700900042"}).json()

    assert ncco[-1]["action"] == "conversation"
    assert agent_calls[0]["to"] == OTHER_CENTRE
    call = Call.objects.get()
    assert call.number_status == NumberStatus.UNKNOWN
    assert call.campaign is None
    whisper = agent_answers(client, call).json()[0]["text"]
    assert whisper == "Incoming call to an unrecognised number, 4 4 7 7 0 0 9 0 0 0 4 2."


@pytest.mark.parametrize("inactive", ["number", "campaign"])
def test_inactive_number_or_campaign_is_recorded_as_inactive(
    client: Client,
    summer_number: TrackingNumber,
    agent_calls: list[dict[str, Any]],
    settings: Settings,
    inactive: str,
) -> None:
    settings.CALL_CENTER_NUMBER = OTHER_CENTRE
    if inactive == "number":
        TrackingNumber.objects.filter(pk=summer_number.pk).update(is_active=False)
    else:
        Campaign.objects.filter(pk=summer_number.campaign_id).update(is_active=False)

    assert client.get("/answer_inbound", ANSWER).status_code == 200

    call = Call.objects.get()
    assert call.number_status == NumberStatus.INACTIVE
    assert agent_calls[0]["to"] == OTHER_CENTRE
    whisper = agent_answers(client, call).json()[0]["text"]
    assert whisper == "Incoming call to the inactive number 4 4 7 7 0 0 9 0 0 0 0 1, last used for Summer offer."


# --- /answer_outbound: the whisper ------------------------------------------------------


def test_agent_hears_the_campaigns_whisper_then_joins_the_caller(client: Client, answered: Call) -> None:
    response = agent_answers(client, answered)

    assert response.status_code == 200
    whisper, conversation = response.json()
    answered.refresh_from_db()
    assert whisper == {
        "action": "talk",
        "text": "Incoming call regarding the summer offer",
        "language": "en-GB",
        "style": 0,
    }
    assert answered.whisper_text == whisper["text"]
    assert conversation == {
        "action": "conversation",
        "name": answered.conference_name,
        "startOnEnter": True,
        "endOnExit": True,
    }


def test_editing_the_topic_changes_the_very_next_calls_whisper(
    client: Client, summer_number: TrackingNumber, monkeypatch: pytest.MonkeyPatch
) -> None:
    placed = iter(["agent-1", "agent-2"])
    monkeypatch.setattr(
        vonage_adapter,
        "place_call",
        lambda **kwargs: PlacedCall(uuid=next(placed), conversation_uuid="", sent=True),
    )
    client.get("/answer_inbound", {**ANSWER, "uuid": "caller-1"})
    first_call = Call.objects.get(legs__uuid="caller-1")
    first = agent_answers(client, first_call, uuid="agent-1").json()[0]["text"]

    campaign = summer_number.campaign
    campaign.topic = "the autumn sale"
    campaign.save()
    client.get("/answer_inbound", {**ANSWER, "uuid": "caller-2"})
    second_call = Call.objects.get(legs__uuid="caller-2")
    second = agent_answers(client, second_call, uuid="agent-2").json()[0]["text"]

    assert first == "Incoming call regarding the summer offer"
    assert second == "Incoming call regarding the autumn sale"


def test_retried_agent_answer_replays_the_whisper_as_first_spoken(client: Client, answered: Call) -> None:
    first = agent_answers(client, answered).json()
    Campaign.objects.filter(pk=answered.campaign_id).update(topic="something else entirely")

    again = agent_answers(client, answered)

    assert again.status_code == 200
    assert again.json() == first
    assert CallLeg.objects.filter(role=LegRole.AGENT).count() == 1


def _agent_legs_not_yet_committed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's answer reads the call's legs as they were just before the placing
    thread committed the agent's leg."""
    read = statements.call_and_legs_with_routes_version

    def read_before_the_leg_committed(*, call_id: int) -> tuple[Call | None, list[CallLeg], int | None]:
        call, legs, version = read(call_id=call_id)
        return call, [leg for leg in legs if leg.role != LegRole.AGENT], version

    monkeypatch.setattr(statements, "call_and_legs_with_routes_version", read_before_the_leg_committed)


def test_agent_answering_while_the_placing_thread_records_the_leg_is_whispered_and_joins(
    client: Client, answered: Call, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An agent's phone that answers at once (a PBX): Vonage asks for the answer while the
    thread that placed the call records its leg without the call's lock. The answer read
    the call's legs just before that thread committed, so it does not see the leg, and
    finds it when it records it: it must join the caller, not fail on the duplicate."""
    _agent_legs_not_yet_committed(monkeypatch)

    response = agent_answers(client, answered)

    assert response.status_code == 200
    whisper, conversation = response.json()
    assert whisper["text"] == "Incoming call regarding the summer offer"
    assert conversation["name"] == answered.conference_name
    leg = CallLeg.objects.get(uuid=AGENT_UUID)
    assert leg.call_id == answered.pk and leg.region_url == AGENT_ANSWER["region_url"]
    assert not any("unexpected_error" in record.getMessage() for record in caplog.records)


def test_agent_answer_naming_another_calls_leg_is_not_connected(
    client: Client, answered: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = CallFactory.create()
    CallLegFactory.create(call=other, role=LegRole.CALLER, uuid="someone-elses-leg")
    _agent_legs_not_yet_committed(monkeypatch)

    response = agent_answers(client, answered, uuid="someone-elses-leg")

    assert response.status_code == 200
    assert not any(action["action"] == "conversation" for action in response.json())
    assert CallLeg.objects.get(uuid="someone-elses-leg").call_id == other.pk


def test_agent_answer_posted_as_json_is_whispered_too(client: Client, answered: Call) -> None:
    response = post_json(client, callback_path("answer_outbound", call=answered.pk), AGENT_ANSWER)

    assert response.status_code == 200
    assert response.json()[0]["text"] == "Incoming call regarding the summer offer"


def test_agent_answer_for_an_unknown_call_is_404(client: Client, db: None, caplog: pytest.LogCaptureFixture) -> None:
    before = rows()

    response = client.get(with_fields(callback_path("answer_outbound", call=424242), AGENT_ANSWER))

    assert response.status_code == 404
    assert rows() == before
    assert refused(caplog, 404)


@pytest.mark.parametrize("call", [None, "", "abc", "0", "-3"])
def test_agent_answer_without_a_valid_call_id_is_400(
    client: Client, db: None, caplog: pytest.LogCaptureFixture, call: str | None
) -> None:
    path = "/answer_outbound" if call is None else callback_path("answer_outbound", call=call)

    response = client.get(with_fields(path, AGENT_ANSWER))

    assert response.status_code == 400
    assert "call" in response.json()
    assert rows() == (0, 0, 0)
    assert refused(caplog, 400)


def test_agent_answering_after_the_caller_hung_up_is_told_and_not_connected(client: Client, answered: Call) -> None:
    for name in ("inbound_started", "inbound_answered", "inbound_completed"):
        post_json(client, "/event", event(name))

    ncco = agent_answers(client, answered).json()

    assert ncco == [{"action": "talk", "text": "The caller has hung up."}]
    answered.refresh_from_db()
    assert answered.whisper_text == ""


def test_unexpected_error_on_the_agents_answer_never_rings_the_call_centre_from_the_agents_phone(
    client: Client, answered: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**kwargs: Any) -> Any:
        raise OperationalError("database is locked")

    monkeypatch.setattr(services, "call_answer_agent", broken)

    response = agent_answers(client, answered)

    assert response.status_code == 200
    ncco = response.json()
    assert ncco and all(action["action"] == "talk" for action in ncco)


# --- /event -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", EVENT_FIXTURES)
def test_every_event_vonage_sends_is_stored(client: Client, answered: Call, name: str) -> None:
    payload = event(name)

    response = post_json(client, "/event", payload)

    assert response.status_code == 200
    if name == "input":
        # Vonage runs the answer to an input event as the agent's next NCCO.
        assert isinstance(response.json(), list)
        assert response.json()[0]["action"] in ("talk", "conversation")
    else:
        assert response.json()["stored"] is True
    stored = CallEvent.objects.get()
    assert stored.payload == payload
    assert stored.status == payload.get("status", "")
    if "uuid" in payload or "call_uuid" in payload:
        leg_uuid = payload.get("uuid") or payload["call_uuid"]
        assert stored.leg_uuid == leg_uuid
        assert stored.leg == CallLeg.objects.get(uuid=leg_uuid)
        assert stored.call == answered


@pytest.mark.parametrize(("name", "kind"), [("human", "detection"), ("machine", "detection")])
def test_machine_detection_carrying_call_uuid_is_linked_to_the_agent_leg(
    client: Client, answered: Call, name: str, kind: str
) -> None:
    response = post_json(client, "/event", event(name))

    assert response.json() == {"stored": True, "kind": kind}
    assert CallEvent.objects.get().leg.uuid == AGENT_UUID
    assert CallLeg.objects.get(uuid=AGENT_UUID).machine_detected == name


def test_status_event_moves_its_leg_and_the_call(client: Client, answered: Call) -> None:
    post_json(client, "/event", event("outbound_answered"))

    assert CallLeg.objects.get(uuid=AGENT_UUID).status == LegStatus.ANSWERED
    answered.refresh_from_db()
    assert answered.state == CallState.CONNECTED
    assert answered.outcome == Outcome.ANSWERED


def test_event_sent_by_get_is_stored_too(client: Client, answered: Call) -> None:
    response = client.get("/event", event("outbound_ringing"))

    assert response.status_code == 200
    assert CallLeg.objects.get(uuid=AGENT_UUID).status == LegStatus.RINGING


def test_same_event_delivered_twice_is_stored_once_and_acknowledged_twice(client: Client, answered: Call) -> None:
    first = post_json(client, "/event", event("outbound_ringing"))
    again = post_json(client, "/event", event("outbound_ringing"))

    assert first.status_code == again.status_code == 200
    assert (first.json()["stored"], again.json()["stored"]) == (True, False)
    assert CallEvent.objects.count() == 1


def test_unknown_status_is_acknowledged_logged_and_leaves_the_leg_alone(
    client: Client, answered: Call, caplog: pytest.LogCaptureFixture
) -> None:
    post_json(client, "/event", event("outbound_ringing"))

    response = post_json(client, "/event", {**event("outbound_ringing"), "status": "teleported"})

    assert response.status_code == 200
    leg = CallLeg.objects.get(uuid=AGENT_UUID)
    assert leg.status == LegStatus.RINGING
    assert CallEvent.objects.filter(status="teleported").count() == 1
    assert any(
        r.levelno == logging.WARNING and "event.unknown_status" in r.getMessage() and "teleported" in r.getMessage()
        for r in caplog.records
    )


def test_event_for_an_unknown_leg_is_stored_without_a_call(client: Client, db: None) -> None:
    payload = {**event("outbound_ringing"), "uuid": "never-heard-of-it"}

    response = post_json(client, "/event", payload)

    assert response.status_code == 200
    stored = CallEvent.objects.get()
    assert (stored.call, stored.leg, stored.leg_uuid) == (None, None, "never-heard-of-it")
    assert CallLeg.objects.count() == 0


def test_leg_in_the_callers_conversation_is_attached_to_the_call_as_an_agent_leg(
    client: Client, answered: Call
) -> None:
    # The direct ``connect`` to the call centre is a leg we did not create: Vonage only
    # tells us about it through events in the caller's conversation.
    payload = {
        **event("outbound_ringing"),
        "uuid": "connect-leg-uuid",
        "conversation_uuid": ANSWER["conversation_uuid"],
    }

    response = post_json(client, "/event", payload)

    assert response.status_code == 200
    leg = CallLeg.objects.get(uuid="connect-leg-uuid")
    assert (leg.call, leg.role, leg.status) == (answered, LegRole.AGENT, LegStatus.RINGING)
    assert CallEvent.objects.get().leg == leg


def test_inbound_leg_with_an_unknown_uuid_is_not_attached_by_conversation(client: Client, answered: Call) -> None:
    payload = {**event("inbound_ringing"), "uuid": "someone-else"}

    post_json(client, "/event", payload)

    assert not CallLeg.objects.filter(uuid="someone-else").exists()
    assert CallEvent.objects.get().call is None


def test_whole_answered_call_through_the_webhooks(client: Client, answered: Call) -> None:
    agent_answers(client, answered)
    for name in (
        "inbound_ringing",
        "inbound_started",
        "outbound_started",
        "inbound_answered",
        "outbound_ringing",
        "outbound_answered",
        "transfer",
        "outbound_completed",
        "inbound_completed",
        "record",
    ):
        assert post_json(client, "/event", event(name)).status_code == 200

    answered.refresh_from_db()
    assert answered.outcome == Outcome.ANSWERED
    assert answered.state == CallState.ENDED
    # Talk time runs from the agent's join: answered, plus the whisper's speaking time.
    whisper_seconds = speaking_seconds(answered.whisper_text)
    assert whisper_seconds == 2.9
    assert answered.talk_seconds == round(116 - whisper_seconds)
    assert CallEvent.objects.count() == 10


# --- bad input: a clear 4xx, a log line, and nothing written ----------------------------


@pytest.mark.parametrize("missing", ["to", "uuid"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_answer_missing_a_required_field_is_400_and_writes_nothing(
    client: Client,
    summer_number: TrackingNumber,
    agent_calls: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    missing: str,
    method: str,
) -> None:
    payload = {k: v for k, v in ANSWER.items() if k != missing}

    if method == "GET":
        response = client.get("/answer_inbound", payload)
    else:
        response = post_json(client, "/answer_inbound", payload)

    assert response.status_code == 400
    assert missing in response.json()
    assert rows() == (0, 0, 0)
    assert agent_calls == []
    assert refused(caplog, 400)


@pytest.mark.parametrize("path", ["/answer_inbound", "/answer_outbound", "/event", "/fallback"])
@pytest.mark.parametrize(
    "body",
    [
        '{"to": "447700900001", "uuid": ',
        "not json at all",
        "[1, 2, 3]",
        '["to", "uuid"]',
        "null",
        '"a string"',
    ],
    ids=["truncated", "text", "array", "string-array", "null", "string"],
)
def test_body_that_is_not_a_json_object_is_400_and_writes_nothing(
    client: Client,
    summer_number: TrackingNumber,
    agent_calls: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: str,
) -> None:
    response = client.post(path, body, content_type="application/json")

    assert response.status_code == 400
    assert "detail" in response.json()
    assert rows() == (0, 0, 0)
    assert refused(caplog, 400)


@pytest.mark.parametrize("path", ["/answer_inbound", "/event", "/fallback"])
@pytest.mark.parametrize("size", [64 * 1024 + 1, 3 * 1024 * 1024], ids=["just-over-64KiB", "3MiB"])
def test_body_over_64_kib_is_413_and_writes_nothing(
    client: Client,
    summer_number: TrackingNumber,
    agent_calls: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    path: str,
    size: int,
) -> None:
    prefix = json.dumps({**ANSWER, "padding": ""})[:-2]
    body = prefix + "x" * (size - len(prefix) - 2) + '"}'
    assert len(body) == size
    json.loads(body)

    response = client.post(path, body, content_type="application/json")

    assert response.status_code == 413
    assert rows() == (0, 0, 0)
    assert agent_calls == []
    assert refused(caplog, 413)


def test_declared_length_over_64_kib_is_refused_before_the_body_is_read(
    client: Client, db: None, caplog: pytest.LogCaptureFixture
) -> None:
    # The test client's body stream fails if more is read than was sent: a 413 here
    # means the view refused on the header alone, without waiting for 1 MB to arrive.
    response = client.post(
        "/event",
        json.dumps(event("outbound_ringing")),
        content_type="application/json",
        CONTENT_LENGTH="1048576",
    )

    assert response.status_code == 413
    assert rows() == (0, 0, 0)
    assert refused(caplog, 413)


def test_large_body_without_a_content_length_is_413_too(
    db: None, summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    # Under ASGI a chunked body arrives without Content-Length and is not cut to it.
    body = json.dumps({**ANSWER, "padding": "x" * (70 * 1024)}).encode()
    request = ASGIRequest(
        {
            "type": "http",
            "method": "POST",
            "path": "/answer_inbound",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"host", b"testserver")],
        },
        io.BytesIO(body),
    )

    response = webhooks.AnswerInboundView.as_view()(request)

    assert response.status_code == 413
    assert rows() == (0, 0, 0)
    assert agent_calls == []


@pytest.mark.parametrize(
    "payload",
    [
        {"status": "ringing", "direction": "outbound", "timestamp": "2024-06-12T09:15:01.020Z"},
        {"uuid": "", "call_uuid": "", "status": "completed"},
        {},
    ],
    ids=["no-uuid", "empty-uuids", "empty"],
)
def test_event_without_anything_naming_its_call_is_400_and_writes_nothing(
    client: Client, answered: Call, caplog: pytest.LogCaptureFixture, payload: dict[str, Any]
) -> None:
    before = rows()

    response = post_json(client, "/event", payload)

    assert response.status_code == 400
    assert rows() == before
    assert refused(caplog, 400)


def test_event_with_a_field_of_the_wrong_type_is_400(client: Client, answered: Call) -> None:
    before = rows()

    response = post_json(client, "/event", {**event("outbound_ringing"), "status": {"nested": True}})

    assert response.status_code == 400
    assert rows() == before


def test_event_that_cannot_be_stored_asks_vonage_to_retry(
    client: Client, answered: Call, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**kwargs: Any) -> Any:
        raise OperationalError("database is locked")

    monkeypatch.setattr(events, "event_record", broken)

    response = post_json(client, "/event", event("outbound_ringing"))

    assert response.status_code == 503
    assert any("event.not_stored" in r.getMessage() for r in caplog.records)


# --- routes: slash optional, GET and POST, never a redirect -----------------------------


@pytest.mark.parametrize("slash", ["", "/"], ids=["no-slash", "slash"])
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("route", ["answer_inbound", "answer_outbound", "event", "fallback"])
def test_routes_answer_with_or_without_a_trailing_slash_and_never_redirect(
    client: Client, answered: Call, route: str, method: str, slash: str
) -> None:
    payload = {
        "answer_inbound": ANSWER,
        "answer_outbound": AGENT_ANSWER,
        "event": event("outbound_ringing"),
        "fallback": load_fixture("vonage/fallback.json"),
    }[route]
    path = f"/{route}{slash}"
    if route == "answer_outbound":
        path += _query(callback_path(route, call=answered.pk))

    if method == "GET":
        query = {k: v for k, v in payload.items() if not isinstance(v, dict)}
        response = client.get(with_fields(path, query))
    else:
        response = post_json(client, path, payload)

    assert response.status_code not in (301, 302, 307, 308)
    assert response.status_code == 200, response.content
    assert isinstance(response.json(), list if route != "event" else dict)


# --- /fallback ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, "", "{}"], ids=["GET", "POST-empty", "POST-empty-object"])
def test_fallback_with_nothing_at_all_still_connects_the_caller(
    client: Client, db: None, settings: Settings, body: str | None
) -> None:
    settings.CALL_CENTER_NUMBER = OTHER_CENTRE

    if body is None:
        response = client.get("/fallback")
    else:
        response = client.post("/fallback", body, content_type="application/json")

    assert response.status_code == 200
    greeting, connect = response.json()
    assert greeting["action"] == "talk"
    assert connect["action"] == "connect"
    assert connect["endpoint"] == [{"type": "phone", "number": OTHER_CENTRE}]
    assert "from" not in connect
    assert rows() == (0, 0, 0)


def test_fallback_replays_the_ncco_the_caller_was_answered_with(
    client: Client, answered: Call, agent_calls: list[dict[str, Any]]
) -> None:
    response = client.get(
        "/fallback",
        {k: v for k, v in load_fixture("vonage/fallback.json").items() if k != "original_request"},
    )

    assert response.status_code == 200
    assert response.json() == answered.caller_ncco
    assert len(agent_calls) == 1
    assert Call.objects.count() == 1


def test_fallback_for_a_call_we_never_answered_records_it_as_direct(
    client: Client, summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    response = post_json(client, "/fallback", load_fixture("vonage/fallback.json"))

    assert response.status_code == 200
    connect = response.json()[-1]
    assert connect["endpoint"] == [{"type": "phone", "number": "447700900999"}]
    assert connect["from"] == "447700900001"
    call = Call.objects.get()
    assert call.state == CallState.DIRECT
    assert "Connection timed out" in call.agent_call_error
    assert agent_calls == []


def test_fallback_survives_an_unexpected_error(
    client: Client, db: None, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    settings.CALL_CENTER_NUMBER = OTHER_CENTRE

    def broken(**kwargs: Any) -> Any:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(services, "call_answer_fallback", broken)

    response = client.get("/fallback", {"to": "447700900001", "uuid": CALLER_UUID})

    assert response.status_code == 200
    assert response.json()[-1]["endpoint"] == [{"type": "phone", "number": OTHER_CENTRE}]


# --- query counts --------------------------------------------------------------------------
# Each webhook's count is pinned, and the same with an empty database as with other calls,
# legs and events in it: no webhook's work grows with the tables. Run in autocommit, as
# the webhooks run (a test's own transaction would add savepoints).

pinned = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=[0, 60], ids=["empty tables", "60 other calls"])
def history(request: pytest.FixtureRequest, summer_number: TrackingNumber) -> int:
    """Other calls to the same campaign number, each with both legs and their events."""
    for _ in range(request.param):
        call = CallFactory.create(tracking_number=summer_number, caller_number=ANSWER["from"])
        for role in (LegRole.CALLER, LegRole.AGENT):
            leg = CallLegFactory.create(call=call, role=role, status=LegStatus.COMPLETED, attempt=0)
            CallEvent.objects.bulk_create(
                CallEvent(
                    dedupe_key=f"status:{leg.uuid}:{status}",
                    call=call,
                    leg=leg,
                    leg_uuid=leg.uuid,
                    kind="status",
                    status=status,
                    payload={"uuid": leg.uuid, "status": status},
                )
                for status in ("started", "ringing", "answered", "completed")
            )
    return int(request.param)


@pinned
def test_answer_inbound_query_count(
    client: Client,
    summer_number: TrackingNumber,
    history: int,
    monkeypatch: pytest.MonkeyPatch,
    django_assert_num_queries: Any,
) -> None:
    """The answer itself; the agent call is placed after it (the next test). The number's
    route is in memory after the first call to it (calls/route_cache.py)."""
    dispatched: list[int] = []
    monkeypatch.setattr(agent_dispatch, "ring_first_agent_soon", lambda call_id, **_: dispatched.append(call_id))
    client.get("/answer_inbound", {**ANSWER, "uuid": "an-earlier-caller"})
    # PostgreSQL: the call's id with the routes' version and whether the caller's number is
    # blocked (a unique index); then the call, its caller's leg
    # and the answer in one statement, with the look-back (is this the caller's first call
    # to the campaign?) and the look for events that came first. SQLite: the version, then
    # the ORM's inserts in a transaction.
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 8):
        client.get("/answer_inbound", ANSWER)
    call = Call.objects.get(legs__uuid=ANSWER["uuid"])
    assert dispatched[-1] == call.pk
    assert call.first_call is False and call.caller_ncco


@pinned
def test_first_agent_call_query_count(
    client: Client,
    summer_number: TrackingNumber,
    history: int,
    agent_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    django_assert_num_queries: Any,
) -> None:
    monkeypatch.setattr(agent_dispatch, "ring_first_agent_soon", lambda call_id, **_: None)
    client.get("/answer_inbound", ANSWER)
    call = Call.objects.get(legs__uuid=ANSWER["uuid"])

    # The claim, which returns the call; the agent's leg; the call and its legs read back
    # with whether events for the leg came first. The campaign is the one that routed the
    # call, kept in memory.
    with django_assert_num_queries(3):
        agent_dispatch.ring_first_agent(call.pk)
    assert len(agent_calls) == 1


@pinned
def test_retried_answer_inbound_query_count(
    client: Client, history: int, answered: Call, django_assert_num_queries: Any
) -> None:
    """Rare, so not looked for first: the insert fails on the caller leg's uuid."""
    with django_assert_num_queries(3 if connection.vendor == "postgresql" else 7):
        client.get("/answer_inbound", ANSWER)


@pinned
def test_answer_outbound_query_count(
    client: Client, history: int, answered: Call, django_assert_num_queries: Any
) -> None:
    # In one transaction: the call locked with its legs and the routes' version (its campaign
    # from memory); then the agent leg's region and the whisper as spoken, in one statement
    # on PostgreSQL, two elsewhere.
    with django_assert_num_queries(4 if connection.vendor == "postgresql" else 5):
        agent_answers(client, answered)


@pinned
def test_status_event_query_count(client: Client, history: int, answered: Call, django_assert_num_queries: Any) -> None:
    post_json(client, "/event", event("outbound_started"))

    # The call locked with its legs (one statement), the event stored and the leg updated:
    # one statement on PostgreSQL (the update only if the event is new), two elsewhere;
    # the test's savepoint around them counted too.
    with django_assert_num_queries(4 if connection.vendor == "postgresql" else 5):
        post_json(client, "/event", event("outbound_ringing"))


@pinned
def test_agent_leg_ending_after_the_caller_left_query_count(
    client: Client, history: int, answered: Call, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    """The caller hangs up during the whisper, then the agent's leg ends: it never joined,
    so it "gave up", but the caller can never wait for another agent. No step is taken
    (``advance``, which would find the same in a transaction of its own): the same
    statements as any status event."""
    agent_answers(client, answered)
    for name in ("inbound_answered", "outbound_started", "outbound_ringing", "outbound_answered"):
        post_json(client, "/event", event(name))
    during_the_whisper = {"timestamp": "2024-06-12T09:15:10.500Z", "end_time": "2024-06-12T09:15:10.000Z"}
    post_json(client, "/event", {**event("inbound_completed"), **during_the_whisper, "duration": "10"})
    steps: list[dict[str, Any]] = []
    monkeypatch.setattr(call_flow, "advance", lambda **kwargs: steps.append(kwargs))

    # The call locked with its legs (one statement), the event stored, the leg and the
    # call's outcome updated (with the event, in one statement on PostgreSQL), in one
    # transaction (its BEGIN and COMMIT counted too).
    with django_assert_num_queries(4 if connection.vendor == "postgresql" else 6):
        response = post_json(client, "/event", {**event("outbound_completed"), **during_the_whisper, "duration": "1"})

    assert response.status_code == 200
    assert steps == []
    answered.refresh_from_db()
    assert answered.state == CallState.ENDED


@pinned
def test_agent_who_gives_up_while_the_caller_waits_still_moves_the_caller_on(
    client: Client, history: int, answered: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[dict[str, Any]] = []
    monkeypatch.setattr(call_flow, "advance", lambda **kwargs: steps.append(kwargs))

    assert post_json(client, "/event", event("outbound_busy")).status_code == 200

    assert steps == [{"call_id": answered.pk, "from_attempt": 0, "reason": "agent busy"}]


@pinned
def test_duplicate_event_query_count(
    client: Client, history: int, answered: Call, django_assert_num_queries: Any
) -> None:
    post_json(client, "/event", event("outbound_ringing"))

    with django_assert_num_queries(4):
        post_json(client, "/event", event("outbound_ringing"))


@pinned
def test_unmatched_event_query_count(client: Client, history: int, django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(3):
        post_json(client, "/event", event("record"))


@pinned
def test_checkpoint_query_count(client: Client, history: int, answered: Call, django_assert_num_queries: Any) -> None:
    checkpoint = answered.caller_ncco[1]

    # The call read with its row locked, and the notify stored, in one transaction (a
    # savepoint here): the thread placing the agent call reads the notify under that lock.
    with django_assert_num_queries(4):
        response = client.post(
            _local(checkpoint["eventUrl"][0]),
            json.dumps(notify_body(checkpoint["payload"])),
            content_type="application/json",
        )
    assert response.status_code == 204


def _local(url: str) -> str:
    """A URL we gave Vonage, as the test client requests it."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path
