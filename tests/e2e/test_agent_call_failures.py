"""When the agent call cannot be placed, or not in time, the caller still gets through.

Vonage waits 5 s for the answer webhook's NCCO and does not retry a 500 (VONAGE.md).
The answer does not wait for the agent call at all: the caller hears the greeting while
it is placed, and the checkpoint after the greeting (a ``notify``) is answered, whatever
the REST API did, with a ``connect`` straight to the call centre, from the campaign
number. These tests play Vonage's part: the answer webhook, then the notify.
"""

import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from calls.models import Call, CallState, LegRole
from campaigns.models import TrackingNumber
from devtools.fake_vonage_api import FakeCall, FakeVonageAPI
from tests.conftest import callback_path, notify_body, with_fields
from tests.e2e.conftest import APPLICATION_ID, CALLER_NUMBER, Leg, make_key_pair

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

DESTINATION = "447700900999"
CAMPAIGN_NUMBER = "447700900001"
# Vonage's budget for the answer webhook (VONAGE.md): the one time bound these tests
# assert, as it is the behaviour; a loaded machine still answers well inside it.
ANSWER_BUDGET_SECONDS = 5.0


def caller_dials(client: Client, vonage: FakeVonageAPI) -> tuple[list[dict[str, Any]], float]:
    """The caller's answer webhook and, as Vonage runs it, the checkpoint after the
    greeting: the NCCO the caller is taken through, and how long the answer took."""
    caller = Leg(from_=CALLER_NUMBER, to=CAMPAIGN_NUMBER, direction="inbound")
    started = time.monotonic()
    response = client.get("/answer_inbound", caller.answer_params(region_url=vonage.url))
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    answer = response.json()
    assert Call.objects.get().caller_ncco == answer
    (notify,) = [index for index, action in enumerate(answer) if action["action"] == "notify"]
    url = urlsplit(answer[notify]["eventUrl"][0])
    checkpoint = client.post(
        f"{url.path}?{url.query}", json.dumps(notify_body(answer[notify]["payload"])), content_type="application/json"
    )
    if checkpoint.status_code == 204:
        return answer[:notify] + answer[notify + 1 :], elapsed
    assert checkpoint.status_code == 200
    return answer[:notify] + checkpoint.json(), elapsed


def assert_connected_directly(ncco: list[dict[str, Any]], settings: Settings) -> Call:
    assert ncco == [
        {"action": "talk", "text": "Please wait while we connect you.", "language": "en-GB", "style": 0},
        {"action": "talk", "text": "Connecting you now.", "language": "en-GB", "style": 0},
        {
            "action": "connect",
            "endpoint": [{"type": "phone", "number": DESTINATION}],
            "from": CAMPAIGN_NUMBER,
            "eventUrl": [f"{settings.PUBLIC_URL}/event"],
        },
    ]
    call = Call.objects.get()
    assert call.state == CallState.DIRECT
    assert call.agent_call_error
    assert not call.legs.filter(role=LegRole.AGENT).exists()
    return call


@pytest.mark.parametrize("status", [500, 503])
def test_an_error_from_vonage_connects_the_caller_directly(
    status: int, client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber, settings: Settings
) -> None:
    vonage.fail(status, route="create", times=1)

    ncco, _ = caller_dials(client, vonage)

    call = assert_connected_directly(ncco, settings)
    assert f"Vonage answered {status} to create_call" in call.agent_call_error
    # Not retried: neither the SDK nor urllib3 sends it again (we set max_retries=0).
    assert [request.status for request in vonage.create_requests()] == [status]
    assert vonage.created_calls() == []


