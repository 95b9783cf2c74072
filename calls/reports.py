"""Report queries: which adverts make the phone ring, and what happened to the calls.

Every figure is computed by the database from ``Call.outcome`` (defined once, in
``calls.models.Outcome``), so the report, the call list's filters and the CSV export
count the same calls. The queries scan the period through the ``started_at`` index
and group by outcome; medians come from one read of the answered calls' waits (on a
million calls this beat a ``percentile_cont`` per table: benchmarks/admin_pages.py).
"""

from __future__ import annotations

import io
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, FilteredRelation, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from campaigns.phone import display_number, masked

from .annotations import builtin_tag_ids
from .models import BuiltinTag, Call, CallNote, CallTag, Outcome
from .privacy import masked_text
from .spreadsheets import inert_writer

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
    Outcome.BLOCKED,
    Outcome.IN_PROGRESS,
)

# Calls that never rang an agent, by design or not yet: left out of the answer rate.
# A blocked caller (calls/annotations.py) is not a missed one.
NOT_RINGING_OUTCOMES: tuple[str, ...] = (Outcome.CLOSED, Outcome.BLOCKED, Outcome.IN_PROGRESS)

# Settled calls that rang an agent and were not answered: with the answered calls they
# are what the answer rate divides by (closed and running calls are left out). The live
# board's "missed" and the heatmap's missed calls.
UNANSWERED_OUTCOMES: tuple[str, ...] = (
    Outcome.MISSED,
    Outcome.BUSY,
    Outcome.DECLINED,
    Outcome.FAILED,
    Outcome.VOICEMAIL,
    Outcome.ABANDONED,
)

# One fixed colour per outcome, so a colour means the same thing on every chart. The
# Okabe–Ito palette: the nine stay distinguishable with the common colour blindnesses
# (its black made dark grey, to show on the admin's dark theme too).
OUTCOME_COLORS: dict[str, str] = {
    Outcome.ANSWERED: "#009E73",  # bluish green
    Outcome.MISSED: "#D55E00",  # vermilion
    Outcome.BUSY: "#E69F00",  # orange
    Outcome.DECLINED: "#CC79A7",  # reddish purple
    Outcome.FAILED: "#5F5F5F",  # dark grey
    Outcome.VOICEMAIL: "#0072B2",  # blue
    Outcome.ABANDONED: "#F0E442",  # yellow
    Outcome.CLOSED: "#999999",  # grey
    Outcome.BLOCKED: "#882255",  # wine (Paul Tol's palette: the Okabe–Ito one has no tenth)
    Outcome.IN_PROGRESS: "#56B4E9",  # sky blue
}


@dataclass(frozen=True)
class ReportPeriod:
    """Whole days ``start`` to ``end`` inclusive, in the site's time zone (TIME_ZONE), or
    in ``zone`` (a campaign's own, for a report on that campaign)."""

    start: date
    end: date
    zone: str = ""

    @classmethod
    def last_days(cls, days: int, *, today: date | None = None) -> ReportPeriod:
        today = today or datetime.now(ZoneInfo(settings.TIME_ZONE)).date()
        return cls(start=today - timedelta(days=days - 1), end=today)

    @property
    def time_zone(self) -> str:
        return self.zone or settings.TIME_ZONE

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=self.tz)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=self.tz)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    @property
    def param(self) -> str:
        """The period in a URL: ``2026-11-01..2026-11-30``, with ``@Asia/Tokyo`` when it is
        in a campaign's own time zone (read back by :meth:`from_param`)."""
        text = f"{self.start.isoformat()}..{self.end.isoformat()}"
        return f"{text}@{self.zone}" if self.zone else text

    @classmethod
    def from_param(cls, text: str) -> ReportPeriod:
        """The period :attr:`param` wrote; ``ValueError`` for anything else."""
        days, _, zone = text.partition("@")
        start, separator, end = days.partition("..")
        if not separator:
            raise ValueError(f"{text!r} is not a period written as start..end.")
        if zone:
            try:
                ZoneInfo(zone)
            except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
                raise ValueError(f"{zone!r} is not a time zone.") from exc
        period = cls(start=date.fromisoformat(start), end=date.fromisoformat(end), zone=zone)
        if period.end < period.start:
            raise ValueError(f"The period {text!r} ends before it starts.")
        return period

    def contains(self) -> Q:
        """The calls started in the period: the one definition the report, the call
        list's period filter and the CSV export all use."""
        return Q(started_at__gte=self.since, started_at__lt=self.until)


