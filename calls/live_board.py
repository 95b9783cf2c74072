"""The live board: every call in progress, what is happening on it, and today's totals.

A supervisor's page in the admin (``calls.view_live_board``). The page polls a small
HTML fragment about once a second (``POLL_MS``): plain short requests, so it
works under gunicorn's sync and gthread workers as the README documents (a stream held
open per viewer would take a worker each). Each refresh is **one** SQL statement
(:func:`live_board`): today's totals as a CTE, LEFT JOINed to the calls not ended
(through the partial index ``call_live``) with their campaign and current agent leg.
The wait and talk clocks tick in the browser from the times the fragment carries.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from campaigns.models import Campaign
from campaigns.phone import display_number
from campaigns.whisper import speaking_seconds

from . import privacy
from .models import Call, CallLeg, CallState, LegRole, LegStatus, Outcome
from .reports import UNANSWERED_OUTCOMES, ReportPeriod

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

# How often the page asks for a fresh board: "within 2 s" with a request in flight.
POLL_MS = 1000
# At most this many calls (the longest running) are listed and queued; today's totals count every call.
MAX_ROWS = 500

# The board's "missed": the report's unanswered outcomes, so the two answer rates agree.
NOT_ANSWERED: tuple[str, ...] = UNANSWERED_OUTCOMES


class Phase(enum.Enum):
    """What is happening on a live call, in a supervisor's words."""

    GREETING = "Greeting"
    ON_HOLD = "On hold"
    AGENT_RINGING = "Agent ringing"
    WHISPER = "Whisper"
    TALKING = "Talking"
    FALLBACK = "In the fallback"

    @property
    def waiting(self) -> bool:
        """The caller is waiting for an agent (counted in the campaign's queue)."""
        return self in (Phase.GREETING, Phase.ON_HOLD, Phase.AGENT_RINGING, Phase.WHISPER)

    @property
    def css(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True)
class AgentLeg:
    """The call's current agent leg (the latest attempt), as far as the board needs it."""

    status: str
    attempt: int
    number: str
    answered_at: datetime | None
    accepted_at: datetime | None
    declined_at: datetime | None


@dataclass(frozen=True)
class LiveCall:
    id: int
    campaign_id: int | None
    campaign: str
    source: str
    caller_number: str
    state: str
    started_at: datetime
    phase: Phase
    detail: str
    # The clock shown: what it measures and since when.
    clock_label: str
    clock_since: datetime
    # The campaign's longest wait, for a waiting call's clock.
    max_wait_seconds: int | None


@dataclass(frozen=True)
class TodayTotals:
    day: date
    calls: int = 0
    answered: int = 0
    missed: int = 0

    @property
    def answer_rate(self) -> float | None:
        settled = self.answered + self.missed
        return self.answered / settled if settled else None


@dataclass
class CampaignQueue:
    """Callers waiting for an agent on one campaign."""

    campaign_id: int | None
    name: str
    max_wait_seconds: int | None
    waiting: int = 0
    longest_since: datetime | None = None

    def longest_seconds(self, now: datetime) -> int | None:
        return None if self.longest_since is None else max(0, int((now - self.longest_since).total_seconds()))

    def over(self, now: datetime) -> bool:
        longest = self.longest_seconds(now)
        return longest is not None and self.max_wait_seconds is not None and longest > self.max_wait_seconds


@dataclass
class LiveBoard:
    now: datetime
    today: TodayTotals
    calls: list[LiveCall] = field(default_factory=list)
    queues: list[CampaignQueue] = field(default_factory=list)


# --- what is happening on a call -----------------------------------------------------------


