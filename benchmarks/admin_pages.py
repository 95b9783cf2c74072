"""How fast the admin pages supervisors live in render on a million calls.

Usage (PostgreSQL on 127.0.0.1:5432, as in production):

    .venv/bin/python benchmarks/admin_pages.py --calls 1000000 --runs 15

It creates the benchmark database if needed (``callwhisper_bench``), migrates it,
imports the demo campaigns plus extra campaigns so the history spreads over 60
numbers, tops the history up to ``--calls`` with ``seed_calls``, then requests each
page ``--runs`` times through Django's full request handling (middleware, admin,
templates) as a logged-in superuser and prints the median, p90 and minimum, with the
number of SQL queries. Targets (issue 5): call list first page and the 30-day report
each at most 300 ms median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/callwhisper_bench")
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    history_ready(args.database_url, calls=args.calls)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from calls.models import Call

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE calls_call")

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    pages = {
        "call list, first page": "/admin/calls/call/",
        "call list, filtered (answered)": "/admin/calls/call/?outcome__exact=answered",
        "30-day report": _report_url(),
        "campaign list": "/admin/campaigns/campaign/",
    }
    print(f"\n{Call.objects.count()} calls on {connection.vendor}, {args.runs} runs per page")
    print_timings(client, pages, runs=args.runs)


def print_timings(client: Any, pages: dict[str, str], *, runs: int) -> None:
    """Request each page ``runs`` times; print its median, p90 and minimum, and its queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    print(f"{'page':34} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'queries':>8}")
    for name, url in pages.items():
        timings = []
        queries = 0
        for _ in range(runs):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url)
                elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{url} answered {response.status_code}")
            timings.append(elapsed)
            queries = len(captured)
        timings.sort()
        p90 = timings[min(len(timings) - 1, int(len(timings) * 0.9))]
        print(f"{name:34} {statistics.median(timings):10.1f} {p90:8.1f} {timings[0]:8.1f} {queries:8d}")


def history_ready(database_url: str, *, calls: int) -> None:
    """Django set up on ``database_url`` (created if need be) with the demo campaigns, 20
    more (60 numbers) and at least ``calls`` calls spread over a year; for the admin
    benchmarks (this one and benchmarks/live_board.py)."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whisper_project.settings")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("CALL_CENTER_NUMBER", "447700900999")
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    os.environ["LOG_LEVEL"] = "WARNING"
    _ensure_database(database_url)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from calls.models import Call
    from campaigns.models import Campaign, TrackingNumber

    settings.STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
    call_command("migrate", verbosity=0)
    call_command("import_campaigns", str(ROOT / "campaigns" / "demo_campaigns.json"), verbosity=0)
    for n in range(20):
        campaign, _ = Campaign.objects.get_or_create(
            name=f"Benchmark campaign {n:02d}", defaults={"topic": f"offer {n}"}
        )
        for k in range(3):
            TrackingNumber.objects.get_or_create(
                number=f"4477009{n:02d}{k:03d}", defaults={"campaign": campaign, "source": f"Advert {k}"}
            )
    have = Call.objects.count()
    if have < calls:
        print(f"seeding {calls - have} calls (have {have}) …", flush=True)
        started = time.perf_counter()
        call_command("seed_calls", count=calls - have, days=365, seed=have + 1, allow_production=True, verbosity=0)
        print(f"  seeded in {time.perf_counter() - started:.0f} s", flush=True)


def _report_url() -> str:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("admin:calls_call_report")
    except NoReverseMatch:
        return "/admin/calls/call/report/"


def _ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` when it does not exist yet."""
    if not url.startswith("postgres"):
        return
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    main()
