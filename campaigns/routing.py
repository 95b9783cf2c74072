"""Keeping the webhooks' in-memory routes current (calls/route_cache.py).

Every save or delete of a campaign, tracking number or opening hours bumps
``RoutesVersion`` inside the same transaction, so the bump commits (or rolls back)
with the change. Bulk writes that send no signals call :func:`routes_changed` themselves.
"""

from typing import Any

from django.db import connection
from django.db.models.signals import post_delete, post_save

from .models import Campaign, OpeningHours, RoutesVersion, TrackingNumber

ROUTES_VERSION_ID = 1
ROUTING_MODELS = (Campaign, TrackingNumber, OpeningHours)


def routes_changed() -> None:
    """Tell every web process that routes changed: one ``UPDATE`` of one row."""
    table = connection.ops.quote_name(RoutesVersion._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET version = version + 1 WHERE id = %s", [ROUTES_VERSION_ID])  # noqa: S608
        if cursor.rowcount == 0:
            RoutesVersion.objects.get_or_create(id=ROUTES_VERSION_ID, defaults={"version": 1})


def _on_change(sender: Any, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return  # loaddata: the fixture's own rows, routes_changed runs after
    routes_changed()


def connect_signals() -> None:
    for model in ROUTING_MODELS:
        post_save.connect(_on_change, sender=model, dispatch_uid=f"routes_changed_save_{model.__name__}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"routes_changed_delete_{model.__name__}")
