"""The admin side of tags, notes and blocked callers (calls/annotations.py).

A call's page is read-only (its records come from Vonage), so what staff add goes
through small forms of its own, each posting to one URL here: tag, untag, write a
note, block the caller, unblock. Each checks its permission, changes nothing on bad
input and answers 400 with a sentence saying why; on success it goes back to the
call's page, where the change is in the call's history.
"""

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import ModelAdmin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet, Value
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from . import annotations, privacy
from .annotations import AnnotationRefused
from .models import BlockedCaller, BuiltinTag, Call, CallTag, Tag

logger = logging.getLogger(__name__)

TAG = "calls.tag_call"
NOTE = "calls.add_callnote"
BLOCK = "calls.add_blockedcaller"
UNBLOCK = "calls.delete_blockedcaller"

Action = Callable[[HttpRequest, Call], str]


def _tag_from(request: HttpRequest) -> Tag:
    value = request.POST.get("tag", "")
    tag = Tag.objects.filter(pk=int(value)).first() if value.isdigit() else None
    if tag is None:
        raise AnnotationRefused("Choose one of the tags listed: there is no such tag.")
    return tag


def tag_add(request: HttpRequest, call: Call) -> str:
    tag = _tag_from(request)
    annotations.call_tag_add(call=call, tag=tag, user=request.user)
    return f"Tagged “{tag.name}”."


def tag_remove(request: HttpRequest, call: Call) -> str:
    tag = _tag_from(request)
    annotations.call_tag_remove(call=call, tag=tag, user=request.user)
    return f"The tag “{tag.name}” was taken off (it stays in the call's history)."


def note_add(request: HttpRequest, call: Call) -> str:
    annotations.call_note_add(call=call, user=request.user, text=request.POST.get("text", ""))
    return "The note was added."


def caller_block(request: HttpRequest, call: Call) -> str:
    annotations.caller_block(call=call, user=request.user, reason=request.POST.get("reason", ""))
    return "This caller is blocked: their next calls hear a short message and are not put through."


def caller_unblock(request: HttpRequest, call: Call) -> str:
    blocked = annotations.blocked_caller_for(call.caller_number)
    if blocked is None:
        raise AnnotationRefused("This caller's number is not blocked.")
    annotations.caller_unblock(blocked=blocked, user=request.user)
    return "This caller is unblocked: their calls are put through again."


# Each action: its URL's last part, the permission it needs, and the change it makes.
ACTIONS: dict[str, tuple[str, Action]] = {
    "tags/add": (TAG, tag_add),
    "tags/remove": (TAG, tag_remove),
    "notes/add": (NOTE, note_add),
    "block": (BLOCK, caller_block),
    "unblock": (UNBLOCK, caller_unblock),
}


def action_view(
    request: HttpRequest, object_id: str, *, model_admin: "ModelAdmin[Call]", name: str
) -> HttpResponse | TemplateResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    permission, action = ACTIONS[name]
    if not (model_admin.has_view_permission(request) and request.user.has_perm(permission)):
        raise PermissionDenied
    call = model_admin.get_object(request, unquote(object_id))
    if call is None or not model_admin.has_view_permission(request, call):
        raise Http404("There is no such call.")
    try:
        done = action(request, call)
    except AnnotationRefused as exc:
        logger.info("annotations.refused call=%s action=%s user=%s: %s", call.pk, name, request.user.pk, exc)
        context = {
            **model_admin.admin_site.each_context(request),
            "title": "This change was not made",
            "reason": str(exc),
            "call": call,
            "call_url": reverse("admin:calls_call_change", args=[call.pk]),
        }
        return TemplateResponse(request, "admin/calls/call/refused.html", context, status=400)
    messages.success(request, done)
    return HttpResponseRedirect(reverse("admin:calls_call_change", args=[call.pk]) + "#call-annotations")


def admin_urls(model_admin: "ModelAdmin[Call]") -> list[URLPattern]:
    """The actions' URLs, for ``CallAdmin.get_urls`` (before its catch-all)."""

    def view(name: str) -> Callable[..., HttpResponse]:
        def run(request: HttpRequest, object_id: str) -> HttpResponse:
            return action_view(request, object_id, model_admin=model_admin, name=name)

        return model_admin.admin_site.admin_view(run)

    return [
        path(f"<path:object_id>/{name}/", view(name), name=f"calls_call_{name.replace('/', '_')}") for name in ACTIONS
    ]


