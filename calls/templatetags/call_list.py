"""The call list's date drill-down without scanning a million calls.

Django's ``date_hierarchy`` lists the years (or months) that have calls with
``SELECT DISTINCT DATE_TRUNC(...)`` over every row: 380 ms on a million calls
(benchmarks/admin_pages.py). Years and months are listed here from the first and
last call instead (two index look-ups); a year or month without calls is rare in a
call history and opens an empty list. Days still come from Django's own query, over
one month's calls.
"""

import datetime
from typing import Any, cast

from django import template
from django.contrib.admin.templatetags.admin_list import date_hierarchy
from django.contrib.admin.views.main import ChangeList
from django.db.models import Max, Min
from django.utils import timezone

register = template.Library()


class _FastDates:
    """A queryset whose ``datetimes(field, "year" | "month")`` spans first to last call."""

    def __init__(self, queryset: Any) -> None:
        self._queryset = queryset

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queryset, name)

    def datetimes(self, field_name: str, kind: str, *args: Any, **kwargs: Any) -> list[datetime.datetime]:
        if kind not in ("year", "month"):
            return self._queryset.datetimes(field_name, kind, *args, **kwargs)
        bounds = self._queryset.aggregate(first=Min(field_name), last=Max(field_name))
        if bounds["first"] is None:
            return []
        first, last = timezone.localtime(bounds["first"]), timezone.localtime(bounds["last"])
        if kind == "year":
            return [first.replace(year=y, month=1, day=1) for y in range(first.year, last.year + 1)]
        months = []
        year, month = first.year, first.month
        while (year, month) <= (last.year, last.month):
            months.append(first.replace(year=year, month=month, day=1))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return months


class _ChangeList:
    def __init__(self, cl: Any) -> None:
        self._cl = cl
        self.queryset = _FastDates(cl.queryset)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cl, name)


@register.inclusion_tag("admin/date_hierarchy.html")
def fast_date_hierarchy(cl: Any) -> dict[str, Any]:
    return date_hierarchy(cast(ChangeList, _ChangeList(cl))) or {}


@register.filter
def minutes_seconds(seconds: float | None) -> str:
    """A duration in seconds as ``m:ss`` (calls.timeline)."""
    from calls.timeline import minutes_seconds as shown

    return shown(seconds)
