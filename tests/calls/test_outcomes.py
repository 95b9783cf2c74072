"""A call's outcome and timings, derived from its legs' final facts."""

from datetime import UTC, datetime, timedelta

import pytest

from calls.models import CallLeg, CallState, LegRole, LegStatus, Outcome
from calls.outcomes import summarize

START = datetime(2024, 6, 12, 9, 15, tzinfo=UTC)


def s(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def caller(status: str = LegStatus.ANSWERED, ended: float | None = None) -> CallLeg:
    return CallLeg(uuid="caller", role=LegRole.CALLER, status=status, ended_at=s(ended) if ended is not None else None)


def agent(
    status: str = LegStatus.RINGING,
    answered: float | None = None,
    ended: float | None = None,
    machine: str = "",
    uuid: str = "agent",
) -> CallLeg:
    return CallLeg(
        uuid=uuid,
        role=LegRole.AGENT,
        status=status,
        answered_at=s(answered) if answered is not None else None,
        ended_at=s(ended) if ended is not None else None,
        machine_detected=machine,
    )


def test_answered_call_has_wait_and_talk_time() -> None:
    summary = summarize(
        started_at=START,
        state=CallState.WAITING,
        legs=[caller(LegStatus.COMPLETED, ended=125), agent(LegStatus.COMPLETED, answered=9, ended=125)],
    )

    assert summary.outcome == Outcome.ANSWERED
    assert summary.state == CallState.ENDED
    assert summary.agent_answered_at == s(9)
    assert summary.ended_at == s(125)
    assert summary.wait_seconds == 9
    assert summary.talk_seconds == 116


def test_talk_ends_when_the_first_of_caller_and_agent_hangs_up() -> None:
    summary = summarize(
        started_at=START,
        state=CallState.CONNECTED,
        legs=[caller(LegStatus.COMPLETED, ended=130), agent(LegStatus.COMPLETED, answered=10, ended=70)],
    )

    assert summary.talk_seconds == 60


def test_caller_and_agent_talking_is_connected_and_in_no_hurry_to_end() -> None:
    summary = summarize(
        started_at=START, state=CallState.WAITING, legs=[caller(), agent(LegStatus.ANSWERED, answered=8)]
    )

    assert summary.outcome == Outcome.ANSWERED
    assert summary.state == CallState.CONNECTED
    assert summary.ended_at is None
    assert summary.wait_seconds == 8
    assert summary.talk_seconds is None


@pytest.mark.parametrize("state", [CallState.WAITING, CallState.DIRECT])
def test_caller_still_waiting_is_in_progress_and_keeps_its_state(state: str) -> None:
    summary = summarize(started_at=START, state=state, legs=[caller(), agent(LegStatus.RINGING)])

    assert summary.outcome == Outcome.IN_PROGRESS
    assert summary.state == state
    assert summary.wait_seconds is None


@pytest.mark.parametrize(
    ("agent_status", "outcome"),
    [
        (LegStatus.BUSY, Outcome.BUSY),
        (LegStatus.UNANSWERED, Outcome.MISSED),
        (LegStatus.TIMEOUT, Outcome.MISSED),
        (LegStatus.REJECTED, Outcome.FAILED),
        (LegStatus.FAILED, Outcome.FAILED),
        (LegStatus.CANCELLED, Outcome.ABANDONED),
    ],
)
def test_agent_leg_that_ended_unanswered_decides_the_outcome(agent_status: str, outcome: str) -> None:
    summary = summarize(
        started_at=START,
        state=CallState.WAITING,
        legs=[caller(LegStatus.COMPLETED, ended=40), agent(agent_status, ended=30)],
    )

    assert summary.outcome == outcome
    assert summary.state == CallState.ENDED
    assert summary.wait_seconds == 40
    assert summary.talk_seconds is None


def test_caller_hanging_up_while_the_agent_rings_is_abandoned() -> None:
    summary = summarize(
        started_at=START,
        state=CallState.WAITING,
        legs=[caller(LegStatus.COMPLETED, ended=12), agent(LegStatus.RINGING)],
    )

    assert summary.outcome == Outcome.ABANDONED
    assert summary.ended_at == s(12)
    assert summary.wait_seconds == 12


def test_agent_answering_after_the_caller_left_is_not_an_answered_call() -> None:
    summary = summarize(
        started_at=START,
        state=CallState.WAITING,
        legs=[caller(LegStatus.COMPLETED, ended=12), agent(LegStatus.COMPLETED, answered=15, ended=17)],
    )

    assert summary.outcome == Outcome.ABANDONED
    assert summary.agent_answered_at is None
    assert summary.talk_seconds is None


def test_voicemail_picking_up_the_agents_phone_is_missed() -> None:
    summary = summarize(
        started_at=START,
        state=CallState.WAITING,
        legs=[
            caller(LegStatus.COMPLETED, ended=40),
            agent(LegStatus.COMPLETED, answered=20, ended=40, machine="machine"),
        ],
    )

    assert summary.outcome == Outcome.MISSED
    assert summary.agent_answered_at is None


def test_caller_ending_with_no_agent_call_at_all_is_failed() -> None:
    summary = summarize(started_at=START, state=CallState.WAITING, legs=[caller(LegStatus.COMPLETED, ended=3)])

    assert summary.outcome == Outcome.FAILED
    assert summary.state == CallState.ENDED


def test_the_first_agent_to_answer_counts() -> None:
    summary = summarize(
        started_at=START,
        state=CallState.WAITING,
        legs=[
            caller(LegStatus.COMPLETED, ended=100),
            agent(LegStatus.COMPLETED, answered=20, ended=100, uuid="second"),
            agent(LegStatus.COMPLETED, answered=10, ended=50, uuid="first"),
        ],
    )

    assert summary.agent_answered_at == s(10)
    assert summary.talk_seconds == 40


def test_clock_skew_never_gives_negative_seconds() -> None:
    summary = summarize(
        started_at=s(5),
        state=CallState.WAITING,
        legs=[caller(LegStatus.COMPLETED, ended=60), agent(LegStatus.COMPLETED, answered=2, ended=60)],
    )

    assert summary.wait_seconds == 0
