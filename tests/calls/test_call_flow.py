"""What happens next when an agent does not take the call, or the caller leaves first.

The Vonage adapter is replaced by a recorder at its seam (``calls.vonage_adapter``):
these tests are about the app's decisions; the e2e suite runs the same paths through
the real SDK against the TLS fake.
"""

import json
import threading
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from calls import call_flow
from calls.models import Call, CallEvent, CallLeg, CallState, LegRole, Outcome
from calls.vonage_adapter import VonageUnavailable
from campaigns.models import Campaign, Fallback, OpeningHours, Strategy, TrackingNumber
from tests.conftest import VonageRecorder, callback, callback_path, post_json
from tests.factories import CampaignFactory, TrackingNumberFactory

CALLER_UUID = "11111111-1111-4111-8111-111111111111"
CONVERSATION = "CON-11111111-1111-4111-8111-111111111111"
EVENT_URL = "https://whisper.example.com/event"


@pytest.fixture
def campaign(db: None) -> Campaign:
    return CampaignFactory.create(
        name="Summer offer",
        topic="the summer offer",
        destination="447700900999",
        fallback=Fallback.VOICEMAIL,
        ring_seconds=15,
    )


@pytest.fixture
def number(campaign: Campaign) -> TrackingNumber:
    return TrackingNumberFactory.create(number="447700900001", campaign=campaign, source="M4 billboard")


def dial(client: Client, *, to: str = "447700900001", uuid: str = CALLER_UUID) -> list[dict[str, Any]]:
    response = client.get(
        "/answer_inbound",
        {"to": to, "from": "447946000123", "uuid": uuid, "conversation_uuid": CONVERSATION},
    )
    assert response.status_code == 200
    return response.json()


def status(client: Client, uuid: str, name: str, *, at: datetime | None = None, query: str = "", **extra: Any) -> Any:
    payload = {
        "uuid": uuid,
        "status": name,
        "direction": "inbound" if uuid == CALLER_UUID else "outbound",
        "conversation_uuid": CONVERSATION,
        "timestamp": (at or timezone.now()).isoformat().replace("+00:00", "Z"),
        **extra,
    }
    response = post_json(client, "/event" + query, payload)
    assert response.status_code == 200, response.content
    return response.json()


def _q(path: str) -> str:
    """The query string of a path, with its ``?``."""
    return path[path.index("?") :]


def agent_answers(client: Client, call: Call, uuid: str, **params: object) -> list[dict[str, Any]]:
    response = client.get(callback_path("answer_outbound", call=call.pk, **params) + f"&uuid={uuid}&to=447700900999")
    assert response.status_code == 200
    return response.json()


def press(client: Client, call: Call, uuid: str, digits: str, *, timed_out: bool = False) -> list[dict[str, Any]]:
    payload = {
        "uuid": uuid,
        "conversation_uuid": "CON-agent-1",
        "dtmf": {"digits": digits, "timed_out": timed_out},
        "timestamp": timezone.now().isoformat(),
    }
    response = post_json(client, callback_path("event", call=call.pk), payload)
    assert response.status_code == 200
    return response.json()


def actions(ncco: list[dict[str, Any]]) -> list[str]:
    return [action["action"] for action in ncco]


# --- conference strategy: the agent does not take the call -------------------------------


