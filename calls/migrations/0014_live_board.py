"""The live board: its permission (given to Supervisors) and the index of calls not ended.

Depends on 0013_signed_webhook so that this branch has one leaf; the chain is
renumbered at merge.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations, models


def grant_live_board(apps, schema_editor):  # type: ignore[no-untyped-def]
    # Permissions are normally created after all migrations ran; make sure this one exists.
    config = apps.get_app_config("calls")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.get(content_type__app_label="calls", codename="view_live_board")
    for group in Group.objects.filter(name="Supervisors"):
        group.permissions.add(permission)


def revoke_live_board(apps, schema_editor):  # type: ignore[no-untyped-def]
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(content_type__app_label="calls", codename="view_live_board").delete()


class Migration(migrations.Migration):

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("calls", "0013_signed_webhook"),
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
                    ("view_live_board", "Can watch calls as they happen"),
                ],
            },
        ),
        migrations.AddIndex(
            model_name="call",
            index=models.Index(
                condition=models.Q(("state", "ended"), _negated=True), fields=["started_at"], name="call_live"
            ),
        ),
        migrations.RunPython(grant_live_board, revoke_live_board),
    ]
