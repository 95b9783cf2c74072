"""A call's outcome and timings, derived from its legs alone.

Derived, not accumulated: the summary is recomputed from the legs' final facts after
every event, so duplicates and any delivery order give the same result.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

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


def agent_joined_at(leg: CallLeg, *, whisper_seconds: float, accept_required: bool) -> datetime | None:
    """When the agent was put through to the caller: after pressing 1 when that is
    required, otherwise when the whisper had been spoken after answering."""
    if leg.role != LegRole.AGENT or leg.declined_at is not None or leg.machine_detected == "machine":
        return None
    if accept_required:
        return leg.accepted_at
    if leg.answered_at is None:
        return None
    return leg.answered_at + timedelta(seconds=whisper_seconds)


def agent_gave_up(leg: CallLeg, *, whisper_seconds: float, accept_required: bool) -> bool:
    """Whether this agent leg will never be put through: the caller needs the next step."""
    if leg.declined_at is not None or leg.machine_detected == "machine":
        return True
    if leg.status in FAILURE_STATUSES:
        return True
    if leg.status != LegStatus.COMPLETED:
        return False
    joined = agent_joined_at(leg, whisper_seconds=whisper_seconds, accept_required=accept_required)
    # Completed without ever joining: hung up during the whisper, or never pressed 1.
    return joined is None or (leg.ended_at is not None and leg.ended_at < joined)


def summarize(
    *,
    started_at: datetime,
    state: str,
    legs: Sequence[CallLeg],
    whisper_seconds: float = 0.0,
    accept_required: bool = False,
    resolution: str = "",
    fallback_at: datetime | None = None,
) -> CallSummary:
    caller = next((leg for leg in legs if leg.role == LegRole.CALLER), None)
    agents = [leg for leg in legs if leg.role == LegRole.AGENT]
    caller_ended = caller is not None and is_terminal(caller.status)
    caller_end = caller.ended_at if caller is not None else None

    joins = []
    for leg in agents:
        joined = agent_joined_at(leg, whisper_seconds=whisper_seconds, accept_required=accept_required)
        if joined is None or (caller_end is not None and joined > caller_end):
            continue
        if leg.ended_at is not None and leg.ended_at < joined:
            continue
        joins.append((joined, leg))
    joined_at, agent = min(joins, key=lambda pair: pair[0]) if joins else (None, None)

    ended_at = caller_end if caller_ended else None
    outcome: str
    new_state: str
    if agent is not None:
        outcome = Outcome.ANSWERED
        new_state = CallState.ENDED if caller_ended else CallState.CONNECTED
    elif resolution:
        outcome = resolution
        new_state = CallState.ENDED if caller_ended else CallState.FALLBACK
    elif caller_ended:
        outcome = _unanswered_outcome(agents, caller_end)
        new_state = CallState.ENDED
    else:
        outcome = Outcome.IN_PROGRESS
        new_state = state if state in (CallState.WAITING, CallState.DIRECT, CallState.FALLBACK) else CallState.WAITING

    # The caller waits until put through to the agent (after the whisper), or moved on.
    wait_end = joined_at or fallback_at or ended_at
    talk_seconds = None
    if joined_at is not None and agent is not None:
        ends = [t for t in (caller_end, agent.ended_at) if t is not None]
        talk_seconds = _seconds(joined_at, min(ends)) if ends else None
    return CallSummary(
        state=new_state,
        outcome=outcome,
        agent_answered_at=agent.answered_at if agent is not None else None,
        ended_at=ended_at,
        wait_seconds=_seconds(started_at, wait_end),
        talk_seconds=talk_seconds,
    )


def _unanswered_outcome(agents: Sequence[CallLeg], caller_end: datetime | None) -> str:
    """The caller's leg ended and no agent was put through: why? The last agent rung decides."""
    if not agents:
        return Outcome.FAILED
    last = max(agents, key=lambda leg: (leg.attempt or 0, leg.created_at, leg.pk or 0))
    if last.declined_at is not None:
        return Outcome.DECLINED
    if last.machine_detected == "machine":
        return Outcome.MISSED
    if last.status in FAILURE_STATUSES:
        # A leg we cancelled because the caller left ended after the caller did.
        if caller_end is not None and last.ended_at is not None and last.ended_at > caller_end:
            return Outcome.ABANDONED
        return AGENT_FAILURE_OUTCOME.get(last.status, Outcome.FAILED)
    if last.status == LegStatus.COMPLETED and last.answered_at is not None:
        if caller_end is not None and last.ended_at is not None and last.ended_at <= caller_end:
            return Outcome.MISSED  # answered but hung up before taking the call
    return Outcome.ABANDONED


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    seconds = max(0, round((end - start).total_seconds()))
    # Stored in a PositiveIntegerField: a span beyond it comes from an absurd timestamp.
    return seconds if seconds <= 2_147_483_647 else None


def summarize_callback(*, started_at: datetime, legs: Sequence[CallLeg]) -> CallSummary:
    """A call-back (calls/callbacks.py): the staff member's phone is rung first (the
    agent leg), then Vonage's ``connect`` rings the caller (the caller leg). It is
    answered when the *caller's* leg answers; the staff member answering is only the
    start. The caller waits from the call's start until they answer."""
    staff = next((leg for leg in legs if leg.role == LegRole.AGENT), None)
    caller = next((leg for leg in legs if leg.role == LegRole.CALLER), None)
    staff_ended = staff is not None and is_terminal(staff.status)
    caller_ended = caller is not None and is_terminal(caller.status)
    answered_at = caller.answered_at if caller is not None else None

    outcome: str = Outcome.IN_PROGRESS
    state: str = CallState.WAITING
    if answered_at is not None:
        outcome = Outcome.ANSWERED
        state = CallState.ENDED if caller_ended or staff_ended else CallState.CONNECTED
    elif caller_ended and caller is not None:
        outcome = AGENT_FAILURE_OUTCOME.get(caller.status, Outcome.MISSED)
        state = CallState.ENDED
    elif staff_ended and staff is not None and caller is None:
        # The staff member's own phone did not take it, or they hung up before the caller was rung.
        outcome = AGENT_FAILURE_OUTCOME.get(staff.status, Outcome.FAILED if staff.answered_at else Outcome.MISSED)
        state = CallState.ENDED
    ends = [leg.ended_at for leg in legs if leg.ended_at is not None]
    ended_at = max(ends) if state == CallState.ENDED and ends else None
    talk_seconds = None
    if answered_at is not None and caller is not None:
        leg_ends = [t for t in (caller.ended_at, staff.ended_at if staff else None) if t is not None]
        talk_seconds = _seconds(answered_at, min(leg_ends)) if leg_ends else None
    return CallSummary(
        state=state,
        outcome=outcome,
        agent_answered_at=answered_at,
        ended_at=ended_at,
        wait_seconds=_seconds(started_at, answered_at or ended_at),
        talk_seconds=talk_seconds,
    )
