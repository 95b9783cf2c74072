"""Where marketing staff edit campaigns, their numbers and the whisper text.

Nothing here is cached: the whisper is rendered from the campaign row when the agent
answers, so a saved edit applies to the very next call. Every change to a campaign, its
numbers and its opening hours is recorded (django-simple-history) and listed, with who
made it, on the campaign's History page.
"""

import zoneinfo
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import widgets
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import models
from django.db.models import (
    Count,
    Exists,
    F,
    Field,
    FilteredRelation,
    FloatField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Cast, Coalesce, NullIf
from django.http import HttpRequest, JsonResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import capfirst
from django.views.decorators.http import require_GET
from simple_history.admin import SimpleHistoryAdmin
from simple_history.models import ModelChange
from simple_history.template_utils import HistoricalRecordContextHelper
from simple_history.utils import bulk_update_with_history

from alerts.admin import AlertRecipientInline
from calls.models import Call, NumberStatus, Outcome
from calls.reports import ReportPeriod, ReportRow

from .models import Campaign, OpeningHours, Strategy, TrackingNumber
from .phone import InvalidNumber, display_number, masked, normalize_number, number_from_search, spoken_digits
from .routing import routes_changed
from .whisper import TemplateError, earlier_calls, render_template, speaking_seconds, validate_template

# What the preview says for the variables only a real call knows.
PREVIEW_CALLER = "4 4 7 9 4 6 0 0 0 1 2 3"
PREVIEW_CALLS_BEFORE = earlier_calls(2)
# ...and for the number's, before the campaign has one.
PREVIEW_SOURCE = "M4 billboard"
PREVIEW_NUMBER = "447700900123"

# A whisper longer than this is flagged on the form: the caller waits through every second
# of it, and agents still listening to it miss what the caller says first.
WHISPER_WARNING_SECONDS = 5.0
WHISPER_WARNING = "Agents lose the caller's first words when whispers run long."

# The campaign list's call columns count the calls of the last RECENT_DAYS whole days
# (today included, in the site's time zone): the same period as the report's "last 7 days".
RECENT_DAYS = 7


class NumberSearchMixin:
    """Let staff search for a number the way they write it: ``+44 7700 900001``,
    ``07700 900001`` (national, in the call centre's country).

    Numbers are stored as E.164 digits, so a search term that is a whole phone number
    is normalised first; any other term is searched as typed.
    """

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        search_term = number_from_search(search_term) or search_term
        return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]


SHOW_DEMO = "show"


def shows_demo(request: HttpRequest) -> bool:
    """Whether the page was asked to show demo data (``?demo=show``): the one click."""
    return request.GET.get(DemoFilter.parameter_name) == SHOW_DEMO


class DemoFilter(admin.SimpleListFilter):
    """Demo data (the call simulator's campaigns, the demo import's) is hidden unless
    ``?demo=show``; ``hidden`` is the Q of what is left out."""

    title = "demo data"
    parameter_name = "demo"
    hidden: Q = Q(is_demo=True)

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(SHOW_DEMO, "Shown")]

    def choices(self, changelist: Any) -> Any:
        yield {
            "selected": self.value() != SHOW_DEMO,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Hidden",
        }
        yield {
            "selected": self.value() == SHOW_DEMO,
            "query_string": changelist.get_query_string({self.parameter_name: SHOW_DEMO}),
            "display": "Shown",
        }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset if self.value() == SHOW_DEMO else queryset.exclude(self.hidden)


class NumberDemoFilter(DemoFilter):
    hidden = Q(campaign__is_demo=True)


