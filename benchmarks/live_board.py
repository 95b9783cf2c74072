"""What one refresh of the live board costs, with 10 supervisors watching 200 calls in progress.

Usage (PostgreSQL on 127.0.0.1:5432, as in production):

    .venv/bin/python benchmarks/live_board.py --calls 1000000 --live 200 --viewers 10 --refreshes 30

It creates the benchmark database if needed (``cw_live_board_bench``), migrates it,
imports the demo campaigns plus 20 more (60 numbers), tops the history of ended calls up
to ``--calls`` with ``seed_calls`` (spread over a year, so today holds a day's share),
adds today's share of calls again for today's totals, and replaces the calls in progress
with ``--live`` new ones in every phase (greeting, on hold, agent ringing on attempts 1–3,
whisper, talking, fallback), each with its agent legs.

Then ``--viewers`` threads (as gunicorn's gthread workers run them: one process, shared
GIL and database) each log in as a Supervisor and fetch the board's fragment
``--refreshes`` times back to back, through Django's full request handling. It prints,
per refresh: the median and p90 wall time, the median and p90 time of the board's SQL
statement (as the database driver saw it), and the number of queries; then the same for
one viewer alone, and PostgreSQL's plan for the statement (EXPLAIN ANALYZE).

The page polls once a second, so 10 viewers ask for 10 refreshes a second: the figure to
watch is that a refresh stays well under a second of one worker's time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.admin_pages import history_ready  # noqa: E402 - after the path is set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/cw_live_board_bench")
    parser.add_argument("--calls", type=int, default=1_000_000, help="ended calls in the history")
    parser.add_argument("--live", type=int, default=200, help="calls in progress")
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--refreshes", type=int, default=30, help="per viewer")
    args = parser.parse_args()

    history_ready(args.database_url, calls=args.calls)
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from calls import live_board
    from calls.models import Call

    _history_legs()
    _today_and_live_calls(live=args.live, per_day=max(1, args.calls // 365))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE calls_call")
        cursor.execute("VACUUM ANALYZE calls_callleg")

    supervisors = Group.objects.get(name="Supervisors")
    users = []
    for n in range(args.viewers):
        user, _ = User.objects.get_or_create(username=f"bench-supervisor-{n}", defaults={"is_staff": True})
        user.groups.add(supervisors)
        users.append(user)
    board = live_board.live_board()
    print(
        f"\n{Call.objects.count()} calls on {connection.vendor}; {len(board.calls)} in progress, "
        f"{board.today.calls} today; {args.viewers} viewers × {args.refreshes} refreshes"
    )
    print(
        f"{'viewers':>8} {'polling':>14} {'refresh median ms':>18} {'p90 ms':>8} "
        f"{'SQL median ms':>14} {'p90 ms':>8} {'queries':>8} {'refreshes/s':>12}"
    )
    for viewers, paced in ((args.viewers, True), (args.viewers, False), (1, False)):
        _run(users[:viewers], refreshes=args.refreshes, live=len(board.calls), paced=paced)
    connection.close()
    _explain()


def _history_legs() -> None:
    """A caller leg and an agent leg for every call of the history that has none, so the
    leg table is as large as in production (seed_calls writes calls only): the board
    finds each live call's agent leg through the call_id index among millions."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM calls_callleg")
        legs = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM calls_call")
        calls = cursor.fetchone()[0]
        if legs >= calls:
            return
        print(f"adding legs to the history ({legs} legs, {calls} calls) …", flush=True)
        for role in ("caller", "agent"):
            cursor.execute(
                """
                INSERT INTO calls_callleg (uuid, call_id, role, conversation_uuid, from_number, to_number,
                    direction, status, detail, machine_detected, network, region_url, attempt, created_at)
                SELECT 'bench-' || %s || '-' || c.id, c.id, %s, '', '', '', '', 'completed', '', '', '', '', 0,
                       c.started_at
                FROM calls_call c
                WHERE NOT EXISTS (SELECT 1 FROM calls_callleg l WHERE l.call_id = c.id AND l.role = %s)
                """,
                [role, role, role],
            )


