"""PostgreSQL goes away under a running gunicorn, then comes back.

The README's promise: anything unexpected on an answer route, "even the database being
down", gets a valid ``connect`` NCCO to ``CALL_CENTER_NUMBER``, never a 500 (Vonage does
not retry a 500: it drops the call), within Vonage's 5-second budget. The event route
answers 503 ("retry later", as the OpenAPI description documents) and names the event in
the log; ``/healthz`` says 503 so a load balancer knows. When the database is back the
same processes, not restarted, serve complete calls again, and the connections that the
outage broke under every worker thread do not fail a later request.

Two outages: ``refuse`` (the database is down: connections are reset at once) and
``silent`` (its host does not answer: only the client's connect timeout ends the wait,
``DATABASE_CONNECT_TIMEOUT``, 2 s by default; psycopg's own default is 130 s).

Real gunicorn processes on a database of their own (``callwhisper_db_outage_<pid>``),
reached through :class:`tests.e2e.tcp_proxy.PostgresProxy`; see ``live_server.py``.
"""

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest

from benchmarks import load
from tests.conftest import notify_body
from tests.e2e.conftest import Leg
from tests.e2e.live_server import (
    ANSWER_BUDGET_SECONDS,
    LiveServer,
    Reply,
    connects_to,
    live_server,
    postgres_or_skip,
    process_stop,
    request,
)
from tests.e2e.tcp_proxy import Outage, wait_for

pytestmark = pytest.mark.e2e

WORKERS, THREADS = 2, 2
# A reply must come inside Vonage's 5 s: the connect timeout (2 s) plus the work. That
# budget is the behaviour; a tighter stopwatch fails on a loaded machine (issue 14).
ANSWER_LIMIT_SECONDS = ANSWER_BUDGET_SECONDS
CALLS_AFTER = 4


@pytest.fixture(scope="module")
def postgres() -> None:
    postgres_or_skip()


def every_thread_connected(live: LiveServer) -> None:
    """Slow queries down so that concurrent requests spread over every worker thread,
    until each holds a database connection of its own (``CONN_MAX_AGE`` keeps them)."""
    live.proxy.delay = 0.2
    try:
        for _ in range(10):
            with ThreadPoolExecutor(max_workers=2 * WORKERS * THREADS) as pool:
                replies = list(pool.map(lambda _: request(live.port, "GET", "/healthz"), range(2 * WORKERS * THREADS)))
            assert {reply.status for reply in replies} == {200}
            if live.proxy.open_connections() >= WORKERS * THREADS:
                return
        raise AssertionError(f"only {live.proxy.open_connections()} database connections after 10 rounds")
    finally:
        live.proxy.delay = 0.0


