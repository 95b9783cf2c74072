"""Call history for supervisors: what happened on every call, as Vonage reported it.

Calls, legs and events are records of what Vonage did, so nobody adds or edits them
here (view permission is enough to read them); only superusers may delete a call.
"""

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, Model, OuterRef, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, path, reverse
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from campaigns.admin import NumberSearchMixin, formatted_number

from . import vonage_adapter
from .models import Call, CallEvent, CallLeg

logger = logging.getLogger(__name__)

admin.site.site_header = "Call Whisper"
admin.site.site_title = "Call Whisper admin"
admin.site.index_title = "Campaigns, numbers and call history"


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
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}:{rest:02d} long ({seconds} second{'' if seconds == 1 else 's'})."


def time_column(field: str, description: str, *, milliseconds: bool = False) -> Callable[..., str]:
    """An admin column or read-only field showing ``field`` with :func:`exact_time`."""

    @admin.display(description=description, ordering=field)
    def show(self: Any, obj: Model) -> str:
        return exact_time(getattr(obj, field), milliseconds=milliseconds)

    return show


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
        "uuid",
        "role",
        "status",
        "detail",
        "from_number",
        "to_number",
        "attempt",
        "started",
        "answered",
        "accepted",
        "declined",
        "ended",
        "duration",
        "price",
        "rate",
        "network",
        "region_url",
    )
    started = time_column("started_at", "started at")
    answered = time_column("answered_at", "answered at")
    accepted = time_column("accepted_at", "accepted at")
    declined = time_column("declined_at", "declined at")
    ended = time_column("ended_at", "ended at")


class CallEventInline(VonageRecordInline):
    model = CallEvent
    fk_name = "call"
    verbose_name_plural = "timeline (events from Vonage, in the order received)"
    fields = ("received", "occurred", "kind", "status", "leg_uuid", "payload_pretty")
    ordering = ("received_at", "id")
    received = time_column("received_at", "received at", milliseconds=True)
    occurred = time_column("occurred_at", "Vonage's timestamp", milliseconds=True)

    @admin.display(description="payload")
    def payload_pretty(self, event: CallEvent) -> SafeString:
        return pretty_json(event.payload)


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
    list_display = (
        "started",
        "campaign",
        "source",
        "caller",
        "outcome",
        "wait_seconds",
        "talk_seconds",
        "state",
        "number_status",
    )
    list_filter = ("campaign", "outcome", "number_status", "state", "started_at")
    date_hierarchy = "started_at"
    search_fields = ("caller_number", "called_number")
    list_select_related = ("campaign",)
    ordering = ("-started_at", "-id")
    list_per_page = 50
    inlines = [CallLegInline, CallEventInline]
    call_fieldsets: Any = (
        (
            None,
            {
                "fields": (
                    "started",
                    "campaign",
                    "tracking_number",
                    "number_status",
                    "called_number",
                    "source",
                    "caller_number",
                    "destination",
                )
            },
        ),
        ("What the agent heard", {"fields": ("whisper_spoken",)}),
        ("Ringing the agent", {"fields": ("strategy", "accept_required", "attempt")}),
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
                    "wait_seconds",
                    "talk_seconds",
                    "agent_call_error",
                )
            },
        ),
        ("Voicemail", {"fields": ("recording",)}),
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
        # Before the admin's own "<path:object_id>/" catch-all.
        return [recording, *super().get_urls()]

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
            raise Http404("This call has no voicemail.")
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

    def get_fieldsets(self, request: HttpRequest, obj: Call | None = None) -> Any:
        # Every field of the record is shown: any the sections above do not name
        # (a field added to the model later) is listed under "More".
        named = set(flatten_fieldsets(self.call_fieldsets)) | self.replaced_fields
        rest = tuple(
            f.name for f in Call._meta.concrete_fields if f.name not in named and not f.primary_key and f.editable
        )
        return self.call_fieldsets + ((("More", {"fields": rest}),) if rest else ())

    @admin.display(description="caller", ordering="caller_number")
    def caller(self, call: Call) -> str:
        return formatted_number(call.caller_number) if call.caller_number else "unknown"

    @admin.display(description="whisper, as spoken")
    def whisper_spoken(self, call: Call) -> str:
        if call.whisper_text:
            return f"“{call.whisper_text}”"
        return "No whisper was spoken: the agent did not answer, or the caller had already gone."

    @admin.display(description="caller's NCCO")
    def caller_ncco_pretty(self, call: Call) -> SafeString:
        return pretty_json(call.caller_ncco)

    @admin.display(description="voicemail")
    def recording(self, call: Call) -> SafeString | str:
        if not call.recording_url:
            return "No voicemail was left."
        url = reverse("admin:calls_call_recording", args=[call.pk])
        return format_html(
            '<audio controls preload="none" src="{}">'
            '<a href="{}">Download the voicemail</a></audio><p class="help">{}</p>',
            url,
            url,
            recording_length(call.recording_seconds),
        )


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

    @admin.display(description="payload")
    def payload_pretty(self, event: CallEvent) -> SafeString:
        return pretty_json(event.payload)
