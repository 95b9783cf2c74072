"""A call's outcome and timings, derived from its legs alone.

Derived, not accumulated: the summary is recomputed from the legs' final facts after
every event, so duplicates and any delivery order give the same result.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .leg_progress import FAILURE_STATUSES, is_terminal
from .models import CallLeg, CallState, LegRole, LegStatus, Outcome

# What a failed agent leg means for the call, in a supervisor's words.
AGENT_FAILURE_OUTCOME: dict[str, str] = {
    LegStatus.BUSY: Outcome.BUSY,
    LegStatus.UNANSWERED: Outcome.MISSED,
    LegStatus.TIMEOUT: Outcome.MISSED,
    LegStatus.REJECTED: Outcome.FAILED,
    LegStatus.FAILED: Outcome.FAILED,
    LegStatus.CANCELLED: Outcome.ABANDONED,
}


@dataclass(frozen=True)
class CallSummary:
    state: str
    outcome: str
    agent_answered_at: datetime | None
    ended_at: datetime | None
    wait_seconds: int | None
    talk_seconds: int | None


def summarize(*, started_at: datetime, state: str, legs: Sequence[CallLeg]) -> CallSummary:
    caller = next((leg for leg in legs if leg.role == LegRole.CALLER), None)
    agents = [leg for leg in legs if leg.role == LegRole.AGENT]
    caller_ended = caller is not None and is_terminal(caller.status)
    caller_end = caller.ended_at if caller is not None else None

    answered = [
        leg
        for leg in agents
        if leg.answered_at is not None
        and (caller_end is None or leg.answered_at <= caller_end)
        and leg.machine_detected != "machine"
    ]
    agent = min(answered, key=lambda leg: leg.answered_at) if answered else None  # type: ignore[arg-type, return-value]
    agent_answered_at = agent.answered_at if agent else None

    ended_at = caller_end if caller_ended else None
    if agent is not None:
        outcome = Outcome.ANSWERED
        new_state = CallState.ENDED if caller_ended else CallState.CONNECTED
    elif caller_ended:
        outcome = _unanswered_outcome(agents)
        new_state = CallState.ENDED
    else:
        outcome = Outcome.IN_PROGRESS
        new_state = state if state in (CallState.WAITING, CallState.DIRECT) else CallState.WAITING

    wait_end = agent_answered_at or ended_at
    wait_seconds = _seconds(started_at, wait_end)
    talk_seconds = None
    if agent_answered_at is not None:
        ends = [t for t in (caller_end, agent.ended_at if agent else None) if t is not None]
        talk_seconds = _seconds(agent_answered_at, min(ends)) if ends else None
    return CallSummary(
        state=new_state,
        outcome=outcome,
        agent_answered_at=agent_answered_at,
        ended_at=ended_at,
        wait_seconds=wait_seconds,
        talk_seconds=talk_seconds,
    )


def _unanswered_outcome(agents: Sequence[CallLeg]) -> str:
    """The caller's leg ended and no agent answered in time: why?"""
    if any(leg.machine_detected == "machine" for leg in agents):
        return Outcome.MISSED
    # The last agent tried decides; with no agent leg at all the call was never placed.
    failures = [leg.status for leg in agents if leg.status in FAILURE_STATUSES]
    if failures:
        return AGENT_FAILURE_OUTCOME.get(failures[-1], Outcome.FAILED)
    if not agents:
        return Outcome.FAILED
    return Outcome.ABANDONED


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds()))
