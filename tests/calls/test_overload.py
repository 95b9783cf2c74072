"""Overload is shed, never answered late: a caller's answer that waited past
ANSWER_SHED_AFTER_SECONDS behind the app (the proxy's X-Request-Start) is answered at
once with the call centre, directly, and recorded afterwards from the spool, once."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from calls.models import Call, CallLeg, CallState, LegRole, Outcome
from calls.webhooks import overload, spool
from calls.webhooks.overload import queued_seconds
from campaigns.models import TrackingNumber
from tests.calls import test_call_flow as flow
from tests.calls.test_spool import CALLER, connect_leg_event, spooled
from tests.conftest import VonageRecorder, post_json

campaign, number = flow.campaign, flow.number


@pytest.fixture
def spool_dir(settings: Settings, tmp_path: Path) -> Path:
    settings.WEBHOOK_SPOOL_DIR = str(tmp_path / "spool")
    settings.ANSWER_SHED_AFTER_SECONDS = 2.5
    return tmp_path / "spool"


NOW = 1733500002.0


@pytest.fixture(autouse=True)
def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app reads the time at NOW: how long a request waited is exactly what its stamp
    says, however slow this machine is."""
    monkeypatch.setattr(overload, "time", SimpleNamespace(time=lambda: NOW))


def arrived(seconds_ago: float) -> dict[str, str]:
    """The proxy's stamp (nginx's ``$msec``) on a request that arrived ``seconds_ago``."""
    return {"HTTP_X_REQUEST_START": f"t={NOW - seconds_ago:.3f}"}


@pytest.mark.parametrize(
    ("stamp", "waited"),
    [
        ("t=1733500000.250", 1.75),  # nginx: seconds, with milliseconds
        ("t=1733500000250", 1.75),  # milliseconds
        ("1733500000250000", 1.75),  # microseconds, without t=
        ("t=1733500003.000", None),  # from the future: another machine's clock
        ("t=soon", None),
        ("", None),
    ],
)
def test_the_proxys_stamp_is_read_in_any_unit(stamp: str, waited: float | None) -> None:
    assert queued_seconds({"HTTP_X_REQUEST_START": stamp}, now=1733500002.0) == waited


def test_an_answer_that_waited_too_long_is_answered_directly_and_recorded_afterwards(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path
) -> None:
    answer = client.get("/answer_inbound", CALLER, **arrived(3.2))

    assert answer.status_code == 200
    assert answer.json()[-1]["action"] == "connect"  # the call centre, directly
    assert answer.json()[-1]["endpoint"][0]["number"] == "447700900999"
    # Nothing written, no agent call: that is the point. The request is kept instead.
    assert Call.objects.count() == 0 and vonage.placed == []
    [record] = spooled(spool_dir)
    assert (record["route"], record["answered"]) == ("answer_inbound", answer.json())
    assert record["reason"].startswith("Answered after 3.2 s in the server's queue (overloaded)")
    # The call centre's leg reports in meanwhile (the database is up): kept, unmatched.
    assert post_json(client, "/event", connect_leg_event("answered")).status_code == 200

    assert spool.replay() == 1

    call = Call.objects.get()
    assert call.recorded_late is True
    assert call.agent_call_error == record["reason"]
    assert call.campaign is not None and call.campaign.name == "Summer offer"
    assert CallLeg.objects.get(uuid="direct-1").role == LegRole.AGENT
    assert (call.state, call.outcome) == (CallState.CONNECTED, Outcome.ANSWERED)
    assert spool.replay() == 0 and Call.objects.count() == 1


@pytest.mark.parametrize("waited", [None, 1.0])
def test_an_answer_in_time_is_answered_in_full(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path, waited: float | None
) -> None:
    answer = client.get("/answer_inbound", CALLER, **({} if waited is None else arrived(waited)))

    assert answer.json()[0]["action"] == "talk" and answer.json()[-1]["action"] != "connect"
    assert Call.objects.get().state != CallState.DIRECT
    assert len(vonage.placed) == 1
    assert not spool_dir.exists() or spooled(spool_dir) == []


def test_nothing_is_shed_without_a_spool_to_record_it(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, settings: Settings
) -> None:
    settings.WEBHOOK_SPOOL_DIR = ""
    settings.ANSWER_SHED_AFTER_SECONDS = 2.5

    client.get("/answer_inbound", CALLER, **arrived(4.0))

    assert Call.objects.count() == 1 and len(vonage.placed) == 1  # late, but not lost


def test_a_shed_that_cannot_be_spooled_is_answered_in_full(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "not-a-directory").write_text("")
    settings.WEBHOOK_SPOOL_DIR = str(tmp_path / "not-a-directory")
    settings.ANSWER_SHED_AFTER_SECONDS = 2.5

    client.get("/answer_inbound", CALLER, **arrived(4.0))

    assert Call.objects.count() == 1 and len(vonage.placed) == 1


def test_shedding_can_be_turned_off(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path, settings: Settings
) -> None:
    settings.ANSWER_SHED_AFTER_SECONDS = 0

    client.get("/answer_inbound", CALLER, **arrived(4.0))

    assert Call.objects.count() == 1 and len(vonage.placed) == 1


def test_a_shed_answer_still_remembers_its_signature_and_a_replay_of_it_is_refused(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path, settings: Settings
) -> None:
    """A shed answer starts no call, so the call's first statement does not remember its
    signature (statements.call_start): it is remembered on its own, as for any request."""
    from calls.models import SignedWebhook
    from tests.calls.test_webhook_boundary import SECRET, signed, with_fields

    settings.DEBUG = False
    settings.VONAGE_SIGNATURE_SECRET = SECRET
    headers = signed(b"")
    shed = client.get(with_fields("/answer_inbound", CALLER), headers=headers, **arrived(3.2))
    assert shed.status_code == 200 and shed.json()[-1]["action"] == "connect"
    assert SignedWebhook.objects.count() == 1 and Call.objects.count() == 0

    # The same token on another caller, in time this time: refused, nothing started.
    other = {**CALLER, "uuid": "attacker-leg", "from": "447946999999"}
    replayed = client.get(with_fields("/answer_inbound", other), headers=headers, **arrived(0.1))

    assert replayed.status_code == 401
    assert Call.objects.count() == 0 and vonage.placed == [] and len(spooled(spool_dir)) == 1