class CampaignChoiceFilter(admin.RelatedFieldListFilter):
    """A list's campaign filter without the demo campaigns, unless they are shown."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Not the admin's bare "-": what a call without a campaign is.
        self.empty_value_display = mark_safe("No campaign (unknown numbers)")

    def field_choices(self, field: Any, request: HttpRequest, model_admin: admin.ModelAdmin) -> Any:
        ordering = self.field_admin_ordering(field, request, model_admin)
        limit = {} if shows_demo(request) else {"is_demo": False}
        return field.get_choices(include_blank=False, ordering=ordering, limit_choices_to=limit)


def formatted_number(number: str) -> str:
    """``447700900001`` as people write it (PHONE_NUMBER_DISPLAY: ``campaigns.phone``)."""
    return display_number(number)


class PhoneNumberField(forms.CharField):
    """A number as people type it (``+44 7700 900001``), cleaned to E.164 digits.

    The model's ``clean()`` normalises too, but Django checks the column's 15-character
    limit before that runs, so ``0044 7700-900001`` would be refused as too long; here
    the form cleans the number first, and the formset's duplicate check then compares
    numbers as stored.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs["max_length"] = 32
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        # Shown as everywhere else in the admin (PHONE_NUMBER_DISPLAY); cleaned back to digits.
        return display_number(value) if isinstance(value, str) and value.isdigit() else value

    def to_python(self, value: Any) -> str | None:
        text = super().to_python(value)
        if text is None or text in self.empty_values:
            return text
        # A national number (07700 900001, as PHONE_NUMBER_DISPLAY=national shows it) is
        # read in the call centre's country.
        national = number_from_search(text) if text.strip().startswith("0") else None
        if national is not None:
            return national
        try:
            return normalize_number(text)
        except InvalidNumber as exc:
            raise ValidationError(str(exc), code="invalid") from exc


class PhoneNumberFieldsMixin:
    """Use :class:`PhoneNumberField` for the model fields named in ``phone_number_fields``."""

    phone_number_fields: tuple[str, ...] = ()

    def formfield_for_dbfield(self, db_field: "Field[Any, Any]", request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name in self.phone_number_fields:
            kwargs["form_class"] = PhoneNumberField
        return super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]


class TrackingNumberInline(PhoneNumberFieldsMixin, admin.TabularInline):
    model = TrackingNumber
    phone_number_fields = ("number",)
    fields = ("number", "source", "is_active")
    extra = 1


class OpeningHoursForm(forms.ModelForm):
    def clean(self) -> dict[str, Any]:
        super().clean()
        opens, closes = self.cleaned_data.get("opens"), self.cleaned_data.get("closes")
        # The database refuses it too, but its message names only the constraint.
        if opens is not None and closes is not None and opens >= closes:
            self.add_error(
                "closes",
                f"It closes at {closes:%H:%M}, which is not after it opens at {opens:%H:%M}. "
                "Hours that pass midnight are two rows: until 23:59, then from 00:00 the next day.",
            )
        return self.cleaned_data


class OpeningHoursInline(admin.TabularInline):
    model = OpeningHours
    form = OpeningHoursForm
    verbose_name = "opening period"
    verbose_name_plural = "opening hours"
    fields = ("weekday", "opens", "closes")
    extra = 0
    formfield_overrides = {models.TimeField: {"widget": widgets.AdminTimeWidget(format="%H:%M")}}


# --- whisper preview ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def time_zone_choices() -> list[tuple[str, str]]:
    """Every time zone the server knows (IANA names), as "Europe/London"."""
    return [(name, name.replace("_", " ")) for name in sorted(zoneinfo.available_timezones())]


@dataclass(frozen=True)
class WhisperPreview:
    """The whisper as an agent would hear it, with sample values for what only a call knows."""

    text: str
    error: str
    note: str
    seconds: float | None
    seconds_with_accept_prompt: float | None = None

    @property
    def warning(self) -> bool:
        return self.seconds is not None and self.seconds > WHISPER_WARNING_SECONDS

    def as_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "error": self.error,
            "note": self.note,
            "seconds": self.seconds,
            "seconds_with_accept_prompt": self.seconds_with_accept_prompt,
            "warning": self.warning,
            "warning_text": WHISPER_WARNING if self.warning else "",
        }


