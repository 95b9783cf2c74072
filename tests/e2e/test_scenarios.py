"""The simulator's scenarios, end to end: every scenario with both strategies.

The engine (``devtools.simulator``) plays Vonage: it sends the webhooks, runs the NCCOs
the app answers with, and plays the REST requests the app makes through the real SDK
to the local TLS fake of the API. Each test checks the outcome, what the caller and
the agent heard, what the app asked of Vonage, and that every status event was stored
once (the engine delivers one of them twice, and others out of order).
"""

from collections.abc import Callable

import pytest
from pytest_django.fixtures import Settings

from calls import call_flow
from calls.models import Call, CallEvent, CallLeg, CallState, LegRole, NumberStatus, Outcome
from campaigns.models import (
    DEFAULT_ACCEPT_PROMPT,
    DEFAULT_CLOSED_MESSAGE,
    DEFAULT_FALLBACK_MESSAGE,
    DEFAULT_GREETING,
    DEFAULT_VOICEMAIL_PROMPT,
    Strategy,
)
from devtools.fake_vonage_api import FakeVonageAPI, RecordedRequest
from devtools.simulator import SCENARIOS, Result, run_scenario
from devtools.simulator.scenarios import FIRST_DESTINATION, SECOND_DESTINATION, STAFF_PHONE

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

TALK_SECONDS = 30
CALLER_HAS_HUNG_UP = "The caller has hung up."
PASSED_ON = "The caller will be passed on. Goodbye."


def play(name: str, strategy: str, vonage: FakeVonageAPI) -> Result:
    lines: list[str] = []
    result = run_scenario(
        SCENARIOS[name], fake=vonage, narrate=lines.append, strategy=strategy, talk_seconds=TALK_SECONDS
    )
    assert result.problems == [], "\n".join(lines)
    assert result.ok, "\n".join(lines)
    return result


def whisper(name: str) -> str:
    return f"Incoming call regarding the {name} scenario"


def agents(call: Call) -> list[CallLeg]:
    return list(call.legs.filter(role=LegRole.AGENT).order_by("created_at", "id"))


def caller(call: Call) -> CallLeg:
    return call.legs.get(role=LegRole.CALLER)


def transfers_to(vonage: FakeVonageAPI, leg: CallLeg) -> list[RecordedRequest]:
    return [request for request in vonage.transfers() if request.call_uuid == leg.uuid]


def spoken(request: RecordedRequest) -> list[str]:
    return [action.get("text", "") for action in request.json["destination"]["ncco"] if action["action"] == "talk"]


# --- what each scenario must show, beyond its outcome ---------------------------------------


def check_answered(result: Result, vonage: FakeVonageAPI, strategy: str) -> None:
    call = result.call
    assert result.heard_by("agent") == [whisper("answered")]
    assert result.heard_by("caller")[0] == DEFAULT_GREETING
    assert call.whisper_text == whisper("answered")
    assert call.talk_seconds == TALK_SECONDS
    assert len(agents(call)) == 1
    if strategy == Strategy.CONFERENCE:
        assert "hold music" in result.heard_by("caller")
        assert [(r.route, r.status) for r in vonage.requests] == [("create", 201)]
    else:
        # Vonage rings the agent itself: no REST request at all.
        assert vonage.requests == []


def check_agent_busy(result: Result, vonage: FakeVonageAPI, strategy: str) -> None:
    call = result.call
    (agent,) = agents(call)
    assert agent.status == "busy"
    assert result.heard_by("agent") == []
    assert result.heard_by("caller")[-3:] == [DEFAULT_VOICEMAIL_PROMPT, "a beep", "Thank you. Goodbye."]
    assert call.recording_url.startswith("https://api.nexmo.com/v1/files/")
    assert call.recording_seconds == 11  # 8 s of message, 3 s of silence
    assert call.whisper_text == ""
    if strategy == Strategy.CONFERENCE:
        (transfer,) = vonage.transfers()
        assert transfer.call_uuid == caller(call).uuid
        assert [a["action"] for a in transfer.json["destination"]["ncco"]] == ["talk", "record", "talk"]
        assert len(vonage.create_requests()) == 1
    else:
        assert vonage.requests == []


