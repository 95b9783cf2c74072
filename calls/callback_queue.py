"""The call-back queue's admin page (``calls.call_back``): the callers to call back,
oldest first, per campaign, with the voicemail playable in place, a Call back button and
a handled-with-a-note form. Server-rendered; both buttons are POSTs (CSRF) that redirect
back to the page with a message saying what happened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.http import urlencode

from campaigns.models import Campaign

from . import callbacks, privacy
from .models import Call, StaffProfile

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

PERMISSION = "calls.call_back"


@dataclass(frozen=True)
class Row:
    entry: callbacks.QueueEntry
    caller: str
    voicemail: str


@dataclass(frozen=True)
class Group:
    campaign: Campaign | None
    rows: list[Row]


def _allowed(request: HttpRequest) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied


def _campaign_filter(request: HttpRequest) -> int | None:
    value = request.GET.get("campaign", "")
    return int(value) if value.isdigit() and int(value) < 2**63 else None


def queue_view(request: HttpRequest, *, model_admin: ModelAdmin[Call]) -> TemplateResponse:
    _allowed(request)
    campaign_id = _campaign_filter(request)
    entries = callbacks.callback_queue(campaign_id=campaign_id)
    visible = privacy.sees_caller_numbers(request)
    rows = [
        Row(
            entry=entry,
            caller=privacy.caller_display(entry.call.caller_number, visible=visible),
            voicemail=model_admin.recording(entry.call) if entry.call.recording_url else "",  # type: ignore[attr-defined]
        )
        for entry in entries
    ]
    # Grouped per campaign, the group whose caller has waited longest first (rows are oldest first).
    groups: dict[int, Group] = {}
    for row in rows:
        call = row.entry.call
        group = groups.setdefault(call.campaign_id or 0, Group(campaign=call.campaign, rows=[]))
        group.rows.append(row)
    phone = callbacks.staff_phone(request.user)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Call-back queue",
        "opts": model_admin.opts,
        "groups": list(groups.values()),
        "count": len(rows),
        "limit": callbacks.MAX_ENTRIES,
        "campaigns": callbacks.queue_campaigns(),
        "campaign_id": campaign_id,
        "staff_phone": phone,
        "profile_url": profile_url(request),
        "queue_url": reverse("admin:calls_call_callbacks"),
    }
    return TemplateResponse(request, "admin/calls/callback_queue.html", context)


def call_back_view(request: HttpRequest, object_id: str) -> HttpResponse:
    """Press Call back: rings the staff member's own phone, then the caller."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    _allowed(request)
    try:
        callback = callbacks.callback_place(call_id=_id(object_id), user=request.user)
    except callbacks.CallbackRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"Your phone is ringing: answer it to hear who you are calling back, then the caller is rung "
            f"(call {callback.pk}).",
        )
    return _back_to_queue(request)


def handled_view(request: HttpRequest, object_id: str) -> HttpResponse:
    """Mark a caller handled with a note."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    _allowed(request)
    try:
        callbacks.callback_handle(call_id=_id(object_id), user=request.user, note=request.POST.get("note", ""))
    except callbacks.CallbackRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Marked handled: the caller has left the queue; the note is on the call's page.")
    return _back_to_queue(request)


def _id(object_id: str) -> int:
    return int(object_id) if object_id.isdigit() and int(object_id) < 2**63 else 0


def _back_to_queue(request: HttpRequest) -> HttpResponseRedirect:
    url = reverse("admin:calls_call_callbacks")
    campaign_id = _campaign_filter(request)
    return HttpResponseRedirect(f"{url}?{urlencode({'campaign': campaign_id})}" if campaign_id else url)


def profile_url(request: HttpRequest) -> str:
    """Where the staff member edits their own phone."""
    profile = StaffProfile.objects.filter(user__pk=request.user.pk or 0).values_list("pk", flat=True).first()
    if profile is None:
        return reverse("admin:calls_staffprofile_add")
    return reverse("admin:calls_staffprofile_change", args=[profile])


def admin_urls(model_admin: ModelAdmin[Call]) -> list[URLPattern]:
    """The queue's URLs, for ``CallAdmin.get_urls``."""

    def page(request: HttpRequest) -> TemplateResponse:
        return queue_view(request, model_admin=model_admin)

    site = model_admin.admin_site
    return [
        path("callbacks/", site.admin_view(page), name="calls_call_callbacks"),
        path("callbacks/<str:object_id>/call/", site.admin_view(call_back_view), name="calls_call_call_back"),
        path("callbacks/<str:object_id>/handled/", site.admin_view(handled_view), name="calls_call_callback_handled"),
    ]
