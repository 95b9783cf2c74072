"""Overload is shed, never answered late: a caller's answer that waited past
ANSWER_SHED_AFTER_SECONDS behind the app (the proxy's X-Request-Start) is answered at
once with the call centre, directly, and recorded afterwards from the spool, once."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from calls.models import Call, CallEvent, CallLeg, CallState, LegRole, Outcome
from calls.webhooks import overload, replay, spool
from calls.webhooks.overload import queued_seconds
from calls.webhooks.signatures import sign_webhook
from campaigns.models import TrackingNumber
from tests.calls import test_call_flow as flow
from tests.calls.test_spool import CALLER, CONVERSATION, connect_leg_event, spooled
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
    # The call centre's leg reports in meanwhile: its caller was shed, so the event is
    # kept in the spool with the call, not written now (it would cost a served call's).
    assert post_json(client, "/event", connect_leg_event("answered")).status_code == 200
    assert CallEvent.objects.count() == 0
    assert [each["route"] for each in spooled(spool_dir)] == ["answer_inbound", "event"]

    assert spool.replay() == 2

    call = Call.objects.get()
    assert call.recorded_late is True
    assert call.agent_call_error == record["reason"]
    assert call.campaign is not None and call.campaign.name == "Summer offer"
    assert CallLeg.objects.get(uuid="direct-1").role == LegRole.AGENT
    assert (call.state, call.outcome) == (CallState.CONNECTED, Outcome.ANSWERED)
    assert spool.replay() == 0 and Call.objects.count() == 1
    assert not overload.conversation_shed(CONVERSATION)  # recorded: the marker is gone


def test_a_shed_callers_events_are_spooled_until_the_call_is_recorded_then_recorded_as_they_come(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path
) -> None:
    client.get("/answer_inbound", CALLER, **arrived(3.2))
    caller_event = {"uuid": CALLER["uuid"], "conversation_uuid": CONVERSATION, "direction": "inbound"}
    for event in (
        {**caller_event, "status": "started", "timestamp": "2026-12-07T22:00:00Z"},
        connect_leg_event("started"),
        connect_leg_event("answered"),
        {**caller_event, "status": "answered", "timestamp": "2026-12-07T22:00:01Z"},
    ):
        response = post_json(client, "/event", event)
        assert (response.status_code, response.json()) == (200, {"stored": True, "kind": "status"})
    # Nothing written while the servers are overloaded; everything kept.
    assert (Call.objects.count(), CallLeg.objects.count(), CallEvent.objects.count()) == (0, 0, 0)
    assert len(spooled(spool_dir)) == 5

    assert spool.replay() == 5

    call = Call.objects.get()
    assert {leg.uuid for leg in call.legs.all()} == {CALLER["uuid"], "direct-1"}
    assert CallEvent.objects.filter(call=call).count() == 4
    # Recorded, so the caller's hang-up, an hour later, is recorded as it comes.
    hang_up = post_json(client, "/event", {**caller_event, "status": "completed", "duration": "3600"})
    assert hang_up.status_code == 200
    assert CallEvent.objects.filter(call=call).count() == 5 and spooled(spool_dir) == []


def test_a_shed_call_warns_once_not_once_per_event(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Past capacity every caller is shed and each has eight events: a warning apiece was
    thousands of lines a minute, and a tenth of what a shed event cost. The answer's one
    warning says where it and its events go; the spool's own lines are DEBUG."""
    caplog.set_level("DEBUG", logger="calls")
    client.get("/answer_inbound", CALLER, **arrived(3.2))
    for status in ("started", "ringing", "answered"):
        assert post_json(client, "/event", connect_leg_event(status)).json() == {"stored": True, "kind": "status"}

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name.startswith("calls")]
    [shed] = warnings
    assert shed.startswith(f"answer_inbound.shed uuid={CALLER['uuid']} conversation={CONVERSATION}: Answered after ")
    assert shed.endswith("Kept in the spool for reconcile_calls. Its events are kept in the spool too.")
    kept = [r for r in caplog.records if r.getMessage().startswith("spool.written")]
    assert [r.levelname for r in kept] == ["DEBUG"] * 4 and len(spooled(spool_dir)) == 4


