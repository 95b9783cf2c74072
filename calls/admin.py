"""Call history for supervisors: what happened on every call, as Vonage reported it.

Calls, legs and events are records of what Vonage did, so nobody adds or edits them
here (view permission is enough to read them); only superusers may delete a call.

The reports page (``calls.view_report``) and the CSV downloads (``calls.export_calls``)
live here too. Every number on the report links to the call list filtered to exactly
the calls it counts: the list's filters below use the same definitions as
:mod:`calls.reports` (the period, the first-time caller), so the two always agree.
"""

import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from typing import Any, Literal

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Exists, F, Model, OuterRef, Prefetch, Q, QuerySet, Value
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    HttpResponseNotFound,
    HttpResponseRedirect,
    QueryDict,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import URLPattern, path, reverse, reverse_lazy
from django.utils import dateformat, timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe

from campaigns.admin import (
    SHOW_DEMO,
    CampaignChoiceFilter,
    DemoFilter,
    NumberSearchMixin,
    PhoneNumberFieldsMixin,
    formatted_number,
    shows_demo,
)
from campaigns.models import Campaign, TrackingNumber

from . import annotations_admin, callback_queue, callbacks, heatmap, live_board, privacy, reports, vonage_adapter
from .charts import stacked_bars_svg
from .models import (
    BuiltinTag,
    Call,
    CallbackHandled,
    CallEvent,
    CallLeg,
    CallTag,
    NumberStatus,
    Outcome,
    StaffProfile,
    Tag,
)
from .reports import OUTCOME_COLORS, REPORT_OUTCOMES, ReportPeriod, ReportRow
from .spreadsheets import inert_writer
from .timeline import call_summary, call_timeline, minutes_seconds

logger = logging.getLogger(__name__)

admin.site.site_header = "Call Whisper"
admin.site.site_title = "Call Whisper admin"
admin.site.index_title = "Campaigns, numbers and call history"
# "View site": there is no public site, so it opens the call history.
admin.site.site_url = reverse_lazy("admin:calls_call_changelist")  # type: ignore[assignment]
# The pages are read on laptops (1366 px): the app list down the left side would take a
# quarter of the width from the tables. Home and the breadcrumbs lead everywhere.
admin.site.enable_nav_sidebar = False

# The admin home lists these apps first, in this order; the rest follow alphabetically.
APP_ORDER = ("calls", "campaigns")
_django_app_list = admin.site.get_app_list


# ...and in them, these models first (the calls before their events).
MODEL_ORDER = ("call", "campaign")


def _app_list_calls_first(request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
    apps = _django_app_list(request, app_label)
    for app in apps:
        app["models"].sort(key=lambda model: model["object_name"].lower() not in MODEL_ORDER)
    return sorted(apps, key=lambda app: APP_ORDER.index(app["app_label"]) if app["app_label"] in APP_ORDER else 99)


admin.site.get_app_list = _app_list_calls_first  # type: ignore[method-assign]


def pretty_json(value: Any) -> SafeString:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)


def exact_time(value: datetime | None, *, milliseconds: bool = False) -> str:
    """A time to the second (or millisecond): the admin's default stops at the minute,
    and a call's ringing, answer and hang-up usually fall in the same minute."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    text = dateformat.format(local, "j M Y, H:i:s")
    return f"{text}.{local.microsecond // 1000:03d}" if milliseconds else text


def recording_length(seconds: int | None) -> str:
    if seconds is None:
        return "Length not reported by Vonage."
    return f"{minutes_seconds(seconds)} long."


def time_column(field: str, description: str, *, milliseconds: bool = False) -> Callable[..., str]:
    """An admin column or read-only field showing ``field`` with :func:`exact_time`."""

    @admin.display(description=description, ordering=field)
    def show(self: Any, obj: Model) -> str:
        return exact_time(getattr(obj, field), milliseconds=milliseconds)

    return show


def period_label(period: ReportPeriod) -> str:
    text = f"{dateformat.format(period.start, 'j M Y')} to {dateformat.format(period.end, 'j M Y')}"
    return f"{text} ({period.zone})" if period.zone else text


# --- the call list's filters that the report's links use ---------------------------------


class ReportPeriodFilter(admin.SimpleListFilter):
    """Calls started in a report's period (``?period=2026-11-01..2026-11-30``): whole
    days in the site's time zone, as the report counts them. Shown only when set; the
    "started at" filter is the one for choosing dates by hand."""

    title = "report period"
    parameter_name = "period"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        value = self.value()
        if value is None:
            return []
        try:
            return [(value, period_label(ReportPeriod.from_param(value)))]
        except ValueError:
            return [(value, value)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Call]) -> QuerySet[Call]:
        value = self.value()
        if value is None:
            return queryset
        try:
            period = ReportPeriod.from_param(value)
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc
        return queryset.filter(period.contains())


NO_NUMBER = "none"


class CampaignNumberFilter(admin.ListFilter):
    """Calls to one campaign number under one source label, as a row of the report's
    per-source table counts them (``?number=<id>&source=<label>``; ``number=none`` for
    calls to unknown numbers). A number's label can change, and the report keeps the
    label each call came in under, so the source is part of the filter. Shown only
    when set."""

    title = "source"
    parameters = ("number", "source")

    def __init__(self, request: HttpRequest, params: dict[str, Any], model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        self.request = request
        self.values: dict[str, str] = {}
        for name in self.parameters:
            if name in params:
                self.values[name] = self.used_parameters[name] = params.pop(name)[-1]

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str | None]:
        return list(self.parameters)

    def _sources(self, request: HttpRequest) -> list[str]:
        """The sources to choose from: the numbers' labels now (one short query; the
        calls' own labels would mean scanning every call)."""
        numbers = TrackingNumber.objects.exclude(source="")
        if not shows_demo(request):
            numbers = numbers.filter(campaign__is_demo=False)
        # A few hundred numbers at most: de-duplicated here, not by a DISTINCT.
        return sorted(set(numbers.values_list("source", flat=True)))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Call]) -> QuerySet[Call]:
        number = self.values.get("number")
        if number == NO_NUMBER:
            queryset = queryset.filter(tracking_number__isnull=True)
        elif number is not None:
            if not number.isdigit():
                raise IncorrectLookupParameters(f"{number!r} is not a campaign number's id.")
            queryset = queryset.filter(tracking_number_id=int(number))
        if "source" in self.values:
            queryset = queryset.filter(source=self.values["source"])
        return queryset

    def choices(self, changelist: ChangeList) -> Iterator[dict[str, Any]]:
        yield {
            "selected": not self.values,
            "query_string": changelist.get_query_string(remove=list(self.parameters)),
            "display": "All",
        }
        if "number" in self.values:
            yield {"selected": True, "query_string": changelist.get_query_string(), "display": self._label()}
            return
        chosen = self.values.get("source")
        sources = self._sources(self.request)
        if chosen is not None and chosen not in sources:
            sources.insert(0, chosen)
        for source in sources:
            yield {
                "selected": source == chosen,
                "query_string": changelist.get_query_string({"source": source}, remove=["number"]),
                "display": source,
            }

    def _label(self) -> str:
        number = self.values.get("number")
        source = self.values.get("source")
        if number == NO_NUMBER:
            text = "Unknown numbers"
        elif number is not None and number.isdigit():
            found = TrackingNumber.objects.filter(pk=int(number)).values_list("number", flat=True).first()
            text = formatted_number(found) if found else "A deleted number"
        else:
            text = "Any number"
        return f"{text} ({source})" if source else text


