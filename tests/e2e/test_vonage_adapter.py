"""The adapter's REST calls for a live leg, through the real SDK, against the fake."""

from typing import Any

import pytest
from django.test import override_settings
from pytest_django.fixtures import Settings

from calls import ncco as nccos
from calls import vonage_adapter
from calls.vonage_adapter import VonageUnavailable
from devtools.fake_vonage_api import FakeVonageAPI

pytestmark = pytest.mark.e2e

DESTINATION = "447700900999"
CAMPAIGN_NUMBER = "447700900001"


@pytest.fixture
def live_call(vonage: FakeVonageAPI) -> vonage_adapter.PlacedCall:
    """An agent call placed through the adapter, as the answer webhook places it."""
    placed = vonage_adapter.place_call(
        to=DESTINATION,
        from_=CAMPAIGN_NUMBER,
        answer_url="https://whisper.example.com/answer_outbound?call=1",
        event_url="https://whisper.example.com/event",
        deadline_seconds=2,
    )
    assert placed.sent
    return placed


@pytest.mark.parametrize(
    "ncco",
    [
        nccos.caller_connects_directly(
            greeting="Please wait while we connect you.",
            destination=DESTINATION,
            from_number=CAMPAIGN_NUMBER,
            event_url="https://whisper.example.com/event",
        ),
        nccos.caller_waits(
            greeting="Please hold.",
            conference_name="whisper-abc",
            hold_music_url="https://example.com/hold.mp3",
        ),
        nccos.agent_hears_whisper(whisper="Incoming call regarding the summer offer", conference_name="whisper-abc"),
        nccos.agent_hears_caller_left(),
    ],
    ids=["connect", "caller waits", "whisper", "caller left"],
)
def test_transfer_sends_the_whole_ncco(
    ncco: list[dict[str, Any]], vonage: FakeVonageAPI, live_call: vonage_adapter.PlacedCall
) -> None:
    vonage_adapter.transfer_to_ncco(uuid=live_call.uuid, ncco=ncco, region_url=vonage.url)

    (transfer,) = vonage.transfers()
    assert transfer.status == 204
    assert transfer.call_uuid == live_call.uuid
    # Every key of every action arrives: ``from`` (not ``from_``), booleans as booleans.
    assert transfer.json == {"action": "transfer", "destination": {"type": "ncco", "ncco": ncco}}
    assert vonage.call(live_call.uuid).transfers == [{"type": "ncco", "ncco": ncco}]


def test_the_sdk_sends_empty_actions_for_plain_dicts_and_vonage_refuses_them(
    vonage: FakeVonageAPI, live_call: vonage_adapter.PlacedCall
) -> None:
    # Why the adapter builds models: transfer_call_ncco turns plain dicts into [{}] (VONAGE.md).
    from vonage_http_client import HttpRequestError

    client = vonage_adapter._voice_client(vonage.host)
    with pytest.raises(HttpRequestError) as refused:
        client.voice.transfer_call_ncco(live_call.uuid, nccos.agent_hears_caller_left())

    assert refused.value.response.status_code == 400
    (transfer,) = vonage.transfers()
    assert transfer.json["destination"]["ncco"] == [{}]
    assert vonage.call(live_call.uuid).transfers == []


def test_hang_up_and_call_info(vonage: FakeVonageAPI, live_call: vonage_adapter.PlacedCall) -> None:
    info = vonage_adapter.get_call_info(uuid=live_call.uuid, region_url=vonage.url)
    assert info["uuid"] == live_call.uuid
    assert info["conversation_uuid"] == live_call.conversation_uuid
    assert info["status"] == "started"
    assert info["to"] == {"type": "phone", "number": DESTINATION}

    vonage.set_call_status(live_call.uuid, "answered")
    assert vonage_adapter.get_call_info(uuid=live_call.uuid)["status"] == "answered"

    vonage_adapter.hang_up(uuid=live_call.uuid, region_url=vonage.url)

    assert [(r.call_uuid, r.status) for r in vonage.hangups()] == [(live_call.uuid, 204)]
    info = vonage_adapter.get_call_info(uuid=live_call.uuid)
    assert info["status"] == "completed"
    # GET reports times as "YYYY-MM-DD HH:MM:SS" and money as strings (VONAGE.md).
    assert len(info["start_time"]) == len("2024-01-01 12:00:00")
    assert info["price"] == "0.00000000"
    assert info["rate"] == "0.02700000"