@dataclass
class ReportRow:
    """One line of the report: a campaign, or one of its numbers (``source``)."""

    key: Any
    label: str
    campaign_id: int | None
    tracking_number_id: int | None = None
    # The number's label when the calls came in (source rows only).
    source: str | None = None
    calls: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    median_wait: float | None = None
    mean_wait: float | None = None
    mean_talk: float | None = None
    first_time_callers: int = 0
    # Calls tagged lead, sale (calls/annotations.py), and the answered calls tagged lead.
    leads: int = 0
    sales: int = 0
    answered_leads: int = 0
    # The sums and counts behind the means, so a total can be worked out from its rows.
    wait_sum: int = 0
    waits: int = 0
    talk_sum: int = 0
    talks: int = 0

    @property
    def answered(self) -> int:
        return self.outcomes.get(Outcome.ANSWERED, 0)

    @property
    def answer_rate(self) -> float | None:
        """Answered calls as a share of the calls that reached the point of ringing an
        agent: closed (out of hours), blocked and still-running calls are left out."""
        settled = self.calls - sum(self.outcomes.get(o, 0) for o in NOT_RINGING_OUTCOMES)
        return self.answered / settled if settled else None

    @property
    def lead_rate(self) -> float | None:
        """Leads as a share of answered calls: the answered calls tagged lead, of all
        the answered calls (a lead from a voicemail is a lead, not an answered one)."""
        return self.answered_leads / self.answered if self.answered else None


# How the two tables group the calls.
CAMPAIGN_GROUP = ("campaign_id", "campaign__name")
SOURCE_GROUP = ("tracking_number_id", "tracking_number__number", "source", "campaign_id")


def not_demo() -> Q:
    """Calls that are not to a demo campaign (``Campaign.is_demo``: the simulator's and
    the demo data's); calls to unknown numbers are real. Lists and reports leave demo
    calls out unless asked to show them."""
    return Q(campaign__isnull=True) | Q(campaign__is_demo=False)


def calls_in(period: ReportPeriod, *, campaign_id: int | None = None, include_demo: bool = False) -> QuerySet[Call]:
    """The calls a report over ``period`` counts: what "every number links to" filters.
    A campaign chosen by id is counted even if it is a demo."""
    calls = Call.objects.filter(period.contains())
    if campaign_id is not None:
        calls = calls.filter(campaign_id=campaign_id)
    elif not include_demo:
        calls = calls.filter(not_demo())
    return calls


def is_first_call() -> Q:
    """True for a call whose caller had not called the campaign before (any time before,
    not only in the period): ``Call.first_call``, decided when the call was recorded."""
    return Q(first_call=True)


def with_tag_links(calls: QuerySet[Call], tags: dict[str, int]) -> QuerySet[Call]:
    """``calls`` with their current lead and sale tags joined (``lead_link``,
    ``sale_link``: NULL when untagged), for counting. A tag is on a call once at a time
    (``calltag_current_once``), so the joins add no rows. Measured on 300,000 calls, a
    LEFT JOIN by the tags' ids costs the report a fraction of what an EXISTS per call
    did (benchmarks/lead_report.py). ``tags``: :func:`calls.annotations.builtin_tag_ids`."""
    current = Q(tag_links__removed_at__isnull=True)
    return calls.annotate(
        lead_link=FilteredRelation("tag_links", condition=current & Q(tag_links__tag_id=tags.get(BuiltinTag.LEAD, 0))),
        sale_link=FilteredRelation("tag_links", condition=current & Q(tag_links__tag_id=tags.get(BuiltinTag.SALE, 0))),
    )


def first_time_calls(calls: QuerySet[Call]) -> QuerySet[Call]:
    """The calls the report counts as first-time callers. A withheld number cannot be
    told apart from others, so it is never a first-time caller (nor a returning one)."""
    return calls.filter(is_first_call()).exclude(caller_number="")