class CallerFilter(admin.SimpleListFilter):
    """First-time or returning callers, by the report's definition (an earlier call by
    the same number to the same campaign, at any time)."""

    title = "caller"
    parameter_name = "caller"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("first", "First-time callers"), ("returning", "Returning callers")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Call]) -> QuerySet[Call]:
        if self.value() == "first":
            return reports.first_time_calls(queryset)
        if self.value() == "returning":
            return reports.returning_calls(queryset)
        return queryset


NO_TAG = "none"


class TagFilter(admin.SimpleListFilter):
    """Calls with a tag on them now (``?tag=<id>``), or with none (``?tag=none``). A tag
    taken off no longer counts, as in the report's leads and sales."""

    title = "tag"
    parameter_name = "tag"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(NO_TAG, "No tag"), *((str(pk), name) for pk, name in Tag.objects.values_list("pk", "name"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Call]) -> QuerySet[Call]:
        value = self.value()
        if value is None:
            return queryset
        current = CallTag.objects.current().filter(call=OuterRef("pk"))
        if value == NO_TAG:
            return queryset.filter(~Exists(current))
        if not value.isdigit():
            raise IncorrectLookupParameters(f"{value!r} is not a tag's id.")
        return queryset.filter(Exists(current.filter(tag_id=int(value))))


class CallDemoFilter(DemoFilter):
    """Calls to demo campaigns hidden unless shown; calls to unknown numbers are real.

    The demo campaigns are looked up first (a handful of rows): a database without any,
    as in production, gets no filter at all, so the unfiltered list still counts its
    calls from the planner's estimate (EstimatedCountPaginator) and joins nothing."""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Call]) -> QuerySet[Call]:
        if self.value() == SHOW_DEMO:
            return queryset
        demo = list(Campaign.objects.filter(is_demo=True).values_list("pk", flat=True))
        if not demo:
            return queryset
        return queryset.filter(Q(campaign__isnull=True) | ~Q(campaign_id__in=demo))


class DateRangeFilter(admin.ListFilter):
    """Calls started from one day to another, inclusive (``?started_from=2026-11-01
    &started_to=2026-11-30``): whole days in the site's time zone, as the reports count."""

    title = "started between"
    parameters = ("started_from", "started_to")
    template = "admin/calls/call/date_range_filter.html"

    def __init__(self, request: HttpRequest, params: dict[str, Any], model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        self.values: dict[str, str] = {}
        for name in self.parameters:
            if name in params:
                self.values[name] = self.used_parameters[name] = params.pop(name)[-1]
        self.other_params = [
            (key, value) for key, values in request.GET.lists() if key not in self.parameters for value in values
        ]

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str | None]:
        return list(self.parameters)

    def _day(self, name: str) -> Any:
        text = self.values.get(name, "").strip()
        if not text:
            return None
        try:
            return datetime.strptime(text, "%Y-%m-%d").date()
        except ValueError as exc:
            raise IncorrectLookupParameters(f"{text!r} is not a date written as YYYY-MM-DD.") from exc

    def queryset(self, request: HttpRequest, queryset: QuerySet[Call]) -> QuerySet[Call]:
        start, end = self._day("started_from"), self._day("started_to")
        if start is None and end is None:
            return queryset
        period = ReportPeriod(start=start or date(2000, 1, 1), end=end or date(2999, 12, 31))
        if start is not None:
            queryset = queryset.filter(started_at__gte=period.since)
        if end is not None:
            queryset = queryset.filter(started_at__lt=period.until)
        return queryset

    def choices(self, changelist: ChangeList) -> Iterator[dict[str, Any]]:
        yield {
            "selected": not self.values,
            "query_string": changelist.get_query_string(remove=list(self.parameters)),
            "display": "Any time",
        }