def call_phase(
    *,
    state: str,
    started_at: datetime,
    now: datetime,
    greeting: str,
    whisper_text: str,
    accept_required: bool,
    agent_answered_at: datetime | None,
    fallback_at: datetime | None,
    agent: AgentLeg | None,
) -> tuple[Phase, str, str, datetime]:
    """The phase of a call not ended, a detail line, and its clock (label, since when).

    The state comes from ``calls.outcomes.summarize``; within "waiting" the agent leg and
    the greeting's length tell the phases apart. A connected agent hears the whisper
    first (or the press-1 prompt): the caller is still waiting until it is over, as
    ``summarize`` counts the wait.
    """
    if state == CallState.FALLBACK:
        since = fallback_at or started_at
        return Phase.FALLBACK, "Message or voicemail.", "in the fallback for", since
    if state == CallState.DIRECT:
        return Phase.TALKING, "Put through without a whisper.", "on the call for", started_at
    if state == CallState.CONNECTED:
        answered = agent_answered_at or (agent.answered_at if agent else None)
        if accept_required:
            joined = agent.accepted_at if agent else None
        else:
            joined = answered + timedelta(seconds=speaking_seconds(whisper_text)) if answered else None
        if joined is None or now < joined:
            return Phase.WHISPER, _whisper_detail(agent, accept_required), "waiting for", started_at
        return Phase.TALKING, _agent_detail(agent), "talking for", joined
    if agent is not None and agent.answered_at is not None and agent.declined_at is None:
        if agent.status == LegStatus.ANSWERED:
            return Phase.WHISPER, _whisper_detail(agent, accept_required), "waiting for", started_at
    if agent is not None and agent.status in (LegStatus.STARTED, LegStatus.RINGING):
        return Phase.AGENT_RINGING, _agent_detail(agent), "waiting for", started_at
    if now < started_at + timedelta(seconds=speaking_seconds(greeting)):
        return Phase.GREETING, "The caller hears the campaign's greeting.", "waiting for", started_at
    return Phase.ON_HOLD, "The caller hears the hold music.", "waiting for", started_at


def _agent_detail(agent: AgentLeg | None) -> str:
    if agent is None:
        return ""
    return f"Attempt {agent.attempt + 1}, {display_number(agent.number)}."


def _whisper_detail(agent: AgentLeg | None, accept_required: bool) -> str:
    said = "hears the whisper, then press 1" if accept_required else "hears the whisper"
    return f"The agent answered and {said}. {_agent_detail(agent)}".strip()


# --- the one query ---------------------------------------------------------------------------


def today_bounds(now: datetime) -> tuple[date, datetime, datetime]:
    """Today in the business's time zone (``TIME_ZONE``), as the report counts days."""
    zone = ZoneInfo(settings.TIME_ZONE)
    day = now.astimezone(zone).date()
    since = datetime.combine(day, time.min, tzinfo=zone)
    until = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return day, since, until


def _sql() -> str:
    call, leg, campaign = Call._meta.db_table, CallLeg._meta.db_table, Campaign._meta.db_table
    not_answered = ", ".join(["%s"] * len(NOT_ANSWERED))
    # The totals use the started_at index; the live calls the partial index call_live
    # (the same predicate, so PostgreSQL's planner proves it applies); the agent leg is
    # found per call through the call_id index.
    # Only table names from the models are formatted in; every value is a parameter.
    return f"""
WITH today AS (
    SELECT COUNT(*) AS calls,
           COALESCE(SUM(CASE WHEN outcome = %s THEN 1 ELSE 0 END), 0) AS answered,
           COALESCE(SUM(CASE WHEN outcome IN ({not_answered}) THEN 1 ELSE 0 END), 0) AS missed
    FROM {call}
    WHERE started_at >= %s AND started_at < %s
),
live AS (
    SELECT c.id, c.campaign_id, c.source, c.caller_number, c.state, c.started_at, c.whisper_text,
           c.accept_required, c.agent_answered_at, c.fallback_at,
           p.name AS campaign_name, p.greeting, p.max_wait_seconds,
           a.status AS agent_status, a.attempt AS agent_attempt, a.to_number AS agent_number,
           a.answered_at AS agent_leg_answered_at, a.accepted_at AS agent_accepted_at,
           a.declined_at AS agent_declined_at
    FROM {call} c
    LEFT JOIN {campaign} p ON p.id = c.campaign_id
    LEFT JOIN {leg} a ON a.id = (
        SELECT l.id FROM {leg} l
        WHERE l.call_id = c.id AND l.role = %s
        ORDER BY l.attempt DESC, l.created_at DESC, l.id DESC
        LIMIT 1
    )
    WHERE NOT (c.state = %s)
    ORDER BY c.started_at, c.id
    LIMIT %s
)
SELECT today.calls, today.answered, today.missed, live.*
FROM today LEFT JOIN live ON 1 = 1
ORDER BY live.started_at, live.id
"""  # noqa: S608