def preview_whisper(
    *,
    template: str,
    topic: str,
    name: str,
    number: str | None = None,
    source: str | None = None,
    accept_prompt: str | None = None,
    mask_caller: bool = False,
) -> WhisperPreview:
    """Render ``template`` as a call to ``number`` would: the form's preview and its endpoint.

    ``number`` and ``source`` are the campaign's first number's; without a number, samples
    stand in for both. An invalid template gives the form's own validation message.
    """
    try:
        validate_template(template)
    except TemplateError as exc:
        return WhisperPreview(text="", error=str(exc), note="", seconds=None)
    digits = _preview_digits(number)
    if digits is None:
        digits, source = PREVIEW_NUMBER, PREVIEW_SOURCE
        note = (
            f"The campaign has no number yet: {{number}} is read as a sample number and {{source}} as "
            f"“{PREVIEW_SOURCE}”."
        )
    else:
        note = f"As heard for a call to {formatted_number(digits)}."
    note += f" {{caller}} is read as “{PREVIEW_CALLER}” and {{calls_before}} as “{PREVIEW_CALLS_BEFORE}”."
    text = render_template(
        template,
        {
            "topic": topic,
            "campaign": name,
            "source": source or "",
            "number": spoken_digits(digits),
            "caller": PREVIEW_CALLER,
            "calls_before": PREVIEW_CALLS_BEFORE,
        },
    )
    # The agent hears the accept prompt right after the whisper.
    with_prompt = speaking_seconds(f"{text} {accept_prompt}") if accept_prompt else None
    seconds = speaking_seconds(text)
    if mask_caller:
        # Staff who may not see callers' numbers see the sample masked, as on a call's page
        # (the timing is still the spoken text's).
        text = text.replace(PREVIEW_CALLER, masked(PREVIEW_CALLER.replace(" ", "")))
        note = note.replace(PREVIEW_CALLER, masked(PREVIEW_CALLER.replace(" ", "")))
    return WhisperPreview(text=text, error="", note=note, seconds=seconds, seconds_with_accept_prompt=with_prompt)


def _preview_digits(number: str | None) -> str | None:
    """A typed number as the digits a call would carry; None when there is none yet."""
    if not number or not number.strip():
        return None
    try:
        return normalize_number(number.strip())
    except InvalidNumber:
        # Half typed: read the digits there are, as the agent would hear them.
        return "".join(ch for ch in number if ch.isdigit()) or None


# --- numbers that rang without a campaign ---------------------------------------------------


@dataclass
class NumberWithoutCampaign:
    """A dialled number whose calls reached no active campaign."""

    number: str
    calls: int
    last_call_at: datetime
    tracking_number: TrackingNumber | None = None

    @property
    def display(self) -> str:
        return formatted_number(self.number)

    @property
    def can_be_tracked(self) -> bool:
        """Only a number in international format can become a tracking number."""
        try:
            return normalize_number(self.number) == self.number
        except InvalidNumber:
            return False

    @property
    def create_url(self) -> str:
        """The campaign add form, filled in with a name and this number."""
        query = urlencode({"name": f"Campaign for {self.display}", "number": self.display})
        return f"{reverse('admin:campaigns_campaign_add')}?{query}"


def numbers_without_campaign() -> QuerySet[Any, Any]:
    """Called numbers with calls that found no active campaign, most recent call first.

    A number drops out as soon as it is routable again (an active number in an active
    campaign), whatever its old calls say. One row per number: ``called_number``,
    ``calls``, ``last_call_at``.
    """
    routable = TrackingNumber.objects.routable().filter(number=OuterRef("called_number"))
    return (
        Call.objects.filter(number_status__in=[NumberStatus.UNKNOWN, NumberStatus.INACTIVE])
        .filter(~Exists(routable))
        .values("called_number")
        .annotate(calls=Count("id"), last_call_at=Max("started_at"))
        .order_by("-last_call_at", "called_number")
    )


def with_tracking_numbers(rows: Iterable[dict[str, Any]]) -> list[NumberWithoutCampaign]:
    """The rows as objects, each with the tracking number it already is (inactive), if any."""
    numbers = [
        NumberWithoutCampaign(number=row["called_number"], calls=row["calls"], last_call_at=row["last_call_at"])
        for row in rows
    ]
    known = TrackingNumber.objects.select_related("campaign").in_bulk([n.number for n in numbers], field_name="number")
    for number in numbers:
        number.tracking_number = known.get(number.number)
    return numbers


# --- change history -------------------------------------------------------------------------


