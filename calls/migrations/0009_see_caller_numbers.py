"""The "see callers' numbers" permission, given to the Supervisors (calls.roles); the
call page's help texts in plain words."""

from django.db import migrations, models


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
        # The call page's help texts, in the words of the people who read it.
        migrations.AlterField(
            model_name="call",
            name="agent_requested_at",
            field=models.DateTimeField(blank=True, help_text="When we asked Vonage to ring the agent.", null=True),
        ),
        migrations.AlterField(
            model_name="call",
            name="attempt",
            field=models.PositiveSmallIntegerField(
                default=0,
                help_text="Which destination is being rung: the campaign's own, then its further destinations.",
            ),
        ),
        migrations.AlterField(
            model_name="call",
            name="redacted_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When the caller's number was removed: numbers are kept only as long as the retention policy says.",
                null=True,
            ),
        ),
    ]