def _aware(value: Any) -> datetime | None:
    """A time from a raw cursor: SQLite hands back text or naive UTC, PostgreSQL aware."""
    if value is None:
        return None
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            return None
        value = parsed
    if timezone.is_naive(value):
        return value.replace(tzinfo=UTC)
    return value


def board_statement(now: datetime) -> tuple[str, list[Any]]:
    """The board's one SQL statement and its parameters, as of ``now``."""
    _, since, until = today_bounds(now)
    params: list[Any] = [
        Outcome.ANSWERED,
        *NOT_ANSWERED,
        # As the ORM would write them (SQLite compares UTC text).
        connection.ops.adapt_datetimefield_value(since),
        connection.ops.adapt_datetimefield_value(until),
        LegRole.AGENT,
        CallState.ENDED,
        MAX_ROWS,
    ]
    return _sql(), params


def live_board(*, now: datetime | None = None) -> LiveBoard:
    """The board as of ``now``: one SQL statement, whatever the number of calls."""
    now = now or timezone.now()
    day, _, _ = today_bounds(now)
    sql, params = board_statement(now)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    first = rows[0]
    board = LiveBoard(
        now=now,
        today=TodayTotals(
            day=day, calls=int(first["calls"]), answered=int(first["answered"]), missed=int(first["missed"])
        ),
    )
    queues: dict[int | None, CampaignQueue] = {}
    for row in rows:
        if row["id"] is None:  # no call in progress: the totals' row alone
            continue
        started_at = _aware(row["started_at"]) or now
        agent = None
        if row["agent_status"] is not None:
            agent = AgentLeg(
                status=row["agent_status"],
                attempt=int(row["agent_attempt"] or 0),
                number=row["agent_number"] or "",
                answered_at=_aware(row["agent_leg_answered_at"]),
                accepted_at=_aware(row["agent_accepted_at"]),
                declined_at=_aware(row["agent_declined_at"]),
            )
        phase, detail, clock_label, clock_since = call_phase(
            state=row["state"],
            started_at=started_at,
            now=now,
            greeting=row["greeting"] or "",
            whisper_text=row["whisper_text"] or "",
            accept_required=bool(row["accept_required"]),
            agent_answered_at=_aware(row["agent_answered_at"]),
            fallback_at=_aware(row["fallback_at"]),
            agent=agent,
        )
        campaign_id = row["campaign_id"]
        max_wait = int(row["max_wait_seconds"]) if row["max_wait_seconds"] is not None else None
        live = LiveCall(
            id=int(row["id"]),
            campaign_id=campaign_id,
            campaign=row["campaign_name"] or "No campaign (unknown number)",
            source=row["source"] or "",
            caller_number=row["caller_number"] or "",
            state=row["state"],
            started_at=started_at,
            phase=phase,
            detail=detail,
            clock_label=clock_label,
            clock_since=clock_since,
            max_wait_seconds=max_wait,
        )
        board.calls.append(live)
        queue = queues.get(campaign_id)
        if queue is None:
            queue = queues[campaign_id] = CampaignQueue(
                campaign_id=campaign_id, name=live.campaign, max_wait_seconds=max_wait
            )
        if phase.waiting:
            queue.waiting += 1
            if queue.longest_since is None or started_at < queue.longest_since:
                queue.longest_since = started_at
    board.queues = sorted(queues.values(), key=lambda q: (q.campaign_id is None, q.name))
    return board


# --- who sees the caller's number ---------------------------------------------------------


def caller_display(user: Any, number: str, *, whole: bool | None = None) -> str:
    """The caller's number as this user may see it (``calls.privacy``: whole with
    ``calls.see_caller_numbers``, else masked). ``whole`` is that permission when the
    caller already asked (once for a board of 200 rows)."""
    if whole is None:
        whole = user.has_perm(privacy.SEE_CALLER_NUMBERS)
    return privacy.caller_display(number, visible=whole)