def test_a_shed_answer_whose_conversation_cannot_be_marked_says_its_events_are_recorded_as_they_come(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client.get("/answer_inbound", {**CALLER, "conversation_uuid": "CON-1/../x"}, **arrived(3.2))

    [shed] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("answer_inbound.shed")]
    assert shed.endswith("Its events are recorded as they come.")
    assert not (spool_dir / overload.SHED_MARKERS).exists()


def test_a_retry_of_a_shed_answer_answered_in_full_has_its_events_recorded_as_they_come(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path
) -> None:
    """Vonage retried the shed answer and this time it came in time: a call with its agent
    call, whose caller's hang-up must reach the flow now, not at the next reconcile."""
    client.get("/answer_inbound", CALLER, **arrived(3.2))
    retry = client.get("/answer_inbound", CALLER, **arrived(0.2))
    assert retry.json()[-1]["action"] != "connect" and len(vonage.placed) == 1

    left = {"uuid": CALLER["uuid"], "conversation_uuid": CONVERSATION, "status": "completed"}
    assert post_json(client, "/event", left).status_code == 200

    assert CallEvent.objects.filter(call=Call.objects.get(), status="completed").count() == 1
    assert [each["route"] for each in spooled(spool_dir)] == ["answer_inbound"]


def test_an_event_of_a_caller_answered_in_full_is_recorded_as_it_comes(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path
) -> None:
    client.get("/answer_inbound", CALLER, **arrived(0.5))
    event = {"uuid": CALLER["uuid"], "conversation_uuid": CONVERSATION, "status": "ringing"}

    assert post_json(client, "/event", event, **arrived(3.2)).status_code == 200

    assert CallEvent.objects.filter(call=Call.objects.get(), status="ringing").count() == 1
    assert not spool_dir.exists() or spooled(spool_dir) == []


def test_a_shed_callers_event_still_remembers_its_signature_and_a_replay_of_it_is_refused(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path, settings: Settings
) -> None:
    from calls.models import SignedWebhook
    from tests.calls.test_webhook_boundary import SECRET, post

    settings.DEBUG = False
    settings.VONAGE_SIGNATURE_SECRET = SECRET
    overload.conversation_shed_mark(CONVERSATION)  # as the caller's shed answer left it
    event = connect_leg_event("answered")
    body = json.dumps(event).encode()
    headers = {"Authorization": "Bearer " + sign_webhook(body=body, secret=SECRET)}

    first = client.post("/event", body, content_type="application/json", headers=headers)
    assert first.status_code == 200 and len(spooled(spool_dir)) == 1
    assert SignedWebhook.objects.count() == 1

    # Vonage's retry of the very same request is taken (and recorded once, below)...
    retried = client.post("/event", body, content_type="application/json", headers=headers)
    assert retried.status_code == 200 and len(spooled(spool_dir)) == 2
    # ...but the captured token on another request is refused as a replay, and not kept.
    replayed = client.post("/event?event=again", body, content_type="application/json", headers=headers)

    assert (replayed.status_code, replayed.json()["detail"]) == (401, replay.REPLAY_REFUSED)
    assert len(spooled(spool_dir)) == 2 and CallEvent.objects.count() == 0
    # Unsigned, in production, it never reaches the spool (refused as every unsigned event).
    assert post(client, "/event", event, sign=False).status_code == 503
    assert len(spooled(spool_dir)) == 2
    assert spool.replay() == 1 and CallEvent.objects.count() == 1  # unmatched: no call here