def check_agent_no_answer(result: Result, vonage: FakeVonageAPI, strategy: str) -> None:
    call = result.call
    (agent,) = agents(call)
    # Delivered after "completed": the failure still says why the leg ended.
    assert agent.status == ("timeout" if strategy == Strategy.CONFERENCE else "unanswered")
    assert result.heard_by("caller")[-1] == DEFAULT_FALLBACK_MESSAGE
    assert call.recording_url == ""
    assert call.fallback_at is not None
    # The caller waited the ring time (20 s), plus the greeting before a connect rings.
    assert 20 <= call.wait_seconds <= 23
    if strategy == Strategy.CONFERENCE:
        assert [t.call_uuid for t in vonage.transfers()] == [caller(call).uuid]
    else:
        assert vonage.requests == []


def check_agent_voicemail(result: Result, vonage: FakeVonageAPI, strategy: str) -> None:
    call = result.call
    (agent,) = agents(call)
    assert agent.machine_detected == "machine"
    assert result.heard_by("agent's voicemail")[0] == whisper("agent-voicemail")
    assert result.heard_by("caller")[-1] == DEFAULT_FALLBACK_MESSAGE
    if strategy == Strategy.CONFERENCE:
        (to_caller,) = transfers_to(vonage, caller(call))
        assert spoken(to_caller) == [DEFAULT_FALLBACK_MESSAGE]
    else:
        assert vonage.requests == []


def check_agent_declines(result: Result, vonage: FakeVonageAPI, strategy: str) -> None:
    call = result.call
    (agent,) = agents(call)
    assert agent.declined_at is not None
    assert result.heard_by("agent") == [whisper("agent-declines"), DEFAULT_ACCEPT_PROMPT, PASSED_ON]
    assert CALLER_HAS_HUNG_UP not in result.heard_by("agent")
    assert result.heard_by("caller")[-1] == DEFAULT_FALLBACK_MESSAGE
    (to_caller,) = transfers_to(vonage, caller(call))
    assert spoken(to_caller) == [DEFAULT_FALLBACK_MESSAGE]
    if strategy == Strategy.CONFERENCE:
        # The agent ends by hearing the answer to the key press; nothing is sent to the leg.
        assert transfers_to(vonage, agent) == []
    else:
        # Connect: the agent's leg is moved off the connect, so Vonage bridges nothing.
        (to_agent,) = transfers_to(vonage, agent)
        assert spoken(to_agent) == [PASSED_ON]
    assert vonage.hangups() == []


def check_caller_hangs_up_while_ringing(result: Result, vonage: FakeVonageAPI, strategy: str) -> None:
    call = result.call
    (agent,) = agents(call)
    assert agent.status == "cancelled"
    assert agent.answered_at is None
    assert result.heard_by("agent") == []
    # Hanging up is not moving on: no fallback, no next destination.
    assert call.fallback_at is None
    assert call.attempt == 0
    if strategy == Strategy.CONFERENCE:
        (hangup,) = vonage.hangups()
        assert hangup.call_uuid == agent.uuid
        assert vonage.transfers() == []
    else:
        # Vonage cancels the leg its connect rang; the app asks nothing.
        assert vonage.requests == []


def check_caller_hangs_up_during_whisper(result: Result, vonage: FakeVonageAPI, strategy: str) -> None:
    call = result.call
    (agent,) = agents(call)
    assert call.whisper_text == whisper("caller-hangs-up-during-whisper")
    assert agent.answered_at is not None
    assert agent.ended_at > caller(call).ended_at
    assert call.talk_seconds is None
    if strategy == Strategy.CONFERENCE:
        assert result.heard_by("agent") == [call.whisper_text, CALLER_HAS_HUNG_UP]
        (to_agent,) = vonage.transfers()
        assert to_agent.call_uuid == agent.uuid
        assert spoken(to_agent) == [CALLER_HAS_HUNG_UP]
    else:
        # Vonage ends the leg its connect rang: the whisper is cut off.
        assert result.heard_by("agent") == [call.whisper_text]
        assert vonage.requests == []