def test_busy_agent_moves_the_waiting_caller_to_voicemail_once(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    dial(client)
    call = Call.objects.get()
    assert vonage.placed[0]["ringing_timer"] == 15
    assert vonage.placed[0]["machine_detection"] == "hangup"

    status(client, "agent-1", "busy")
    status(client, "agent-1", "completed")  # busy is always followed by completed
    status(client, "agent-1", "busy")  # a redelivery

    assert len(vonage.transfers) == 1
    uuid, ncco = vonage.transfers[0]
    assert uuid == CALLER_UUID
    assert actions(ncco) == ["talk", "record", "talk"]
    assert ncco[0]["text"] == campaign_prompt(call)
    assert ncco[1]["eventUrl"] == [callback("event", call=call.pk)]
    call.refresh_from_db()
    assert call.state == CallState.FALLBACK
    assert call.fallback_at is not None


def campaign_prompt(call: Call) -> str:
    assert call.campaign is not None
    return call.campaign.voicemail_prompt


def test_voicemail_left_is_stored_on_the_call_and_is_its_outcome(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    dial(client)
    call = Call.objects.get()
    status(client, "agent-1", "busy")
    record = {
        "start_time": "2026-11-25T10:00:00Z",
        "end_time": "2026-11-25T10:00:12Z",
        "recording_url": "https://api.nexmo.com/v1/files/aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        "recording_uuid": "bbbbbbbb-bbbb-cccc-dddd-0123456789ab",
        "size": 12345,
        "conversation_uuid": CONVERSATION,
        "timestamp": "2026-11-25T10:00:12Z",
    }
    assert post_json(client, callback_path("event", call=call.pk), record).status_code == 200
    status(client, CALLER_UUID, "completed")

    call.refresh_from_db()
    assert call.recording_url == record["recording_url"]
    assert call.recording_seconds == 12
    assert call.outcome == Outcome.VOICEMAIL
    assert call.state == CallState.ENDED


def test_caller_who_hangs_up_at_the_voicemail_prompt_is_recorded_as_the_agents_failure(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    dial(client)
    status(client, "agent-1", "busy")
    status(client, CALLER_UUID, "completed")
    assert Call.objects.get().outcome == Outcome.BUSY


@pytest.mark.parametrize(
    ("failure", "extra", "outcome"),
    [
        ("timeout", {}, Outcome.MISSED),
        ("unanswered", {"detail": "timeout"}, Outcome.MISSED),
        ("rejected", {"detail": "declined"}, Outcome.FAILED),
        ("failed", {"detail": "cannot_route"}, Outcome.FAILED),
    ],
)
def test_each_agent_failure_reaches_the_fallback_and_names_the_outcome(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, failure: str, extra: dict[str, str], outcome: str
) -> None:
    number.campaign.fallback = Fallback.MESSAGE
    number.campaign.save()
    dial(client)
    status(client, "agent-1", failure, **extra)
    (transfer,) = vonage.transfers
    assert transfer[1] == [
        {"action": "talk", "text": number.campaign.fallback_message, "language": "en-GB", "style": 0}
    ]
    status(client, CALLER_UUID, "completed")
    assert Call.objects.get().outcome == outcome


def test_answering_machine_detected_is_not_put_through(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    dial(client)
    post_json(client, "/event", {"call_uuid": "agent-1", "status": "machine", "conversation_uuid": "CON-agent-1"})
    assert len(vonage.transfers) == 1
    status(client, CALLER_UUID, "completed")
    assert Call.objects.get().outcome == Outcome.MISSED


def test_completed_without_an_answer_counts_as_no_answer(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    dial(client)
    status(client, "agent-1", "completed", duration="0")
    assert len(vonage.transfers) == 1


def test_hunt_list_rings_the_next_number_then_the_fallback(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    number.campaign.hunt_numbers = "447700900998\n+44 7700 900997"
    number.campaign.full_clean()
    number.campaign.save()
    dial(client)
    call = Call.objects.get()

    status(client, "agent-1", "busy")
    assert [p["to"] for p in vonage.placed] == ["447700900999", "447700900998"]
    assert vonage.placed[1]["answer_url"] == callback("answer_outbound", call=call.pk)
    assert CallLeg.objects.get(uuid="agent-2").attempt == 1

    status(client, "agent-2", "timeout")
    status(client, "agent-1", "completed")  # the first leg's completion changes nothing
    assert [p["to"] for p in vonage.placed] == ["447700900999", "447700900998", "447700900997"]
    assert vonage.transfers == []

    status(client, "agent-3", "unanswered")
    assert len(vonage.transfers) == 1
    call.refresh_from_db()
    assert call.attempt == 3


def test_second_number_in_the_hunt_answers(client: Client, number: TrackingNumber, vonage: VonageRecorder) -> None:
    number.campaign.hunt_numbers = "447700900998"
    number.campaign.save()
    dial(client)
    call = Call.objects.get()
    status(client, "agent-1", "busy")
    ncco = agent_answers(client, call, "agent-2")
    assert actions(ncco) == ["talk", "conversation"]
    now = timezone.now()
    status(client, "agent-2", "answered", at=now)
    status(client, "agent-2", "completed", at=now + timedelta(seconds=40), start_time=now.isoformat(), duration="40")
    status(client, CALLER_UUID, "completed", at=now + timedelta(seconds=40))
    call.refresh_from_db()
    assert call.outcome == Outcome.ANSWERED
    assert call.legs.filter(role=LegRole.AGENT).count() == 2


def test_a_late_answer_from_an_agent_already_passed_over_is_told_the_caller_moved_on(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    number.campaign.hunt_numbers = "447700900998"
    number.campaign.save()
    dial(client)
    call = Call.objects.get()
    status(client, "agent-1", "timeout")
    assert agent_answers(client, call, "agent-1") == [{"action": "talk", "text": "The caller is no longer waiting."}]


# --- the caller leaves first -------------------------------------------------------------


def test_caller_who_hangs_up_while_the_agent_rings_stops_the_ringing(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    dial(client)
    call = Call.objects.get()
    start = timezone.now()
    status(client, "agent-1", "ringing", at=start)
    status(client, CALLER_UUID, "completed", at=start + timedelta(seconds=9))
    status(client, CALLER_UUID, "completed", at=start + timedelta(seconds=9))  # redelivered

    assert vonage.hangups == ["agent-1"]
    assert vonage.transfers == []
    status(client, "agent-1", "cancelled", at=start + timedelta(seconds=10))
    call.refresh_from_db()
    assert call.outcome == Outcome.ABANDONED
    assert call.wait_seconds is not None
    # An agent who answers anyway hears that the caller has gone.
    assert agent_answers(client, call, "agent-1") == [{"action": "talk", "text": "The caller has hung up."}]


def test_caller_who_hangs_up_during_the_whisper_is_abandoned_and_the_agent_is_told(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    dial(client)
    call = Call.objects.get()
    start = timezone.now()
    agent_answers(client, call, "agent-1")
    status(client, "agent-1", "answered", at=start)
    status(client, CALLER_UUID, "completed", at=start + timedelta(seconds=1))

    assert vonage.transfers == [("agent-1", [{"action": "talk", "text": "The caller has hung up."}])]
    call.refresh_from_db()
    assert call.outcome == Outcome.ABANDONED


def test_hang_up_is_retried_on_400_and_404_means_already_gone(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    vonage.hangup_errors = [VonageUnavailable("too early", status_code=400)] * 2
    dial(client)
    status(client, CALLER_UUID, "completed")
    assert vonage.hangups == ["agent-1"]

    vonage.hangups.clear()
    vonage.hangup_errors = [VonageUnavailable("gone", status_code=404)]
    dial(client, uuid="22222222-2222-4222-8222-222222222222")
    status(client, "22222222-2222-4222-8222-222222222222", "completed")
    assert vonage.hangups == []
    assert not [r for r in caplog.records if "agent_release_failed" in r.getMessage()]


# --- the fallback transfer can fail ---------------------------------------------------------


def test_fallback_transfer_to_a_caller_who_is_gone_is_not_retried(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    vonage.transfer_errors = [VonageUnavailable("gone", status_code=404)]
    dial(client)
    status(client, "agent-1", "busy")
    assert vonage.transfers == []


def test_fallback_transfer_is_retried_briefly_on_400(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    vonage.transfer_errors = [VonageUnavailable("too early", status_code=400)]
    dial(client)
    status(client, "agent-1", "busy")
    assert len(vonage.transfers) == 1


@pytest.mark.parametrize("code", [429, 500])
def test_fallback_transfer_refused_is_left_for_reconcile_with_a_log_line(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, caplog: pytest.LogCaptureFixture, code: int
) -> None:
    vonage.transfer_errors = [VonageUnavailable("no", status_code=code)]
    dial(client)
    call = Call.objects.get()
    status(client, "agent-1", "busy")

    call.refresh_from_db()
    assert call.fallback_at is None
    assert call.state == CallState.WAITING
    assert any(
        f"call={call.pk}" in r.getMessage() and "fallback_transfer_failed" in r.getMessage() for r in caplog.records
    )
    # The next try (what reconcile_calls does) moves the caller.
    assert call_flow.caller_to_fallback(call_id=call.pk, reason="retry") is True
    assert len(vonage.transfers) == 1


def test_agent_call_that_cannot_be_placed_for_the_next_number_goes_to_the_fallback(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    number.campaign.hunt_numbers = "447700900998"
    number.campaign.save()
    dial(client)
    vonage.place_error = VonageUnavailable("down", status_code=500)
    status(client, "agent-1", "busy")
    assert len(vonage.transfers) == 1
    assert Call.objects.get().attempt == 2


# --- press 1 to accept ----------------------------------------------------------------------


@pytest.fixture
def accept_number(number: TrackingNumber) -> TrackingNumber:
    number.campaign.require_accept = True
    number.campaign.save()
    return number


def test_press_1_agent_is_asked_after_the_whisper_and_joins_on_1(
    client: Client, accept_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    dial(client)
    call = Call.objects.get()
    ncco = agent_answers(client, call, "agent-1")
    assert actions(ncco) == ["talk", "talk", "input"]
    assert ncco[1]["text"] == "Press 1 to take this call."
    assert ncco[2]["type"] == ["dtmf"]
    assert ncco[2]["dtmf"]["maxDigits"] == 1
    assert ncco[2]["eventUrl"] == [callback("event", call=call.pk)]

    start = timezone.now()
    status(client, "agent-1", "answered", at=start)
    joined = press(client, call, "agent-1", "1")
    assert joined == [{"action": "conversation", "name": call.conference_name, "startOnEnter": True, "endOnExit": True}]
    call.refresh_from_db()
    assert call.outcome == Outcome.ANSWERED
    assert call.state == CallState.CONNECTED
    assert vonage.transfers == []


@pytest.mark.parametrize(("digits", "timed_out"), [("2", False), ("", True)])
def test_press_1_agent_who_declines_or_stays_silent_passes_the_caller_on(
    client: Client, accept_number: TrackingNumber, vonage: VonageRecorder, digits: str, timed_out: bool
) -> None:
    dial(client)
    call = Call.objects.get()
    agent_answers(client, call, "agent-1")
    status(client, "agent-1", "answered")

    ncco = press(client, call, "agent-1", digits, timed_out=timed_out)
    assert ncco == [{"action": "talk", "text": "The caller will be passed on. Goodbye."}]
    assert len(vonage.transfers) == 1  # the caller, to the voicemail
    # The agent's leg then ends: no second step.
    status(client, "agent-1", "completed", duration="9", start_time=timezone.now().isoformat())
    assert len(vonage.transfers) == 1
    status(client, CALLER_UUID, "completed")
    assert Call.objects.get().outcome == Outcome.DECLINED


def test_input_for_an_unknown_call_gets_a_sentence_not_an_error(
    client: Client, db: None, caplog: pytest.LogCaptureFixture
) -> None:
    payload = {"uuid": "nobody", "dtmf": {"digits": "1", "timed_out": False}, "conversation_uuid": "CON-x"}
    response = post_json(client, callback_path("event", call=999999), payload)
    assert response.status_code == 200
    assert response.json() == [{"action": "talk", "text": "The caller is no longer waiting."}]
    assert any("999999" in r.getMessage() for r in caplog.records)


# --- the connect strategy ---------------------------------------------------------------------


@pytest.fixture
def connect_number(number: TrackingNumber) -> TrackingNumber:
    number.campaign.strategy = Strategy.CONNECT
    number.campaign.hunt_numbers = "447700900998"
    number.campaign.save()
    return number


def test_connect_strategy_answers_the_caller_without_any_rest_request(
    client: Client, connect_number: TrackingNumber, vonage: VonageRecorder, settings: Any
) -> None:
    settings.RINGBACK_TONE_URL = "https://media.example.com/ringing.mp3"
    ncco = dial(client)
    call = Call.objects.get()
    assert actions(ncco) == ["talk", "connect"]
    connect = ncco[1]
    assert connect["endpoint"] == [
        {
            "type": "phone",
            "number": "447700900999",
            "onAnswer": {
                "url": callback("answer_outbound", call=call.pk, attempt=0),
                # The caller hears this, not silence, while the agent hears the whisper.
                "ringbackTone": settings.RINGBACK_TONE_URL,
            },
        }
    ]
    assert connect["from"] == "447700900001"
    assert connect["timeout"] == 15
    assert connect["eventType"] == "synchronous"
    assert connect["eventUrl"] == [callback("event", call=call.pk, attempt=0)]
    assert connect["machineDetection"] == "hangup"
    assert vonage.placed == []


def test_connect_strategy_busy_answers_with_the_next_number_then_the_fallback(
    client: Client, connect_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    dial(client)
    call = Call.objects.get()
    next_ncco = status(client, "connect-1", "busy", query=_q(callback_path("event", call=call.pk, attempt=0)))
    assert actions(next_ncco) == ["connect"]
    assert next_ncco[0]["endpoint"][0]["number"] == "447700900998"
    assert next_ncco[0]["eventUrl"] == [callback("event", call=call.pk, attempt=1)]
    # A redelivery gets the same answer.
    assert status(client, "connect-1", "busy", query=_q(callback_path("event", call=call.pk, attempt=0))) == next_ncco

    fallback = status(client, "connect-2", "timeout", query=_q(callback_path("event", call=call.pk, attempt=1)))
    assert actions(fallback) == ["talk", "record", "talk"]
    assert CallLeg.objects.get(uuid="connect-2").attempt == 1
    assert vonage.transfers == [] and vonage.placed == []
    call.refresh_from_db()
    assert call.state == CallState.FALLBACK


def test_connect_strategy_whisper_runs_on_the_agent_leg_only(
    client: Client, connect_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    dial(client)
    call = Call.objects.get()
    ncco = agent_answers(client, call, "connect-1", attempt=0)
    assert ncco == [
        {"action": "talk", "text": "Incoming call regarding the summer offer", "language": "en-GB", "style": 0}
    ]
    assert CallLeg.objects.get(uuid="connect-1").attempt == 0


def test_connect_strategy_decline_moves_the_caller_and_ends_the_agent_leg(
    client: Client, connect_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    connect_number.campaign.require_accept = True
    connect_number.campaign.save()
    dial(client)
    call = Call.objects.get()
    ncco = agent_answers(client, call, "connect-1", attempt=0)
    assert actions(ncco) == ["talk", "talk", "input"]
    status(client, "connect-1", "answered", query=_q(callback_path("event", call=call.pk, attempt=0)))

    press(client, call, "connect-1", "9")
    ((caller_uuid, moved_to),) = vonage.transfers[:1]
    assert caller_uuid == CALLER_UUID
    assert moved_to[0]["endpoint"][0]["number"] == "447700900998"
    # The agent who declined is told the caller is passed on, not that the caller hung up.
    assert vonage.transfers[1] == ("connect-1", [{"action": "talk", "text": "The caller will be passed on. Goodbye."}])


# --- opening hours and dates --------------------------------------------------------------------


def test_after_hours_the_caller_hears_the_closed_message_and_nobody_is_rung(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    campaign = number.campaign
    campaign.timezone = "UTC"
    campaign.save()
    now = datetime.now(UTC)
    # Open only on another weekday.
    OpeningHours.objects.create(campaign=campaign, weekday=(now.weekday() + 1) % 7, opens=time(9), closes=time(17))

    ncco = dial(client)
    assert ncco == [{"action": "talk", "text": campaign.closed_message, "language": "en-GB", "style": 0}]
    assert vonage.placed == []
    status(client, CALLER_UUID, "completed")
    call = Call.objects.get()
    assert call.outcome == Outcome.CLOSED
    assert call.state == CallState.ENDED


def test_campaign_that_has_ended_is_closed_with_voicemail_when_asked(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    campaign = number.campaign
    campaign.ends_on = (timezone.now() - timedelta(days=3)).date()
    campaign.closed_action = "voicemail"
    campaign.save()
    ncco = dial(client)
    assert actions(ncco) == ["talk", "record", "talk"]
    assert vonage.placed == []


# --- whisper variables ---------------------------------------------------------------------------


def test_whisper_names_the_caller_and_counts_their_earlier_calls(
    client: Client, number: TrackingNumber, vonage: VonageRecorder
) -> None:
    # {calls_before} carries its noun, so the sentence reads right for any count.
    number.campaign.whisper_template = "{topic} from {source}. Caller {caller}, {calls_before}."
    number.campaign.save()
    dial(client, uuid="33333333-3333-4333-8333-333333333333")
    dial(client)
    call = Call.objects.get(legs__uuid=CALLER_UUID)
    (talk, _) = agent_answers(client, call, f"agent-{len(vonage.placed)}")
    assert talk["text"] == ("the summer offer from M4 billboard. Caller 4 4 7 9 4 6 0 0 0 1 2 3, 1 earlier call.")


# --- races on PostgreSQL ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL; SQLite serialises writes")
def test_two_failure_events_at_the_same_moment_take_one_step(vonage: VonageRecorder) -> None:
    campaign = CampaignFactory.create(name="Race", topic="the race", destination="447700900999")
    TrackingNumberFactory.create(number="447700900001", campaign=campaign)
    dial(Client())
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def deliver(name: str) -> None:
        try:
            barrier.wait()
            status(Client(), "agent-1", name)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(n,)) for n in ("busy", "busy", "completed", "failed")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(vonage.transfers) == 1
    assert CallEvent.objects.filter(leg_uuid="agent-1").count() == 3  # busy stored once


def test_stored_caller_ncco_is_json(client: Client, number: TrackingNumber, vonage: VonageRecorder) -> None:
    ncco = dial(client)
    assert json.loads(json.dumps(Call.objects.get().caller_ncco)) == ncco
