"""Create the Marketing and Supervisors groups with their permissions."""

from django.db import migrations


def create_roles(apps, schema_editor):  # type: ignore[no-untyped-def]
    # calls.roles holds the groups' permissions as they are now: permissions added by a
    # later migration (0009's see_caller_numbers) do not exist yet here, and that
    # migration gives them to the groups.
    from calls.roles import sync_role_groups

    sync_role_groups(apps)


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
