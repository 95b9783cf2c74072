"""The two roles staff are given, as Django groups with exactly these permissions.

- Marketing: manage campaigns, their numbers and opening hours; view calls and reports.
- Supervisors: view calls and reports, export them as CSV, and watch calls as they happen
  (the live board).

Call records come from Vonage and are read-only for everyone; only superusers
delete them (see ``calls.admin``).
"""

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
        ("calls", "view_live_board"),
    ],
}
