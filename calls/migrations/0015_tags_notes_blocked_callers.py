"""Tags, notes and blocked callers (calls/annotations.py), and the "blocked" outcome."""

import django.db.models.deletion
import django.db.models.functions.text
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("calls", "0014_live_board"),
        ("campaigns", "0005_campaign_is_demo"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="BlockedCaller",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.CharField(help_text="As Vonage sent it (E.164 digits).", max_length=32, unique=True)),
                ("blocked_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("reason", models.TextField(blank=True)),
            ],
            options={
                "verbose_name": "blocked caller",
                "ordering": ["-blocked_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="CallNote",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("text", models.TextField()),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name": "call note",
                "ordering": ["created_at", "id"],
            },
        ),
        migrations.CreateModel(
            name="CallTag",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("added_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "removed_at",
                    models.DateTimeField(blank=True, help_text="When the tag was taken off, if it was.", null=True),
                ),
            ],
            options={
                "verbose_name": "call tag",
                "ordering": ["added_at", "id"],
                "permissions": [("tag_call", "Can tag calls and untag them")],
            },
        ),
        migrations.CreateModel(
            name="Tag",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "name",
                    models.CharField(
                        help_text="Unique, whatever the case: “Lead” and “lead” are one tag.", max_length=40
                    ),
                ),
                (
                    "builtin",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("lead", "lead"),
                            ("sale", "sale"),
                            ("spam", "spam"),
                            ("wrong_number", "wrong number"),
                        ],
                        help_text="Which built-in tag this is (the report counts leads and sales by it); empty for tags added here.",
                        max_length=12,
                    ),
                ),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.RemoveConstraint(
            model_name="call",
            name="call_outcome_valid",
        ),
        migrations.AlterField(
            model_name="call",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("in_progress", "In progress"),
                    ("answered", "Answered"),
                    ("missed", "Missed"),
                    ("voicemail", "Voicemail"),
                    ("busy", "Agent busy"),
                    ("declined", "Declined by agent"),
                    ("failed", "Failed"),
                    ("abandoned", "Abandoned by caller"),
                    ("closed", "Closed"),
                    ("blocked", "Blocked"),
                ],
                db_index=True,
                default="in_progress",
                max_length=12,
            ),
        ),
        migrations.AlterField(
            model_name="call",
            name="resolution",
            field=models.CharField(
                blank=True,
                choices=[
                    ("in_progress", "In progress"),
                    ("answered", "Answered"),
                    ("missed", "Missed"),
                    ("voicemail", "Voicemail"),
                    ("busy", "Agent busy"),
                    ("declined", "Declined by agent"),
                    ("failed", "Failed"),
                    ("abandoned", "Abandoned by caller"),
                    ("closed", "Closed"),
                    ("blocked", "Blocked"),
                ],
                help_text="An outcome the flow decided (closed, voicemail, declined), kept whatever the legs say.",
                max_length=12,
            ),
        ),
        migrations.AddConstraint(
            model_name="call",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "outcome__in",
                        [
                            "in_progress",
                            "answered",
                            "missed",
                            "voicemail",
                            "busy",
                            "declined",
                            "failed",
                            "abandoned",
                            "closed",
                            "blocked",
                        ],
                    )
                ),
                name="call_outcome_valid",
            ),
        ),
        migrations.AddField(
            model_name="blockedcaller",
            name="blocked_by",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL
            ),
        ),
        migrations.AddField(
            model_name="blockedcaller",
            name="call",
            field=models.ForeignKey(
                blank=True,
                help_text="The call (tagged spam) it was blocked from.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="blocks",
                to="calls.call",
            ),
        ),
        migrations.AddField(
            model_name="callnote",
            name="author",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL
            ),
        ),
        migrations.AddField(
            model_name="callnote",
            name="call",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="notes", to="calls.call"),
        ),
        migrations.AddField(
            model_name="calltag",
            name="added_by",
            field=models.ForeignKey(
                help_text="Who tagged it.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="calltag",
            name="call",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="tag_links", to="calls.call"
            ),
        ),
        migrations.AddField(
            model_name="calltag",
            name="removed_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="tag",
            name="calls",
            field=models.ManyToManyField(
                blank=True,
                help_text="Every call ever given this tag, removals included: CallTag.objects.current() for the tags on now.",
                related_name="tags",
                through="calls.CallTag",
                to="calls.call",
            ),
        ),
        migrations.AddField(
            model_name="calltag",
            name="tag",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="call_links", to="calls.tag"
            ),
        ),
        migrations.AddConstraint(
            model_name="blockedcaller",
            constraint=models.CheckConstraint(
                condition=models.Q(("number", ""), _negated=True), name="blockedcaller_number_not_empty"
            ),
        ),
        migrations.AddIndex(
            model_name="callnote",
            index=models.Index(fields=["call", "created_at"], name="callnote_call_created"),
        ),
        migrations.AddConstraint(
            model_name="tag",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("name"), name="tag_name_unique_any_case"
            ),
        ),
        migrations.AddConstraint(
            model_name="tag",
            constraint=models.UniqueConstraint(
                condition=models.Q(("builtin", ""), _negated=True), fields=("builtin",), name="tag_builtin_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="tag",
            constraint=models.CheckConstraint(
                condition=models.Q(("builtin__in", ["", "lead", "sale", "spam", "wrong_number"])),
                name="tag_builtin_valid",
            ),
        ),
        migrations.AddIndex(
            model_name="calltag",
            index=models.Index(
                condition=models.Q(("removed_at__isnull", True)), fields=["tag", "call"], name="calltag_current"
            ),
        ),
        migrations.AddConstraint(
            model_name="calltag",
            constraint=models.UniqueConstraint(
                condition=models.Q(("removed_at__isnull", True)), fields=("call", "tag"), name="calltag_current_once"
            ),
        ),
    ]