@pytest.mark.parametrize("conversation", ["../../escaped", "CON-1/../../escaped", ".", ""])
def test_a_conversation_id_that_is_not_vonages_is_never_a_marker_path(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path, tmp_path: Path, conversation: str
) -> None:
    answer = client.get("/answer_inbound", {**CALLER, "conversation_uuid": conversation}, **arrived(3.2))

    assert answer.status_code == 200 and answer.json()[-1]["action"] == "connect"  # shed, spooled
    assert [each["route"] for each in spooled(spool_dir)] == ["answer_inbound"]
    assert not (tmp_path / "escaped").exists()
    markers = spool_dir / overload.SHED_MARKERS
    assert not markers.exists() or list(markers.iterdir()) == []
    assert not overload.conversation_shed(conversation)


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


# --- the events' queue: behind the answers' own processes (the bulkhead) -----------------


def test_an_event_that_waited_too_long_sheds_the_next_callers_answer_though_it_waited_not_at_all(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path
) -> None:
    """With the answers on processes of their own (deploy/nginx.conf) an answer never
    waits; the events' queue is where overload shows. An event answered 3.2 s after it
    arrived sheds the callers who come in the next second."""
    late = post_json(client, "/event", connect_leg_event("answered"), **arrived(3.2))
    assert late.status_code == 200 and CallEvent.objects.count() == 1  # the event itself: recorded

    answer = client.get("/answer_inbound", CALLER, **arrived(0.01))

    assert answer.json()[-1]["action"] == "connect"  # the call centre, directly
    assert Call.objects.count() == 0 and vonage.placed == []
    [record] = spooled(spool_dir)
    assert record["reason"].startswith("Events waited more than 2.5 s in the server's queue (overloaded)")
    assert overload.conversation_shed(CONVERSATION)  # its events go to the spool too


def test_once_the_events_catch_up_callers_are_answered_in_full_again(
    client: Client,
    number: TrackingNumber,
    vonage: VonageRecorder,
    spool_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    post_json(client, "/event", connect_leg_event("answered"), **arrived(3.2))
    later = NOW + overload.BACKLOG_MEMORY_SECONDS + 0.1
    monkeypatch.setattr(overload, "time", SimpleNamespace(time=lambda: later))

    answer = client.get("/answer_inbound", CALLER)

    assert answer.json()[0]["action"] == "talk" and len(vonage.placed) == 1
    assert Call.objects.get().state != CallState.DIRECT


def test_an_event_in_time_sheds_nobody(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path
) -> None:
    post_json(client, "/event", connect_leg_event("answered"), **arrived(2.0))

    client.get("/answer_inbound", CALLER)

    assert len(vonage.placed) == 1 and not (spool_dir / overload.BACKLOG).exists()


def test_a_forged_event_with_an_old_stamp_sheds_nobody(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path, settings: Settings
) -> None:
    """The attack: unsigned events stamped as if they had waited, to have every caller
    connected without the whisper. Refused before anything is noted."""
    from tests.calls.test_webhook_boundary import SECRET

    settings.DEBUG = False
    settings.VONAGE_SIGNATURE_SECRET = SECRET
    forged = post_json(client, "/event", connect_leg_event("answered"), **arrived(3.2))

    assert forged.status_code == 503  # no signature: refused, and Vonage would retry a real one
    assert not (spool_dir / overload.BACKLOG).exists() and CallEvent.objects.count() == 0


def test_an_event_whose_wait_cannot_be_noted_is_still_recorded(
    client: Client,
    number: TrackingNumber,
    vonage: VonageRecorder,
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "not-a-directory").write_text("")
    settings.WEBHOOK_SPOOL_DIR = str(tmp_path / "not-a-directory")
    settings.ANSWER_SHED_AFTER_SECONDS = 2.5

    late = post_json(client, "/event", connect_leg_event("answered"), **arrived(3.2))

    assert late.status_code == 200 and CallEvent.objects.count() == 1
    assert any(r.getMessage().startswith("overload.backlog_not_noted") for r in caplog.records)
