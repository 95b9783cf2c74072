"""The built-in tags (lead, sale, spam, wrong number) and the roles' new permissions:
Supervisors tag, write notes and block callers; the new Agents tag and write notes;
Marketing sees tags (calls.roles)."""

from django.db import migrations

BUILTIN_TAGS = [("lead", "lead"), ("sale", "sale"), ("spam", "spam"), ("wrong_number", "wrong number")]


def create_builtin_tags(apps, schema_editor):  # type: ignore[no-untyped-def]
    Tag = apps.get_model("calls", "Tag")
    for builtin, name in BUILTIN_TAGS:
        # An operator's own tag of the same name (any case) becomes the built-in one.
        tag = Tag.objects.filter(name__iexact=name).first()
        if tag is None:
            Tag.objects.create(name=name, builtin=builtin)
        elif not tag.builtin:
            tag.builtin = builtin
            tag.save(update_fields=["builtin"])


def sync_roles(apps, schema_editor):  # type: ignore[no-untyped-def]
    from calls.roles import sync_role_groups

    sync_role_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("calls", "0015_tags_notes_blocked_callers"),
    ]

    operations = [
        migrations.RunPython(create_builtin_tags, migrations.RunPython.noop),
        migrations.RunPython(sync_roles, migrations.RunPython.noop),
    ]
