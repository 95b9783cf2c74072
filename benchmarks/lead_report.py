"""What the report's leads and sales cost, on a big history with many tagged calls.

Usage (PostgreSQL on 127.0.0.1:5432):

    .venv/bin/python benchmarks/lead_report.py --calls 300000 --runs 9

Sets up the history as benchmarks/admin_pages.py does (its own database by default),
then tags a share of the calls (``--lead-share`` of them lead, a third of those also
sale; the same calls every run) and times the 30-day and the 365-day report, and the
call list filtered by the lead tag, through Django's full request handling, printing
the median, p90 and minimum, with the number of SQL queries.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.admin_pages import history_ready, print_timings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/callwhisper_lead_bench")
    parser.add_argument("--calls", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--lead-share", type=float, default=0.15)
    args = parser.parse_args()

    history_ready(args.database_url, calls=args.calls)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from calls.models import BuiltinTag, Call, CallTag, Tag

    lead = Tag.objects.get(builtin=BuiltinTag.LEAD)
    sale = Tag.objects.get(builtin=BuiltinTag.SALE)
    every = max(1, round(1 / args.lead_share))
    if not CallTag.objects.exists():
        print(f"tagging one call in {every} lead, one in {every * 3} sale …", flush=True)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO calls_calltag (call_id, tag_id, added_at) "
                "SELECT id, %s, started_at FROM calls_call WHERE id %% %s = 0",
                [lead.pk, every],
            )
            cursor.execute(
                "INSERT INTO calls_calltag (call_id, tag_id, added_at) "
                "SELECT id, %s, started_at FROM calls_call WHERE id %% %s = 0",
                [sale.pk, every * 3],
            )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE calls_call")
        cursor.execute("VACUUM ANALYZE calls_calltag")

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    today = timezone.localdate()
    report = "/admin/calls/call/report/"
    pages = {
        "30-day report": f"{report}?start={today - timedelta(days=29)}&end={today}",
        "365-day report": f"{report}?start={today - timedelta(days=365)}&end={today}",
        "call list, tagged lead": f"/admin/calls/call/?tag={lead.pk}",
    }
    tagged = CallTag.objects.current().count()
    print(f"\n{Call.objects.count()} calls, {tagged} tags on {connection.vendor}, {args.runs} runs per page")
    print_timings(client, pages, runs=args.runs)


if __name__ == "__main__":
    main()
