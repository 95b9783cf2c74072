"""A call as a supervisor reads it: greeting, on hold, agent ringing, whisper, talking,
ended, each with when it started and how long it lasted.

Built from what the call and its legs recorded (Vonage's own times); the greeting's and
the whisper's lengths are estimated from their text, as the whisper preview does.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaigns.whisper import speaking_seconds

from .models import Call, CallLeg, LegRole, LegStatus, Outcome


@dataclass(frozen=True)
class Step:
    """One line of the timeline."""

    label: str
    at: datetime | None
    seconds: float | None = None
    detail: str = ""
    estimated: bool = False


def minutes_seconds(seconds: float | None) -> str:
    """A duration as people read it on a phone bill: ``6:23``; "–" when unknown."""
    if seconds is None:
        return "–"
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def _greeting_text(ncco: Any) -> str:
    """The first thing the caller was told: the first talk action of their NCCO."""
    if isinstance(ncco, list):
        for action in ncco:
            if isinstance(action, dict) and action.get("action") == "talk":
                return str(action.get("text") or "")
    return ""


RING_RESULTS: dict[str, str] = {
    LegStatus.ANSWERED: "answered",
    LegStatus.COMPLETED: "answered",
    LegStatus.BUSY: "busy",
    LegStatus.UNANSWERED: "no answer",
    LegStatus.TIMEOUT: "no answer",
    LegStatus.REJECTED: "rejected",
    LegStatus.FAILED: "could not be rung",
    LegStatus.CANCELLED: "stopped ringing: the caller had gone",
}


def call_timeline(
    call: Call, legs: Sequence[CallLeg], *, shown: Callable[[str], str], number: Callable[[str], str]
) -> list[Step]:
    """The call's steps in order. ``shown`` gives a spoken text as this reader may see it
    (the greeting and the whisper may read out the caller's number: masked for those who
    may not see it) and ``number`` formats a destination."""
    steps: list[Step] = []
    greeting = _greeting_text(call.caller_ncco)
    greeting_seconds = speaking_seconds(greeting) if greeting else 0.0
    if greeting:
        steps.append(Step("Greeting", call.started_at, greeting_seconds, f"“{shown(greeting)}”", estimated=True))
    else:
        steps.append(Step("Call came in", call.started_at))

    answered = call.outcome == Outcome.ANSWERED and call.wait_seconds is not None
    joined_at = call.started_at + timedelta(seconds=call.wait_seconds) if answered and call.wait_seconds else None
    hold_start = call.started_at + timedelta(seconds=greeting_seconds)
    hold_end = joined_at or call.fallback_at or call.ended_at
    if hold_end is not None and hold_end > hold_start:
        music = "with hold music" if call.strategy == "conference" else "hearing it ring"
        steps.append(Step("On hold", hold_start, _between(hold_start, hold_end), f"The caller waits, {music}."))

    agents = sorted(
        (leg for leg in legs if leg.role == LegRole.AGENT),
        key=lambda leg: (leg.attempt or 0, leg.created_at, leg.pk or 0),
    )
    for leg in agents:
        rung_at = leg.started_at or leg.created_at
        result = RING_RESULTS.get(leg.status, "ringing")
        if leg.declined_at is not None:
            result = "declined"
        elif leg.machine_detected == "machine":
            result = "answered by a machine"
        until = leg.answered_at or leg.ended_at
        steps.append(Step("Agent ringing", rung_at, _between(rung_at, until), f"{number(leg.to_number)}: {result}."))
        if leg.answered_at is not None and leg.declined_at is None and leg.machine_detected != "machine":
            if call.whisper_text:
                steps.append(
                    Step(
                        "Whisper",
                        leg.answered_at,
                        speaking_seconds(call.whisper_text),
                        f"The agent hears “{shown(call.whisper_text)}”",
                        estimated=True,
                    )
                )
            if leg.accepted_at is not None:
                steps.append(Step("Agent accepted", leg.accepted_at, None, "The agent pressed 1."))

    if joined_at is not None:
        steps.append(Step("Talking", joined_at, call.talk_seconds, "Caller and agent are connected."))
    if call.fallback_at is not None:
        if call.resolution == Outcome.BLOCKED:
            what = "The caller's number is blocked: they hear that we cannot take the call, and are hung up."
        elif call.outcome == Outcome.VOICEMAIL:
            what = "The caller is asked to leave a voicemail."
        else:
            what = "The caller hears the fallback message."
        steps.append(Step("Fallback", call.fallback_at, _between(call.fallback_at, call.ended_at), what))
    if call.ended_at is not None:
        total = _between(call.started_at, call.ended_at)
        steps.append(Step("Ended", call.ended_at, total, "Whole call, from the first ring."))
    # In the order the caller lived them (the agent is rung while the caller is on hold).
    return steps


def call_summary(call: Call) -> str:
    """One sentence under the outcome: how long the caller waited, and talked."""
    parts = []
    if call.wait_seconds is not None:
        parts.append(f"waited {minutes_seconds(call.wait_seconds)}")
    if call.talk_seconds is not None:
        parts.append(f"talked {minutes_seconds(call.talk_seconds)}")
    if not parts:
        return ""
    return f"The caller {' and '.join(parts)}."