# Talk time bands (seconds, lower inclusive, upper exclusive).
TALK_BANDS: dict[str, tuple[str, int | None, int | None]] = {
    "none": ("Not answered", None, None),
    "lt30": ("Under 30 seconds", 0, 30),
    "30-120": ("30 seconds to 2 minutes", 30, 120),
    "120-600": ("2 to 10 minutes", 120, 600),
    "600+": ("10 minutes or more", 600, None),
}


class TalkTimeFilter(admin.SimpleListFilter):
    """Calls by how long caller and agent talked."""

    title = "talk time"
    parameter_name = "talk"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _low, _high) in TALK_BANDS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Call]) -> QuerySet[Call]:
        value = self.value()
        if value is None:
            return queryset
        if value not in TALK_BANDS:
            raise IncorrectLookupParameters(f"{value!r} is not a talk time band.")
        _label, low, high = TALK_BANDS[value]
        if low is None:
            return queryset.filter(talk_seconds__isnull=True)
        queryset = queryset.filter(talk_seconds__gte=low)
        return queryset if high is None else queryset.filter(talk_seconds__lt=high)


class EstimatedCountPaginator(Paginator):
    """Exact counts for filtered lists; for the whole table on PostgreSQL, the planner's
    row estimate (``pg_class.reltuples``, kept by autovacuum) once it is large: the
    pager then reads "about" that many calls instead of scanning them all."""

    ESTIMATE_ABOVE = 100_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if connection.vendor == "postgresql" and isinstance(queryset, QuerySet) and not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [Call._meta.db_table])
                row = cursor.fetchone()
            if row and row[0] >= self.ESTIMATE_ABOVE:
                return int(row[0])
        return super().count