class ChoiceLabelsContextHelper(HistoricalRecordContextHelper):
    """History's old → new values with choices as people read them: "Monday", not "0"."""

    def prepare_delta_change_value(self, change: ModelChange, value: Any) -> Any:
        model_field = self.model._meta.get_field(change.field)
        if getattr(model_field, "flatchoices", None):
            return dict(model_field.flatchoices).get(value, value)  # type: ignore[union-attr]
        return super().prepare_delta_change_value(change, value)


@dataclass
class RelatedChange:
    """One change to a campaign's number or opening period, for the campaign's History page."""

    kind: str
    record: Any
    changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def row(self) -> str:
        return str(self.record.instance)


def related_changes(campaign_id: int, *, limit: int = 100) -> list[RelatedChange]:
    """The latest changes to the campaign's numbers and opening hours, newest first.

    Two queries, whatever the number of records: each model's history for the campaign,
    diffed record by record in memory (``prev_record`` would query once per record).
    """
    found: list[RelatedChange] = []
    for kind, model in (("Number", TrackingNumber), ("Opening hours", OpeningHours)):
        by_object: dict[int, list[Any]] = defaultdict(list)
        records = model.history.filter(campaign_id=campaign_id).select_related("history_user")  # type: ignore[attr-defined]
        for record in records.order_by("history_date", "history_id"):
            by_object[record.id].append(record)
        for versions in by_object.values():
            previous = None
            for record in versions:
                change = RelatedChange(kind=kind, record=record)
                if previous is not None and record.history_type == "~":
                    delta = record.diff_against(previous, excluded_fields=["campaign"], foreign_keys_are_objs=False)
                    change.changes = ChoiceLabelsContextHelper(model, record).context_for_delta_changes(delta)
                found.append(change)
                previous = record
    found.sort(key=lambda c: (c.record.history_date, c.record.history_id), reverse=True)
    return found[:limit]


# The campaign list's short words for the strategy: what the caller hears while waiting.
WAITING_WORDS = {Strategy.CONFERENCE: "Hold music", Strategy.CONNECT: "Ringing"}


