"""When calls come: the report's weekday × hour heatmap of calls and of missed calls.

Hours are counted in the campaign's time zone when the report shows one campaign (its
opening hours are set in that zone), otherwise in the business's ``TIME_ZONE``. The
period is the report's (whole days in ``TIME_ZONE``, :func:`calls.reports.calls_in`).
One grouped query; every count links to the call list filtered to exactly those calls
through :class:`WeekHourFilter` (and ``outcome__in`` for the missed ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import ExtractHour, ExtractIsoWeekDay
from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import urlencode

from campaigns.models import Campaign

from .models import Call
from .reports import UNANSWERED_OUTCOMES, ReportPeriod, calls_in

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HOURS = range(24)
# The two maps' colours: the report's "answered" blue-green for calls, "missed" vermilion.
CALLS_RGB = (0, 114, 178)
MISSED_RGB = (213, 94, 0)


@dataclass(frozen=True)
class WeekHourCounts:
    """Calls and missed calls per (ISO weekday 1–7, hour 0–23) in ``zone``."""

    zone: str
    calls: dict[tuple[int, int], int]
    missed: dict[tuple[int, int], int]


def week_hour_counts(period: ReportPeriod, *, campaign_id: int | None, zone: str) -> WeekHourCounts:
    """One grouped query: the period's calls by weekday and hour in ``zone``."""
    tz = ZoneInfo(zone)
    grouped = (
        calls_in(period, campaign_id=campaign_id)
        .annotate(weekday=ExtractIsoWeekDay("started_at", tzinfo=tz), hour=ExtractHour("started_at", tzinfo=tz))
        .values("weekday", "hour")
        .annotate(n=Count("id"), missed=Count("id", filter=Q(outcome__in=UNANSWERED_OUTCOMES)))
        .order_by()
    )
    calls: dict[tuple[int, int], int] = {}
    missed: dict[tuple[int, int], int] = {}
    for row in grouped:
        key = (int(row["weekday"]), int(row["hour"]))
        calls[key] = row["n"]
        if row["missed"]:
            missed[key] = row["missed"]
    return WeekHourCounts(zone=zone, calls=calls, missed=missed)


def zone_for(campaign: Campaign | None) -> str:
    """The campaign's time zone, or the business's; a zone that no longer exists falls
    back to the business's rather than failing the report."""
    if campaign is not None:
        try:
            ZoneInfo(campaign.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return settings.TIME_ZONE
        return campaign.timezone
    return settings.TIME_ZONE


def _shade(n: int, top: int, rgb: tuple[int, int, int]) -> str:
    """A cell's background: stronger the more calls, clear for none."""
    if not n or not top:
        return ""
    alpha = 0.12 + 0.88 * n / top
    color = "#fff" if alpha > 0.55 else "inherit"
    return f"background-color: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {alpha:.2f}); color: {color};"


def heatmap_table(
    counts: dict[tuple[int, int], int], *, filters: dict[str, Any], rgb: tuple[int, int, int], zone: str, what: str
) -> list[dict[str, Any]]:
    """Seven rows of 24 cells: count, shade, and the link to the calls counted."""
    top = max(counts.values(), default=0)
    changelist = reverse("admin:calls_call_changelist")
    rows = []
    for weekday, name in enumerate(WEEKDAYS, 1):
        cells = []
        for hour in HOURS:
            n = counts.get((weekday, hour), 0)
            params = {**filters, "weekday": weekday, "hour": hour, "zone": zone}
            cells.append(
                {
                    "n": n,
                    "style": _shade(n, top, rgb),
                    "url": f"{changelist}?{urlencode(params)}" if n else "",
                    "title": f"{n} {what} on {name}s, {hour:02d}:00–{hour:02d}:59 ({zone}).",
                }
            )
        total = sum(counts.get((weekday, hour), 0) for hour in HOURS)
        rows.append({"weekday": name, "cells": cells, "total": total})
    return rows


def report_context(
    period: ReportPeriod, *, campaign: Campaign | None, filters: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The report page's heatmaps. ``filters`` are the call list parameters of the
    report's total line (the period and campaign)."""
    zone = zone_for(campaign)
    counts = week_hour_counts(period, campaign_id=campaign.pk if campaign else None, zone=zone)
    base = filters or {"period": period.param, **({"campaign__id__exact": campaign.pk} if campaign else {})}
    missed_filters = {**base, "outcome__in": ",".join(UNANSWERED_OUTCOMES)}
    return {
        "heatmap_zone": zone,
        "heatmap_hours": list(HOURS),
        "heatmap_calls": heatmap_table(counts.calls, filters=base, rgb=CALLS_RGB, zone=zone, what="calls"),
        "heatmap_missed": heatmap_table(
            counts.missed, filters=missed_filters, rgb=MISSED_RGB, zone=zone, what="missed calls"
        ),
    }


class WeekHourFilter(admin.ListFilter):
    """Calls started on one weekday and in one hour in a time zone, as a heatmap cell
    counts them (``?weekday=1&hour=9&zone=Europe/London``; weekday 1 is Monday). Shown
    only when set."""

    title = "day and hour"
    parameters = ("weekday", "hour", "zone")

    def __init__(self, request: HttpRequest, params: dict[str, Any], model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        self.values: dict[str, str] = {}
        for name in self.parameters:
            if name in params:
                self.values[name] = self.used_parameters[name] = params.pop(name)[-1]

    def has_output(self) -> bool:
        return bool(self.values)

    def expected_parameters(self) -> list[str | None]:
        return list(self.parameters)

    def _parsed(self) -> tuple[int | None, int | None, ZoneInfo]:
        weekday, hour = self.values.get("weekday"), self.values.get("hour")
        zone = self.values.get("zone") or settings.TIME_ZONE
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise IncorrectLookupParameters(f"{zone!r} is not a time zone.") from exc
        if weekday is not None and not (weekday.isdigit() and 1 <= int(weekday) <= 7):
            raise IncorrectLookupParameters(f"{weekday!r} is not a weekday from 1 (Monday) to 7 (Sunday).")
        if hour is not None and not (hour.isdigit() and 0 <= int(hour) <= 23):
            raise IncorrectLookupParameters(f"{hour!r} is not an hour from 0 to 23.")
        return (int(weekday) if weekday else None, int(hour) if hour else None, tz)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Call]) -> QuerySet[Call]:
        if not self.values:
            return queryset
        weekday, hour, tz = self._parsed()
        if weekday is not None:
            queryset = queryset.annotate(_weekday=ExtractIsoWeekDay("started_at", tzinfo=tz)).filter(_weekday=weekday)
        if hour is not None:
            queryset = queryset.annotate(_hour=ExtractHour("started_at", tzinfo=tz)).filter(_hour=hour)
        return queryset

    def choices(self, changelist: ChangeList) -> Any:
        yield {
            "selected": False,
            "query_string": changelist.get_query_string(remove=list(self.parameters)),
            "display": "Any day and hour",
        }
        yield {"selected": True, "query_string": changelist.get_query_string(), "display": self._label()}

    def _label(self) -> str:
        weekday, hour, zone = self.values.get("weekday"), self.values.get("hour"), self.values.get("zone")
        day = (
            WEEKDAYS[int(weekday) - 1] + "s" if weekday and weekday.isdigit() and 1 <= int(weekday) <= 7 else "Any day"
        )
        hours = f", {int(hour):02d}:00–{int(hour):02d}:59" if hour and hour.isdigit() else ""
        return f"{day}{hours} ({zone or settings.TIME_ZONE})"
