"""Report queries: which adverts make the phone ring, and what happened to the calls.

Every figure is computed by the database from ``Call.outcome`` (defined once, in
``calls.models.Outcome``), so the report, the call list's filters and the CSV export
count the same calls. The queries use the ``(campaign, started_at)`` and
``(tracking_number, started_at)`` indexes; medians are computed by PostgreSQL
(``percentile_cont``) and, on SQLite, from the wait times of the answered calls.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import Avg, Count, Exists, FloatField, OuterRef, Q, QuerySet
from django.db.models.aggregates import Aggregate
from django.db.models.functions import TruncDate

from .models import Call, Outcome

# The outcome columns of every report and export, in the order people read them.
REPORT_OUTCOMES: tuple[str, ...] = (
    Outcome.ANSWERED,
    Outcome.MISSED,
    Outcome.BUSY,
    Outcome.DECLINED,
    Outcome.FAILED,
    Outcome.VOICEMAIL,
    Outcome.ABANDONED,
    Outcome.CLOSED,
    Outcome.IN_PROGRESS,
)


class Median(Aggregate):
    """PostgreSQL's ``percentile_cont(0.5)``: the median of a column."""

    function = "PERCENTILE_CONT"
    name = "median"
    output_field = FloatField()
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"


@dataclass(frozen=True)
class ReportPeriod:
    """Whole days ``start`` to ``end`` inclusive, in the site's time zone."""

    start: date
    end: date

    @classmethod
    def last_days(cls, days: int, *, today: date | None = None) -> ReportPeriod:
        today = today or datetime.now(ZoneInfo(settings.TIME_ZONE)).date()
        return cls(start=today - timedelta(days=days - 1), end=today)

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=ZoneInfo(settings.TIME_ZONE))

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=ZoneInfo(settings.TIME_ZONE))

    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]


@dataclass
class ReportRow:
    """One line of the report: a campaign, or one of its numbers (``source``)."""

    key: Any
    label: str
    campaign_id: int | None
    tracking_number_id: int | None = None
    calls: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    median_wait: float | None = None
    mean_wait: float | None = None
    mean_talk: float | None = None
    first_time_callers: int = 0

    @property
    def answered(self) -> int:
        return self.outcomes.get(Outcome.ANSWERED, 0)

    @property
    def answer_rate(self) -> float | None:
        """Answered calls as a share of the calls that reached the point of ringing an
        agent: closed (out of hours) and still-running calls are left out."""
        settled = self.calls - self.outcomes.get(Outcome.CLOSED, 0) - self.outcomes.get(Outcome.IN_PROGRESS, 0)
        return self.answered / settled if settled else None


def calls_in(period: ReportPeriod, *, campaign_id: int | None = None) -> QuerySet[Call]:
    """The calls a report over ``period`` counts: what "every number links to" filters."""
    calls = Call.objects.filter(started_at__gte=period.since, started_at__lt=period.until)
    if campaign_id is not None:
        calls = calls.filter(campaign_id=campaign_id)
    return calls


def campaign_rows(period: ReportPeriod, *, campaign_id: int | None = None) -> list[ReportRow]:
    """One row per campaign (calls to unknown numbers together under "No campaign")."""
    rows = _rows(calls_in(period, campaign_id=campaign_id), group=("campaign_id", "campaign__name"))
    for row in rows:
        row.key = row.campaign_id
        row.label = row.label or "No campaign (unknown numbers)"
    return rows


def source_rows(period: ReportPeriod, *, campaign_id: int | None = None) -> list[ReportRow]:
    """One row per tracking number: which advert made the phone ring."""
    rows = _rows(
        calls_in(period, campaign_id=campaign_id),
        group=("tracking_number_id", "tracking_number__number", "source", "campaign_id"),
    )
    return rows