@pytest.mark.parametrize("outage", ["refuse", "silent"])
def test_answers_survive_a_database_outage_and_calls_recover_without_a_restart(postgres: None, outage: Outage) -> None:
    # A short back-off (calls/database_outage.py), waited out once the database is back.
    with live_server("db_outage", workers=WORKERS, threads=THREADS, DATABASE_OUTAGE_BACKOFF_SECONDS="1") as live:
        every_thread_connected(live)
        processes = sorted(live.server.pids)
        connections_broken = live.proxy.open_connections()

        # --- the database goes away --------------------------------------------------
        live.proxy.down(outage)
        caller = Leg(from_="447946000555", to=load.CAMPAIGN_NUMBER, direction="inbound")
        answer_query = urlencode(caller.answer_params(live.fake.url))
        fallback_query = urlencode({**caller.answer_params(live.fake.url), "reason": "timeout"})
        started = caller.event("started", datetime.now(UTC))
        # At most as many at once as one worker has threads: each may hold its thread for
        # the connect timeout, and gunicorn may hand them all to the same worker.
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            answer = pool.submit(request, live.port, "GET", f"/answer_inbound?{answer_query}")
            fallback = pool.submit(request, live.port, "GET", f"/fallback?{fallback_query}")
            event = pool.submit(request, live.port, "POST", "/event", started)
            # The caller's checkpoint after the greeting (a notify: Vonage runs our answer).
            checkpoint = pool.submit(
                request,
                live.port,
                "POST",
                load.callback_path("event", call=1, checkpoint="agent"),
                notify_body({"checkpoint": "agent"}),
            )
        logs = live.server.log_tail(60)

        # The caller is put through to the call centre, from the number dialled, in time.
        reply: Reply = answer.result()
        assert reply.status == 200, f"{reply}\n{logs}"
        assert connects_to(reply.body, load.CALL_CENTER_NUMBER), reply.body
        assert reply.body[-1].get("from") == load.CAMPAIGN_NUMBER
        assert reply.seconds < ANSWER_LIMIT_SECONDS, f"answered in {reply.seconds:.2f} s\n{logs}"
        # Vonage asks again on a timeout or a reset (VONAGE.md): the same answer, as fast.
        again = request(live.port, "GET", f"/answer_inbound?{answer_query}")
        assert (again.status, again.body) == (200, reply.body)
        assert again.seconds < ANSWER_LIMIT_SECONDS
        # Vonage's fallback answer URL likewise.
        reply = fallback.result()
        assert reply.status == 200, f"{reply}\n{logs}"
        assert connects_to(reply.body, load.CALL_CENTER_NUMBER), reply.body
        assert reply.seconds < ANSWER_LIMIT_SECONDS, f"answered in {reply.seconds:.2f} s\n{logs}"
        # The checkpoint cannot tell whether an agent is rung: the call centre, directly.
        reply = checkpoint.result()
        assert reply.status == 200, f"{reply}\n{logs}"
        assert connects_to(reply.body, load.CALL_CENTER_NUMBER), reply.body
        assert reply.seconds < ANSWER_LIMIT_SECONDS, f"answered in {reply.seconds:.2f} s\n{logs}"
        # The event is not stored: 503 on purpose, never a 500, and named in the log.
        reply = event.result()
        assert reply.status == 503, f"{reply}\n{logs}"
        assert "retry" in str(reply.body)
        assert reply.seconds < ANSWER_BUDGET_SECONDS
        # The load balancer is told.
        reply = request(live.port, "GET", "/healthz")
        assert (reply.status, reply.body) == (503, {"status": "database unavailable"})
        assert reply.seconds < ANSWER_LIMIT_SECONDS

        # --- it comes back: the same processes recover ---------------------------------
        live.proxy.up()
        time.sleep(1.2)  # the back-off after the last failed connect
        assert request(live.port, "GET", "/healthz").status == 200
        # Every thread's connection was broken by the outage; none of them fails a request
        # now (Django's CONN_HEALTH_CHECKS replaces a broken connection before using it).
        live.proxy.delay = 0.1
        with ThreadPoolExecutor(max_workers=2 * WORKERS * THREADS) as pool:
            health_checks = list(pool.map(lambda _: request(live.port, "GET", "/healthz"), range(16)))
        live.proxy.delay = 0.0
        assert [reply.status for reply in health_checks] == [200] * len(health_checks), live.server.log_tail()

        webhooks = load.Webhooks(timeout=10)
        call_ids = load.CallIds(live.url)

        def one_call(n: int) -> load.CallResult:
            return load.call_drive(
                webhooks=webhooks,
                ports=[live.port],
                fake=live.fake,
                call_ids=call_ids,
                caller_number=f"4479461{n:05d}",
                rng=random.Random(n),
                duplicate_share=0.1,
            )

        with ThreadPoolExecutor(max_workers=CALLS_AFTER) as pool:
            results = list(pool.map(one_call, range(CALLS_AFTER), timeout=30))
        errors = [error for result in results for error in result.errors]
        assert not errors, f"{errors[:5]}\n{live.server.log_tail()}"
        verdict = load.verdict(live.url, fake=live.fake, results=results)
        # The call answered during the outage left no record (nothing could be written);
        # every call since is recorded once, answered and ended, its events stored once.
        assert verdict.problems == [], f"{verdict}\n{live.server.log_tail()}"
        assert verdict.calls == verdict.answered_and_ended == CALLS_AFTER
        assert live.rows("SELECT count(*) FROM calls_callleg WHERE uuid = %s", (caller.uuid,)) == [(0,)]
        # Recovered without a restart: the same master and workers throughout.
        assert sorted(live.server.pids) == processes
        assert connections_broken >= WORKERS * THREADS

        # --- what the log says about the outage ---------------------------------------
        wait_for(lambda: live.log_lines("event.not_stored", caller.uuid), timeout=5, what="the event's log line")
        assert live.log_lines("healthz.database_unavailable")
        # The answer webhook's line names the call's uuid, so that the call can be found.
        answer_lines = [line for line in live.log_lines(caller.uuid) if "answer_inbound" in line]
        assert answer_lines, "no log line names the caller's uuid on /answer_inbound:\n" + "\n".join(
            live.log_lines("answer_inbound")
        )


def test_a_burst_of_callers_while_the_database_is_silent_is_answered_in_time(postgres: None) -> None:
    """Three callers for every worker thread while PostgreSQL's host does not answer. Each
    connect attempt waits the 2 s connect timeout; without the back-off
    (calls/database_outage.py) the callers queued behind them would wait 6 s, past
    Vonage's 5 s. With it, only the first request on each worker waits."""
    with live_server("db_burst", workers=WORKERS, threads=THREADS, DATABASE_OUTAGE_BACKOFF_SECONDS="2") as live:
        every_thread_connected(live)
        live.proxy.down("silent")
        callers = [Leg(from_=f"4479465{n:05d}", to=load.CAMPAIGN_NUMBER, direction="inbound") for n in range(12)]
        with ThreadPoolExecutor(max_workers=len(callers)) as pool:
            replies = list(
                pool.map(
                    lambda caller: request(
                        live.port, "GET", f"/answer_inbound?{urlencode(caller.answer_params(live.fake.url))}"
                    ),
                    callers,
                )
            )
        slowest = max(reply.seconds for reply in replies)
        assert all(reply.status == 200 and connects_to(reply.body, load.CALL_CENTER_NUMBER) for reply in replies)
        assert slowest < ANSWER_LIMIT_SECONDS, f"slowest answer {slowest:.2f} s\n{live.server.log_tail(40)}"
        assert live.log_lines("database.unreachable")
        skipped = [line for caller in callers for line in live.log_lines("database skipped", caller.uuid)]
        assert skipped, live.server.log_tail(40)

        # Back: the next caller after the back-off is recorded as usual.
        live.proxy.up()
        time.sleep(2.5)  # the back-off after the last failed connect
        caller = Leg(from_="447946599999", to=load.CAMPAIGN_NUMBER, direction="inbound")
        reply = request(live.port, "GET", f"/answer_inbound?{urlencode(caller.answer_params(live.fake.url))}")
        assert [action["action"] for action in reply.body] == ["talk", "notify", "conversation"]