def _today_and_live_calls(*, live: int, per_day: int) -> None:
    """Today's share of ended calls (seed_calls spreads its calls over the past year),
    and ``live`` calls in progress in every phase, replacing the last run's."""
    from django.utils import timezone

    from calls.models import Call, CallLeg, CallState, LegRole, LegStatus, Outcome
    from campaigns.models import TrackingNumber

    rng = random.Random(13)  # noqa: S311 (benchmark data, not secrets)
    numbers = list(TrackingNumber.objects.select_related("campaign"))
    now = timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    Call.objects.exclude(state=CallState.ENDED).delete()
    Call.objects.filter(conference_name__startswith="bench-today-").delete()
    seconds_today = max(1, int((now - midnight).total_seconds()))
    outcomes = [Outcome.ANSWERED] * 7 + [Outcome.MISSED, Outcome.VOICEMAIL, Outcome.ABANDONED, Outcome.BUSY]
    Call.objects.bulk_create(
        [
            Call(
                tracking_number=number,
                campaign=number.campaign,
                caller_number=f"4479460{rng.randint(0, 99999):05d}",
                called_number=number.number,
                source=number.source,
                destination="447700900999",
                conference_name=f"bench-today-{n}",
                state=CallState.ENDED,
                outcome=rng.choice(outcomes),
                first_call=False,
                started_at=midnight + timedelta(seconds=rng.randint(0, seconds_today - 1)),
            )
            for n, number in enumerate(rng.choices(numbers, k=per_day))
        ],
        batch_size=2000,
    )
    kinds = ["greeting", "hold", "ringing", "whisper", "talking", "fallback"]
    calls = []
    for n in range(live):
        number = rng.choice(numbers)
        kind = kinds[n % len(kinds)]
        started = now - timedelta(seconds=rng.randint(1 if kind == "greeting" else 10, 400))
        calls.append(
            Call(
                tracking_number=number,
                campaign=number.campaign,
                caller_number=f"4479461{n:05d}",
                called_number=number.number,
                source=number.source,
                destination="447700900999",
                conference_name=f"bench-live-{n}-{now.timestamp()}",
                first_call=False,
                started_at=started,
                attempt=n % 3 if kind == "ringing" else 0,
                whisper_text="Incoming call regarding the offer." if kind in ("whisper", "talking") else "",
                state={
                    "whisper": CallState.CONNECTED,
                    "talking": CallState.CONNECTED,
                    "fallback": CallState.FALLBACK,
                }.get(kind, CallState.WAITING),
                agent_answered_at=(now - timedelta(seconds=1 if kind == "whisper" else 60))
                if kind in ("whisper", "talking")
                else None,
                fallback_at=now - timedelta(seconds=5) if kind == "fallback" else None,
            )
        )
    Call.objects.bulk_create(calls)
    legs = []
    for n, call in enumerate(calls):
        legs.append(CallLeg(uuid=f"bench-caller-{call.pk}", call=call, role=LegRole.CALLER, status=LegStatus.ANSWERED))
        for attempt in range(call.attempt + 1):
            last = attempt == call.attempt
            status = LegStatus.UNANSWERED if not last else LegStatus.RINGING
            if call.agent_answered_at is not None:
                status = LegStatus.ANSWERED
            legs.append(
                CallLeg(
                    uuid=f"bench-agent-{call.pk}-{attempt}",
                    call=call,
                    role=LegRole.AGENT,
                    attempt=attempt,
                    to_number=f"44770090{attempt:04d}",
                    status=status,
                    answered_at=call.agent_answered_at,
                )
            )
        if n % 6 in (0, 1):  # greeting and on hold: no agent leg yet for some
            legs = [leg for leg in legs if not (leg.call_id == call.pk and leg.role == LegRole.AGENT)]
    CallLeg.objects.bulk_create(legs)


def _run(users: list[Any], *, refreshes: int, live: int, paced: bool) -> None:
    """Each user a thread refreshing ``refreshes`` times: once per poll interval as the
    page does (``paced``), or back to back (the most one process serves)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from calls.live_board import POLL_MS

    url = reverse("admin:calls_call_live_fragment")
    walls: list[float] = []
    sql: list[float] = []
    counts: list[int] = []
    lock = threading.Lock()
    errors: list[str] = []
    barrier = threading.Barrier(len(users))

    def viewer(user: Any) -> None:
        client = Client()
        client.force_login(user)
        client.get(url)  # warm: the connection, templates
        barrier.wait()
        began = time.perf_counter()
        mine_wall: list[float] = []
        mine_sql: list[float] = []
        mine_counts: list[int] = []
        for n in range(refreshes):
            if paced:  # the page's setInterval: one request a poll interval, from the start
                time.sleep(max(0.0, began + n * POLL_MS / 1000 - time.perf_counter()))
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url)
                elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200 or response.content.count(b"<tr data-call=") != live:
                errors.append(f"status {response.status_code}")
                break
            mine_wall.append(elapsed)
            board = [q for q in captured.captured_queries if "WITH today AS" in q["sql"]]
            mine_sql.extend(float(q["time"]) * 1000 for q in board)
            mine_counts.append(len(captured))
        connection.close()
        with lock:
            walls.extend(mine_wall)
            sql.extend(mine_sql)
            counts.extend(mine_counts)

    threads = [threading.Thread(target=viewer, args=(user,)) for user in users]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - started
    if errors:
        raise SystemExit(f"refresh failed: {errors[0]}")
    print(
        f"{len(users):8d} {'every ' + str(POLL_MS) + ' ms' if paced else 'back to back':>14} "
        f"{statistics.median(walls):18.1f} {_p90(walls):8.1f} "
        f"{statistics.median(sql):14.1f} {_p90(sql):8.1f} {max(counts):8d} {len(walls) / took:12.1f}"
    )


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def _explain() -> None:
    from django.db import connection
    from django.utils import timezone

    from calls.live_board import board_statement

    sql, params = board_statement(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        plan = [row[0] for row in cursor.fetchall()]
    print("\nPostgreSQL's plan for the board's statement:")
    print("\n".join(plan))


if __name__ == "__main__":
    main()