def check_agent_hangs_up(result: Result, vonage: FakeVonageAPI, strategy: str) -> None:
    call = result.call
    (agent,) = agents(call)
    assert call.talk_seconds == TALK_SECONDS
    # The caller's leg ends with the agent's (endOnExit; the connect's end).
    assert caller(call).ended_at == agent.ended_at
    assert call.ended_at == agent.ended_at
    assert vonage.transfers() == [] and vonage.hangups() == []


def check_hunt_to_second_number(result: Result, vonage: FakeVonageAPI, strategy: str) -> None:
    call = result.call
    first, second = agents(call)
    assert (first.to_number, first.attempt, first.status) == (FIRST_DESTINATION, 0, "busy")
    assert (second.to_number, second.attempt, second.status) == (SECOND_DESTINATION, 1, "completed")
    assert call.attempt == 1
    assert call.agent_answered_at == second.answered_at
    assert call.talk_seconds == TALK_SECONDS
    assert result.heard_by("agent") == [whisper("hunt-to-second-number")]
    if strategy == Strategy.CONFERENCE:
        ringing = [r.json["to"][0]["number"] for r in vonage.create_requests()]
        assert ringing == [FIRST_DESTINATION, SECOND_DESTINATION]
        assert vonage.transfers() == []
    else:
        assert vonage.requests == []


def check_after_hours(result: Result, vonage: FakeVonageAPI, strategy: str) -> None:
    call = result.call
    assert result.heard_by("caller") == [DEFAULT_CLOSED_MESSAGE]
    assert agents(call) == []
    assert vonage.requests == []


def check_unknown_number(result: Result, vonage: FakeVonageAPI, strategy: str) -> None:
    call = result.call
    assert call.number_status == NumberStatus.UNKNOWN
    assert call.campaign is None
    assert call.strategy == Strategy.CONFERENCE
    assert call.whisper_text == "Incoming call to an unrecognised number, 4 4 7 7 0 0 9 0 0 1 9 9."
    assert result.heard_by("agent") == [call.whisper_text]
    (create,) = vonage.create_requests()
    assert create.json["to"] == [{"type": "phone", "number": FIRST_DESTINATION}]  # CALL_CENTER_NUMBER


def check_api_down(result: Result, vonage: FakeVonageAPI, strategy: str) -> None:
    call = result.call
    (agent,) = agents(call)
    assert agent.answered_at is not None
    assert call.talk_seconds == TALK_SECONDS
    if strategy == Strategy.CONFERENCE:
        # The agent call could not be placed: the checkpoint after the greeting connects
        # the caller straight through, with no REST request (the API is down).
        assert [(r.route, r.status) for r in vonage.requests] == [("create", 500)]
        assert "500" in call.agent_call_error
        assert [action["action"] for action in call.caller_ncco] == ["talk", "notify", "conversation"]
        assert result.heard_by("caller")[:2] == [DEFAULT_GREETING, "Connecting you now."]
        assert "hold music" not in result.heard_by("caller")
        assert call.whisper_text == ""
        assert result.heard_by("agent") == []
    else:
        # Nothing on the connect strategy's path needs the REST API: the API being down
        # changes nothing for the caller or the agent.
        assert vonage.requests == []
        assert call.agent_call_error == ""
        assert result.heard_by("agent") == [whisper("api-down")]


def check_call_back(result: Result, vonage: FakeVonageAPI, strategy: str) -> None:
    call = result.call
    missed = call.callback_of
    assert (call.direction, missed.outcome, missed.direction) == ("callback", Outcome.MISSED, "inbound")
    assert call.caller_number == missed.caller_number
    assert call.placed_by.staff_profile.phone == STAFF_PHONE
    # The staff member's phone was rung through the SDK, from the campaign's number.
    staff_call = vonage.requests_for("create")[-1].json
    assert staff_call["to"] == [{"type": "phone", "number": STAFF_PHONE}]
    assert staff_call["from"] == {"type": "phone", "number": missed.called_number}
    assert "/answer_callback?" in staff_call["answer_url"][0]
    (staff,) = agents(call)
    assert (staff.to_number, staff.status) == (STAFF_PHONE, "completed")
    assert result.heard_by("staff member") == [call.whisper_text]
    assert call.whisper_text.startswith("Calling back a caller who missed the call-back scenario, at ")
    # The caller was connected from the campaign's number, answered and talked.
    reached = caller(call)
    assert (reached.to_number, reached.from_number) == (missed.caller_number, missed.called_number)
    assert reached.answered_at is not None
    assert call.talk_seconds == TALK_SECONDS