def daily_outcomes(period: ReportPeriod, *, campaign_id: int | None = None) -> list[tuple[date, dict[str, int]]]:
    """Calls per day and outcome, every day of the period present (zeros included)."""
    counts: dict[date, dict[str, int]] = {day: dict.fromkeys(REPORT_OUTCOMES, 0) for day in period.days()}
    rows = (
        calls_in(period, campaign_id=campaign_id)
        .annotate(day=TruncDate("started_at", tzinfo=ZoneInfo(settings.TIME_ZONE)))
        .values("day", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        if row["day"] in counts:
            counts[row["day"]][row["outcome"]] = row["n"]
    return sorted(counts.items())


def totals(rows: Iterable[ReportRow]) -> ReportRow:
    """The whole report's line (medians are not additive: only counts are summed here)."""
    total = ReportRow(key="total", label="All calls", campaign_id=None)
    for row in rows:
        total.calls += row.calls
        total.first_time_callers += row.first_time_callers
        for outcome, n in row.outcomes.items():
            total.outcomes[outcome] = total.outcomes.get(outcome, 0) + n
    return total


def _rows(calls: QuerySet[Call], *, group: tuple[str, ...]) -> list[ReportRow]:
    earlier_call = Call.objects.filter(
        campaign_id=OuterRef("campaign_id"),
        caller_number=OuterRef("caller_number"),
        started_at__lt=OuterRef("started_at"),
    )
    counts: dict[str, Any] = {f"n_{o}": Count("id", filter=Q(outcome=o)) for o in REPORT_OUTCOMES}
    answered = Q(outcome=Outcome.ANSWERED)
    aggregates: dict[str, Any] = {
        "calls": Count("id"),
        **counts,
        "mean_wait": Avg("wait_seconds", filter=answered),
        "mean_talk": Avg("talk_seconds", filter=answered),
        # A withheld number cannot be told apart from others: not counted as first-time.
        "first_time": Count("id", filter=Q(first_time=True) & ~Q(caller_number="")),
    }
    postgres = connection.vendor == "postgresql"
    if postgres:
        aggregates["median_wait"] = Median("wait_seconds", filter=answered)
    grouped = calls.annotate(first_time=~Exists(earlier_call)).values(*group).annotate(**aggregates).order_by(*group)
    rows: list[ReportRow] = []
    for values in grouped:
        row = ReportRow(
            key=tuple(values[g] for g in group),
            label=_label(values),
            campaign_id=values.get("campaign_id"),
            tracking_number_id=values.get("tracking_number_id"),
            calls=values["calls"],
            outcomes={o: values[f"n_{o}"] for o in REPORT_OUTCOMES},
            median_wait=values.get("median_wait"),
            mean_wait=values["mean_wait"],
            mean_talk=values["mean_talk"],
            first_time_callers=values["first_time"],
        )
        rows.append(row)
    if not postgres:
        _medians_in_python(calls, group, rows)
    return rows


def _medians_in_python(calls: QuerySet[Call], group: tuple[str, ...], rows: list[ReportRow]) -> None:
    waits: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    answered = calls.filter(outcome=Outcome.ANSWERED, wait_seconds__isnull=False)
    for values in answered.values(*group, "wait_seconds").order_by().iterator(chunk_size=5000):
        waits[tuple(values[g] for g in group)].append(values["wait_seconds"])
    for row in rows:
        found = waits.get(row.key)
        row.median_wait = float(statistics.median(found)) if found else None


def _label(values: dict[str, Any]) -> str:
    if "tracking_number__number" in values:
        number = values["tracking_number__number"]
        source = values.get("source") or ""
        if number is None:
            return "Unknown numbers"
        return f"+{number}" + (f" ({source})" if source else "")
    return values.get("campaign__name") or ""


def csv_rows(rows: Iterable[ReportRow]) -> Iterator[list[Any]]:
    """The report as CSV lines: the header, then one line per row."""
    yield [
        "row",
        "calls",
        *[Outcome(o).label for o in REPORT_OUTCOMES],
        "answer rate",
        "median wait to answer (s)",
        "mean wait to answer (s)",
        "mean talk (s)",
        "first-time callers",
    ]
    for row in rows:
        rate = row.answer_rate
        yield [
            row.label,
            row.calls,
            *[row.outcomes.get(o, 0) for o in REPORT_OUTCOMES],
            f"{rate:.3f}" if rate is not None else "",
            _number(row.median_wait),
            _number(row.mean_wait),
            _number(row.mean_talk),
            row.first_time_callers,
        ]


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


__all__ = [
    "REPORT_OUTCOMES",
    "ReportPeriod",
    "ReportRow",
    "calls_in",
    "campaign_rows",
    "csv_rows",
    "daily_outcomes",
    "source_rows",
    "totals",
]
