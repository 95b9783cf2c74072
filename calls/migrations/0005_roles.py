"""Create the Marketing and Supervisors groups with their permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_roles(apps, schema_editor):  # type: ignore[no-untyped-def]
    from calls.roles import ROLE_PERMISSIONS

    # Permissions are normally created after all migrations ran; make sure they exist.
    for label in ("campaigns", "calls"):
        config = apps.get_app_config(label)
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        # ROLE_PERMISSIONS is today's list: a permission a later migration adds (such as
        # 0014's view_live_board) does not exist yet, and that migration grants it.
        permissions = [
            permission
            for app, codename in codenames
            for permission in Permission.objects.filter(content_type__app_label=app, codename=codename)
        ]
        group.permissions.set(permissions)


def remove_roles(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("auth", "Group").objects.filter(name__in=["Marketing", "Supervisors"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("campaigns", "0002_flows"),
        ("calls", "0004_report_permissions"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