SPOOLED_CALLS = 12


def test_calls_answered_while_the_database_is_away_are_recorded_once_it_is_back(postgres: None, tmp_path: Path) -> None:
    """A burst of callers while PostgreSQL refuses connections: each is put straight
    through, and what the webhooks received is spooled (WEBHOOK_SPOOL_DIR); once the
    database is back, ``reconcile_calls`` records every call once, marked recorded late,
    with its events, and the Vonage events that came after the outage join them."""
    spool_dir = tmp_path / "spool"
    with live_server(
        "db_spool",
        workers=WORKERS,
        threads=THREADS,
        DATABASE_OUTAGE_BACKOFF_SECONDS="1",
        WEBHOOK_SPOOL_DIR=str(spool_dir),
    ) as live:
        every_thread_connected(live)
        live.proxy.down("refuse")
        callers = [
            Leg(from_=f"4479466{n:05d}", to=load.CAMPAIGN_NUMBER, direction="inbound") for n in range(SPOOLED_CALLS)
        ]
        # Vonage's connect to the call centre, in each caller's conversation.
        directs = [
            Leg(
                from_=load.CAMPAIGN_NUMBER,
                to=load.CALL_CENTER_NUMBER,
                direction="outbound",
                conversation_uuid=caller.conversation_uuid,
            )
            for caller in callers
        ]
        t0 = datetime.now(UTC)

        def during(pair: tuple[Leg, Leg]) -> list[Reply]:
            caller, direct = pair
            replies = [request(live.port, "GET", f"/answer_inbound?{urlencode(caller.answer_params(live.fake.url))}")]
            for payload in (
                caller.event("started", t0),
                caller.event("ringing", t0),
                caller.answered(t0),
                direct.event("started", t0),
                direct.answered(t0),
            ):
                replies.append(request(live.port, "POST", "/event", payload))
            return replies

        with ThreadPoolExecutor(max_workers=2 * WORKERS * THREADS) as pool:
            replies = list(pool.map(during, zip(callers, directs, strict=True)))
        for answer, *events in replies:
            assert answer.status == 200 and connects_to(answer.body, load.CALL_CENTER_NUMBER), answer
            assert {reply.status for reply in events} == {503}, events

        # --- back: the calls end, then reconcile_calls records what was spooled ---------
        live.proxy.up()
        time.sleep(1.2)  # the back-off after the last failed connect
        end = t0 + timedelta(seconds=30)
        for caller, direct in zip(callers, directs, strict=True):
            for payload in (
                direct.completed(start=t0, end=end, rate="0.02700000", price="0.01350000"),
                caller.completed(start=t0, end=end, rate="0.00390000", price="0.00195000"),
            ):
                assert request(live.port, "POST", "/event", payload).status == 200
        assert live.rows("SELECT count(*) FROM calls_call") == [(0,)]
        reconcile_once(live)
        reconcile_once(live)  # a second run finds nothing left to record

        # Every call once, recorded late, answered (by the call centre) and ended.
        rows = live.rows(
            "SELECT l.uuid, c.recorded_late, c.outcome, c.state FROM calls_call c "
            "JOIN calls_callleg l ON l.call_id = c.id AND l.role = 'caller' ORDER BY l.uuid"
        )
        assert [row[0] for row in rows] == sorted(caller.uuid for caller in callers)
        assert {row[1:] for row in rows} == {(True, "answered", "ended")}, (rows, live.server.log_tail(40))
        assert live.rows("SELECT count(*) FROM calls_call") == [(SPOOLED_CALLS,)]
        assert live.rows("SELECT count(*) FROM calls_callleg WHERE role = 'agent'") == [(SPOOLED_CALLS,)]
        # Each event once, every one matched to its leg: four of the caller's, three of the connect's.
        assert live.rows("SELECT count(*) FROM calls_callevent") == [(SPOOLED_CALLS * 7,)]
        assert live.rows("SELECT count(*) FROM calls_callevent WHERE leg_id IS NULL") == [(0,)]
        assert list(spool_dir.iterdir()) == []


def reconcile_once(live: LiveServer) -> None:
    run = live.manage("reconcile_calls")
    try:
        assert run.wait(timeout=60) == 0, (live.work / "manage-reconcile_calls.log").read_text()
    finally:
        process_stop(run)