def change_context(request: HttpRequest, call: Call) -> dict[str, Any]:
    """What the call's page shows of tags, notes and blocking, and the forms it offers."""
    user = request.user
    sees_tags = user.has_perm("calls.view_calltag")
    sees_notes = user.has_perm("calls.view_callnote")
    if not (sees_tags or sees_notes):
        return {}
    visible = privacy.sees_caller_numbers(request)
    history = [
        # A note may quote the caller's number: masked for staff who may not see it.
        entry if visible else replace(entry, detail=privacy.masked_text(entry.detail, call.caller_number))
        for entry in annotations.call_history(call)
        if (sees_notes if entry.what == "Note" else sees_tags)
    ]
    tags = annotations.current_tags(call) if sees_tags else []
    blocked = annotations.blocked_caller_for(call.caller_number)
    spam = any(tag.builtin == BuiltinTag.SPAM for tag in tags)
    return {
        "annotations": {
            "tags": tags,
            "other_tags": [tag for tag in Tag.objects.all() if tag not in tags],
            "history": history,
            "can_tag": user.has_perm(TAG),
            "can_note": user.has_perm(NOTE),
            "can_block": user.has_perm(BLOCK),
            "can_unblock": user.has_perm(UNBLOCK),
            "blocked": blocked,
            "blocked_by": annotations.person(blocked.blocked_by) if blocked else "",
            "spam": spam,
            "withheld": not call.caller_number,
            "urls": {name: reverse(f"admin:calls_call_{name.replace('/', '_')}", args=[call.pk]) for name in ACTIONS},
        }
    }


def tags_column(call: Call) -> str:
    """The call list's tags column: the page's tags were read in one query
    (``CallChangeList``); a row without them shows none."""
    links: list[CallTag] = getattr(call, "current_tags", [])
    return annotations.tag_names(links) or "–"


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    """The tags staff choose from: the built-in ones, and those added here."""

    list_display = ("name", "builtin", "calls_tagged")
    search_fields = ("name",)
    fields = ("name", "builtin")
    readonly_fields = ("builtin",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        current = Q(call_links__removed_at__isnull=True)
        return super().get_queryset(request).annotate(tagged=Count("call_links", filter=current))

    @admin.display(description="calls tagged now", ordering="tagged")
    def calls_tagged(self, tag: Tag) -> int:
        return getattr(tag, "tagged", 0)

    def has_delete_permission(self, request: HttpRequest, obj: Tag | None = None) -> bool:
        # A built-in tag is what the report counts; a tag on calls is their history.
        if obj is not None and (obj.builtin or obj.call_links.exists()):
            return False
        return super().has_delete_permission(request, obj)


@admin.register(BlockedCaller)
class BlockedCallerAdmin(admin.ModelAdmin):
    """Callers whose calls are not put through. Blocked from a call tagged spam (its
    page's "Block this caller"); deleting a row here unblocks the number."""

    list_display = ("number_shown", "blocked_at", "blocked_by", "reason", "call_link")
    fields = ("number_shown", "blocked_at", "blocked_by", "reason", "call_link")
    readonly_fields = fields
    list_select_related = ("blocked_by",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: BlockedCaller | None = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: BlockedCaller) -> None:
        annotations.caller_unblock(blocked=obj, user=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[BlockedCaller]) -> None:
        for blocked in queryset:
            annotations.caller_unblock(blocked=blocked, user=request.user)

    @admin.display(description="number", ordering="number")
    def number_shown(self, blocked: BlockedCaller) -> str:
        return privacy.caller_display(blocked.number, visible=getattr(blocked, "number_visible", False))

    @admin.display(description="blocked from")
    def call_link(self, blocked: BlockedCaller) -> SafeString | str:
        if blocked.call_id is None:
            return "-"
        url = reverse("admin:calls_call_change", args=[blocked.call_id])
        return format_html('<a href="{}">Call {}</a>', url, blocked.call_id)

    def get_queryset(self, request: HttpRequest) -> QuerySet[BlockedCaller]:
        # number_shown: the numbers are masked for staff who may not see callers' numbers.
        return super().get_queryset(request).annotate(number_visible=Value(privacy.sees_caller_numbers(request)))
