"""When a campaign takes calls: its dates and weekly opening hours, in its own time zone.

A campaign with no opening hours is open around the clock; one with hours is open only
inside them. ``starts_on`` and ``ends_on`` bound the whole campaign (inclusive), in the
campaign's time zone, so an advert that "ends on Sunday" ends at midnight where it ran.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class WeeklyHours:
    """Open from ``opens`` to ``closes`` on ``weekday`` (Monday is 0)."""

    weekday: int
    opens: time
    closes: time


def local_time(at: datetime, timezone_name: str) -> datetime:
    try:
        zone = ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return at.astimezone(zone)


def is_open(
    *,
    at: datetime,
    timezone_name: str,
    hours: Iterable[WeeklyHours],
    starts_on: date | None = None,
    ends_on: date | None = None,
) -> bool:
    """Whether a call arriving ``at`` (timezone-aware) reaches an agent."""
    local = local_time(at, timezone_name)
    if starts_on is not None and local.date() < starts_on:
        return False
    if ends_on is not None and local.date() > ends_on:
        return False
    hours = list(hours)
    if not hours:
        return True
    now = local.time()
    return any(h.weekday == local.weekday() and h.opens <= now < h.closes for h in hours)
