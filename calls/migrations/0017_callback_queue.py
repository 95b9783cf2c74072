"""The call-back queue: call-backs as calls of their own, handled marks, staff phones,
and the call_back permission (given to Supervisors)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def grant_call_back(apps, schema_editor):  # type: ignore[no-untyped-def]
    """Supervisors work the call-back queue (calls/roles.py)."""
    from calls.roles import sync_role_groups

    sync_role_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("calls", "0016_builtin_tags_and_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="CallbackHandled",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("handled_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("note", models.TextField(help_text="What was done, in a sentence or two.")),
            ],
            options={
                "verbose_name": "call-back handled",
                "verbose_name_plural": "call-backs handled",
            },
        ),
        migrations.CreateModel(
            name="StaffProfile",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "phone",
                    models.CharField(
                        blank=True,
                        help_text="Rung when you press Call back in the call-back queue, e.g. +44 7700 900123.",
                        max_length=15,
                        verbose_name="own phone",
                    ),
                ),
            ],
            options={
                "verbose_name": "staff profile",
            },
        ),
        migrations.AlterModelOptions(
            name="call",
            options={
                "ordering": ["-started_at", "-id"],
                "permissions": [
                    ("view_report", "Can view the call reports"),
                    ("export_calls", "Can export calls and reports as CSV"),
                    ("see_caller_numbers", "Can see callers' phone numbers"),
                    ("view_live_board", "Can watch calls as they happen"),
                    ("call_back", "Can work the call-back queue: call missed callers back, mark them handled"),
                ],
            },
        ),
        migrations.AddField(
            model_name="call",
            name="callback_of",
            field=models.ForeignKey(
                blank=True,
                help_text="For a call-back: the missed call it answers (calls/callbacks.py).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="callbacks",
                to="calls.call",
            ),
        ),
        migrations.AddField(
            model_name="call",
            name="direction",
            field=models.CharField(
                choices=[("inbound", "Inbound"), ("callback", "Outbound call-back")], default="inbound", max_length=8
            ),
        ),
        migrations.AddField(
            model_name="call",
            name="placed_by",
            field=models.ForeignKey(
                blank=True,
                help_text="For a call-back: the staff member who pressed Call back (and whose phone was rung).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddConstraint(
            model_name="call",
            constraint=models.CheckConstraint(
                condition=models.Q(("direction__in", ["inbound", "callback"])), name="call_direction_valid"
            ),
        ),
        migrations.AddConstraint(
            model_name="call",
            constraint=models.UniqueConstraint(
                condition=models.Q(("direction", "callback"), models.Q(("state", "ended"), _negated=True)),
                fields=("callback_of",),
                name="call_one_callback_in_progress",
            ),
        ),
        migrations.AddField(
            model_name="callbackhandled",
            name="call",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE, related_name="callback_handled", to="calls.call"
            ),
        ),
        migrations.AddField(
            model_name="callbackhandled",
            name="handled_by",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL
            ),
        ),
        migrations.AddField(
            model_name="staffprofile",
            name="user",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE, related_name="staff_profile", to=settings.AUTH_USER_MODEL
            ),
        ),
        migrations.AddConstraint(
            model_name="callbackhandled",
            constraint=models.CheckConstraint(
                condition=models.Q(("note", ""), _negated=True), name="callbackhandled_note_not_empty"
            ),
        ),
        migrations.AddConstraint(
            model_name="staffprofile",
            constraint=models.CheckConstraint(
                condition=models.Q(("phone", ""), ("phone__regex", "^[1-9][0-9]{6,14}$"), _connector="OR"),
                name="staffprofile_phone_e164",
            ),
        ),
        migrations.RunPython(grant_call_back, migrations.RunPython.noop),
    ]