def test_a_429_holds_the_caller_and_rings_the_agent_again_after_a_back_off(
    client: Client,
    vonage: FakeVonageAPI,
    summer_number: TrackingNumber,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over the account's call limit: a direct connect would be refused the same way
    (VONAGE.md: a ``connect`` counts), so the caller holds and is rung again later."""
    from calls import agent_dispatch, pacing

    settings.VONAGE_CALLS_PER_SECOND = 3
    retries: list[tuple[int, int, Any]] = []
    monkeypatch.setattr(
        agent_dispatch, "schedule", lambda *, call_id, attempt, ring_at: retries.append((call_id, attempt, ring_at))
    )
    vonage.fail(429, route="create", times=1)
    # This test is about the 429: on a loaded machine the first ring can come more than
    # half an interval after the caller's slot, which re-queues it before any request.
    monkeypatch.setattr(pacing, "late", lambda *args, **kwargs: False)

    ncco, _ = caller_dials(client, vonage)

    assert [action["action"] for action in ncco] == ["talk", "conversation"]  # the checkpoint let it hold
    call = Call.objects.get()
    assert (call.state, call.agent_call_error, call.rate_limited) == (CallState.WAITING, "", 1)
    assert retries == [(call.pk, 0, call.ring_at)]

    agent_dispatch.ring_when_due(call_id=call.pk, attempt=0, ring_at=call.ring_at)

    assert [request.status for request in vonage.create_requests()] == [429, 201]
    (agent,) = call.legs.filter(role=LegRole.AGENT)
    assert agent.uuid == vonage.created_calls()[0].uuid


@pytest.mark.parametrize("wrong", ["private key", "application id"])
def test_bad_credentials_connect_the_caller_directly(
    wrong: str, client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber, settings: Settings
) -> None:
    # Not an injected 401: the fake really refuses the JWT.
    if wrong == "private key":
        settings.VONAGE_PRIVATE_KEY = make_key_pair().private_pem
    else:
        settings.VONAGE_APPLICATION_ID = APPLICATION_ID.replace("a", "f")

    ncco, _ = caller_dials(client, vonage)

    call = assert_connected_directly(ncco, settings)
    assert "Vonage answered 401 to create_call" in call.agent_call_error
    assert [request.status for request in vonage.create_requests()] == [401]


@pytest.mark.parametrize(
    ("timeout_seconds", "deadline_seconds"),
    [
        (1, 1.5),  # the SDK's read timeout fires first
        (3, 1.5),  # our deadline fires first; the SDK is still waiting
    ],
)
def test_a_hung_api_still_answers_the_caller_in_time(
    timeout_seconds: int,
    deadline_seconds: float,
    client: Client,
    vonage: FakeVonageAPI,
    summer_number: TrackingNumber,
    settings: Settings,
) -> None:
    settings.VONAGE_TIMEOUT_SECONDS = timeout_seconds
    settings.AGENT_CALL_DEADLINE_SECONDS = deadline_seconds
    vonage.hang(route="create", times=None)

    ncco, elapsed = caller_dials(client, vonage)

    # A correctness bound on Vonage's 5 s budget, not a benchmark: the fake holds the
    # request for 30 s, so only the SDK's timeout or our deadline can end the wait.
    assert elapsed < ANSWER_BUDGET_SECONDS
    call = assert_connected_directly(ncco, settings)
    assert [request.fault for request in vonage.create_requests()] == ["hang"]
    if timeout_seconds > deadline_seconds:
        # The SDK cannot give up before its 3 s: our deadline ended the wait.
        assert f"did not create the call within {deadline_seconds:g} s" in call.agent_call_error


def test_an_agent_call_created_after_the_deadline_is_hung_up(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber, settings: Settings
) -> None:
    # Slower than our deadline, quicker than the SDK's timeout: Vonage creates the call,
    # but only after the caller was already connected directly.
    settings.VONAGE_TIMEOUT_SECONDS = 3
    settings.AGENT_CALL_DEADLINE_SECONDS = 1.5
    vonage.set_latency(2200, route="create")

    ncco, elapsed = caller_dials(client, vonage)

    # Connected when the deadline passed, before Vonage created the call (the error says
    # so, and the call it created later is hung up, below), and inside Vonage's budget.
    assert elapsed < ANSWER_BUDGET_SECONDS
    call = assert_connected_directly(ncco, settings)
    assert "did not create the call within 1.5 s" in call.agent_call_error
    late = wait_for_hang_up(vonage)
    assert late.status == "cancelled"  # hung up before anyone answered
    assert [request.status for request in vonage.hangups()] == [204]
    assert not call.legs.filter(uuid=late.uuid).exists()


def test_a_late_agent_call_is_hung_up_despite_a_first_400(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber, settings: Settings
) -> None:
    # An update 1–2 s after the call was created can fail with 400 (VONAGE.md).
    settings.VONAGE_TIMEOUT_SECONDS = 3
    settings.AGENT_CALL_DEADLINE_SECONDS = 0.5
    vonage.set_latency(1000, route="create")
    vonage.fail(400, route="update", times=1)

    ncco, _ = caller_dials(client, vonage)

    assert_connected_directly(ncco, settings)
    late = wait_for_hang_up(vonage)
    assert [(request.call_uuid, request.status) for request in vonage.hangups()] == [
        (late.uuid, 400),
        (late.uuid, 204),
    ]


def test_a_late_agent_who_answers_anyway_is_not_conferenced(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber, settings: Settings
) -> None:
    settings.VONAGE_TIMEOUT_SECONDS = 3
    settings.AGENT_CALL_DEADLINE_SECONDS = 0.5
    vonage.set_latency(1000, route="create")
    vonage.hang(route="update", times=None)  # and the hang-up does not get through

    ncco, _ = caller_dials(client, vonage)
    assert_connected_directly(ncco, settings)
    late = wait_for_created_call(vonage)

    response = answer_as_agent(client, vonage, call=Call.objects.get(), uuid=late.uuid)

    # The caller was connected straight through: the late agent is told so.
    assert response == [{"action": "talk", "text": "The caller is no longer waiting."}]


# --- a dropped connection: the POST is not sent again ---------------------------------


def test_a_dropped_create_call_is_not_sent_again_and_the_caller_is_connected_directly(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber, settings: Settings
) -> None:
    # Vonage creates the call, then the connection drops before the 201 arrives. Vonage may
    # have acted on the request (it did here), so it is not sent again: a second agent call
    # would ring the call centre for nothing. (The SDK re-sent it up to ten times: VONAGE.md.)
    vonage.drop_after_accept(route="create", times=None)

    ncco, elapsed = caller_dials(client, vonage)

    assert elapsed < ANSWER_BUDGET_SECONDS
    call = assert_connected_directly(ncco, settings)
    assert "RemoteDisconnected" in call.agent_call_error
    assert [request.fault for request in vonage.create_requests()] == ["drop"]
    # The one call Vonage created: its uuid never reached us, so it cannot be hung up.
    (orphan,) = vonage.created_calls()
    assert vonage.hangups() == []

    # Its agent, if one picks up, is told and let go, never conferenced.
    assert answer_as_agent(client, vonage, call=call, uuid=orphan.uuid) == [
        {"action": "talk", "text": "The caller is no longer waiting."}
    ]


# --- helpers ------------------------------------------------------------------------------


def answer_as_agent(client: Client, vonage: FakeVonageAPI, *, call: Call, uuid: str) -> list[dict[str, Any]]:
    created = vonage.call(uuid)
    agent = Leg(
        from_=CAMPAIGN_NUMBER,
        to=DESTINATION,
        direction="outbound",
        uuid=uuid,
        conversation_uuid=created.conversation_uuid,
    )
    params = agent.answer_params(region_url=vonage.url)
    response = client.get(with_fields(callback_path("answer_outbound", call=call.pk), params))
    assert response.status_code == 200
    return response.json()


def wait_for_created_call(vonage: FakeVonageAPI, timeout: float = 5.0) -> FakeCall:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        calls = vonage.created_calls()
        if calls:
            return calls[0]
        time.sleep(0.05)
    raise AssertionError("The fake never created the agent call.")


def wait_for_hang_up(vonage: FakeVonageAPI, timeout: float = 5.0) -> FakeCall:
    """The late call, once the fake has answered a hang-up for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in vonage.hangups():
            if request.status == 204:
                return vonage.call(request.call_uuid)
        time.sleep(0.05)
    raise AssertionError(f"No hang-up reached the fake within {timeout:g} s: {vonage.requests}")