def returning_calls(calls: QuerySet[Call]) -> QuerySet[Call]:
    """Calls from a number that had called the campaign before."""
    return calls.exclude(is_first_call()).exclude(caller_number="")


def campaign_rows(
    period: ReportPeriod,
    *,
    campaign_id: int | None = None,
    medians: bool = True,
    include_demo: bool = False,
    tags: dict[str, int] | None = None,
) -> list[ReportRow]:
    """One row per campaign (calls to unknown numbers together under "No campaign")."""
    rows = _rows(
        calls_in(period, campaign_id=campaign_id, include_demo=include_demo),
        group=CAMPAIGN_GROUP,
        medians=medians,
        tags=tags,
    )
    for row in rows:
        row.label = row.label or "No campaign (unknown numbers)"
    return rows


def source_rows(
    period: ReportPeriod,
    *,
    campaign_id: int | None = None,
    medians: bool = True,
    include_demo: bool = False,
    tags: dict[str, int] | None = None,
) -> list[ReportRow]:
    """One row per tracking number: which advert made the phone ring."""
    return _rows(
        calls_in(period, campaign_id=campaign_id, include_demo=include_demo),
        group=SOURCE_GROUP,
        medians=medians,
        tags=tags,
    )


def daily_outcomes(
    period: ReportPeriod, *, campaign_id: int | None = None, include_demo: bool = False
) -> list[tuple[date, dict[str, int]]]:
    """Calls per day and outcome, every day of the period present (zeros included)."""
    counts: dict[date, dict[str, int]] = {day: dict.fromkeys(REPORT_OUTCOMES, 0) for day in period.days()}
    rows = (
        calls_in(period, campaign_id=campaign_id, include_demo=include_demo)
        .annotate(day=TruncDate("started_at", tzinfo=period.tz))
        .values("day", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        if row["day"] in counts:
            counts[row["day"]][row["outcome"]] = row["n"]
    return sorted(counts.items())


def totals(rows: Iterable[ReportRow]) -> ReportRow:
    """The whole report's line: counts and means, from the rows (medians are not
    additive: :func:`report_tables` adds the median)."""
    total = ReportRow(key="total", label="All calls", campaign_id=None)
    for row in rows:
        total.calls += row.calls
        total.first_time_callers += row.first_time_callers
        total.leads += row.leads
        total.sales += row.sales
        total.answered_leads += row.answered_leads
        total.wait_sum += row.wait_sum
        total.waits += row.waits
        total.talk_sum += row.talk_sum
        total.talks += row.talks
        for outcome, n in row.outcomes.items():
            total.outcomes[outcome] = total.outcomes.get(outcome, 0) + n
    _means(total)
    return total


def _means(row: ReportRow) -> None:
    row.mean_wait = row.wait_sum / row.waits if row.waits else None
    row.mean_talk = row.talk_sum / row.talks if row.talks else None


def _rows(
    calls: QuerySet[Call], *, group: tuple[str, ...], medians: bool = True, tags: dict[str, int] | None = None
) -> list[ReportRow]:
    """The rows for ``group``: one narrow grouped query by group *and outcome* (plain
    aggregates, pivoted here), then the medians of the answered calls. On a million
    calls this is several times faster than one query computing fifteen filtered
    aggregates per group. ``tags``: the built-in tags' ids, looked up when not given."""
    answered = Outcome.ANSWERED
    grouped = (
        with_tag_links(calls, builtin_tag_ids() if tags is None else tags)
        .values(*group, "outcome")
        .annotate(
            n=Count("id"),
            wait_sum=Sum("wait_seconds", default=0),
            waits=Count("wait_seconds"),
            talk_sum=Sum("talk_seconds", default=0),
            talks=Count("talk_seconds"),
            # A withheld number cannot be told apart from others: not counted as first-time.
            first_time=Count("id", filter=is_first_call() & ~Q(caller_number="")),
            leads=Count("lead_link"),
            sales=Count("sale_link"),
        )
        # No ORDER BY: PostgreSQL can hash the groups; the rows are sorted below.
        .order_by()
    )
    rows: dict[tuple[Any, ...], ReportRow] = {}
    for values in grouped:
        key = tuple(values[g] for g in group)
        row = rows.get(key)
        if row is None:
            row = rows[key] = ReportRow(
                key=key,
                label=_label(values),
                campaign_id=values.get("campaign_id"),
                tracking_number_id=values.get("tracking_number_id"),
                source=values.get("source"),
                outcomes=dict.fromkeys(REPORT_OUTCOMES, 0),
            )
        row.calls += values["n"]
        row.outcomes[values["outcome"]] = row.outcomes.get(values["outcome"], 0) + values["n"]
        row.first_time_callers += values["first_time"]
        row.leads += values["leads"]
        row.sales += values["sales"]
        if values["outcome"] == answered:
            row.wait_sum += values["wait_sum"]
            row.waits += values["waits"]
            row.talk_sum += values["talk_sum"]
            row.talks += values["talks"]
            row.answered_leads += values["leads"]
    result = sorted(rows.values(), key=lambda row: (row.label == "", row.label))
    for row in result:
        _means(row)
    if medians:
        _medians(calls, group, result)
    return result


@dataclass
class ReportTables:
    """Everything the report page and its CSV show, from five queries."""

    campaigns: list[ReportRow]
    sources: list[ReportRow]
    total: ReportRow
    # The built-in tags' ids (calls.annotations.builtin_tag_ids): the leads' and sales' links.
    tags: dict[str, int] = field(default_factory=dict)


def report_tables(period: ReportPeriod, *, campaign_id: int | None = None, include_demo: bool = False) -> ReportTables:
    """Both tables and the total line. The medians of all three come from one read of
    the answered calls' waits, grouped here: cheaper than a ``percentile_cont`` query
    per table once the period holds tens of thousands of calls."""
    tags = builtin_tag_ids()
    campaigns = campaign_rows(period, campaign_id=campaign_id, medians=False, include_demo=include_demo, tags=tags)
    sources = source_rows(period, campaign_id=campaign_id, medians=False, include_demo=include_demo, tags=tags)
    calls = calls_in(period, campaign_id=campaign_id, include_demo=include_demo)
    total = totals(campaigns)
    total.campaign_id = campaign_id
    by_campaign: dict[int | None, list[int]] = defaultdict(list)
    by_source: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    every: list[int] = []
    answered = calls.filter(outcome=Outcome.ANSWERED, wait_seconds__isnull=False).order_by()
    for campaign, number, source, wait in answered.values_list(
        "campaign_id", "tracking_number_id", "source", "wait_seconds"
    ).iterator(chunk_size=10_000):
        if wait is None:  # excluded above; for the type checker
            continue
        by_campaign[campaign].append(wait)
        by_source[(number, source, campaign)].append(wait)
        every.append(wait)
    for row in campaigns:
        row.median_wait = _median(by_campaign.get(row.campaign_id))
    for row in sources:
        row.median_wait = _median(by_source.get((row.tracking_number_id, row.source, row.campaign_id)))
    total.median_wait = _median(every)
    return ReportTables(campaigns=campaigns, sources=sources, total=total, tags=tags)


def _median(values: list[int] | None) -> float | None:
    return float(statistics.median(values)) if values else None


def _medians(calls: QuerySet[Call], group: tuple[str, ...], rows: list[ReportRow]) -> None:
    waits: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    answered = calls.filter(outcome=Outcome.ANSWERED, wait_seconds__isnull=False)
    for values in answered.values(*group, "wait_seconds").order_by().iterator(chunk_size=5000):
        waits[tuple(values[g] for g in group)].append(values["wait_seconds"])
    for row in rows:
        row.median_wait = _median(waits.get(row.key))


def _label(values: dict[str, Any]) -> str:
    if "tracking_number__number" in values:
        number = values["tracking_number__number"]
        source = values.get("source") or ""
        if number is None:
            return "Unknown numbers"
        return display_number(number) + (f" ({source})" if source else "")
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
        "leads",
        "sales",
        "leads of answered calls",
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
            row.leads,
            row.sales,
            f"{row.lead_rate:.3f}" if row.lead_rate is not None else "",
        ]


# The call list as CSV: one line a call, the columns people asked for, in this order.
CALLS_CSV_HEADER: tuple[str, ...] = (
    "start time",
    "campaign",
    "source",
    "called number",
    "caller",
    "outcome",
    "state",
    "wait (s)",
    "talk (s)",
    "whisper, as spoken",
    "tags",
    "notes",
)
_CALLS_CSV_FIELDS = (
    "id",
    "started_at",
    "campaign__name",
    "source",
    "called_number",
    "caller_number",
    "outcome",
    "state",
    "wait_seconds",
    "talk_seconds",
    "whisper_text",
)
# Rows fetched from the database at a time, and written out as one piece.
CALLS_CSV_CHUNK = 2000


def calls_csv(calls: QuerySet[Call], *, mask_callers: bool = False) -> Iterator[str]:
    """``calls`` as CSV text, in pieces of :data:`CALLS_CSV_CHUNK` lines.

    Memory stays the same whatever the number of calls: the rows are read as tuples
    (``values_list``, no model instances) through a database cursor that fetches a
    chunk at a time (``iterator``; a server-side cursor on PostgreSQL), and each piece
    is handed on before the next is read. The tags and notes of a piece's calls come
    from two queries per piece, not per call. Times are ISO 8601 in the site's time
    zone; the caller is the number as stored, so empty once redacted; with
    ``mask_callers`` (staff who may not see callers' numbers) masked, in the whisper and
    the notes too. Tags are the ones on the call now, by name; notes are
    ``time author: text``, one a line, oldest first.
    """
    zone = ZoneInfo(settings.TIME_ZONE)
    outcome_labels = dict(Outcome.choices)
    buffer = io.StringIO()
    writer = inert_writer(buffer)  # every cell inert: calls/spreadsheets.py
    writer.writerow(CALLS_CSV_HEADER)
    rows = calls.values_list(*_CALLS_CSV_FIELDS).iterator(chunk_size=CALLS_CSV_CHUNK)
    for chunk in _chunks(rows, CALLS_CSV_CHUNK):
        ids = [row[0] for row in chunk]
        tags, notes = _tags_and_notes(ids, zone=zone)
        for pk, started, campaign, source, called, caller, outcome, state, wait, talk, whisper in chunk:
            written = notes.get(pk, "")
            writer.writerow(
                (
                    started.astimezone(zone).isoformat(timespec="seconds"),
                    campaign or "",
                    source,
                    called,
                    masked(caller) if mask_callers and caller else caller,
                    outcome_labels.get(outcome, outcome),
                    state,
                    wait,
                    talk,
                    masked_text(whisper, caller) if mask_callers else whisper,
                    ", ".join(tags.get(pk, [])),
                    masked_text(written, caller) if mask_callers else written,
                )
            )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if rest := buffer.getvalue():  # the header, when there is no call
        yield rest


def _chunks(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _tags_and_notes(ids: list[int], *, zone: ZoneInfo) -> tuple[dict[int, list[str]], dict[int, str]]:
    """The current tags' names and the notes (as one text) of the calls ``ids``."""
    tags: dict[int, list[str]] = defaultdict(list)
    current = CallTag.objects.current().filter(call_id__in=ids).order_by("tag__name")
    for call_id, name in current.values_list("call_id", "tag__name"):
        tags[call_id].append(name)
    lines: dict[int, list[str]] = defaultdict(list)
    notes = CallNote.objects.filter(call_id__in=ids).order_by("created_at", "id")
    for call_id, at, username, first, last, text in notes.values_list(
        "call_id", "created_at", "author__username", "author__first_name", "author__last_name", "text"
    ):
        author = f"{first} {last}".strip() or username or "a deleted user"
        lines[call_id].append(f"{at.astimezone(zone).isoformat(timespec='seconds')} {author}: {text}")
    return tags, {call_id: "\n".join(texts) for call_id, texts in lines.items()}


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


__all__ = [
    "CALLS_CSV_HEADER",
    "OUTCOME_COLORS",
    "REPORT_OUTCOMES",
    "UNANSWERED_OUTCOMES",
    "ReportPeriod",
    "ReportRow",
    "calls_csv",
    "calls_in",
    "campaign_rows",
    "csv_rows",
    "daily_outcomes",
    "first_time_calls",
    "is_first_call",
    "not_demo",
    "returning_calls",
    "source_rows",
    "totals",
    "with_tag_links",
]
