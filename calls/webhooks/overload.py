"""Shedding a caller's answer that waited too long in the server's queue.

Past what the servers can serve, requests queue in front of the application (gunicorn's
accepted connections wait for a free thread) and every answer waits longer than the one
before it, until they pass Vonage's 5 s and callers hear silence. So a caller's answer
that already waited ``ANSWER_SHED_AFTER_SECONDS`` when the application sees it is
answered at once with the cheap, valid answer (the caller connected to the call centre
directly, as when the database is down) and kept in the spool (``calls/webhooks/spool.py``)
for ``reconcile_calls`` to record, marked as shed: the answers behind it catch up instead
of the queue growing, as long as the shed calls themselves are within what the servers
serve. Past that, in one queue for every route, it grows anyway, answers and events alike:
hence the bulkhead below (README, "Performance and scaling").

The events' queue counts too. Where the answers have processes of their own (the bulkhead
deploy/nginx.conf sets up: an answer never waits behind an event), an answer is never late
however far behind the events are, and answering every caller in full would only lengthen
the events' queue until they pass Vonage's 10 s. So an event that waited past the same limit
says so (:func:`backlog_note`: the time of a file under ``WEBHOOK_SPOOL_DIR``, which every
process of the host shares), and for ``BACKLOG_MEMORY_SECONDS`` after it every caller's
answer is shed as if it had waited itself (:func:`shed_reason`). Once the events catch up
nothing refreshes the note and callers are answered in full again.

How long it waited is what the proxy in front stamped on it when it arrived:
``X-Request-Start: t=<seconds since the epoch>`` (nginx's ``$msec``, as deploy/nginx.conf
sets it; milliseconds and microseconds, as other proxies write it, are read by their
size). Without the header nothing is shed. The proxy overwrites the header, so a client
cannot send its own; the stamp only ever makes an answer cheaper, never skips a check.

A shed caller's events are kept in the spool too (:func:`conversation_shed`). The answer
leaves a marker for its conversation, which the caller's leg and the call centre's leg
Vonage connects share, and an event of a marked conversation has its signature checked and
remembered, is appended to the spool and answered at once, without the call's locked
read and the event's write: otherwise each shed call's eight events cost what a served
call's do and past capacity few callers are served in full. ``reconcile_calls`` records
them after the call and forgets the marker; an event that comes later is recorded as it
comes. A marker is a hint, never a record: lost, its events are recorded as they come.
"""

import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

SHED_MARKERS = "shed"  # under WEBHOOK_SPOOL_DIR: one empty file per shed conversation
BACKLOG = "events-behind"  # under WEBHOOK_SPOOL_DIR: its time is when an event last waited too long
BACKLOG_MEMORY_SECONDS = 1.0  # how long after that callers' answers are shed
BACKLOG_NOTE_EVERY_SECONDS = 0.1  # a process writes the note at most this often
_backlog_noted: dict[str, float] = {}  # the note's path: when this process last wrote it
# Vonage's conversation ids (CON-…); any other id is never marked, so never a path.
_MARKABLE = re.compile(r"[A-Za-z0-9_-]{1,64}")

REQUEST_START = "HTTP_X_REQUEST_START"


def queued_seconds(meta: Mapping[str, Any], *, now: float | None = None) -> float | None:
    """Seconds since the proxy stamped the request; None without a readable stamp."""
    stamp = str(meta.get(REQUEST_START) or "").strip()
    if not stamp:
        return None
    try:
        value = float(stamp.removeprefix("t="))
    except ValueError:
        return None
    # Seconds (nginx's $msec: 1733500000.123), milliseconds or microseconds since the epoch.
    for scale in (1.0, 1e3, 1e6):
        if value / scale < 1e10:
            value /= scale
            break
    now = time.time() if now is None else now
    waited = now - value
    # A stamp from the future (clocks of two machines) or from long ago is not a queue.
    return waited if 0 <= waited < 3600 else None


def shed_reason(meta: Mapping[str, Any]) -> str | None:
    """Why this caller's answer is shed, or None to answer it in full: it waited too long
    itself, or an event did a moment ago (:func:`backlog_note`)."""
    limit = settings.ANSWER_SHED_AFTER_SECONDS
    if not limit:
        return None
    then = "connected directly, recorded afterwards."
    waited = queued_seconds(meta)
    if waited is not None and waited > limit:
        return f"Answered after {waited:.1f} s in the server's queue (overloaded): {then}"
    if events_behind():
        return f"Events waited more than {limit:g} s in the server's queue (overloaded): {then}"
    return None


def _backlog_path() -> str | None:
    directory = settings.WEBHOOK_SPOOL_DIR
    return os.path.join(directory, BACKLOG) if directory else None


def backlog_note(meta: Mapping[str, Any]) -> None:
    """An event that waited past ``ANSWER_SHED_AFTER_SECONDS`` in the server's queue tells
    every process of this host, by the time of a file; a failure to write it is no
    failure of the event (the answers then see only their own queue)."""
    limit, path = settings.ANSWER_SHED_AFTER_SECONDS, _backlog_path()
    if not limit or path is None:
        return
    waited = queued_seconds(meta)
    if waited is None or waited <= limit:
        return
    now = time.time()
    if now - _backlog_noted.get(path, 0.0) < BACKLOG_NOTE_EVERY_SECONDS:
        return
    _backlog_noted[path] = now
    try:
        try:
            os.utime(path, (now, now))
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            os.utime(path, (now, now))
    except OSError:
        logger.warning("overload.backlog_not_noted path=%s: answers are shed only by their own wait", path)


def events_behind() -> bool:
    """Whether an event noted a wait too long (:func:`backlog_note`) less than
    ``BACKLOG_MEMORY_SECONDS`` ago."""
    path = _backlog_path()
    if path is None:
        return False
    try:
        return time.time() - os.stat(path).st_mtime <= BACKLOG_MEMORY_SECONDS
    except OSError:
        return False


def _marker(conversation_uuid: str) -> str | None:
    # os.path, not pathlib: this runs on every status event and every full answer.
    directory = settings.WEBHOOK_SPOOL_DIR
    if not directory or not _MARKABLE.fullmatch(conversation_uuid):
        return None
    return os.path.join(directory, SHED_MARKERS, conversation_uuid)


def conversation_shed_mark(conversation_uuid: str) -> bool:
    """Remember that this conversation's caller was shed: its events are spooled too.
    False when it cannot be marked (not Vonage's kind of id, or the disk refused)."""
    marker = _marker(conversation_uuid)
    if marker is None:
        return False
    try:
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError:
        logger.exception(
            "overload.mark_failed conversation=%s: its events are recorded as they come", conversation_uuid
        )
        return False
    return True


def conversation_shed(conversation_uuid: str) -> bool:
    """Whether this conversation's caller was shed and is not recorded yet (a marker that
    cannot be read counts as none: its events are recorded as they come)."""
    marker = _marker(conversation_uuid)
    return marker is not None and os.path.exists(marker)


def conversation_shed_forget(conversation_uuid: str) -> None:
    """The shed call is recorded: its later events are recorded as they come."""
    marker = _marker(conversation_uuid)
    if marker is None:
        return
    try:
        os.unlink(marker)
    except OSError:  # not marked; or the spool's path is not a directory: nothing was marked there
        pass
