"""How a leg's status moves: forward only, whatever order Vonage delivers events in.

Vonage does not guarantee order: ``started`` and ``ringing`` arrive swapped, a failure
status can arrive after ``completed`` (a real sequence was ``busy → started → ringing →
completed``), and events are duplicated or lost. So each status has a rank, a leg only
takes a status ranked above the one it has, and the failure statuses, which say *why*
a leg ended, rank above ``completed``. Any order of the same events leaves the leg in
the same state.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
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


# Vonage's times are "now": anything outside these years is not a time a call happened
# at (and two such times would make a wait or talk time beyond any column).
EARLIEST_YEAR = 2000
LATEST_YEAR = 2099
# Stored in a PositiveIntegerField (PostgreSQL's integer).
LARGEST_INT = 2_147_483_647
# Stored in DecimalField(max_digits=12, decimal_places=8): below 10,000, to 8 places.
_DECIMAL_PLACES = Decimal("1E-8")
_DECIMAL_CONTEXT = Context(prec=12, rounding=ROUND_HALF_EVEN)


def _datetime(value: Any) -> datetime | None:
    """An ISO 8601 time (Vonage's ``2020-01-01T12:00:00.000Z``, or a call record's
    ``2020-01-01 12:00:00``, UTC), or None for anything else: not a string, not a
    date, an offset that leaves the calendar, a year outside the plausible ones."""
    if not value or not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = parse_datetime(value.replace(" ", "T", 1) if "T" not in value else value)
    except ValueError:
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        # Stored in UTC: an offset that pushes year 1 or 9999 out of range is not a time.
        in_utc = parsed.astimezone(UTC)
    except OverflowError:
        return None
    return parsed if EARLIEST_YEAR <= in_utc.year <= LATEST_YEAR else None


def _int(value: Any) -> int | None:
    """A whole number of seconds (or bytes) as Vonage writes it (``"12"`` or ``12``), or
    None: negative, beyond the column, a fraction, a bool, text, a list or an object."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        number = int(value)  # int("1" * 5000) is a ValueError too (Python's digit limit)
    except ValueError:
        return None
    return number if 0 <= number <= LARGEST_INT else None


def _decimal(value: Any) -> Decimal | None:
    """A price or rate (``"0.01270000"``) as the column stores it, or None: not finite,
    negative, 10,000 or more, an exponent no arithmetic survives (``1e999999999`` made
    ``decimal.Overflow``, a 503 and a lost event), a bool, a list or an object."""
    if isinstance(value, bool) or not isinstance(value, int | float | str) or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    # Only checks that do no arithmetic (no context, so no Overflow) until it is known small.
    if not number.is_finite() or (number.is_signed() and not number.is_zero()):
        return None
    if number.is_zero():
        return Decimal(0).quantize(_DECIMAL_PLACES)
    # Vonage prices to 8 places, below 10,000: anything else is not a price it sent.
    if not -8 <= number.adjusted() <= 3:
        return None
    return number.quantize(_DECIMAL_PLACES, context=_DECIMAL_CONTEXT)


# Every number and time a Vonage payload carries that we read, with its parser.
PARSED_FIELDS: dict[str, Callable[[Any], object]] = {
    "timestamp": _datetime,
    "start_time": _datetime,
    "end_time": _datetime,
    "duration": _int,
    "price": _decimal,
    "rate": _decimal,
}


def ignored_fields(payload: dict[str, Any], parsed: StatusEvent) -> list[str]:
    """The numbers and times in ``payload`` that are present but unusable (and so left
    out of the leg, while the event itself is stored and applied): the fields
    ``parsed`` (its :class:`StatusEvent`, each field its parser's result) holds as None."""
    return [field for field in PARSED_FIELDS if getattr(parsed, field) is None and payload.get(field) not in (None, "")]
