"""CPU per webhook, in one process: the app's own cost without gunicorn, the network or
the other processes of ``benchmarks/calls.py`` on the same two cores.

Usage (PostgreSQL on 127.0.0.1:5432, trust auth for ``postgres``):

    .venv/bin/python benchmarks/webhook_cpu.py                 # 5 rounds of 100 calls
    .venv/bin/python benchmarks/webhook_cpu.py --calls 200 --rounds 7

It drops and recreates the database ``callwhisper_cpubench``, migrates it and imports
the demo campaigns (as ``benchmarks/calls.py`` does), then sends each call's webhooks
straight to the WSGI application, production settings (DEBUG off), no Vonage
credentials: the agent call is recorded, not sent (``vonage_adapter``'s dry run), and it
is placed inline, so its work is in the answer's figure. A call is the caller's answer,
the checkpoint, the agent's answer and four status events per leg, in the order and
with the times ``benchmarks/calls.py`` sends them: the agent's leg is answered, and a
minute later both hang up. Both answers carry the leg's ``conversation_uuid`` and
``region_url``, as Vonage's do. (Until 2026-12-07 all four of the caller's events came
first, every event at the same instant, so on every call the caller hung up before the
agent's ``answered`` event and the app ran its caller-left steps: figures from before
then are not comparable. Until 14:20 UTC that day the agent's answer carried neither
field, so the leg's region was never written: about 0.1 % fewer instructions a call.)
Printed: the median
over the rounds of this process's CPU time (``time.process_time``) per request of each
webhook and per complete call. CPU time, not wall time: the figures hold on a busy
machine better than latencies do, but they still move by 10 % or so between runs.

``--round-trips`` prints instead what a call sends PostgreSQL: statements and transactions
per webhook, then every kind of statement (named by the tables it writes and reads) with
how many a call sends, its median time from sending it to its result, and its share of
all statements' time: where the database's part of a call goes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
import uuid as uuid_lib
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import load  # noqa: E402

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# Vonage names the region that serves a leg in its answer webhooks (VONAGE.md).
REGION_URL = "https://api-eu-1.vonage.com"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", default="callwhisper_cpubench")
    parser.add_argument(
        "--profile",
        metavar="WEBHOOK",
        help="also profile one webhook (answer_inbound, checkpoint, answer_outbound or event) with cProfile "
        "over one more round, and print its 40 costliest functions by own time and by cumulative time",
    )
    parser.add_argument(
        "--round-trips",
        action="store_true",
        help="instead of timing: play --calls calls and print the round trips to PostgreSQL of each webhook "
        "and of a call (statements, and BEGIN and COMMIT for each transaction), then each kind of statement: "
        "how many a call sends and how long one takes from sending it to its result",
    )
    args = parser.parse_args()

    problem = load.postgres_reachable()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    app = app_in_process(load.database_create(args.database))
    for _ in range(20):  # imports, connection, caches
        app.call()
    if args.round_trips:
        round_trips_print(app, args.calls)
        load.database_drop(args.database)
        return 0
    rounds: list[dict[str, float]] = []
    for _ in range(args.rounds):
        app.cpu.clear()
        app.pg_cpu.clear()
        started = time.process_time()
        for _ in range(args.calls):
            app.call()
        per_call = (time.process_time() - started) / args.calls
        pg_per_call = sum(sum(v) for v in app.pg_cpu.values()) / args.calls
        rounds.append(
            {
                "call": per_call,
                "pg call": pg_per_call,
                **{name: statistics.mean(v) for name, v in app.cpu.items()},
                **{f"pg {name}": statistics.mean(v) for name, v in app.pg_cpu.items()},
            }
        )

    print(
        f"{args.rounds} rounds of {args.calls} calls, median CPU ms: this process, and its PostgreSQL "
        f"backend's (database {args.database}; from /proc, in clock ticks: a mean over many requests)"
    )
    print(f"  {'':44s} {'Python':>7s} {'PostgreSQL':>11s}")
    for name in ("answer_inbound (with the agent call)", "checkpoint", "answer_outbound", "event", "call"):
        label = "complete call (11 requests)" if name == "call" else f"{name} per request"
        ours = 1000 * statistics.median(r[name] for r in rounds)
        pg = 1000 * statistics.median(r[f"pg {name}"] for r in rounds)
        print(f"  {label:44s} {ours:7.2f} {pg:11.2f}")
    if args.profile:
        profile_round(app, args.profile, args.calls)
    load.database_drop(args.database)
    return 0


def round_trips_print(app: App, calls: int) -> None:
    """The statements each webhook sends (Django's execute wrapper: the ORM's and
    ``calls/statements.py``'s alike) and its transactions, each a ``BEGIN`` that psycopg
    sends before the first statement and a ``COMMIT`` or ``ROLLBACK``: the median over
    ``calls`` calls."""
    from django.db import DEFAULT_DB_ALIAS, connection, connections
    from psycopg.pq import TransactionStatus

    sent: dict[str, int] = defaultdict(int)
    # Each kind of statement's times, from sending it to its result (seconds, wall time).
    took: dict[str, list[float]] = defaultdict(list)
    in_webhook = False  # not the driver's own reads between the webhooks

    def statement(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sent["statements"] += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            if in_webhook:
                took[statement_kind(sql)].append(time.perf_counter() - started)

    wrapper = type(connections[DEFAULT_DB_ALIAS])
    ends = {name: getattr(wrapper, name) for name in ("commit", "rollback")}

    def ending(name: str) -> Callable[..., Any]:
        def end(self: Any) -> Any:
            # psycopg sent BEGIN before the transaction's first statement, and sends COMMIT
            # (or ROLLBACK) now; a transaction with no statement sends neither.
            if self.connection is not None and self.connection.info.transaction_status != TransactionStatus.IDLE:
                sent["transactions"] += 1
            return ends[name](self)

        return end

    per_webhook: dict[str, list[tuple[int, int]]] = defaultdict(list)

    @contextmanager
    def counting(name: str) -> Iterator[None]:
        nonlocal in_webhook
        sent.clear()
        in_webhook = True
        try:
            yield
        finally:
            in_webhook = False
        per_webhook[name].append((sent["statements"], sent["transactions"]))

    for name in ends:
        setattr(wrapper, name, ending(name))
    app.counted = counting
    try:
        with connection.execute_wrapper(statement):
            per_call = []
            for _ in range(calls):
                before = {name: len(each) for name, each in per_webhook.items()}
                app.call()
                made = [each[before.get(name, 0) :] for name, each in per_webhook.items()]
                per_call.append((sum(s for each in made for s, _ in each), sum(t for each in made for _, t in each)))
    finally:
        for name, end in ends.items():
            setattr(wrapper, name, end)
        app.counted = lambda name: nullcontext()
    print(f"round trips to PostgreSQL, the median over {calls} calls: statements + 2 x transactions")
    rows = [(f"{name} per request", each) for name, each in per_webhook.items()]
    for label, each in [*rows, ("complete call", per_call)]:
        statements = statistics.median(s for s, _ in each)
        transactions = statistics.median(t for _, t in each)
        trips = statements + 2 * transactions
        print(f"  {label:48s} {trips:5g}  ({statements:g} statements, {transactions:g} transactions)")
    statement_times_print(took, calls)


def statement_times_print(took: dict[str, list[float]], calls: int) -> None:
    """Each kind of statement: how many a call sends, the median time from sending it to its
    result (the round trip, PostgreSQL's work and psycopg's; a transaction's ``BEGIN`` goes
    with its first statement, its ``COMMIT`` with none), and its share of all statements' time."""
    total = sum(sum(times) for times in took.values()) or 1.0
    print(f"statements by kind, over {calls} calls: per call, the median from sending one to its result, share")
    for kind, times in sorted(took.items(), key=lambda item: -sum(item[1])):
        median_us = 1e6 * statistics.median(times)
        print(f"  {len(times) / calls:5.2f}  {median_us:7.0f} us  {100 * sum(times) / total:5.1f} %  {kind}")


_TOUCHED = re.compile(r'(INSERT INTO|UPDATE|DELETE FROM|FROM|JOIN)\s+"(\w+)"')
_VERBS = {"INSERT INTO": "insert", "UPDATE": "update", "DELETE FROM": "delete", "FROM": "read", "JOIN": "read"}


def statement_kind(sql: str) -> str:
    """A statement named by what it does to which tables, in its order: ``insert
    calls_signedwebhook, read calls_call calls_callleg (locked)``."""
    done: dict[str, list[str]] = {}
    for verb, table in _TOUCHED.findall(sql):
        tables = done.setdefault(_VERBS[verb], [])
        if table not in tables:
            tables.append(table)
    kind = ", ".join(f"{verb} {' '.join(tables)}" for verb, tables in done.items()) or " ".join(sql.split())[:60]
    return kind + (" (locked)" if "FOR UPDATE" in sql else "")


def profile_round(app: App, webhook: str, calls: int) -> None:
    import cProfile
    import pstats

    # CPU time, not wall time: waiting on PostgreSQL is not this process's cost.
    app.profiled = (webhook, cProfile.Profile(time.process_time))
    for _ in range(calls):
        app.call()
    profile = app.profiled[1]
    app.profiled = None
    print(f"\ncProfile of {webhook}, {calls} requests (CPU seconds, profiler overhead included):")
    for order in ("tottime", "cumulative"):
        pstats.Stats(profile).sort_stats(order).print_stats(40)


def _backend_pid() -> int:
    from django.db import connection

    connection.ensure_connection()
    return int(connection.connection.info.backend_pid)


def _backend_cpu(pid: int) -> float:
    """CPU seconds of the PostgreSQL backend ``pid`` so far (it runs on this machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def app_in_process(database_url: str, **extra: str) -> App:
    """The WSGI application in this process on ``database_url``, production settings, the
    agent call placed inline (recorded, not sent), driven as Vonage drives it; ``extra``
    settings (environment variables) on top."""
    # One connection throughout: production's CONN_MAX_AGE (60 s) would reconnect inside a
    # measured request now and then, and under valgrind (instructions.py) every minute.
    load.django_in_process(database_url, AGENT_CALL_DISPATCH="inline", **{"CONN_MAX_AGE": "3600", **extra})
    from django.test import RequestFactory

    from whisper_project.wsgi import application

    return App(application, RequestFactory(SERVER_NAME="127.0.0.1"))


class App:
    """Vonage's side of a call, sent to the WSGI application in this process."""

    def __init__(self, application: Any, factory: Any) -> None:
        self.application = application
        self.factory = factory
        self.cpu: dict[str, list[float]] = defaultdict(list)
        self.pg_cpu: dict[str, list[float]] = defaultdict(list)
        self.profiled: tuple[str, Any] | None = None
        # Wrapped around the application's work on each request, named for its webhook
        # (benchmarks/instructions.py counts instructions in it).
        self.counted: Callable[[str], AbstractContextManager[None]] = lambda name: nullcontext()

    def request(
        self, name: str, method: str, path: str, payload: Any = None, *, headers: dict[str, str] | None = None
    ) -> Any:
        # Signed as Vonage signs (outside the measured time): the server checks it.
        body = b"" if method == "GET" else json.dumps(payload).encode()
        headers = {**(headers or {}), "Authorization": load.vonage_authorization(body)}
        if method == "GET":
            request = self.factory.get(path, headers=headers)
        else:
            request = self.factory.post(path, body, content_type="application/json", headers=headers)
        status: list[str] = []
        profiler = self.profiled[1] if self.profiled and name.startswith(self.profiled[0]) else None
        if profiler:
            profiler.enable()
        backend = _backend_pid()
        pg_started = _backend_cpu(backend)
        started = time.process_time()
        with self.counted(name):
            body = b"".join(self.application(request.environ, lambda code, headers, *_: status.append(code)))
        if profiler:
            profiler.disable()
        self.cpu[name].append(time.process_time() - started)
        # The same connection serves the next request (CONN_MAX_AGE): its backend's CPU.
        self.pg_cpu[name].append(_backend_cpu(backend) - pg_started)
        if not status[0].startswith("2"):
            raise RuntimeError(f"{path}: {status[0]} {body[:300]!r}")
        return json.loads(body) if body else None

    def call(self) -> None:
        """One call, its webhooks in the order and at the times ``benchmarks/calls.py``
        sends them (Vonage's, for a call an agent takes): the caller's leg at T, the
        agent's rung at T+1 s and answered at T+7 s, the agent hanging up a minute later,
        then the caller."""
        from calls.models import CallLeg

        caller = str(uuid_lib.uuid4())
        fields = {
            "to": load.CAMPAIGN_NUMBER,
            "from": "447946000123",
            "uuid": caller,
            "conversation_uuid": "CON",
            "region_url": REGION_URL,
        }
        query = urlencode(fields)
        ncco = self.request("answer_inbound (with the agent call)", "GET", f"/answer_inbound?{query}")
        for status in ("started", "ringing", "answered"):
            self.event(caller, "inbound", status, at=T0)
        notify = next(action for action in ncco if action["action"] == "notify")
        checkpoint = urlsplit(notify["eventUrl"][0])
        timestamp = load.vonage_time(T0)
        body = {"conversation_uuid": fields["conversation_uuid"], "payload": notify["payload"], "timestamp": timestamp}
        self.request("checkpoint", "POST", f"{checkpoint.path}?{checkpoint.query}", body)
        agent, conversation, call_id = CallLeg.objects.filter(call__legs__uuid=caller, role="agent").values_list(
            "uuid", "conversation_uuid", "call_id"
        )[0]
        for status in ("started", "ringing"):
            self.event(agent, "outbound", status, at=T0 + timedelta(seconds=1))
        # As Vonage asks it: the leg's conversation and its region (the leg has no region yet).
        query = urlencode(
            {
                "uuid": agent,
                "to": load.CALL_CENTER_NUMBER,
                "from": load.CAMPAIGN_NUMBER,
                "conversation_uuid": conversation,
                "region_url": REGION_URL,
            }
        )
        self.request("answer_outbound", "GET", f"{load.callback_path('answer_outbound', call=call_id)}&{query}")
        answered, hung_up = T0 + timedelta(seconds=7), T0 + timedelta(seconds=67)
        self.event(agent, "outbound", "answered", at=answered)
        self.event(agent, "outbound", "completed", at=hung_up, since=answered)
        self.event(caller, "inbound", "completed", at=hung_up + timedelta(seconds=1), since=T0)

    def shed_call(self) -> None:
        """A call whose answer waited past ``ANSWER_SHED_AFTER_SECONDS`` in the server's
        queue (calls/webhooks/overload.py; the app needs ``WEBHOOK_SPOOL_DIR``): the
        caller is connected to the call centre directly, and Vonage's four events of each
        leg, the caller's and the one Vonage connects in the same conversation, are kept
        in the spool as the answer was. In the order ``benchmarks/calls.py`` sends them."""
        from calls.models import CallEvent

        caller, direct = str(uuid_lib.uuid4()), str(uuid_lib.uuid4())
        conversation = f"CON-{uuid_lib.uuid4()}"
        fields = {"to": load.CAMPAIGN_NUMBER, "from": "447946000123", "uuid": caller, "conversation_uuid": conversation}
        # As nginx stamps it (deploy/nginx.conf): the request arrived 2 s ago.
        waited = {"X-Request-Start": f"t={time.time() - 2:.3f}"}
        ncco = self.request("shed answer", "GET", f"/answer_inbound?{urlencode(fields)}", headers=waited)
        if "notify" in (action["action"] for action in ncco):  # the full answer's checkpoint
            raise RuntimeError(f"the answer was not shed: {ncco}")
        shed_event = partial(self.event, conversation=conversation, name="shed event")
        answered, hung_up = T0 + timedelta(seconds=7), T0 + timedelta(seconds=67)
        for status in ("started", "ringing", "answered"):
            shed_event(caller, "inbound", status, at=T0)
        for status in ("started", "ringing"):
            shed_event(direct, "outbound", status, at=T0 + timedelta(seconds=1))
        shed_event(direct, "outbound", "answered", at=answered)
        shed_event(direct, "outbound", "completed", at=hung_up, since=answered)
        shed_event(caller, "inbound", "completed", at=hung_up, since=T0)
        # Kept in the spool, every one of them: none was recorded (an event recorded in
        # full answers the same receipt, so the receipts cannot tell).
        if CallEvent.objects.filter(leg_uuid__in=(caller, direct)).exists():
            raise RuntimeError("a shed call's event was recorded, not spooled")

    def event(
        self,
        leg: str,
        direction: str,
        status: str,
        *,
        at: datetime,
        since: datetime | None = None,
        conversation: str | None = None,
        name: str = "event",
    ) -> None:
        event = {"uuid": leg, "status": status, "direction": direction, "timestamp": load.vonage_time(at)}
        if conversation is not None:
            event["conversation_uuid"] = conversation
        if since is not None:
            seconds = str(round((at - since).total_seconds()))
            times = {"start_time": load.vonage_time(since), "end_time": load.vonage_time(at)}
            event.update(duration=seconds, price="0.01", rate="0.01", **times)
        self.request(name, "POST", "/event", event)


if __name__ == "__main__":
    sys.exit(main())
