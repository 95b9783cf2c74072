"""The "see callers' numbers" permission, given to the Supervisors (calls.roles)."""

from django.db import migrations


def sync_roles(apps, schema_editor):  # type: ignore[no-untyped-def]
    from calls.roles import sync_role_groups

    sync_role_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("calls", "0008_agent_requested_at"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="call",
            options={
                "ordering": ["-started_at", "-id"],
                "permissions": [
                    ("view_report", "Can view the call reports"),
                    ("export_calls", "Can export calls and reports as CSV"),
                    ("see_caller_numbers", "Can see callers' phone numbers"),
                ],
            },
        ),
        migrations.RunPython(sync_roles, migrations.RunPython.noop),
    ]