CHECKS: dict[str, Callable[[Result, FakeVonageAPI, str], None]] = {
    "answered": check_answered,
    "agent-busy": check_agent_busy,
    "agent-no-answer": check_agent_no_answer,
    "agent-voicemail": check_agent_voicemail,
    "agent-declines": check_agent_declines,
    "caller-hangs-up-while-ringing": check_caller_hangs_up_while_ringing,
    "caller-hangs-up-during-whisper": check_caller_hangs_up_during_whisper,
    "agent-hangs-up": check_agent_hangs_up,
    "hunt-to-second-number": check_hunt_to_second_number,
    "after-hours": check_after_hours,
    "unknown-number": check_unknown_number,
    "api-down": check_api_down,
    "call-back": check_call_back,
}


def cases() -> list[object]:
    params = []
    for name, scenario in SCENARIOS.items():
        for strategy in Strategy.values:
            reason = scenario.not_for.get(strategy)
            marks = [pytest.mark.skip(reason=f"{name} with {strategy}: {reason}")] if reason else []
            params.append(pytest.param(name, strategy, id=f"{name}-{strategy}", marks=marks))
    return params


def test_every_scenario_has_its_checks() -> None:
    assert CHECKS.keys() == SCENARIOS.keys()


@pytest.mark.parametrize(("name", "strategy"), cases())
def test_scenario(name: str, strategy: str, vonage: FakeVonageAPI) -> None:
    result = play(name, strategy, vonage)

    call = result.call
    assert call is not None
    assert call.outcome == SCENARIOS[name].expected
    assert call.state == CallState.ENDED
    assert all(leg.status not in ("new", "started", "ringing", "answered") for leg in call.legs.all())
    if not SCENARIOS[name].unknown_number and not SCENARIOS[name].callback:
        assert call.strategy == strategy
    # Every status event once, attached to its leg, however it was delivered.
    delivered = set(result.status_events)
    assert len(result.status_events) > len(delivered), "the engine redelivers one event per call"
    stored = CallEvent.objects.filter(leg_uuid__in=result.leg_uuids, kind__in=("status", "detection"))
    assert sorted(stored.values_list("leg_uuid", "status")) == sorted(delivered)
    assert not stored.filter(leg__isnull=True).exists()
    assert set(stored.values_list("call_id", flat=True)) == {call.pk}
    CHECKS[name](result, vonage, strategy)


def test_webhooks_are_signed_when_a_signature_secret_is_set(vonage: FakeVonageAPI, settings: Settings) -> None:
    settings.VONAGE_SIGNATURE_SECRET = "a-signature-secret-of-32-bytes-or-more"

    result = play("agent-busy", Strategy.CONFERENCE, vonage)

    # An unsigned webhook would have been refused with 401: the outcome proves they were signed.
    assert result.call.outcome == Outcome.VOICEMAIL


def test_a_caller_left_on_hold_is_reported(vonage: FakeVonageAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    # Break the app: nobody moves the caller on when the agent is busy.
    monkeypatch.setattr(call_flow, "caller_to_fallback", lambda **kwargs: False)
    lines: list[str] = []

    result = run_scenario(SCENARIOS["agent-busy"], fake=vonage, narrate=lines.append, strategy=Strategy.CONFERENCE)

    assert not result.ok
    assert result.problems == [
        f"the caller was left in conversation {result.call.conference_name} with nothing more happening"
    ]
    assert any("PROBLEM" in line for line in lines)
    assert result.verdict.endswith("FAILED")