class CallChangeList(ChangeList):
    """The call list, with each page's current tags read in one query (not one a row)."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        queryset = super().get_queryset(request, exclude_parameters)
        if not request.user.has_perm("calls.view_calltag"):
            return queryset
        tags = CallTag.objects.current().select_related("tag").order_by("tag__name")
        return queryset.prefetch_related(Prefetch("tag_links", queryset=tags, to_attr="current_tags"))


class ExportChangeList(ChangeList):
    """The call list's calls for a request (filters, search, ordering), for the CSV:
    every page, so nothing is counted and no page is cut."""

    def get_results(self, request: HttpRequest) -> None:
        self.result_count = self.full_result_count = 0  # not counted
        self.result_list = self.queryset.none()
        self.can_show_all = self.multi_page = False
        self.show_admin_actions = False
        self.paginator = None


# --- the report page ---------------------------------------------------------------------

# The chart has a bar for every day; beyond a year the bars are too thin to read.
MAX_REPORT_DAYS = 366
DEFAULT_REPORT_DAYS = 30


class ReportForm(forms.Form):
    """The report's period and campaign, from the query string (``start``, ``end`` as
    ISO dates, ``campaign`` an id). Without dates, the last 30 days."""

    start = forms.DateField(
        label="From", input_formats=["%Y-%m-%d"], widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})
    )
    end = forms.DateField(
        label="To (inclusive)",
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}),
    )
    campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.order_by("name"), required=False, empty_label="All campaigns"
    )
    demo = forms.BooleanField(
        label="Include demo campaigns",
        required=False,
        help_text="The call simulator's and the demo data's campaigns, left out unless ticked.",
    )

    def __init__(self, query: QueryDict) -> None:
        data = query.copy()
        if not data.get("start") and not data.get("end"):
            default = ReportPeriod.last_days(DEFAULT_REPORT_DAYS)
            data["start"], data["end"] = default.start.isoformat(), default.end.isoformat()
        # ?demo=show, as on the lists (a ticked box sends "on").
        if data.get("demo") == SHOW_DEMO:
            data["demo"] = "on"
        super().__init__(data)
        if not self.fields["demo"].clean(self.fields["demo"].widget.value_from_datadict(data, {}, "demo")):
            campaigns: Any = self.fields["campaign"]
            campaigns.queryset = Campaign.objects.filter(is_demo=False).order_by("name")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if end < start:
                self.add_error("end", f"The period ends ({end:%Y-%m-%d}) before it starts ({start:%Y-%m-%d}).")
            elif (end - start).days + 1 > MAX_REPORT_DAYS:
                self.add_error(
                    "end", f"Choose at most {MAX_REPORT_DAYS} days: the chart has a bar for every day of the period."
                )
        return cleaned

    @property
    def period(self) -> ReportPeriod:
        """Whole days in the site's time zone; for one campaign, in the campaign's own."""
        campaign = self.cleaned_data.get("campaign")
        zone = campaign.timezone if campaign is not None and campaign.timezone != settings.TIME_ZONE else ""
        return ReportPeriod(start=self.cleaned_data["start"], end=self.cleaned_data["end"], zone=zone)

    @property
    def campaign_id(self) -> int | None:
        campaign = self.cleaned_data.get("campaign")
        return campaign.pk if campaign else None

    @property
    def include_demo(self) -> bool:
        return bool(self.cleaned_data.get("demo"))


def calls_url(params: dict[str, Any]) -> str:
    """The call list filtered by ``params`` (the list's own filter parameters)."""
    return f"{reverse('admin:calls_call_changelist')}?{urlencode(params)}"


RowKind = Literal["campaign", "source", "total"]


def row_filters(
    row: ReportRow, *, period: ReportPeriod, kind: RowKind, campaign_id: int | None, include_demo: bool = False
) -> dict[str, Any]:
    """The call list parameters that select exactly the calls ``row`` counts."""
    params: dict[str, Any] = {"period": period.param}
    if include_demo or campaign_id is not None:
        # A campaign chosen by id is counted even if it is a demo: the list must show it too.
        params["demo"] = SHOW_DEMO
    if kind == "total":
        if campaign_id is not None:
            params["campaign__id__exact"] = campaign_id
        return params
    if row.campaign_id is None:
        params["campaign__isnull"] = "True"
    else:
        params["campaign__id__exact"] = row.campaign_id
    if kind == "source":
        params["number"] = row.tracking_number_id if row.tracking_number_id is not None else NO_NUMBER
        params["source"] = row.source or ""
    return params


def seconds(value: float | None) -> str:
    return minutes_seconds(value)


def report_cells(row: ReportRow, filters: dict[str, Any], *, tags: dict[str, int]) -> list[dict[str, Any]]:
    """The figures of a row, each with the link to the calls it counts (``tags``: the
    built-in tags' ids, :func:`calls.annotations.builtin_tag_ids`)."""
    answered = {**filters, "outcome__exact": Outcome.ANSWERED}
    from_answered = f"Of the {row.answered} answered call{'' if row.answered == 1 else 's'}."
    rate = row.answer_rate
    cells = [{"text": row.calls, "url": calls_url(filters), "title": f"Open these {row.calls} calls."}]
    for outcome in REPORT_OUTCOMES:
        n = row.outcomes.get(outcome, 0)
        cells.append(
            {
                "text": n,
                "url": calls_url({**filters, "outcome__exact": outcome}),
                "title": f"Open these {n} calls: {Outcome(outcome).label.lower()}.",
            }
        )
    cells += [
        {
            "text": "–" if rate is None else f"{rate:.0%}",
            "url": calls_url(answered),
            "title": "Answered, of the calls that rang an agent (closed and in-progress calls are left out).",
        },
        {"text": seconds(row.median_wait), "url": calls_url(answered), "title": from_answered},
        {"text": seconds(row.mean_wait), "url": calls_url(answered), "title": from_answered},
        {"text": seconds(row.mean_talk), "url": calls_url(answered), "title": from_answered},
        {
            "text": row.first_time_callers,
            "url": calls_url({**filters, "caller": "first"}),
            "title": "Callers who had not called this campaign before (withheld numbers are not counted).",
        },
        *lead_cells(row, filters, tags=tags),
    ]
    return cells


def lead_cells(row: ReportRow, filters: dict[str, Any], *, tags: dict[str, int]) -> list[dict[str, Any]]:
    """Leads, sales, and leads as a share of answered calls (calls tagged lead or sale
    now: calls.reports.tagged); each opens the calls it counts."""
    # A built-in tag an operator deleted in the database: its link finds no call.
    lead, sale = tags.get(BuiltinTag.LEAD, 0), tags.get(BuiltinTag.SALE, 0)
    rate = row.lead_rate
    return [
        {
            "text": row.leads,
            "url": calls_url({**filters, "tag": lead}),
            "title": f"Open these {row.leads} calls tagged lead.",
        },
        {
            "text": row.sales,
            "url": calls_url({**filters, "tag": sale}),
            "title": f"Open these {row.sales} calls tagged sale.",
        },
        {
            "text": "–" if rate is None else f"{rate:.0%}",
            "url": calls_url({**filters, "outcome__exact": Outcome.ANSWERED, "tag": lead}),
            "title": f"{row.answered_leads} of the {row.answered} answered calls are tagged lead: open them.",
            "count": row.answered_leads,
        },
    ]


REPORT_COLUMNS: tuple[str, ...] = (
    "Calls",
    *[Outcome(o).label for o in REPORT_OUTCOMES],
    "Answer rate",
    "Median wait to answer",
    "Mean wait to answer",
    "Mean talk time",
    "First-time callers",
    "Leads",
    "Sales",
    "Leads of answered calls",
)


class VonageRecordInline(admin.TabularInline):
    """Rows that Vonage's webhooks wrote: shown, never added, edited or deleted here."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return self.fields

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class CallLegInline(VonageRecordInline):
    model = CallLeg
    verbose_name_plural = "legs"
    fields = (
        "role",
        "status",
        "detail",
        "from_shown",
        "to_shown",
        "attempt",
        "started",
        "answered",
        "accepted",
        "declined",
        "ended",
        "duration_shown",
        "price_shown",
        "rate_shown",
        "network",
        "uuid",
        "region_url",
    )
    started = time_column("started_at", "started at")
    answered = time_column("answered_at", "answered at")
    accepted = time_column("accepted_at", "accepted at")
    declined = time_column("declined_at", "declined at")
    ended = time_column("ended_at", "ended at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[CallLeg]:
        return with_caller_privacy(super().get_queryset(request), request, caller=F("call__caller_number"))

    @admin.display(description="billed")
    def duration_shown(self, leg: CallLeg) -> str:
        return minutes_seconds(leg.duration) if leg.duration is not None else "-"

    @admin.display(description="price")
    def price_shown(self, leg: CallLeg) -> str:
        return money(leg.price)

    @admin.display(description="rate a minute")
    def rate_shown(self, leg: CallLeg) -> str:
        return money(leg.rate)

    @admin.display(description="from")
    def from_shown(self, leg: CallLeg) -> str:
        return shown_number(leg, leg.from_number)

    @admin.display(description="to")
    def to_shown(self, leg: CallLeg) -> str:
        return shown_number(leg, leg.to_number)


def money(value: Any) -> str:
    """A Vonage price with its currency (CALL_PRICE_CURRENCY): ``0.0069 EUR``."""
    if value is None:
        return "-"
    return f"{value.normalize():f} {settings.CALL_PRICE_CURRENCY}" if value else f"0 {settings.CALL_PRICE_CURRENCY}"


def with_caller_privacy(queryset: QuerySet[Any], request: HttpRequest, *, caller: Any) -> QuerySet[Any]:
    """Rows carrying what their display needs to mask the caller's number for this
    user (``calls.privacy``): the number (``shown_caller``) and whether they may see it."""
    return queryset.annotate(shown_caller=caller, caller_visible=Value(privacy.sees_caller_numbers(request)))


def shown_number(row: Any, number: str) -> str:
    """A number on a leg or event: the caller's masked for those who may not see it."""
    if not number:
        return "-"
    if getattr(row, "caller_visible", False):
        return formatted_number(number)
    return privacy.masked_text(formatted_number(number), getattr(row, "shown_caller", "") or "")


def shown_payload(event: CallEvent) -> SafeString:
    if getattr(event, "caller_visible", False):
        return pretty_json(event.payload)
    caller = getattr(event, "shown_caller", None)
    # An event that matched no call: its "from" may be the caller.
    unknown = () if caller else ("from",)
    return pretty_json(privacy.masked_payload(event.payload, caller or "", unknown_caller_keys=unknown))


class CallEventInline(VonageRecordInline):
    model = CallEvent
    fk_name = "call"
    verbose_name_plural = "timeline (events from Vonage, in the order received)"
    fields = ("received", "occurred", "kind", "status", "leg_uuid", "payload_pretty")
    ordering = ("received_at", "id")
    received = time_column("received_at", "received at", milliseconds=True)
    occurred = time_column("occurred_at", "Vonage's timestamp", milliseconds=True)

    def get_queryset(self, request: HttpRequest) -> QuerySet[CallEvent]:
        return with_caller_privacy(super().get_queryset(request), request, caller=F("call__caller_number"))

    @admin.display(description="payload")
    def payload_pretty(self, event: CallEvent) -> SafeString:
        return shown_payload(event)


class VonageRecordAdmin(admin.ModelAdmin):
    """Read-only for everyone; a superuser may still delete (e.g. test calls)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return bool(request.user.is_superuser)

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        # Everything shown; the form then has no editable field at all.
        return flatten_fieldsets(self.get_fieldsets(request, obj))


@admin.register(Call)
class CallAdmin(NumberSearchMixin, VonageRecordAdmin):
    # What a supervisor reads, in a laptop's width: the call's state and the number's
    # status are on the call's page (a call to an unknown number says so as its source).
    list_display = ("started", "campaign", "source_shown", "caller", "outcome", "wait", "talk", "tags_shown")
    list_filter = (
        CallDemoFilter,
        DateRangeFilter,
        ("campaign", CampaignChoiceFilter),
        CampaignNumberFilter,
        "outcome",
        "direction",
        TalkTimeFilter,
        CallerFilter,
        "number_status",
        "state",
        "recorded_late",
        ReportPeriodFilter,
        heatmap.WeekHourFilter,
        TagFilter,
    )
    date_hierarchy = "started_at"
    # Numbers in any common form (NumberSearchMixin), the campaign's name, the source.
    search_fields = ("caller_number", "called_number", "campaign__name", "source")
    list_select_related = ("campaign",)
    ordering = ("-started_at", "-id")
    list_per_page = 50
    # Counting a million calls twice per page costs 120 ms each: count the list once,
    # and the unfiltered list from the planner's statistics.
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    inlines = [CallLegInline, CallEventInline]
    change_form_template = "admin/calls/call/change_form.html"
    call_fieldsets: Any = (
        (
            None,
            {
                "fields": (
                    "started",
                    "campaign",
                    "tracking_number",
                    "number_status",
                    "called",
                    "source",
                    "caller",
                    "redacted_at",
                    "destination_rung",
                )
            },
        ),
        ("What the agent heard", {"fields": ("whisper_spoken",)}),
        ("Ringing the agent", {"fields": ("strategy", "accept_required", "attempt_shown", "rate_limited")}),
        (
            "Outcome",
            {
                "fields": (
                    "state",
                    "outcome",
                    "resolution",
                    "agent_answered",
                    "fallback",
                    "ended",
                    "wait",
                    "talk",
                    "agent_call_error",
                    "recorded_late",
                )
            },
        ),
        ("Voicemail", {"fields": ("recording",)}),
        ("Call-back", {"fields": ("direction", "callback_of", "placed_by", "callback_record")}),
        (
            "Vonage",
            {"fields": ("conference_name", "recording_url", "caller_ncco_pretty"), "classes": ("collapse",)},
        ),
    )
    # Fields shown through the methods below rather than as the admin shows them.
    replaced_fields = {
        "started_at",
        "agent_answered_at",
        "fallback_at",
        "ended_at",
        "whisper_text",
        "caller_ncco",
        "recording_seconds",
        "caller_number",
        "attempt",
        "wait_seconds",
        "talk_seconds",
        "called_number",
        "destination",
    }

    started = time_column("started_at", "started at")
    agent_answered = time_column("agent_answered_at", "agent answered at")
    fallback = time_column("fallback_at", "moved to the fallback at")
    ended = time_column("ended_at", "ended at")

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        recording = path(
            "<path:object_id>/recording/",
            self.admin_site.admin_view(self.recording_view),
            name="{}_{}_recording".format(*info),
        )
        own = [
            path("report/", self.admin_site.admin_view(self.report_view), name="{}_{}_report".format(*info)),
            path(
                "report/csv/",
                self.admin_site.admin_view(self.report_csv_view),
                name="{}_{}_report_csv".format(*info),
            ),
            path("csv/", self.admin_site.admin_view(self.export_view), name="{}_{}_export".format(*info)),
            recording,
            *live_board.admin_urls(self),
            *annotations_admin.admin_urls(self),
            *callback_queue.admin_urls(self),
        ]
        # Before the admin's own "<path:object_id>/" catch-all.
        return [*own, *super().get_urls()]

    # --- the report ---

    def report_view(self, request: HttpRequest) -> TemplateResponse:
        """Calls per campaign and per source over a period, with a chart by day."""
        if not request.user.has_perm("calls.view_report"):
            raise PermissionDenied
        form = ReportForm(request.GET)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Call reports",
            "opts": self.opts,
            "form": form,
            "columns": REPORT_COLUMNS,
            "can_export": request.user.has_perm("calls.export_calls"),
            "time_zone": settings.TIME_ZONE,
        }
        if form.is_valid():
            context.update(self._report_context(form.period, form.campaign_id, include_demo=form.include_demo))
            context["time_zone"] = form.period.time_zone
            context["campaign_zone"] = bool(form.period.zone)
            context.update(heatmap.report_context(form.period, campaign=form.cleaned_data.get("campaign")))
        return TemplateResponse(request, "admin/calls/report.html", context)

    def _report_context(self, period: ReportPeriod, campaign_id: int | None, *, include_demo: bool) -> dict[str, Any]:
        tables = reports.report_tables(period, campaign_id=campaign_id, include_demo=include_demo)
        campaigns, sources, total = tables.campaigns, tables.sources, tables.total
        daily = reports.daily_outcomes(period, campaign_id=campaign_id, include_demo=include_demo)
        names = {row.campaign_id: row.label for row in campaigns}
        tags = tables.tags

        def table(rows: Iterable[ReportRow], kind: RowKind) -> list[dict[str, Any]]:
            lines = []
            for row in rows:
                filters = row_filters(row, period=period, kind=kind, campaign_id=campaign_id, include_demo=include_demo)
                lines.append(
                    {
                        "label": row.label,
                        "campaign": names.get(row.campaign_id, ""),
                        "cells": report_cells(row, filters, tags=tags),
                    }
                )
            return lines

        total_filters = row_filters(
            total, period=period, kind="total", campaign_id=campaign_id, include_demo=include_demo
        )
        labels = {o: Outcome(o).label for o in REPORT_OUTCOMES}
        chart = stacked_bars_svg(
            [day for day, _ in daily],
            {labels[o]: [counts[o] for _, counts in daily] for o in REPORT_OUTCOMES},
            {labels[o]: OUTCOME_COLORS[o] for o in REPORT_OUTCOMES},
        )
        query = {"start": period.start.isoformat(), "end": period.end.isoformat()}
        if campaign_id is not None:
            query["campaign"] = str(campaign_id)
        if include_demo:
            query["demo"] = SHOW_DEMO
        return {
            "period": period,
            "period_label": period_label(period),
            "campaign_table": table(campaigns, "campaign"),
            "source_table": table(sources, "source"),
            "total": {"label": total.label, "cells": report_cells(total, total_filters, tags=tags)},
            # Built by calls.charts from numbers and escaped labels only.
            "chart": mark_safe(chart),  # noqa: S308
            "csv_url": f"{reverse('admin:calls_call_report_csv')}?{urlencode(query)}",
        }

    def report_csv_view(self, request: HttpRequest) -> HttpResponseBase:
        """Both of the report's tables as one CSV: a first column says which table."""
        if not request.user.has_perms(["calls.view_report", "calls.export_calls"]):
            raise PermissionDenied
        form = ReportForm(request.GET)
        if not form.is_valid():
            errors = " ".join(str(e) for errors in form.errors.values() for e in errors)
            return HttpResponseBadRequest(errors, content_type="text/plain; charset=utf-8")
        period, campaign_id, include_demo = form.period, form.campaign_id, form.include_demo

        def lines() -> Iterator[list[Any]]:
            tables = reports.report_tables(period, campaign_id=campaign_id, include_demo=include_demo)
            header, *rows = reports.csv_rows(tables.campaigns)
            yield ["table", *header]
            yield from (["campaign", *row] for row in rows)
            _, total = reports.csv_rows([tables.total])
            yield ["total", *total]
            _, *rows = reports.csv_rows(tables.sources)
            yield from (["source", *row] for row in rows)

        name = f"call-report-{period.start:%Y-%m-%d}-to-{period.end:%Y-%m-%d}.csv"
        return csv_response(_csv_text(lines()), filename=name)

    # --- the call list as CSV ---

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "calls_call_export":
            return ExportChangeList
        return CallChangeList

    def export_view(self, request: HttpRequest) -> HttpResponseBase:
        """Every call the list shows with the same query string (filters, search,
        ordering), all pages, as CSV streamed in constant memory."""
        if not (self.has_view_permission(request) and request.user.has_perm("calls.export_calls")):
            raise PermissionDenied
        try:
            calls = self.get_changelist_instance(request).queryset
        except IncorrectLookupParameters as exc:
            return HttpResponseBadRequest(
                f"These filters cannot be applied to the call list: {exc}", content_type="text/plain; charset=utf-8"
            )
        name = f"calls-{timezone.localdate():%Y-%m-%d}.csv"
        masked = not privacy.sees_caller_numbers(request)
        return csv_response(reports.calls_csv(calls, mask_callers=masked), filename=name)

    def recording_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The call's voicemail, fetched from Vonage through the adapter.

        Vonage keeps the audio and serves it only to requests signed with the
        application's key, so the browser cannot play ``recording_url`` itself.
        """
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        call = self.get_object(request, unquote(object_id))
        if call is None or not self.has_view_permission(request, call):
            raise Http404("There is no such call.")
        if not call.recording_url:
            # Plain text: the call page's player shows it as the reason it cannot play.
            return HttpResponseNotFound("This call has no voicemail.", content_type="text/plain; charset=utf-8")
        try:
            audio = vonage_adapter.recording_download(url=call.recording_url)
        except vonage_adapter.VonageUnavailable as exc:
            logger.warning("admin.recording_unavailable call=%s: %s", call.pk, exc)
            return HttpResponse(
                f"The voicemail could not be fetched from Vonage. {exc}",
                status=502,
                content_type="text/plain; charset=utf-8",
            )
        response = HttpResponse(audio, content_type="audio/mpeg")
        response["Content-Disposition"] = f'inline; filename="call-{call.pk}-voicemail.mp3"'
        return response

    # --- callers' numbers, for those who may see them (calls.privacy) ---

    def get_queryset(self, request: HttpRequest) -> QuerySet[Call]:
        return with_caller_privacy(super().get_queryset(request), request, caller=F("caller_number"))

    def get_list_display(self, request: HttpRequest) -> Any:
        shown: tuple[str, ...] = self.list_display
        if not request.user.has_perm("calls.view_calltag"):
            shown = tuple(name for name in shown if name != "tags_shown")
        if privacy.sees_caller_numbers(request):
            return shown
        # Not sortable either: the order would rank the hidden numbers.
        return tuple("caller_masked" if name == "caller" else name for name in shown)

    def get_list_filter(self, request: HttpRequest) -> Any:
        if request.user.has_perm("calls.view_calltag"):
            return self.list_filter
        return tuple(f for f in self.list_filter if f is not TagFilter)

    @admin.display(description="tags")
    def tags_shown(self, call: Call) -> str:
        return annotations_admin.tags_column(call)

    def get_search_fields(self, request: HttpRequest) -> Any:
        if privacy.sees_caller_numbers(request):
            return self.search_fields
        # A search that matched would reveal the number: only the campaign's number is searched.
        return tuple(f for f in self.search_fields if not privacy.lookup_mentions(f, privacy.CALL_FIELDS_WITH_CALLER))

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # The admin allows any lookup on the model's own fields from the query string:
        # ?caller_number__startswith=4479 would be the same oracle as the search.
        if not privacy.sees_caller_numbers(request):
            if privacy.lookup_mentions(lookup, privacy.CALL_FIELDS_WITH_CALLER):
                return False
        return super().lookup_allowed(lookup, value, request)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Call], search_term: str
    ) -> tuple[QuerySet[Call], bool]:
        """Numbers as the search fields say, or the exact uuid of either leg.

        The leg is matched with EXISTS rather than a join, so the list needs no
        DISTINCT over every column of the call.
        """
        matched, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if not term or " " in term:
            return matched, may_have_duplicates
        by_leg = queryset.filter(Exists(CallLeg.objects.filter(call=OuterRef("pk"), uuid=term)))
        return matched | by_leg, may_have_duplicates

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        return super().changelist_view(request, {**(extra_context or {}), "time_zone": settings.TIME_ZONE})

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """The call's page leads with its outcome and a timeline people read; the
        records from Vonage follow, folded."""
        call = kwargs.get("obj")
        if call is not None:
            visible = privacy.sees_caller_numbers(request)

            def shown(text: str) -> str:
                return text if visible else privacy.masked_text(text, call.caller_number)

            context.update(
                {
                    "timeline": call_timeline(call, list(call.legs.all()), shown=shown, number=formatted_number),
                    "outcome_label": call.get_outcome_display(),
                    "call_summary": call_summary(call),
                    "time_zone": settings.TIME_ZONE,
                    **annotations_admin.change_context(request, call),
                }
            )
        return super().render_change_form(request, context, *args, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Call | None = None) -> Any:
        # Every field of the record is shown: any the sections above do not name
        # (a field added to the model later) is listed under "More".
        named = set(flatten_fieldsets(self.call_fieldsets)) | self.replaced_fields
        rest = tuple(
            f.name for f in Call._meta.concrete_fields if f.name not in named and not f.primary_key and f.editable
        )
        more = ("Technical details", {"fields": rest, "classes": ("collapse",)})
        return self.call_fieldsets + ((more,) if rest else ())

    @admin.display(description="source", ordering="source")
    def source_shown(self, call: Call) -> str:
        if call.number_status == NumberStatus.UNKNOWN:
            return "Unknown number"
        if call.number_status == NumberStatus.INACTIVE:
            return f"{call.source} (inactive number)" if call.source else "Inactive number"
        return call.source or "-"

    @admin.display(description="number dialled")
    def called(self, call: Call) -> str:
        return formatted_number(call.called_number)

    @admin.display(description="call centre number rung")
    def destination_rung(self, call: Call) -> str:
        return formatted_number(call.destination) if call.destination else "-"

    @admin.display(description="wait", ordering="wait_seconds")
    def wait(self, call: Call) -> str:
        return minutes_seconds(call.wait_seconds)

    @admin.display(description="talk", ordering="talk_seconds")
    def talk(self, call: Call) -> str:
        return minutes_seconds(call.talk_seconds)

    @admin.display(description="destination rung")
    def attempt_shown(self, call: Call) -> str:
        if call.attempt == 0:
            return "The campaign's call centre number"
        return f"Further destination {call.attempt} (after {call.attempt} that did not take the call)"

    @admin.display(description="caller", ordering="caller_number")
    def caller(self, call: Call) -> str:
        return privacy.caller_display(call.caller_number, visible=getattr(call, "caller_visible", False))

    @admin.display(description="caller")
    def caller_masked(self, call: Call) -> str:
        return privacy.caller_display(call.caller_number, visible=False)

    @admin.display(description="whisper, as spoken")
    def whisper_spoken(self, call: Call) -> str:
        if call.whisper_text:
            text = call.whisper_text
            if not getattr(call, "caller_visible", False):
                text = privacy.masked_text(text, call.caller_number)
            return f"“{text}”"
        return "No whisper was spoken: the agent did not answer, or the caller had already gone."

    @admin.display(description="caller's NCCO")
    def caller_ncco_pretty(self, call: Call) -> SafeString:
        # The greeting in it may read out the caller's number ({caller}).
        if getattr(call, "caller_visible", False):
            return pretty_json(call.caller_ncco)
        return pretty_json(privacy.masked_payload(call.caller_ncco, call.caller_number))

    @admin.display(description="call-back record")
    def callback_record(self, call: Call) -> SafeString | str:
        """For a missed call: who marked it handled, and the call-backs made for it."""
        lines = []
        handled = CallbackHandled.objects.filter(call=call).select_related("handled_by").first()
        if handled is not None:
            lines.append(
                format_html(
                    '<p class="callback-handled">Marked handled by {} at {}: “{}”</p>',
                    handled.handled_by or "a deleted user",
                    dateformat.format(timezone.localtime(handled.handled_at), "j M Y, H:i"),
                    handled.note,
                )
            )
        for callback in callbacks.callbacks_of(call):
            lines.append(
                format_html(
                    '<p>Called back by {} at {}: <a href="{}">call {}</a>, {}</p>',
                    callback.placed_by or "a deleted user",
                    dateformat.format(timezone.localtime(callback.started_at), "j M Y, H:i"),
                    reverse("admin:calls_call_change", args=[callback.pk]),
                    callback.pk,
                    callback.get_outcome_display().lower(),
                )
            )
        return mark_safe("".join(lines)) if lines else "–"  # noqa: S308 (each line built by format_html)

    @admin.display(description="voicemail")
    def recording(self, call: Call) -> SafeString | str:
        if not call.recording_url:
            return "No voicemail was left."
        url = reverse("admin:calls_call_recording", args=[call.pk])
        # When the audio cannot be played, the player would sit at 0:00 saying nothing:
        # ask the same address again and show why (Vonage unreachable, no such file…).
        return format_html(
            '<div class="voicemail-player"><audio controls preload="none" src="{}">'
            '<a href="{}">Download the voicemail</a></audio><p class="help">{}</p>'
            '<p class="errornote voicemail-error" role="alert" hidden></p>'
            '<script src="{}" defer></script></div>',
            url,
            url,
            recording_length(call.recording_seconds),
            static("calls/voicemail_player.js"),
        )


def _csv_text(rows: Iterable[list[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = inert_writer(buffer)  # every cell inert: calls/spreadsheets.py
    for row in rows:
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def csv_response(pieces: Iterable[str], *, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(pieces, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@admin.register(CallEvent)
class CallEventAdmin(VonageRecordAdmin):
    """Every delivery to /event, including those that matched no call."""

    list_display = ("received", "kind", "status", "leg_uuid", "call_link")
    list_filter = ("kind", "status", ("call", admin.EmptyFieldListFilter))
    search_fields = ("leg_uuid__exact", "conversation_uuid__exact")
    ordering = ("-received_at", "-id")
    list_per_page = 100
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "received",
                    "occurred",
                    "kind",
                    "status",
                    "call",
                    "leg",
                    "leg_uuid",
                    "conversation_uuid",
                    "dedupe_key",
                    "payload_pretty",
                )
            },
        ),
    )
    received = time_column("received_at", "received at", milliseconds=True)
    occurred = time_column("occurred_at", "Vonage's timestamp", milliseconds=True)

    @admin.display(description="call", ordering="call_id")
    def call_link(self, event: CallEvent) -> SafeString | str:
        if event.call_id is None:
            return "no call"
        url = reverse("admin:calls_call_change", args=[event.call_id])
        return format_html('<a href="{}">Call {}</a>', url, event.call_id)

    def get_queryset(self, request: HttpRequest) -> QuerySet[CallEvent]:
        return with_caller_privacy(super().get_queryset(request), request, caller=F("call__caller_number"))

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # ?payload__from__startswith=4479 would tell the caller's number a digit at a time.
        if not privacy.sees_caller_numbers(request):
            if privacy.lookup_mentions(lookup, privacy.EVENT_FIELDS_WITH_CALLER):
                return False
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description="payload")
    def payload_pretty(self, event: CallEvent) -> SafeString:
        return shown_payload(event)


@admin.register(StaffProfile)
class StaffProfileAdmin(PhoneNumberFieldsMixin, admin.ModelAdmin):
    """Each staff member keeps their own phone (rung first by Call back); superusers keep everyone's."""

    phone_number_fields = ("phone",)
    list_display = ("user", "phone_shown")
    search_fields = ("user__username",)

    @admin.display(description="own phone")
    def phone_shown(self, profile: StaffProfile) -> str:
        return formatted_number(profile.phone) if profile.phone else "–"

    def get_queryset(self, request: HttpRequest) -> QuerySet[StaffProfile]:
        profiles = super().get_queryset(request).select_related("user")
        return profiles if request.user.is_superuser else profiles.filter(user_id=request.user.pk)

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return ("user", "phone") if request.user.is_superuser else ("phone",)

    def _own(self, request: HttpRequest, obj: Model | None) -> bool:
        if not request.user.is_active or not request.user.is_staff:
            return False
        return request.user.is_superuser or obj is None or getattr(obj, "user_id", None) == request.user.pk

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._own(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._own(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # No query here: every admin page asks while building the app list.
        return self._own(request, None)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """A staff member has one profile: adding another opens the one they have."""
        if not request.user.is_superuser:
            own = StaffProfile.objects.filter(user__pk=request.user.pk or 0).values_list("pk", flat=True).first()
            if own is not None:
                return HttpResponseRedirect(reverse("admin:calls_staffprofile_change", args=[own]))
        return super().add_view(request, form_url, extra_context)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return bool(request.user.is_superuser)

    def save_model(self, request: HttpRequest, obj: StaffProfile, form: Any, change: bool) -> None:
        if not request.user.is_superuser:
            obj.user = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
