"""How a leg's status moves: forward only, whatever order Vonage delivers events in.

Vonage does not guarantee order: ``started`` and ``ringing`` arrive swapped, a failure
status can arrive after ``completed`` (a real sequence was ``busy → started → ringing →
completed``), and events are duplicated or lost. So each status has a rank, a leg only
takes a status ranked above the one it has, and the failure statuses, which say *why*
a leg ended, rank above ``completed``. Any order of the same events leaves the leg in
the same state.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.dateparse import parse_datetime

from .models import CallLeg, LegStatus

STATUS_RANK: dict[str, int] = {
    LegStatus.NEW: 0,
    LegStatus.STARTED: 10,
    LegStatus.RINGING: 20,
    LegStatus.ANSWERED: 30,
    LegStatus.COMPLETED: 40,
    LegStatus.BUSY: 50,
    LegStatus.CANCELLED: 50,
    LegStatus.UNANSWERED: 50,
    LegStatus.REJECTED: 50,
    LegStatus.FAILED: 50,
    LegStatus.TIMEOUT: 50,
}
FAILURE_STATUSES = frozenset(s for s, rank in STATUS_RANK.items() if rank == 50)
TERMINAL_STATUSES = FAILURE_STATUSES | {LegStatus.COMPLETED}
# Answering-machine detection reports on the leg without changing its status.
DETECTION_STATUSES = frozenset({"human", "machine"})
KNOWN_STATUSES = frozenset(STATUS_RANK) | DETECTION_STATUSES


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


@dataclass(frozen=True)
class StatusEvent:
    """The fields of a Vonage status event that change a leg."""

    status: str
    timestamp: datetime | None
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None
    price: Decimal | None = None
    rate: Decimal | None = None
    network: str = ""
    detail: str = ""

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "StatusEvent":
        return cls(
            status=str(payload.get("status", "")),
            timestamp=_datetime(payload.get("timestamp")),
            start_time=_datetime(payload.get("start_time")),
            end_time=_datetime(payload.get("end_time")),
            duration=_int(payload.get("duration")),
            price=_decimal(payload.get("price")),
            rate=_decimal(payload.get("rate")),
            network=str(payload.get("network") or "")[:32],
            detail=str(payload.get("detail") or "")[:64],
        )


def apply_status(leg: CallLeg, event: StatusEvent) -> list[str]:
    """Move ``leg`` forward with ``event``; return the names of the fields changed.

    Facts are kept whatever the order: a field is filled when empty, and overwritten
    only by the event that becomes the leg's status (the later, more final report).
    """
    changed: list[str] = []

    def put(field: str, value: Any, *, authoritative: bool) -> None:
        if value in (None, ""):
            return
        current = getattr(leg, field)
        if current in (None, "") or (authoritative and current != value):
            setattr(leg, field, value)
            changed.append(field)

    if event.status in DETECTION_STATUSES:
        put("machine_detected", event.status, authoritative=False)
        return changed

    advances = STATUS_RANK.get(event.status, -1) > STATUS_RANK.get(leg.status, 0)
    if advances:
        leg.status = event.status
        changed.append("status")
    if event.status == LegStatus.STARTED:
        put("started_at", event.timestamp, authoritative=False)
    if event.status == LegStatus.ANSWERED:
        put("answered_at", event.start_time or event.timestamp, authoritative=False)
    if event.status == LegStatus.COMPLETED:
        put("ended_at", event.end_time or event.timestamp, authoritative=True)
        put("duration", event.duration, authoritative=True)
        put("price", event.price, authoritative=True)
        put("rate", event.rate, authoritative=True)
        put("network", event.network, authoritative=True)
        # Vonage bills from start_time, so a completed leg with talk time was answered
        # then, even when the "answered" event (stamped a moment later) was lost.
        if event.duration and event.start_time:
            put("answered_at", event.start_time, authoritative=True)
    if event.status in FAILURE_STATUSES:
        put("detail", event.detail, authoritative=False)
        put("ended_at", event.timestamp, authoritative=False)
    if event.status not in (LegStatus.COMPLETED,) and event.rate is not None:
        put("rate", event.rate, authoritative=False)
    return changed


def _datetime(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value.replace(" ", "T", 1) if "T" not in value else value)
    except ValueError:
        return None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed is not None:
        try:
            # Stored in UTC: an offset that pushes year 1 or 9999 out of range is not a time.
            parsed.astimezone(UTC)
        except OverflowError:
            return None
    return parsed


def _int(value: Any) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    # Stored in a PositiveIntegerField (PostgreSQL's integer).
    return number if 0 <= number <= 2_147_483_647 else None


def _decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and abs(number) < Decimal("10000") else None
