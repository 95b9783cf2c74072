"""Routes kept in memory, current to the very next call.

``route_for`` (calls/selectors.py) reads a tracking number, its campaign and the
campaign's hours: two statements and a few model instances for every call. Here the
result is kept per dialled number in this process, tagged with the ``RoutesVersion``
that each call reads in its first statement anyway (calls/statements.call_start);
any saved change to a campaign, number or hours bumps that version in its own
transaction (campaigns/routing.py), so the next call after the commit loads afresh.
Entries also expire after ``MAX_AGE_SECONDS``, a bound on any change made behind
the ORM's back. With no version row (a flushed test database) nothing is kept.
"""

import threading
import time
from dataclasses import dataclass
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from .models import Call
from .selectors import Route, route_for

MAX_AGE_SECONDS = 60.0
# Dialled numbers kept at most; the cache starts again empty past this.
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class _Entry:
    route: Route
    loaded_at: float


_lock = threading.Lock()
_version: int | None = None
_routes: dict[str, _Entry] = {}
# The same routes by tracking number id, for calls that name their number (campaign_attach).
_by_number_id: dict[int, Route] = {}


def route_cached(to: str, *, version: int | None) -> Route:
    """``route_for(to)``, from memory when nothing routing-related changed since."""
    global _version
    if version is None:
        return route_for(to)
    now = time.monotonic()
    with _lock:
        if version != _version:
            _routes.clear()
            _by_number_id.clear()
            _version = version
        entry = _routes.get(to)
    if entry is not None and now - entry.loaded_at < MAX_AGE_SECONDS:
        return entry.route
    route = route_for(to)
    with _lock:
        if version == _version:
            if len(_routes) >= MAX_ENTRIES:
                _routes.clear()
                _by_number_id.clear()
            _routes[to] = _Entry(route, now)
            if route.tracking_number is not None:
                _by_number_id[route.tracking_number.pk] = route
    return route


def campaign_attach(call: Call, *, version: int | None = None) -> None:
    """Give ``call`` its campaign and tracking number from memory, when a route kept
    here has them (else the ORM reads each when it is first used). With ``version``
    (read in the same statement as the call), only if no routing change came since;
    without, the campaign as it routed the call."""
    if call.tracking_number_id is None:
        return
    with _lock:
        if version is not None and version != _version:
            return
        route = _by_number_id.get(call.tracking_number_id)
    if route is None or route.tracking_number is None:
        return
    call.tracking_number = route.tracking_number
    if route.campaign is not None and route.campaign.pk == call.campaign_id:
        call.campaign = route.campaign


def forget() -> None:
    """Drop every kept route (tests; a setting that routes depend on changed)."""
    global _version
    with _lock:
        _routes.clear()
        _by_number_id.clear()
        _version = None


@receiver(setting_changed)
def _settings_changed(**kwargs: Any) -> None:
    # Routes carry the call centre, hold music and the destination allow-list.
    forget()
