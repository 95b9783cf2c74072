"""The two roles staff are given, as Django groups with exactly these permissions.

- Marketing: manage campaigns, their numbers, opening hours and alert recipients; view
  calls, reports and the alert outbox.
- Supervisors: view calls and reports, export them as CSV, see callers' numbers
  (everyone else sees them masked: ``calls.privacy``), watch calls as they happen
  (the live board), work the call-back queue (``calls.callbacks``); tag calls, write
  notes on them, add tags, and block callers (a caller tagged spam).
- Agents: view calls (callers' numbers masked), tag them and write notes on them.
- Marketing also sees the calls' tags (not the notes: staff write them about callers).

Call records come from Vonage and are read-only for everyone; only superusers
delete them (see ``calls.admin``).
"""

# Tag and untag calls, write notes, and read both (calls/annotations.py).
TAGS_AND_NOTES: list[tuple[str, str]] = [
    ("calls", "view_tag"),
    ("calls", "view_calltag"),
    ("calls", "tag_call"),
    ("calls", "view_callnote"),
    ("calls", "add_callnote"),
]

ROLE_PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    "Marketing": [
        *[
            ("campaigns", f"{action}_{model}")
            for model in ("campaign", "trackingnumber", "openinghours")
            for action in ("add", "change", "delete", "view")
        ],
        ("calls", "view_call"),
        ("calls", "view_callleg"),
        ("calls", "view_callevent"),
        ("calls", "view_report"),
        ("calls", "view_tag"),
        ("calls", "view_calltag"),
        *[("alerts", f"{action}_alertrecipient") for action in ("add", "change", "delete", "view")],
        ("alerts", "view_alertdelivery"),
    ],
    "Supervisors": [
        ("campaigns", "view_campaign"),
        ("campaigns", "view_trackingnumber"),
        ("campaigns", "view_openinghours"),
        ("calls", "view_call"),
        ("calls", "view_callleg"),
        ("calls", "view_callevent"),
        ("calls", "view_report"),
        ("calls", "export_calls"),
        ("calls", "see_caller_numbers"),
        ("calls", "view_live_board"),
        ("calls", "call_back"),
        ("alerts", "view_alertrecipient"),
        ("alerts", "view_alertdelivery"),
        *TAGS_AND_NOTES,
        ("calls", "add_tag"),
        ("calls", "view_blockedcaller"),
        ("calls", "add_blockedcaller"),
        ("calls", "delete_blockedcaller"),
    ],
    "Agents": [
        ("calls", "view_call"),
        ("calls", "view_callleg"),
        ("calls", "view_callevent"),
        *TAGS_AND_NOTES,
    ],
}


def sync_role_groups(apps) -> None:  # type: ignore[no-untyped-def]
    """Give each group exactly the permissions above, from a migration (``apps`` is its
    historical registry). Permissions the migration state does not know yet are
    skipped: the migration that adds them syncs again."""
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations ran; make sure they exist.
    for label in ("campaigns", "calls", "alerts"):
        try:
            config = apps.get_app_config(label)
        except LookupError:  # an app whose first migration has not run yet
            continue
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = [
            permission
            for app, codename in codenames
            for permission in Permission.objects.filter(content_type__app_label=app, codename=codename)
        ]
        group.permissions.set(permissions)