@pytest.mark.parametrize(
    "action",
    [
        lambda uuid: vonage_adapter.hang_up(uuid=uuid),
        lambda uuid: vonage_adapter.get_call_info(uuid=uuid),
        lambda uuid: vonage_adapter.transfer_to_ncco(uuid=uuid, ncco=nccos.agent_hears_caller_left()),
    ],
    ids=["hang_up", "get_call_info", "transfer_to_ncco"],
)
def test_an_unknown_call_is_vonage_unavailable_404(action: Any, vonage: FakeVonageAPI) -> None:
    with pytest.raises(VonageUnavailable) as unavailable:
        action("00000000-0000-4000-8000-000000000000")

    assert unavailable.value.status_code == 404


def test_hanging_up_an_ended_call_is_a_400(vonage: FakeVonageAPI, live_call: vonage_adapter.PlacedCall) -> None:
    vonage.set_call_status(live_call.uuid, "completed")

    with pytest.raises(VonageUnavailable) as unavailable:
        vonage_adapter.hang_up(uuid=live_call.uuid)

    assert unavailable.value.status_code == 400


def test_without_credentials_nothing_is_sent(vonage: FakeVonageAPI, settings: Settings) -> None:
    settings.VONAGE_PRIVATE_KEY = ""

    placed = vonage_adapter.place_call(
        to=DESTINATION,
        from_=CAMPAIGN_NUMBER,
        answer_url="https://whisper.example.com/answer_outbound?call=1",
        event_url="https://whisper.example.com/event",
        deadline_seconds=1,
    )

    assert not placed.sent
    assert placed.uuid.startswith(vonage_adapter.DRY_RUN_PREFIX)
    assert vonage.requests == []


# --- which host controls a call ----------------------------------------------------------
# A call lives in one region; REST calls for it elsewhere answer 404 (VONAGE.md). These
# only choose a host name: no request is made.


@override_settings(VONAGE_API_HOST="api.nexmo.com")
@pytest.mark.parametrize(
    ("region_url", "host"),
    [
        ("https://api-sg-1.nexmo.com", "api-sg-1.nexmo.com"),
        ("https://api-eu-1.vonage.com", "api-eu-1.vonage.com"),
        ("https://API-US-3.NEXMO.COM/", "api-us-3.nexmo.com"),
        ("", "api.nexmo.com"),
        ("https://", "api.nexmo.com"),
        # Not Vonage's: our signed application JWT must not be sent there.
        ("https://attacker.example.com", "api.nexmo.com"),
        ("https://api-sg-1.nexmo.com.attacker.example.com", "api.nexmo.com"),
        ("https://user@api-sg-1.nexmo.com", "api.nexmo.com"),
        ("https://api-sg-1.nexmo.com:8443", "api.nexmo.com"),
        ("http://api-sg-1.nexmo.com", "api.nexmo.com"),
    ],
)
def test_the_region_url_chooses_the_host_when_the_api_host_is_vonages_default(region_url: str, host: str) -> None:
    assert vonage_adapter._host_for(region_url) == host


@override_settings(VONAGE_API_HOST="127.0.0.1:8443")
def test_an_overridden_api_host_wins_over_the_region_url() -> None:
    # Tests and the simulator point the API host at the fake: every call goes there.
    assert vonage_adapter._host_for("https://api-sg-1.nexmo.com") == "127.0.0.1:8443"
    assert vonage_adapter._host_for("") == "127.0.0.1:8443"
