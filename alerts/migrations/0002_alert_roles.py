"""Marketing edits alert recipients; Marketing and Supervisors see the outbox (calls.roles)."""

from django.db import migrations


def sync_roles(apps, schema_editor):  # type: ignore[no-untyped-def]
    from calls.roles import sync_role_groups

    sync_role_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_outbox"),
        ("calls", "0017_callback_queue"),
    ]

    operations = [
        migrations.RunPython(sync_roles, migrations.RunPython.noop),
    ]
