"""Where marketing staff edit campaigns, their numbers and the whisper text.

Nothing here is cached: the whisper is rendered from the campaign row when the agent
answers, so a saved edit applies to the very next call.
"""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import widgets
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, Field, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .models import Campaign, OpeningHours, TrackingNumber
from .phone import InvalidNumber, normalize_number, spoken_digits
from .whisper import render_template, speaking_seconds

# What the preview says for the variables only a real call knows.
PREVIEW_CALLER = "4 4 7 9 4 6 0 0 0 1 2 3"
PREVIEW_CALLS_BEFORE = "2"


class NumberSearchMixin:
    """Let staff search for a number the way they write it: ``+44 7700 900001``.

    Numbers are stored as E.164 digits, so a search term that is a whole phone number
    is normalised first; any other term is searched as typed.
    """

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        try:
            search_term = normalize_number(search_term.strip())
        except InvalidNumber:
            pass
        return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]


def formatted_number(number: str) -> str:
    """``447700900001`` as people write it in international format."""
    return f"+{number}" if number.isdigit() else number


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

    def to_python(self, value: Any) -> str | None:
        text = super().to_python(value)
        if text is None or text in self.empty_values:
            return text
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


@admin.register(Campaign)
class CampaignAdmin(PhoneNumberFieldsMixin, NumberSearchMixin, admin.ModelAdmin):
    list_display = ("name", "topic", "destination_display", "strategy", "number_count", "is_active")
    list_editable = ("is_active",)
    list_filter = ("is_active", "strategy")
    search_fields = ("name", "topic", "numbers__number", "numbers__source")
    readonly_fields = ("whisper_preview",)
    inlines = [TrackingNumberInline, OpeningHoursInline]
    phone_number_fields = ("destination",)
    # Vonage fetches hold music over the internet: a bare host means HTTPS.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    actions = ["activate", "deactivate"]
    campaign_fieldsets: Any = (
        ("Campaign", {"fields": ("name", "topic", "is_active")}),
        (
            "What people hear",
            {"fields": ("greeting", "hold_music_url", "whisper_template", "whisper_preview", "language", "style")},
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
    short_text_fields = ("hunt_numbers", "accept_prompt", "fallback_message", "voicemail_prompt", "closed_message")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        return super().get_queryset(request).annotate(number_count=Count("numbers"))

    def get_fieldsets(self, request: HttpRequest, obj: Campaign | None = None) -> Any:
        # A field added to the model later is still shown, under "More", until it is
        # given a place above.
        named = set(flatten_fieldsets(self.campaign_fieldsets))
        rest = tuple(
            f.name for f in Campaign._meta.concrete_fields if f.editable and not f.primary_key and f.name not in named
        )
        return self.campaign_fieldsets + ((("More", {"fields": rest}),) if rest else ())

    def formfield_for_dbfield(self, db_field: "Field[Any, Any]", request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name in self.short_text_fields:
            kwargs["widget"] = widgets.AdminTextareaWidget(attrs={"rows": 3})
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="destination", ordering="destination")
    def destination_display(self, campaign: Campaign) -> str:
        if campaign.destination:
            return formatted_number(campaign.destination)
        default = settings.CALL_CENTER_NUMBER
        return f"Call centre ({formatted_number(default)})" if default else "Call centre (not set)"

    @admin.display(description="tracking numbers", ordering="number_count")
    def number_count(self, campaign: Campaign) -> int:
        return campaign.number_count  # type: ignore[attr-defined]

    @admin.display(description="Whisper preview")
    def whisper_preview(self, campaign: Campaign) -> SafeString | str:
        if campaign is None or campaign.pk is None:
            return "Save the campaign to preview its whisper here."
        # An active number is what a real call would most likely come in on.
        number = campaign.numbers.order_by("-is_active", "number").first()
        text = render_template(
            campaign.whisper_template,
            {
                "topic": campaign.topic,
                "campaign": campaign.name,
                "source": number.source if number else "",
                "number": spoken_digits(number.number) if number else "",
                "caller": PREVIEW_CALLER,
                "calls_before": PREVIEW_CALLS_BEFORE,
            },
        )
        if number is None:
            note = "As heard before the campaign has a number: add one to hear {source} and {number}."
        else:
            note = f"As heard for a call to {number}."
        note += f" {{caller}} is read as “{PREVIEW_CALLER}” and {{calls_before}} as “{PREVIEW_CALLS_BEFORE}”."
        timing = f"About {speaking_seconds(text):g} seconds to say"
        if campaign.require_accept:
            # The agent hears the accept prompt right after the whisper.
            timing += f" ({speaking_seconds(f'{text} {campaign.accept_prompt}'):g} seconds with the accept prompt)"
        return format_html(
            '<p><strong>“{}”</strong></p><p class="help">{}</p><p class="help">{}.</p>', text, note, timing
        )

    @admin.action(description="Activate the selected campaigns", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._set_active(request, queryset, active=True)

    @admin.action(description="Deactivate the selected campaigns", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._set_active(request, queryset, active=False)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[Campaign], *, active: bool) -> None:
        # update() skips auto_now, so the edit time is set here.
        count = queryset.update(is_active=active, updated_at=timezone.now())
        state = "active" if active else "inactive"
        noun = "campaign is" if count == 1 else "campaigns are"
        self.message_user(request, f"{count} {noun} now {state}.", messages.SUCCESS)


@admin.register(TrackingNumber)
class TrackingNumberAdmin(PhoneNumberFieldsMixin, NumberSearchMixin, admin.ModelAdmin):
    phone_number_fields = ("number",)
    list_display = ("number", "campaign", "source", "is_active")
    list_filter = ("campaign", "is_active")
    search_fields = ("number", "source", "campaign__name")
    list_select_related = ("campaign",)
    fields = ("number", "campaign", "source", "is_active", "created_at")
    readonly_fields = ("created_at",)