class WaitingFilter(admin.ChoicesFieldListFilter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = "what callers hear while waiting"


@admin.register(Campaign)
class CampaignAdmin(PhoneNumberFieldsMixin, NumberSearchMixin, SimpleHistoryAdmin):
    list_display = (
        "name",
        "topic",
        "destination_display",
        "waiting",
        "number_count",
        "recent_calls",
        "recent_answer_rate",
        "is_active",
    )
    list_editable = ("is_active",)
    list_filter = ("is_active", ("strategy", WaitingFilter), DemoFilter)
    search_fields = ("name", "topic", "numbers__number", "numbers__source")
    readonly_fields = ("whisper_preview", "whisper_preview_masked")
    inlines = [TrackingNumberInline, OpeningHoursInline, AlertRecipientInline]
    phone_number_fields = ("destination",)
    # Vonage fetches hold music over the internet: a bare host means HTTPS.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    actions = ["activate", "deactivate"]
    object_history_template = "admin/campaigns/campaign/object_history.html"
    campaign_fieldsets: Any = (
        ("Campaign", {"fields": ("name", "topic", "is_active", "is_demo")}),
        (
            "What people hear",
            {
                "fields": (
                    "greeting",
                    "hold_music_url",
                    "whisper_template",
                    "whisper_preview",
                    "callback_template",
                    "language",
                    "style",
                )
            },
        ),
        (
            "Ringing the agent",
            {"fields": ("strategy", "destination", "hunt_numbers", "ring_seconds", "require_accept", "accept_prompt")},
        ),
        (
            "When nobody answers",
            {"fields": ("max_wait_seconds", "fallback", "fallback_message", "voicemail_prompt")},
        ),
        (
            "Opening hours",
            {
                "fields": ("timezone", "starts_on", "ends_on", "closed_action", "closed_message"),
                "description": (
                    "Calls reach an agent from the first to the last day, inside the weekly opening hours "
                    "below, in the campaign's time zone. A campaign without opening hours is open around "
                    "the clock; outside them callers get the closed action."
                ),
            },
        ),
    )
    # Short lists of numbers and spoken sentences: a few lines each, not the admin's ten.
    short_text_fields = (
        "greeting",
        "hunt_numbers",
        "accept_prompt",
        "fallback_message",
        "voicemail_prompt",
        "closed_message",
    )

    class Media:
        css = {"all": ["campaigns/whisper_preview.css"]}
        js = ["campaigns/whisper_preview.js"]

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        own = [
            path(
                "preview/",
                self.admin_site.admin_view(require_GET(self.preview_view)),
                name="{}_{}_preview".format(*info),
            ),
            path(
                "numbers-without-campaign/",
                self.admin_site.admin_view(require_GET(self.numbers_without_campaign_view)),
                name="{}_{}_numbers_without_campaign".format(*info),
            ),
        ]
        # Before the admin's own "<path:object_id>/" catch-all.
        return [*own, *super().get_urls()]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        period = ReportPeriod.last_days(RECENT_DAYS)
        numbers = (
            TrackingNumber.objects.filter(campaign=OuterRef("pk"))
            .order_by()
            .values("campaign")
            .annotate(n=Count("pk"))
            .values("n")
        )

        def recent(**outcome: Any) -> Count:
            return Count("recent_calls_rel", filter=Q(**{f"recent_calls_rel__{k}": v for k, v in outcome.items()}))

        # The numbers are counted in a subquery and the calls through a join limited to the
        # period (index campaign, started_at): joining both would multiply the rows.
        queryset = (
            super()
            .get_queryset(request)
            .annotate(
                recent_calls_rel=FilteredRelation(
                    "calls",
                    condition=Q(calls__started_at__gte=period.since, calls__started_at__lt=period.until),
                ),
                number_count=Coalesce(Subquery(numbers), 0),
                recent_call_count=Count("recent_calls_rel"),
                recent_answered=recent(outcome=Outcome.ANSWERED),
                recent_closed=recent(outcome=Outcome.CLOSED),
                recent_in_progress=recent(outcome=Outcome.IN_PROGRESS),
            )
        )
        # Only for sorting the column; the figure shown comes from ReportRow.answer_rate.
        settled = F("recent_call_count") - F("recent_closed") - F("recent_in_progress")
        return queryset.annotate(
            recent_rate=Cast("recent_answered", FloatField()) / NullIf(settled, Value(0)),
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        note = f"Calls and answer rate over the last {RECENT_DAYS} days, today included (days in {settings.TIME_ZONE})."
        return super().changelist_view(request, {**(extra_context or {}), "recent_note": note})

    def get_fieldsets(self, request: HttpRequest, obj: Campaign | None = None) -> Any:
        # A field added to the model later is still shown, under "More", until it is
        # given a place above.
        named = set(flatten_fieldsets(self.campaign_fieldsets))
        rest = tuple(
            f.name for f in Campaign._meta.concrete_fields if f.editable and not f.primary_key and f.name not in named
        )
        fieldsets = self.campaign_fieldsets + ((("More", {"fields": rest}),) if rest else ())
        if request.user.has_perm("calls.see_caller_numbers"):
            return fieldsets
        return tuple(
            (
                name,
                {
                    **options,
                    "fields": tuple(
                        "whisper_preview_masked" if f == "whisper_preview" else f for f in options["fields"]
                    ),
                },
            )
            for name, options in fieldsets
        )

    def formfield_for_dbfield(self, db_field: "Field[Any, Any]", request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name in self.short_text_fields:
            kwargs["widget"] = widgets.AdminTextareaWidget(attrs={"rows": 3})
        if db_field.name == "timezone":
            # Chosen from the list, not typed: "Europe/London", not "london" or "GMT+1".
            return forms.TypedChoiceField(
                label=capfirst(db_field.verbose_name),
                help_text=db_field.help_text,
                choices=time_zone_choices(),
                initial=db_field.default,
                error_messages={"invalid_choice": "“%(value)s” is not a time zone: choose one from the list."},
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        # "Create a campaign" from the numbers without one: ?name=…&number=…; the number
        # goes to the tracking-number inline (get_formset_kwargs), not the campaign.
        initial = super().get_changeform_initial_data(request)
        initial.pop("number", None)
        return initial

    def get_formset_kwargs(
        self, request: HttpRequest, obj: Campaign, inline: admin.options.InlineModelAdmin, prefix: str
    ) -> dict[str, Any]:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        number = request.GET.get("number", "").strip()
        # Only on the empty add form: a form posted with an initial value it did not
        # change would count as unchanged, and its row would not be saved.
        if isinstance(inline, TrackingNumberInline) and request.method == "GET" and obj.pk is None and number:
            try:
                number = formatted_number(normalize_number(number))
            except InvalidNumber:
                pass
            kwargs["initial"] = [{"number": number, "is_active": True}]
        return kwargs

    @admin.display(description="call centre", ordering="destination")
    def destination_display(self, campaign: Campaign) -> str:
        if campaign.destination:
            return formatted_number(campaign.destination)
        default = settings.CALL_CENTER_NUMBER
        return f"Call centre ({formatted_number(default)})" if default else "Call centre (not set)"

    @admin.display(description="caller hears", ordering="strategy")
    def waiting(self, campaign: Campaign) -> str:
        return WAITING_WORDS.get(campaign.strategy, campaign.get_strategy_display())  # type: ignore[call-overload]

    @admin.display(description="numbers", ordering="number_count")
    def number_count(self, campaign: Campaign) -> int:
        return campaign.number_count  # type: ignore[attr-defined]

    @admin.display(description=f"calls ({RECENT_DAYS} days)", ordering="recent_call_count")
    def recent_calls(self, campaign: Campaign) -> SafeString | int:
        count: int = campaign.recent_call_count  # type: ignore[attr-defined]
        if not count:
            return 0
        period = ReportPeriod.last_days(RECENT_DAYS)
        query = urlencode(
            {
                "campaign__id__exact": campaign.pk,
                "started_at__gte": period.since.isoformat(),
                "started_at__lt": period.until.isoformat(),
            }
        )
        return format_html('<a href="{}?{}">{}</a>', reverse("admin:calls_call_changelist"), query, count)

    @admin.display(description=f"answer rate ({RECENT_DAYS} days)", ordering="recent_rate")
    def recent_answer_rate(self, campaign: Campaign) -> str:
        rate = recent_report_row(campaign).answer_rate
        return "–" if rate is None else f"{rate:.0%}"

    @admin.display(description="Whisper preview")
    def whisper_preview(self, campaign: Campaign, *, mask_caller: bool = False) -> SafeString:
        number = None
        if campaign.pk is not None:
            # An active number is what a real call would most likely come in on.
            number = campaign.numbers.order_by("-is_active", "number").first()
        preview = preview_whisper(
            template=campaign.whisper_template,
            topic=campaign.topic,
            name=campaign.name,
            number=number.number if number else None,
            source=number.source if number else None,
            accept_prompt=campaign.accept_prompt if campaign.require_accept else None,
            mask_caller=mask_caller,
        )
        return render_to_string(
            "admin/campaigns/campaign/whisper_preview.html",
            {
                "preview": preview,
                "preview_url": reverse("admin:campaigns_campaign_preview"),
                "language": campaign.language,
                "warning_text": WHISPER_WARNING,
            },
        )

    @admin.display(description="Whisper preview")
    def whisper_preview_masked(self, campaign: Campaign) -> SafeString:
        return self.whisper_preview(campaign, mask_caller=True)

    # --- the whisper preview's endpoint ---------------------------------------------------

    def preview_view(self, request: HttpRequest) -> JsonResponse:
        """The preview for what the form says now: the campaign form's script asks as the
        marketer types. Rendered here, with the renderer calls use, so there is one."""
        if not (self.has_view_or_change_permission(request) or self.has_add_permission(request)):
            raise PermissionDenied
        query = request.GET
        preview = preview_whisper(
            template=query.get("template", ""),
            topic=query.get("topic", ""),
            name=query.get("name", ""),
            number=query.get("number"),
            source=query.get("source"),
            accept_prompt=query.get("accept_prompt") or None,
            mask_caller=not request.user.has_perm("calls.see_caller_numbers"),
        )
        return JsonResponse({**preview.as_json(), "language": query.get("language", "")})

    # --- numbers that rang without a campaign -----------------------------------------------

    def numbers_without_campaign_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        page = Paginator(numbers_without_campaign(), 100).get_page(request.GET.get("p"))
        rows = with_tracking_numbers(page.object_list)
        context = {
            **self.admin_site.each_context(request),
            "title": "Numbers without a campaign",
            "opts": self.opts,
            "page": page,
            "rows": rows,
            "can_add": self.has_add_permission(request),
            "can_change": self.has_change_permission(request),
            "can_view_calls": request.user.has_perm("calls.view_call"),
            "calls_url": reverse("admin:calls_call_changelist"),
        }
        return TemplateResponse(request, "admin/campaigns/campaign/numbers_without_campaign.html", context)

    # --- history ------------------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Campaign, form: forms.ModelForm, change: bool) -> None:
        if change and not form.has_changed():
            # Saved with only its numbers or hours changed, or nothing at all: no empty entry
            # in the campaign's history (the rows' own changes are recorded with them).
            obj.save_without_historical_record()  # type: ignore[attr-defined]
            return
        super().save_model(request, obj, form, change)

    def get_history_queryset(self, request: HttpRequest, history_manager: Any, pk_name: str, object_id: Any) -> Any:
        # django-simple-history ends with select_related() of the tracked foreign keys;
        # a campaign has none, and a bare select_related() drops the nullable user: one
        # query per entry. The campaign's own entries need only their author.
        return history_manager.filter(**{pk_name: object_id}).select_related("history_user")

    def get_historical_record_context_helper(self, request: HttpRequest, historical_record: Any) -> Any:
        return ChoiceLabelsContextHelper(self.model, historical_record)

    def render_history_view(self, request: HttpRequest, template: str, context: dict[str, Any], **kwargs: Any) -> Any:
        # The campaign's History page lists its numbers' and opening hours' changes too.
        campaign = context.get("object")
        if template == self.object_history_template and campaign is not None:
            context["related_changes"] = related_changes(campaign.pk)
        return super().render_history_view(request, template, context, **kwargs)

    # --- actions ----------------------------------------------------------------------

    @admin.action(description="Activate the selected campaigns", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._set_active(request, queryset, active=True)

    @admin.action(description="Deactivate the selected campaigns", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._set_active(request, queryset, active=False)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[Campaign], *, active: bool) -> None:
        # One UPDATE and one INSERT of history records, with who did it: a plain update()
        # would leave the change out of the campaigns' history.
        campaigns = list(Campaign.objects.filter(pk__in=queryset.values("pk")))
        now = timezone.now()
        for campaign in campaigns:
            campaign.is_active = active
            campaign.updated_at = now
        bulk_update_with_history(campaigns, Campaign, ["is_active", "updated_at"], default_user=request.user)
        routes_changed()  # a bulk update sends no signals
        state = "active" if active else "inactive"
        noun = "campaign is" if len(campaigns) == 1 else "campaigns are"
        self.message_user(request, f"{len(campaigns)} {noun} now {state}.", messages.SUCCESS)


def recent_report_row(campaign: Campaign) -> ReportRow:
    """The campaign list's annotated counts as the report's row, for its answer rate."""
    return ReportRow(
        key=campaign.pk,
        label=campaign.name,
        campaign_id=campaign.pk,
        calls=campaign.recent_call_count,  # type: ignore[attr-defined]
        outcomes={
            Outcome.ANSWERED: campaign.recent_answered,  # type: ignore[attr-defined]
            Outcome.CLOSED: campaign.recent_closed,  # type: ignore[attr-defined]
            Outcome.IN_PROGRESS: campaign.recent_in_progress,  # type: ignore[attr-defined]
        },
    )


@admin.register(TrackingNumber)
class TrackingNumberAdmin(PhoneNumberFieldsMixin, NumberSearchMixin, SimpleHistoryAdmin):
    phone_number_fields = ("number",)
    list_display = ("number_shown", "campaign", "source", "is_active")
    list_filter = (("campaign", CampaignChoiceFilter), "is_active", NumberDemoFilter)
    search_fields = ("number", "source", "campaign__name")
    list_select_related = ("campaign",)
    fields = ("number", "campaign", "source", "is_active", "created_at")
    readonly_fields = ("created_at",)

    @admin.display(description="number", ordering="number")
    def number_shown(self, number: TrackingNumber) -> str:
        return formatted_number(number.number)
