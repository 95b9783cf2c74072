"""Shedding a caller's answer that waited too long in the server's queue.

Past what the servers can serve, requests queue in front of the application (gunicorn's
accepted connections wait for a free thread) and every answer waits longer than the one
before it, until they pass Vonage's 5 s and callers hear silence. So a caller's answer
that already waited ``ANSWER_SHED_AFTER_SECONDS`` when the application sees it is
answered at once with the cheap, valid answer (the caller connected to the call centre
directly, as when the database is down) and kept in the spool (``calls/webhooks/spool.py``)
for ``reconcile_calls`` to record, marked as shed: the answers behind it catch up instead
of the queue growing.

How long it waited is what the proxy in front stamped on it when it arrived:
``X-Request-Start: t=<seconds since the epoch>`` (nginx's ``$msec``, as deploy/nginx.conf
sets it; milliseconds and microseconds, as other proxies write it, are read by their
size). Without the header nothing is shed. The proxy overwrites the header, so a client
cannot send its own; the stamp only ever makes an answer cheaper, never skips a check.
"""

import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings

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
    """Why this caller's answer is shed, or None to answer it in full."""
    limit = settings.ANSWER_SHED_AFTER_SECONDS
    if not limit:
        return None
    waited = queued_seconds(meta)
    if waited is None or waited <= limit:
        return None
    return f"Answered after {waited:.1f} s in the server's queue (overloaded): connected directly, recorded afterwards."
