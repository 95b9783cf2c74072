"""Retention: callers' numbers are personal data, kept for ``CALL_RETENTION_DAYS``.

``calls_redact`` removes the caller's number from old calls (the call, its caller
leg, and the ``from`` of its stored events) and keeps everything else for the
reports; ``calls_delete`` removes old calls altogether. Both work in batches, each in
its own transaction, and only touch calls not yet done, so a run from cron can be
interrupted and run again at any time.
"""

from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from .models import Call, CallEvent, CallLeg, LegRole

REDACTED = "redacted"
# Payload keys that can carry the caller's number.
_NUMBER_KEYS = ("from",)

Progress = Callable[[int], None]


def calls_due(*, older_than: datetime) -> QuerySet[Call]:
    return Call.objects.filter(started_at__lt=older_than)


def calls_redact(*, older_than: datetime, batch_size: int = 1000, progress: Progress | None = None) -> int:
    """Redact callers' numbers on calls started before ``older_than``; return how many."""
    done = 0
    while True:
        with transaction.atomic():
            ids = list(
                calls_due(older_than=older_than)
                .filter(redacted_at__isnull=True)
                .order_by("id")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                return done
            Call.objects.filter(id__in=ids).update(caller_number="", redacted_at=timezone.now())
            CallLeg.objects.filter(call_id__in=ids, role=LegRole.CALLER).update(from_number="")
            events = list(CallEvent.objects.filter(call_id__in=ids).only("id", "payload"))
            for event in events:
                if isinstance(event.payload, dict):
                    for key in _NUMBER_KEYS:
                        if event.payload.get(key):
                            event.payload[key] = REDACTED
            CallEvent.objects.bulk_update(events, ["payload"], batch_size=500)
        done += len(ids)
        if progress:
            progress(len(ids))


def calls_delete(*, older_than: datetime, batch_size: int = 1000, progress: Progress | None = None) -> int:
    """Delete calls started before ``older_than`` (legs and events go with them)."""
    done = 0
    while True:
        with transaction.atomic():
            ids = list(calls_due(older_than=older_than).order_by("id").values_list("id", flat=True)[:batch_size])
            if not ids:
                return done
            CallEvent.objects.filter(call_id__in=ids).delete()
            CallLeg.objects.filter(call_id__in=ids).delete()
            Call.objects.filter(id__in=ids).delete()
        done += len(ids)
        if progress:
            progress(len(ids))
