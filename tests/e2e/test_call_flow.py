"""A whole call, webhook by webhook, with the agent call placed through the real SDK."""

import random
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import jwt
import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from calls import vonage_adapter
from calls.models import Call, CallEvent, CallState, LegRole, LegStatus, Outcome
from campaigns.models import TrackingNumber
from campaigns.whisper import speaking_seconds
from devtools.fake_vonage_api import FakeVonageAPI
from tests.conftest import callback, callback_path, with_fields
from tests.e2e.conftest import APPLICATION_ID, CALLER_NUMBER, KeyPair, Leg, make_key_pair, post_event

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

DESTINATION = "447700900999"  # the summer campaign's call centre
CAMPAIGN_NUMBER = "447700900001"


def caller_dials(client: Client, vonage: FakeVonageAPI) -> tuple[Leg, list[dict]]:
    caller = Leg(from_=CALLER_NUMBER, to=CAMPAIGN_NUMBER, direction="inbound")
    response = client.get("/answer_inbound", caller.answer_params(region_url=vonage.url))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return caller, response.json()


def test_a_call_from_dial_to_hang_up(
    client: Client,
    vonage: FakeVonageAPI,
    summer_number: TrackingNumber,
    application_keys: KeyPair,
    settings: Settings,
) -> None:
    caller, caller_ncco = caller_dials(client, vonage)
    call = Call.objects.get()

    # Exactly one agent call, from the campaign number to the call centre.
    (create,) = vonage.create_requests()
    assert create.status == 201
    assert create.json["to"] == [{"type": "phone", "number": DESTINATION}]
    assert create.json["from"] == {"type": "phone", "number": CAMPAIGN_NUMBER}
    assert create.json["answer_url"] == [callback("answer_outbound", call=call.pk)]
    assert create.json["answer_method"] == "GET"
    assert create.json["event_url"] == [f"{settings.PUBLIC_URL}/event"]
    # Signed by the application: RS256, verifiable with its public key.
    scheme, token = create.headers["Authorization"].split(" ")
    assert scheme == "Bearer"
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, application_keys.public_pem, algorithms=["RS256"])
    assert claims["application_id"] == APPLICATION_ID
    assert {"iat", "exp", "jti"} <= claims.keys()

    # The caller waits in a conversation that does not start until the agent enters,
    # after a checkpoint that could connect them directly had the agent call failed.
    assert caller_ncco == [
        {"action": "talk", "text": "Please wait while we connect you.", "language": "en-GB", "style": 0},
        {
            "action": "notify",
            "payload": {"checkpoint": "agent"},
            "eventUrl": [callback("event", call=call.pk, checkpoint="agent")],
        },
        {
            "action": "conversation",
            "name": call.conference_name,
            "startOnEnter": False,
            "endOnExit": True,
            "musicOnHoldUrl": [settings.HOLD_MUSIC_URL],
        },
    ]
    (placed,) = vonage.created_calls()
    assert call.legs.get(role=LegRole.AGENT).uuid == placed.uuid

    # The agent picks up: the whisper, then the same conversation.
    agent = Leg(
        from_=CAMPAIGN_NUMBER,
        to=DESTINATION,
        direction="outbound",
        uuid=placed.uuid,
        conversation_uuid=placed.conversation_uuid,
    )
    params = agent.answer_params(region_url=vonage.url)
    response = client.get(with_fields(callback_path("answer_outbound", call=call.pk), params))
    assert response.status_code == 200
    assert response.json() == [
        {"action": "talk", "text": "Incoming call regarding the summer offer", "language": "en-GB", "style": 0},
        {"action": "conversation", "name": call.conference_name, "startOnEnter": True, "endOnExit": True},
    ]

    # Both legs' events, in an order Vonage could deliver them, one of them twice.
    t0 = call.started_at.replace(microsecond=0) + timedelta(seconds=1)
    events = [
        caller.event("started", t0),
        caller.event("ringing", t0),
        caller.answered(t0),
        agent.event("started", t0 + timedelta(seconds=1)),
        agent.event("ringing", t0 + timedelta(seconds=1)),
        agent.answered(t0 + timedelta(seconds=8)),
        agent.completed(
            start=t0 + timedelta(seconds=8),
            end=t0 + timedelta(seconds=68),
            rate="0.02700000",
            price="0.02700000",
        ),
        caller.completed(start=t0, end=t0 + timedelta(seconds=69), rate="0.00390000", price="0.00448500"),
    ]
    shuffled = list(events)
    random.Random(20240607).shuffle(shuffled)
    shuffled.insert(3, events[5])  # a redelivered "answered"
    receipts = [post_event(client, event) for event in shuffled]
    assert sum(1 for receipt in receipts if not receipt["stored"]) == 1

    call.refresh_from_db()
    assert call.outcome == Outcome.ANSWERED
    assert call.state == CallState.ENDED
    assert call.whisper_text == "Incoming call regarding the summer offer"
    assert call.agent_answered_at == t0 + timedelta(seconds=8)
    assert call.ended_at == t0 + timedelta(seconds=69)
    # The caller waits until the agent joins, after the whisper (2.9 s to say); the
    # talk runs from then to the agent's hang-up.
    joined = call.agent_answered_at + timedelta(seconds=speaking_seconds(call.whisper_text))
    assert call.wait_seconds == round((joined - call.started_at).total_seconds())
    assert call.talk_seconds == round((t0 + timedelta(seconds=68) - joined).total_seconds())

    caller_leg = call.legs.get(role=LegRole.CALLER)
    agent_leg = call.legs.get(role=LegRole.AGENT)
    assert (caller_leg.status, agent_leg.status) == (LegStatus.COMPLETED, LegStatus.COMPLETED)
    assert (agent_leg.duration, agent_leg.rate, agent_leg.price) == (
        60,
        Decimal("0.02700000"),
        Decimal("0.02700000"),
    )
    assert (caller_leg.duration, caller_leg.rate, caller_leg.price) == (
        69,
        Decimal("0.00390000"),
        Decimal("0.00448500"),
    )
    assert agent_leg.network == "23410"
    assert agent_leg.started_at == t0 + timedelta(seconds=1)
    assert agent_leg.answered_at == t0 + timedelta(seconds=8)
    assert agent_leg.region_url == vonage.url
    # One stored event per (leg, status); the redelivery was recognised.
    assert CallEvent.objects.filter(call=call).count() == len(events)
    assert sorted(CallEvent.objects.values_list("leg__role", "status")) == sorted(
        [("caller", s) for s in ("started", "ringing", "answered", "completed")]
        + [("agent", s) for s in ("started", "ringing", "answered", "completed")]
    )
    # Nothing else was asked of Vonage: no transfer, no hang-up.
    assert [request.route for request in vonage.requests] == ["create"]


