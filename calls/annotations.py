"""What staff add to a call after the fact: tags, notes, and blocking a spam caller.

Writes are service functions (keyword-only, typed); each change is kept so that the
call's history shows who did what and when: a tag taken off keeps its row (with who
took it off and when), notes are only ever appended, and blocking or unblocking a
caller is written on the call it came from as a note.

A blocked caller's next call is answered by :func:`blocked_caller_ncco` (called from
``calls.services.call_answer_inbound``): a short message in the campaign's voice, then
Vonage hangs up; nobody is rung and the call's outcome is ``blocked``.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.phone import masked

from . import ncco as nccos
from .models import BlockedCaller, BuiltinTag, Call, CallNote, CallTag, Tag

logger = logging.getLogger(__name__)

User = AbstractBaseUser | AnonymousUser

# What a blocked caller hears before Vonage hangs up: short, and no reason to call again.
BLOCKED_MESSAGE = "Sorry, we cannot take your call."
# A note is read on the call's page and in the CSV: a few paragraphs at most.
NOTE_MAX_LENGTH = 4000


class AnnotationRefused(Exception):
    """A change staff asked for that cannot be made; the message says why, in a sentence."""


# --- tags ---------------------------------------------------------------------------------


def call_tag_add(*, call: Call, tag: Tag, user: User) -> CallTag:
    """Put ``tag`` on ``call``; a tag already on it stays as it was (no second row)."""
    existing = CallTag.objects.current().filter(call=call, tag=tag).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            link = CallTag.objects.create(call=call, tag=tag, added_by=_user(user))
    except IntegrityError:
        # The same tag put on at the same moment by someone else: theirs stands.
        return CallTag.objects.current().get(call=call, tag=tag)
    logger.info("annotations.tagged call=%s tag=%s user=%s", call.pk, tag.pk, _user_id(user))
    return link


def call_tag_remove(*, call: Call, tag: Tag, user: User) -> CallTag:
    """Take ``tag`` off ``call``: the row is kept, with who took it off and when."""
    removed = CallTag.objects.current().filter(call=call, tag=tag).first()
    if removed is None:
        raise AnnotationRefused(f"This call is not tagged “{tag.name}”.")
    removed.removed_at = timezone.now()
    removed.removed_by = _user(user)
    removed.save(update_fields=["removed_at", "removed_by"])
    logger.info("annotations.untagged call=%s tag=%s user=%s", call.pk, tag.pk, _user_id(user))
    return removed


def current_tags(call: Call) -> list[Tag]:
    return [link.tag for link in CallTag.objects.current().filter(call=call).select_related("tag")]


def builtin_tag_ids() -> dict[str, int]:
    """The built-in tags' ids by their key (``lead``, ``sale``…); one short query."""
    return dict(Tag.objects.exclude(builtin="").values_list("builtin", "pk"))


def is_tagged(call: Call, builtin: BuiltinTag) -> bool:
    return CallTag.objects.current().filter(call=call, tag__builtin=builtin).exists()


# --- notes --------------------------------------------------------------------------------


def call_note_add(*, call: Call, user: User, text: str) -> CallNote:
    """Append a note to ``call``. Notes are never edited: a correction is a new note."""
    text = text.strip()
    if not text:
        raise AnnotationRefused("The note is empty: write what you want to keep about this call.")
    if len(text) > NOTE_MAX_LENGTH:
        raise AnnotationRefused(f"The note is {len(text)} characters long; keep it to {NOTE_MAX_LENGTH}.")
    note = CallNote.objects.create(call=call, author=_user(user), text=text)
    logger.info("annotations.note call=%s note=%s user=%s", call.pk, note.pk, _user_id(user))
    return note


# --- blocking a spam caller ------------------------------------------------------------


def caller_block(*, call: Call, user: User, reason: str = "") -> BlockedCaller:
    """Block the number ``call`` came from: its next calls are not put through.

    Only a call tagged spam can be the reason, and only a number we know: a withheld
    (or redacted) number would match every other withheld caller."""
    if not call.caller_number:
        raise AnnotationRefused(
            "This caller's number was withheld (or has been removed under the retention policy): "
            "there is no number to block."
        )
    if not is_tagged(call, BuiltinTag.SPAM):
        raise AnnotationRefused("Only a caller whose call is tagged spam can be blocked: tag the call spam first.")
    reason = reason.strip()
    try:
        with transaction.atomic():
            blocked = BlockedCaller.objects.create(
                number=call.caller_number, blocked_by=_user(user), reason=reason, call=call
            )
            CallNote.objects.create(
                call=call,
                author=_user(user),
                text="Blocked this caller's number" + (f": {reason}" if reason else "."),
            )
    except IntegrityError as exc:
        raise AnnotationRefused("This caller's number is blocked already.") from exc
    logger.info("annotations.blocked call=%s caller=%s user=%s", call.pk, masked(call.caller_number), _user_id(user))
    return blocked


def caller_unblock(*, blocked: BlockedCaller, user: User) -> None:
    """Let the number call again; the call it was blocked from keeps a note saying so."""
    with transaction.atomic():
        if blocked.call_id is not None:
            CallNote.objects.create(call_id=blocked.call_id, author=_user(user), text="Unblocked this caller's number.")
        blocked.delete()
    logger.info(
        "annotations.unblocked call=%s caller=%s user=%s", blocked.call_id, masked(blocked.number), _user_id(user)
    )


def blocked_caller_for(number: str) -> BlockedCaller | None:
    """The block on ``number`` (as Vonage sends it), if any; never for a withheld number."""
    if not number:
        return None
    return BlockedCaller.objects.filter(number=number[:32]).order_by().first()


def blocked_caller_ncco(*, voice: nccos.Voice) -> nccos.Ncco:
    """What a blocked caller hears: a short message, then Vonage hangs up."""
    return nccos.caller_hears_message(text=BLOCKED_MESSAGE, voice=voice)


# --- the call's history -----------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    """One thing staff did to a call, for its page."""

    at: datetime
    who: str
    what: str
    detail: str = ""


def call_history(call: Call) -> list[HistoryEntry]:
    """Tags put on and taken off, and notes, in the order they happened (two queries)."""
    entries: list[HistoryEntry] = []
    links = CallTag.objects.filter(call=call).select_related("tag", "added_by", "removed_by")
    for link in links:
        entries.append(HistoryEntry(link.added_at, person(link.added_by), "Tagged", link.tag.name))
        if link.removed_at is not None:
            entries.append(HistoryEntry(link.removed_at, person(link.removed_by), "Tag removed", link.tag.name))
    for note in CallNote.objects.filter(call=call).select_related("author"):
        entries.append(HistoryEntry(note.created_at, person(note.author), "Note", note.text))
    return sorted(entries, key=lambda entry: entry.at)


def person(user: Any) -> str:
    """A staff member as colleagues know them: their name, else their username."""
    if user is None:
        return "a deleted user"
    return user.get_full_name() or user.get_username()


def tag_names(links: Iterable[CallTag]) -> str:
    return ", ".join(sorted(link.tag.name for link in links))


def _user(user: User) -> Any:
    return user if getattr(user, "is_authenticated", False) else None


def _user_id(user: User) -> Any:
    return getattr(user, "pk", None)