# --- the views -------------------------------------------------------------------------------


def _epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _clock(seconds: int) -> str:
    minutes, rest = divmod(max(0, seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"


def _board_context(request: HttpRequest, board: LiveBoard) -> dict[str, Any]:
    now = board.now
    changelist = reverse("admin:calls_call_changelist")
    period = ReportPeriod(start=board.today.day, end=board.today.day).param
    rate = board.today.answer_rate
    # The rows are written here rather than by the template language: at 200 calls and
    # ten viewers a second, the template's per-variable lookups cost most of a refresh
    # (benchmarks/live_board.py). format_html escapes every value as the template would.
    whole = request.user.has_perm("calls.see_caller_numbers")
    rows = []
    for call in board.calls:
        elapsed = int((now - call.clock_since).total_seconds())
        limit = call.max_wait_seconds if call.phase.waiting else None
        over = limit is not None and elapsed > limit
        rows.append(
            format_html(
                '<tr data-call="{}" data-phase="{}"{}>'
                '<td><a href="{}{}/change/">{}</a></td><td>{}</td><td class="caller">{}</td>'
                '<td><span class="phase phase-{}">{}</span> {}</td>'
                '<td class="number"><span class="clock-label">{}</span> '
                '<span class="clock{}" data-since="{}"{}>{}</span></td></tr>',
                call.id,
                call.phase.css,
                mark_safe(' class="over"') if over else "",
                changelist,
                call.id,
                call.campaign,
                call.source,
                caller_display(request.user, call.caller_number, whole=whole),
                call.phase.css,
                call.phase.value,
                call.detail,
                call.clock_label,
                " over" if over else "",
                _epoch_ms(call.clock_since),
                format_html(' data-limit="{}"', limit) if limit is not None else "",
                _clock(elapsed),
            )
        )
    queues = [
        {
            "queue": queue,
            "since_ms": _epoch_ms(queue.longest_since) if queue.longest_since else None,
            "clock": _clock(queue.longest_seconds(now) or 0),
            "over": queue.over(now),
        }
        for queue in board.queues
    ]
    return {
        "board": board,
        "rows": mark_safe("\n".join(rows)),  # noqa: S308 (each row built by format_html)
        "calls_in_progress": len(rows),
        "queues": queues,
        "now_ms": _epoch_ms(now),
        "answer_rate": "–" if rate is None else f"{rate:.0%}",
        "today_url": f"{changelist}?{urlencode({'period': period})}",
        "answered_url": f"{changelist}?{urlencode({'period': period, 'outcome__exact': Outcome.ANSWERED})}",
        "time_zone": settings.TIME_ZONE,
    }


def _allowed(request: HttpRequest) -> None:
    if not request.user.has_perm("calls.view_live_board"):
        raise PermissionDenied


def board_view(request: HttpRequest, *, model_admin: ModelAdmin[Call]) -> TemplateResponse:
    """The whole page, with the board as it is now (the script then keeps it current)."""
    _allowed(request)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Live board",
        "opts": model_admin.opts,
        "poll_ms": POLL_MS,
        "fragment_url": reverse("admin:calls_call_live_fragment"),
        **_board_context(request, live_board()),
    }
    return TemplateResponse(request, "admin/calls/live_board.html", context)


def fragment_view(request: HttpRequest) -> HttpResponse:
    """The board alone, as HTML the page swaps in: one query after the session's."""
    _allowed(request)
    response = TemplateResponse(request, "admin/calls/live_board_fragment.html", _board_context(request, live_board()))
    response["Cache-Control"] = "no-store"
    return response


def admin_urls(model_admin: ModelAdmin[Call]) -> list[URLPattern]:
    """The board's two URLs, for ``CallAdmin.get_urls``."""

    def page(request: HttpRequest) -> TemplateResponse:
        return board_view(request, model_admin=model_admin)

    site = model_admin.admin_site
    return [
        path("live/", site.admin_view(page), name="calls_call_live"),
        path("live/fragment/", site.admin_view(fragment_view), name="calls_call_live_fragment"),
    ]