def test_a_retried_answer_webhook_places_no_second_agent_call(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber
) -> None:
    caller, first = caller_dials(client, vonage)

    # Vonage asks again with the same uuid (it retries after a timeout or a 5xx).
    retry = client.get("/answer_inbound", caller.answer_params(region_url=vonage.url))

    assert retry.json() == first
    assert len(vonage.create_requests()) == 1
    assert len(vonage.created_calls()) == 1
    assert Call.objects.count() == 1
    assert Call.objects.get().legs.filter(role=LegRole.AGENT).count() == 1


@pytest.mark.parametrize("form", ["file path", "PEM with \\n escapes"])
def test_the_private_key_may_be_a_file_or_escaped_text(
    form: str,
    client: Client,
    vonage: FakeVonageAPI,
    summer_number: TrackingNumber,
    application_keys: KeyPair,
    settings: Settings,
    tmp_path: Path,
) -> None:
    if form == "file path":
        key_file = tmp_path / "private.key"
        key_file.write_text(application_keys.private_pem)
        settings.VONAGE_PRIVATE_KEY = str(key_file)
    else:
        # How a PEM usually survives a one-line environment variable.
        settings.VONAGE_PRIVATE_KEY = application_keys.private_pem.replace("\n", "\\n")

    caller_dials(client, vonage)

    (create,) = vonage.create_requests()
    assert create.status == 201
    assert Call.objects.get().state == CallState.WAITING


def test_changing_a_vonage_setting_rebuilds_the_cached_client(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber, settings: Settings
) -> None:
    # The adapter caches SDK clients (and the JWT they sign) and drops them on Django's
    # setting_changed signal: a new key must be used at once, not in five minutes.
    caller_dials(client, vonage)
    assert vonage_adapter._voice_client.cache_info().currsize == 1

    settings.VONAGE_PRIVATE_KEY = make_key_pair().private_pem  # not the key Vonage knows
    assert vonage_adapter._voice_client.cache_info().currsize == 0
    caller_dials(client, vonage)

    assert [request.status for request in vonage.create_requests()] == [201, 401]
    assert Call.objects.filter(state=CallState.DIRECT).count() == 1
