"""One history record for every campaign, number and opening period that already exists.

django-simple-history shows a change as the difference from the record before it. Without
a starting record, the first edit of a campaign made before history was installed would be
listed without its old and new values; with one, it shows "topic: old → new" like any other.
"""

from django.db import migrations
from django.utils import timezone

BATCH = 500
REASON = "History starts here"


def _baseline(apps, model_name: str) -> None:
    model = apps.get_model("campaigns", model_name)
    historical = apps.get_model("campaigns", f"Historical{model_name}")
    tracked = [f.attname for f in historical._meta.fields if not f.name.startswith("history_")]
    now = timezone.now()
    rows = []
    for obj in model.objects.iterator(chunk_size=BATCH):
        rows.append(
            historical(
                **{name: getattr(obj, name) for name in tracked},
                history_date=now,
                history_type="+",
                history_change_reason=REASON,
            )
        )
        if len(rows) == BATCH:
            historical.objects.bulk_create(rows)
            rows = []
    historical.objects.bulk_create(rows)


def forwards(apps, schema_editor) -> None:
    for model_name in ("Campaign", "TrackingNumber", "OpeningHours"):
        _baseline(apps, model_name)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0003_history"),
    ]

    operations = [
        # Backwards: the history tables are dropped by undoing 0003; nothing to do here.
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
