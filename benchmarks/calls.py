"""Complete calls against the production setup: gunicorn, PostgreSQL, the real SDK.

Usage (PostgreSQL on 127.0.0.1:5432, trust auth for ``postgres``):

    .venv/bin/python benchmarks/calls.py                          # 20 calls/s for 20 s
    .venv/bin/python benchmarks/calls.py --rate 100 --duration 60 # the issue's target run
    .venv/bin/python benchmarks/calls.py --instances 2            # two servers, one database
    .venv/bin/python benchmarks/calls.py --find-max --duration 10 # the highest sustained rate
    .venv/bin/python benchmarks/calls.py --instances 2 --rate 20 --talk-seconds 10
                                        # two servers, ~200 calls in progress at once
    .venv/bin/python benchmarks/calls.py --rate 40 --server granian
                                        # the same, the app served by granian (a comparison)
    .venv/bin/python benchmarks/calls.py --rate 100 --answer-workers 2
                                        # the answers served by a server of their own

It drops and recreates the database ``callwhisper_loadbench``, migrates it, imports
``campaigns/demo_campaigns.json``, starts the TLS fake of Vonage's REST API in this
process (``--latency-ms``, default 200, on every request) and ``--instances`` gunicorn
servers as the README deploys them (``--workers 2 --threads 8``, DEBUG off, nothing in
front; with ``--server granian``, granian with as many processes and threads). It makes
``--warmup`` calls (default 40, a few at a time: each worker's first
requests pay for imports, and each of its request and agent-call threads opens its own
database connection on first use; with 10, short --find-max steps measured that
cold start in their p99), then starts calls open-loop: arrivals are a
Poisson process at ``--rate`` calls/s for ``--duration`` s, whatever the servers' speed,
each call run in a thread pool (up to 10 s of arrivals in flight, so that a slow server
does not hold arrivals back) with keep-alive connections per thread. A call is:
GET /answer_inbound; the caller's first events; the agent call the app placed at the
fake (found by the ``?call=`` of its answer_url); the caller's checkpoint after the
greeting (POST /event?call=…&checkpoint=agent, expected 204); GET that answer_url; POST
each leg's events (``started``/``ringing`` swapped half the time, ``answered``,
``completed`` with times and price, ~5 % delivered twice) to /event, with
``--talk-seconds`` of real time between the agent's answer and the hang-ups (0 by
default) so that calls overlap. With several instances each call's requests alternate
between them. ``--answer-workers N`` starts one more server, of N worker processes, that
serves only the answers and the checkpoint (``load.ANSWERS_APART``), as deploy/nginx.conf
sends what a caller waits on to a gunicorn of its own: an answer then never waits in a
queue behind the events (a bulkhead); the other events go to the ``--instances`` servers,
which run at ``--events-nice`` (10, as deploy/whisper.service's ``Nice=``), so that on
busy cores the answers' processes run first.

The servers run ``benchmarks/instrumented_wsgi.py``, the app with its database work
counted per request, unless ``--no-query-count`` (then ``whisper_project.wsgi``): the
counting is on in every figure below, at the cost of an increment per SQL statement.

Printed:

- calls started and completed (the warm-up's are in no figure but the correctness
  check), calls/s achieved (completed / time until the last call ended), and the steady
  rates: arrivals and completions per second between the 5th and
  95th percentile arrival and end time (the drain at the end does not count against it);
- late starts (a call started >100 ms after its arrival time, and how many of those found
  every driver thread busy) and keep-alive reconnects;
- p50/p95/p99/max per webhook as the client measured them and, from the instrumented
  servers' ``X-Benchmark-App-Ms``, the app's own time (WSGI entry to response start)
  p50/p99/max: the difference is gunicorn's queueing, the network and the driver's delays;
  then, from ``X-Benchmark-Stamped-Ms``, the server's own timing of each answer from the
  request's ``X-Request-Start`` stamp (the driver's, as nginx would put it) to the response's
  start, and how many of each webhook took longer than Vonage waits for it (5 s for an
  answer, 10 s for an event). Each driver thread plays one call a request at a time, so
  with every thread busy (``late starts``) the load is a closed loop: the servers' queue
  cannot grow past the thread count, and past capacity the latencies are smaller than
  Vonage's open arrivals would make them (``--talk-seconds`` raises the thread count);
- errors (non-2xx, exceptions, and arrivals the driver never started: 60 s after the last
  arrival it gives up those not yet started and waits for the calls under way);
- server CPU ms per complete call (utime+stime of gunicorn masters and workers, from
  /proc, after minus before) and peak RSS per server process (VmHWM); PostgreSQL's CPU per
  complete call (its backends for the app's database, listed every half second during the
  run, as ``benchmarks/seed_side_by_side.py`` measures them) and the two together;
- load generator CPU ms per call: this process (driver threads and the in-process fake
  API) over the run, from ``time.process_time()``, and the fake's connection threads' share
  (about 5-7 ms a call, 0.5-1 of it the fake's, against 65-80 ms of server CPU: on two
  cores the servers saturate long before the generator, so the fake stays in-process);
- database work per webhook, from the instrumented servers' response headers: median and
  max SQL statements per request (through Django's cursor, savepoints included), health
  checks (``SELECT 1`` on the raw cursor, not a cursor statement) and transactions (each
  also costs ``BEGIN`` and ``COMMIT``, not cursor statements, not in the statement count);
  then what the workers ran outside any request (a background thread placing the agent
  call), written by each worker when it exits, and the total per call;
- a correctness check from the database;
- the ceiling: a bare Django view returning a fixed NCCO (``benchmarks/ceiling_wsgi.py``)
  on as many gunicorn servers of the same shape, driven at the same rate; our
  answer_inbound p50/p99 and CPU are given as multiples of it (``--no-ceiling`` skips it).

``--burst N`` (e.g. 200) plays a TV spot instead: after a short warm-up, N callers arrive
within ``--burst-seconds`` (default 1) while the fake enforces the account's limit of
``--calls-per-second`` new calls (default 3, answering 429 above it) and the servers pace
under the same figure (``VONAGE_CALLS_PER_SECOND``). Each caller's checkpoint is posted
after its answer, as Vonage does after the greeting, then the caller waits for its agent
call. Printed: each caller's wait from the answer to the agent call's creation at the
fake (p50/p90/max), the answer webhook's latency, the create-calls' achieved rate, the
429s, direct connects and the correctness check.

``--find-max`` runs a step per rate of ``--steps`` (default 10,20,30,40,60,80,100 calls/s),
each ``--duration`` s on a fresh database, fake and servers, prints one row per step and
stops after two failing steps in a row (a row gives the answer_inbound p99 both as the
client measured it and in the app). A step passes when the steady completion rate is
at least 95 % of the steady arrival rate, there are no errors, answer_inbound p99 is at
most 50 ms and the correctness check is OK. Last line: "highest sustained rate: N calls/s
(answer_inbound p99 X ms)", the highest rate that passed.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import load  # noqa: E402

STEPS = (10, 20, 30, 40, 60, 80, 100)
ACHIEVED_SHARE = 0.95
P99_LIMIT_MS = 50.0
LATE_SECONDS = 0.1
WARMUP_FIRST = 90_000  # the warm-up's call numbers (and callers' numbers): apart from the measured ones
DRAIN_SECONDS = 60.0
_KINDS = ("statements", "health_checks", "transactions")  # load.ServerReport's fields

Drive = Callable[[load.Webhooks, random.Random, int], load.CallResult]


def main() -> int:
    args = _arguments()
    problem = load.postgres_reachable()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="callwhisper-loadbench-"))
    try:
        if args.burst:
            return _burst(args, work)
        return _find_max(args, work) if args.find_max else _one_rate(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20.0, help="calls started per second (open loop)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of arrivals (per step with --find-max)")
    parser.add_argument("--latency-ms", type=int, default=200, help="the fake API's latency on every request")
    parser.add_argument("--instances", type=int, default=1, choices=(1, 2, 3, 4))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--answer-workers",
        type=int,
        default=0,
        help="serve the answers on a server of their own with this many worker processes "
        "(default 0: every server serves every route)",
    )
    parser.add_argument(
        "--events-nice",
        type=int,
        default=10,
        help="with --answer-workers: the other servers' nice value, as deploy/whisper.service's Nice= "
        "(default %(default)s): on busy cores the answers' processes run first",
    )
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--server",
        choices=load.SERVERS,
        default="gunicorn",
        help="the WSGI server of the app and the ceiling (default gunicorn, as the README deploys it)",
    )
    parser.add_argument("--database", default="callwhisper_loadbench")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--warmup",
        type=int,
        default=40,
        help="calls made before measuring (every server thread's first request opens its database connection)",
    )
    parser.add_argument("--no-ceiling", action="store_true", help="skip the bare-view ceiling run")
    parser.add_argument(
        "--no-query-count", action="store_true", help="serve whisper_project.wsgi, not benchmarks/instrumented_wsgi"
    )
    parser.add_argument(
        "--talk-seconds",
        type=float,
        default=0.0,
        help="real seconds each call stays connected (between the agent's answered and completed events), "
        "so that calls overlap: rate x talk is about the number of calls in progress at once",
    )
    parser.add_argument("--burst", type=int, default=0, help="N callers at once under the account's call limit")
    parser.add_argument("--burst-seconds", type=float, default=1.0, help="the burst's arrivals spread over this")
    parser.add_argument(
        "--calls-per-second", type=float, default=3.0, help="with --burst: the account's limit (fake and servers)"
    )
    parser.add_argument("--find-max", action="store_true", help="step up the rate; report the highest sustained")
    parser.add_argument(
        "--steps",
        type=lambda text: [float(rate) for rate in text.split(",")],
        default=list(STEPS),
        help="rates for --find-max, comma-separated (default %(default)s)",
    )
    return parser.parse_args()


# --- the app under test -------------------------------------------------------------------


@dataclass
class App:
    """A fresh database, the fake API and ``--instances`` gunicorn servers of the app (and,
    with ``--answer-workers``, one more for the answers alone)."""

    url: str
    fake: Any
    call_ids: load.CallIds
    servers: list[load.Server] = field(default_factory=list)
    query_dir: Path | None = None  # where instrumented workers write what they ran outside requests
    talk_seconds: float = 0.0  # how long each call stays connected (--talk-seconds)
    spool_dir: Path | None = None  # WEBHOOK_SPOOL_DIR of every server: where shed answers are kept
    env: dict[str, str] = field(default_factory=dict)  # the servers' environment, for reconcile_calls
    answer_ports: list[int] = field(default_factory=list)  # the answers' own server (--answer-workers)

    @property
    def ports(self) -> list[int]:
        """Where the events go: every server but the answers' own."""
        return [server.port for server in self.servers if server.port not in self.answer_ports]

    def stop(self) -> None:
        """Stop the servers (idempotent); instrumented workers write their totals as they exit."""
        for server in self.servers:
            load.server_stop(server)


# How long Vonage waits for each webhook's response before it gives up on it (VONAGE.md:
# 5 s for an answer, a 10-s socket timeout for events, the checkpoint's notify included).
VONAGE_WAITS = {"answer_inbound": 5.0, "answer_outbound": 5.0, "checkpoint": 10.0, "event": 10.0}

# benchmarks/ceiling_wsgi.py: bare Django views, the ceiling; ready once it answers.
CEILING_APP = "benchmarks.ceiling_wsgi"


def server_start(
    args: argparse.Namespace,
    *,
    port: int,
    env: dict[str, str],
    work: Path,
    app: str,
    workers: int | None = None,
    nice: int = 0,
) -> load.Server:
    """The WSGI module ``app`` served as the arguments ask (``--server``, ``--workers`` unless
    ``workers``, ``--threads``); the ceiling's bare views are ready when they answer, the app
    when its health check does."""
    return load.server_start(
        port=port,
        env=env,
        log_dir=work,
        workers=workers or args.workers,
        threads=args.threads,
        app=app,
        ready_path="/answer_inbound" if app == CEILING_APP else "/healthz",
        server=args.server,
        nice=nice,
    )


@contextmanager
def _app_running(args: argparse.Namespace, work: Path) -> Iterator[App]:
    url = load.database_create(args.database)
    key_path, public_key = load.key_file_write(work)
    limit = args.calls_per_second if args.burst else None
    fake = load.fake_start(public_key=public_key, latency_ms=args.latency_ms, calls_per_second=limit)
    app = App(url=url, fake=fake, call_ids=load.CallIds(url), talk_seconds=args.talk_seconds)
    # Answers shed under overload are kept here and recorded by reconcile_calls after the run.
    app.spool_dir = Path(tempfile.mkdtemp(prefix="spool-", dir=work))
    if not args.no_query_count:
        app.query_dir = Path(tempfile.mkdtemp(prefix="queries-", dir=work))
    try:
        for instance in range(args.instances + (1 if args.answer_workers else 0)):
            port = load.free_port()
            env = load.django_env(
                database=url,
                public_url=f"http://127.0.0.1:{port}",
                VONAGE_APPLICATION_ID=load.APPLICATION_ID,
                VONAGE_PRIVATE_KEY=str(key_path),
                VONAGE_API_HOST=fake.host,
                REQUESTS_CA_BUNDLE=fake.ca_bundle_path,
                VONAGE_CALLS_PER_SECOND=str(limit or 0),
                WEBHOOK_SPOOL_DIR=str(app.spool_dir),
            )
            app.env = env
            if app.query_dir is not None:
                env["BENCHMARK_QUERY_DIR"] = str(app.query_dir)
            wsgi = "whisper_project.wsgi" if app.query_dir is None else load.INSTRUMENTED_APP
            answers_only = instance == args.instances
            workers = args.answer_workers if answers_only else args.workers
            nice = args.events_nice if args.answer_workers and not answers_only else 0
            app.servers.append(server_start(args, port=port, env=env, work=work, app=wsgi, workers=workers, nice=nice))
            if answers_only:
                app.answer_ports.append(port)
        yield app
    finally:
        app.stop()
        fake.close()
        app.call_ids.close()


def _app_drive(app: App) -> Drive:
    ports = app.ports

    def drive(webhooks: load.Webhooks, rng: random.Random, n: int) -> load.CallResult:
        return load.call_drive(
            webhooks=webhooks,
            ports=ports,
            answer_ports=app.answer_ports,
            fake=app.fake,
            call_ids=app.call_ids,
            caller_number=f"4479460{n:05d}",
            rng=rng,
            first_port=n % len(ports),
            talk_seconds=app.talk_seconds,
        )

    return drive


def _outside_requests(query_dir: Path | None) -> dict[str, dict[str, int]]:
    """What the instrumented workers ran outside requests, summed over the workers."""
    totals: dict[str, dict[str, int]] = {}
    for path in sorted(query_dir.glob("queries-*.json")) if query_dir else []:
        for where, counts in json.loads(path.read_text()).items():
            for kind, count in counts.items():
                totals.setdefault(where, {}).setdefault(kind, 0)
                totals[where][kind] += count
    return totals


# --- driving calls ------------------------------------------------------------------------


class Run:
    def __init__(self, rate: float, duration: float) -> None:
        self.rate = rate
        self.duration = duration
        self.results: list[load.CallResult] = []
        self.warmup: list[load.CallResult] = []  # not measured; in the database, so in the verdict
        self.arrivals: list[float] = []  # due times of the calls started, seconds from the start
        self.ends: list[float] = []  # when each completed call ended, seconds from the start
        self.elapsed = 0.0
        self.cpu_ms = 0.0  # the servers'
        self.database_cpu_ms: float | None = None  # PostgreSQL's backends for the app's database
        self.generator_cpu_ms = 0.0  # this process's
        self.fake_cpu_ms = 0.0  # the fake's connection threads', part of the above
        self.rss_kb: list[tuple[int, str, int]] = []  # (port, role, kB)
        self.pool_size = 0
        self.late_starts = 0  # calls started more than LATE_SECONDS after their arrival time
        self.late_pool_full = 0  # ... of which found every driver thread busy at their arrival
        self.peak_in_flight = 0  # the most calls in progress at once
        self.talk_seconds = 0.0
        self.reconnects = 0
        self.not_started = 0

    @property
    def started(self) -> int:
        return len(self.results) + self.not_started

    @property
    def completed(self) -> int:
        return sum(1 for result in self.results if result.completed)

    @property
    def errors(self) -> list[str]:
        return (
            [f"warm-up {error}" for result in self.warmup for error in result.errors]
            + [error for result in self.results for error in result.errors]
            + ["not started"] * self.not_started
        )

    def latencies(self, webhook: str) -> list[float]:
        return [seconds for result in self.results for name, seconds in result.latencies if name == webhook]

    def reports(self, webhook: str) -> list[load.ServerReport]:
        return [counts for result in self.results for name, counts in result.server if name == webhook]

    def offered_rate(self) -> float:
        return _steady_rate(self.arrivals)

    def achieved_rate(self) -> float:
        return _steady_rate(self.ends)

    def per_call(self, total: float) -> float:
        return total / self.completed if self.completed else float("nan")


def _steady_rate(times: list[float]) -> float:
    """Events per second between the 5th and the 95th percentile of ``times``."""
    ordered = sorted(times)
    if len(ordered) < 2:
        return float("nan")
    low, high = round(0.05 * (len(ordered) - 1)), round(0.95 * (len(ordered) - 1))
    span = ordered[high] - ordered[low]
    return (high - low) / span if span > 0 else float("nan")


def _run(
    args: argparse.Namespace,
    rate: float,
    servers: list[load.Server],
    drive: Drive,
    fake: Any = None,
    database: str | None = None,
) -> Run:
    """Warm up, then start calls open-loop (Poisson arrivals) at ``rate`` for ``args.duration`` s;
    wait for them; measure the servers', PostgreSQL's (the backends of ``database``) and
    this process's CPU over it."""
    run = Run(rate, args.duration)
    run.talk_seconds = args.talk_seconds
    run.warmup = _warm_up(drive, args.warmup, args.seed, concurrency=2 * len(servers) * args.workers)
    # Threads are made as calls need them: enough for every call of 10 s of arrivals in flight.
    run.pool_size = max(64, min(2000, int(rate * (10 + args.talk_seconds))))
    webhooks = load.Webhooks(timeout=10)
    cpu_before = load.cpu_ms([pid for server in servers for pid in server.pids])
    generator_before, fake_before = time.process_time(), fake.cpu_seconds if fake is not None else 0.0
    with load.DatabaseCpu(database) if database else nullcontext() as database_cpu:
        _open_loop(run, args.seed, drive, webhooks)
    run.database_cpu_ms = database_cpu.spent_ms if database_cpu is not None else None
    run.generator_cpu_ms = (time.process_time() - generator_before) * 1000
    run.fake_cpu_ms = (fake.cpu_seconds - fake_before) * 1000 if fake is not None else 0.0
    cpu_after = load.cpu_ms([pid for server in servers for pid in server.pids])
    run.cpu_ms = sum(cpu_after[pid] - cpu_before.get(pid, 0.0) for pid in cpu_after)
    for server in servers:
        for pid in server.pids:
            role = "master" if pid == server.process.pid else f"worker {pid}"
            run.rss_kb.append((server.port, role, load.peak_rss_kb(pid)))
    run.reconnects = webhooks.reconnects
    return run


def _open_loop(run: Run, seed: int, drive: Drive, webhooks: load.Webhooks) -> None:
    """Start a call at each arrival of a Poisson process, whatever the servers' speed; wait
    up to DRAIN_SECONDS for the last ones. Fills ``run``'s arrivals, results and ends."""
    rng = random.Random(seed)  # noqa: S311 - arrivals; each call has its own for its events
    futures: list[Future[tuple[load.CallResult, float]]] = []
    lock = threading.Lock()
    in_flight = [0]
    started = time.perf_counter()

    def task(n: int, due: float, pool_full: bool) -> tuple[load.CallResult, float]:
        if time.perf_counter() - due > LATE_SECONDS:
            with lock:
                run.late_starts += 1
                run.late_pool_full += pool_full
        result = _drive_one(drive, webhooks, seed, n)
        with lock:
            in_flight[0] -= 1
        return result, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=run.pool_size, thread_name_prefix="call") as pool:
        due = started + rng.expovariate(run.rate)
        while due - started < run.duration:
            time.sleep(max(0.0, due - time.perf_counter()))
            with lock:
                pool_full = in_flight[0] >= run.pool_size
                in_flight[0] += 1
                run.peak_in_flight = max(run.peak_in_flight, in_flight[0])
            futures.append(pool.submit(task, len(futures), due, pool_full))
            run.arrivals.append(due - started)
            due += rng.expovariate(run.rate)
        _, not_done = wait(futures, timeout=DRAIN_SECONDS + run.talk_seconds)
        for future in not_done:
            future.cancel()  # a call not yet started never will be; one under way cannot be
    # Leaving the pool waited for the calls already under way: their results count, and the
    # verdict can account for every call that reached the servers.
    run.elapsed = time.perf_counter() - started
    run.not_started = sum(future.cancelled() for future in futures)
    for future in futures:
        if not future.cancelled():
            result, ended = future.result()
            run.results.append(result)
            if result.completed:
                run.ends.append(ended)


def _drive_one(drive: Drive, webhooks: load.Webhooks, seed: int, n: int) -> load.CallResult:
    try:
        return drive(webhooks, random.Random(seed * 1_000_003 + n), n)  # noqa: S311 - events, not secrets
    except Exception as exc:  # the driver's own failure (its database lookup): counted, reported
        return load.CallResult(caller_uuid=str(n), errors=[f"driver: {type(exc).__name__}: {exc}"])


def _warm_up(drive: Drive, calls: int, seed: int, concurrency: int) -> list[load.CallResult]:
    """``calls`` calls before anything is measured, ``concurrency`` at a time, so that every
    worker has paid for its first requests (imports, connections, the SDK's client)."""
    webhooks = load.Webhooks(timeout=10)
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="warm-up") as pool:
        return list(pool.map(lambda n: _drive_one(drive, webhooks, seed, WARMUP_FIRST + n), range(calls)))


def _ceiling_drive(ports: list[int]) -> Drive:
    def drive(webhooks: load.Webhooks, rng: random.Random, n: int) -> load.CallResult:
        result = load.CallResult(caller_uuid=str(n))
        port = ports[n % len(ports)]
        try:
            status, body, elapsed = webhooks.request(port, "GET", f"/answer_inbound?uuid={n}&to=447700900001")
            result.latencies.append(("answer_inbound", elapsed))
            if status != 200 or not isinstance(body, list):
                result.errors.append(f"ceiling: HTTP {status}")
        except Exception as exc:  # counted, reported
            result.errors.append(f"ceiling: {type(exc).__name__}: {exc}")
        result.completed = not result.errors
        return result

    return drive


def _ceiling(args: argparse.Namespace, work: Path, url: str) -> Run:
    servers = []
    try:
        for _ in range(args.instances):
            port = load.free_port()
            env = load.django_env(database=url, public_url=f"http://127.0.0.1:{port}")
            env.pop("DJANGO_SETTINGS_MODULE")
            servers.append(server_start(args, port=port, env=env, work=work, app=CEILING_APP))
        return _run(args, args.rate, servers, _ceiling_drive([server.port for server in servers]))
    finally:
        for server in servers:
            load.server_stop(server)


# --- one rate ----------------------------------------------------------------------------


def _one_rate(args: argparse.Namespace, work: Path) -> int:
    started = time.perf_counter()
    with _app_running(args, work) as app:
        apart = (
            f"answers apart on {app.answer_ports[0]}, --workers {args.answer_workers}, the others at nice "
            f"{args.events_nice}; "
            if app.answer_ports
            else ""
        )
        print(
            f"setup {time.perf_counter() - started:.1f} s: database {args.database}, fake API at {app.fake.host} "
            f"({args.latency_ms} ms), {args.server} x{args.instances} on {', '.join(map(str, app.ports))} "
            f"(--workers {args.workers} --threads {args.threads}, {apart}"
            f"{'whisper_project.wsgi' if app.query_dir is None else load.INSTRUMENTED_APP})",
            flush=True,
        )
        run = _run(args, args.rate, app.servers, _app_drive(app), app.fake, args.database)
        _spool_record(app)
        verdict = load.verdict(app.url, fake=app.fake, results=run.warmup + run.results)
        app.stop()
        outside = _outside_requests(app.query_dir)
        ceiling = None if args.no_ceiling else _ceiling(args, work, app.url)
    _report(args, run, verdict, outside, ceiling)
    return 1 if (verdict.problems or run.errors) else 0


def _spool_record(app: App) -> None:
    """What the servers shed under overload, recorded as reconcile_calls records it."""
    if app.spool_dir is None or not any(app.spool_dir.iterdir()):
        return
    script = "from calls.webhooks import spool; print(spool.replay())"
    done = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [str(load.PYTHON), str(load.ROOT / "manage.py"), "shell", "-c", script],
        env=app.env,
        cwd=load.ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # The last line: Django 5.2's shell first says what it imported.
    recorded = (done.stdout.strip().splitlines() or ["0"])[-1]
    print(f"spool: {recorded} shed requests recorded by reconcile_calls' replay", flush=True)
    if done.returncode:
        print(done.stderr[-2000:], flush=True)


# --- a burst under the account's call limit --------------------------------------------------

BURST_WARMUP = 6  # paced too: a few, so that each worker has its SDK client and connections
BURST_AGENT_TIMEOUT = 300.0  # how long a caller may wait for its agent call here


def _burst(args: argparse.Namespace, work: Path) -> int:
    started = time.perf_counter()
    with _app_running(args, work) as app:
        print(
            f"setup {time.perf_counter() - started:.1f} s: {args.server} x{args.instances} (--workers {args.workers} "
            f"--threads {args.threads}), fake API ({args.latency_ms} ms) and servers at "
            f"{args.calls_per_second:g} new calls/s",
            flush=True,
        )
        ports = app.ports

        def drive(webhooks: load.Webhooks, rng: random.Random, n: int) -> load.CallResult:
            return load.call_drive(
                webhooks=webhooks,
                ports=ports,
                fake=app.fake,
                call_ids=app.call_ids,
                caller_number=f"4479460{n:05d}",
                rng=rng,
                first_port=n % len(ports),
                agent_timeout=BURST_AGENT_TIMEOUT,
                checkpoint_first=True,
            )

        warmup = _warm_up(drive, BURST_WARMUP, args.seed, 2)
        time.sleep(2.0)  # the pacer and the fake's allowance recover from the warm-up
        refused_before = app.fake.rate_limited
        creates_before = len(app.fake.create_requests())
        webhooks = load.Webhooks(timeout=30)
        first = time.monotonic() + 0.5

        def caller(n: int) -> load.CallResult:
            time.sleep(max(0.0, first + n * args.burst_seconds / args.burst - time.monotonic()))
            return _drive_one(drive, webhooks, args.seed, n)

        with ThreadPoolExecutor(max_workers=args.burst, thread_name_prefix="caller") as pool:
            results = list(pool.map(caller, range(args.burst)))
        verdict = load.verdict(app.url, fake=app.fake, results=warmup + results)
        creates = app.fake.create_requests()[creates_before:]
        refused = app.fake.rate_limited - refused_before
        direct = _direct_calls(app.url)
    waits = sorted(r.agent_rung - r.answered for r in results if r.agent_rung and r.answered)
    answers = sorted(seconds for r in results for webhook, seconds in r.latencies if webhook == "answer_inbound")
    created = [request.time for request in creates if request.status == 201]
    rate = (len(created) - 1) / (created[-1] - created[0]) if len(created) > 1 else float("nan")
    errors = [error for r in results for error in r.errors]
    print(f"burst: {args.burst} callers in {args.burst_seconds:g} s, account limit {args.calls_per_second:g} calls/s")
    print(
        f"wait from answer to agent rung: p50 {load.percentile(waits, 0.5):.1f} s, "
        f"p90 {load.percentile(waits, 0.9):.1f} s, max {waits[-1] if waits else float('nan'):.1f} s "
        f"({len(waits)} callers rung)"
    )
    print(
        f"answer_inbound: p50 {_ms(load.percentile(answers, 0.5)).strip()} ms, "
        f"p99 {_ms(load.percentile(answers, 0.99)).strip()} ms, max {_ms(answers[-1] if answers else 0).strip()} ms"
    )
    print(
        f"create-calls: {len(creates)} requests, {len(created)} created at {rate:.2f}/s, "
        f"{refused} answered 429; callers connected directly: {direct}"
    )
    print(f"calls completed: {sum(r.completed for r in results)} of {args.burst}; errors: {len(errors)}")
    for error in errors[:5]:
        print(f"  {error}")
    print("correctness: " + ("OK" if not verdict.problems else "; ".join(verdict.problems)))
    return 1 if (verdict.problems or errors or direct) else 0


def _direct_calls(url: str) -> int:
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=5) as connection:
        row = connection.execute("SELECT count(*) FROM calls_call WHERE agent_call_error <> ''").fetchone()
    return int(row[0]) if row else 0


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def _report(
    args: argparse.Namespace,
    run: Run,
    verdict: load.Verdict,
    outside: dict[str, dict[str, int]],
    ceiling: Run | None,
) -> None:
    print()
    _report_rates(args, run)
    print()
    _report_latencies(run, ceiling)
    print()
    errors = run.errors
    print(f"errors (non-2xx or exceptions): {len(errors)}" + (f", e.g. {errors[:3]}" if errors else ""))
    print(f"server CPU: {run.cpu_ms:.0f} ms in all = {run.per_call(run.cpu_ms):.1f} ms per complete call")
    if run.database_cpu_ms is not None:
        both = run.cpu_ms + run.database_cpu_ms
        print(
            f"PostgreSQL CPU (its backends for the app's database): {run.database_cpu_ms:.0f} ms in all = "
            f"{run.per_call(run.database_cpu_ms):.1f} ms per complete call; servers and PostgreSQL together "
            f"{run.per_call(both):.1f} ms per complete call (issue 12 wants ≤ 15)"
        )
    print("peak RSS (VmHWM): " + ", ".join(f"{port} {role} {kb / 1024:.0f} MB" for port, role, kb in run.rss_kb))
    print(
        f"load generator CPU (this process: driver threads + the in-process fake API): {run.generator_cpu_ms:.0f} ms "
        f"in all = {run.per_call(run.generator_cpu_ms):.1f} ms per call, of which the fake's connection threads "
        f"{run.per_call(run.fake_cpu_ms):.1f} ms"
    )
    print()
    _report_queries(run, outside, args.no_query_count)
    print()
    _report_verdict(run, verdict)
    if ceiling is not None:
        print()
        _report_ceiling(run, ceiling)


def _report_rates(args: argparse.Namespace, run: Run) -> None:
    print(
        f"calls: {run.started} started in {args.duration:g} s at --rate {args.rate:g} "
        f"(instances {args.instances}, fake latency {args.latency_ms} ms); {run.completed} completed "
        f"in {run.elapsed:.1f} s = {run.completed / run.elapsed:.1f} calls/s achieved"
    )
    offered, achieved = run.offered_rate(), run.achieved_rate()
    print(
        f"steady (5th–95th percentile): {offered:.1f} arrivals/s, {achieved:.1f} completions/s "
        f"= {achieved / offered:.0%} of offered"
    )
    print(f"warm-up: {len(run.warmup)} calls before measuring, in no figure but the correctness check")
    print(
        f"late starts (>100 ms behind the arrival time): {run.late_starts} "
        f"({run.late_pool_full} with all {run.pool_size} driver threads busy); "
        f"peak calls in progress at once: {run.peak_in_flight}; "
        f"keep-alive reconnects: {run.reconnects}"
    )
    if run.late_pool_full:
        # Each driver thread plays one call, one request at a time: with all of them busy,
        # no more requests are in flight, whatever the arrivals. Vonage's are not so held.
        print(
            f"  with all {run.pool_size} driver threads busy the load is a closed loop: at most "
            f"{run.pool_size} requests wait in the servers' queue, so past capacity the queue and "
            "the latencies below are smaller than open arrivals would make them (--talk-seconds "
            "raises the thread count: rate x (10 + talk seconds), at most 2000)"
        )


def _report_latencies(run: Run, ceiling: Run | None) -> None:
    """Client-side latencies; then, from instrumented servers, the app's own time (WSGI entry
    to response start): what the client measured beyond it is gunicorn's queueing, the
    network and the driver's own delays. Then the server's own timing of each answer, from
    the request's ``X-Request-Start`` stamp to the response's start: the queue and the app,
    without the driver's delay in reading the response (on two shared cores, most of the
    client's figure past capacity)."""
    print(
        f"{'webhook':<16}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'| in app p50':>13}{'p99':>7}{'max':>7}"
    )
    rows = [(name, run.latencies(name), [r.app_seconds for r in run.reports(name)]) for name in load.WEBHOOKS]
    if ceiling is not None:
        rows.append(("ceiling (bare)", ceiling.latencies("answer_inbound"), []))
    for name, values, in_app in rows:
        print(
            f"{name:<16}{len(values):>9}{_ms(load.percentile(values, 0.50)):>9}{_ms(load.percentile(values, 0.95)):>9}"
            f"{_ms(load.percentile(values, 0.99)):>9}{_ms(max(values) if values else float('nan')):>9}"
            + (
                f"{'|':>2}{_ms(load.percentile(in_app, 0.5)):>11}{_ms(load.percentile(in_app, 0.99)):>7}"
                f"{_ms(max(in_app)):>7}"
                if in_app
                else ""
            )
        )
    stamped = {
        name: [r.stamped_seconds for r in run.reports(name) if not math.isnan(r.stamped_seconds)]
        for name in load.WEBHOOKS
    }
    if not any(stamped.values()):
        return
    print("as the server timed it, from the X-Request-Start stamp to the answer's start (queue and app):")
    for name, values in stamped.items():
        if values:
            print(
                f"{name:<16}{len(values):>9}{_ms(load.percentile(values, 0.50)):>9}"
                f"{_ms(load.percentile(values, 0.95)):>9}{_ms(load.percentile(values, 0.99)):>9}{_ms(max(values)):>9}"
            )
    late = {name: sum(v > VONAGE_WAITS[name] for v in values) for name, values in stamped.items() if values}
    budgets = ", ".join(f"{name} {VONAGE_WAITS[name]:g} s" for name in late)
    if any(late.values()):
        counts = ", ".join(f"{name} {n} of {len(stamped[name])}" for name, n in late.items() if n)
        print(f"PAST VONAGE'S TIMEOUT (server-timed; {budgets}): {counts}")
    else:
        print(f"every request answered within Vonage's timeout (server-timed; {budgets})")


def _median_max(values: list[int]) -> str:
    return f"{statistics.median(values):>8g}{max(values):>6}" if values else f"{'-':>8}{'-':>6}"


def _report_queries(run: Run, outside: dict[str, dict[str, int]], off: bool) -> None:
    if off:
        print("database queries per webhook: not measured (--no-query-count)")
        return
    print(
        "database work per request (benchmarks/instrumented_wsgi.py, counting on): median and max of SQL statements "
        "through Django's cursor (savepoints included), health checks (SELECT 1 on psycopg's raw cursor, bypassing "
        "the cursor wrapper) and transactions (each also sends BEGIN and COMMIT: not cursor statements, not counted "
        "as statements)"
    )
    print(f"{'webhook':<16}{'requests':>9}{'statements':>14}{'health checks':>14}{'transactions':>14}")
    for name in load.WEBHOOKS:
        counts = run.reports(name)
        print(
            f"{name:<16}{len(counts):>9}{_median_max([c.statements for c in counts])}"
            f"{_median_max([c.health_checks for c in counts])}{_median_max([c.transactions for c in counts])}"
        )
    # Workers total what they ran outside requests over their life: the warm-up's calls too.
    calls = max(1, len(run.warmup) + run.started)
    for where, label in (
        ("background", "outside any request (threads that serve none: the agent call's background thread)"),
        ("after_response", "in request threads after the response started (request_finished)"),
    ):
        totals = outside.get(where, {})
        print(
            f"{label}: "
            + ", ".join(f"{totals.get(kind, 0) / calls:.1f} {kind.replace('_', ' ')}" for kind in _KINDS)
            + f" per call ({calls} calls, the warm-up's included)"
        )
    if not outside:
        print("(no worker wrote its totals: they are written when a worker exits gracefully)")
        return
    in_requests = {
        kind: sum(getattr(counts, kind) for result in run.results for _, counts in result.server) for kind in _KINDS
    }
    print(
        "per call in all (requests and background): "
        + ", ".join(
            f"{in_requests[kind] / max(1, run.started) + outside.get('background', {}).get(kind, 0) / calls:.1f} "
            f"{kind.replace('_', ' ')}"
            for kind in _KINDS
        )
        + " (+ BEGIN and COMMIT per transaction)"
    )


def _report_verdict(run: Run, verdict: load.Verdict) -> None:
    deliveries = sum(result.deliveries for result in run.warmup + run.results)
    duplicates = sum(result.duplicates for result in run.warmup + run.results)
    print(
        f"correctness: {verdict.calls} calls in the database, {verdict.answered_and_ended} answered+ended; "
        f"agent calls at the fake {verdict.agent_calls_created} ({verdict.create_requests} create requests); "
        f"legs {verdict.legs}; events stored {verdict.events_stored} = distinct delivered "
        f"{verdict.events_expected}? {'yes' if verdict.events_stored == verdict.events_expected else 'NO'} "
        f"({deliveries} deliveries, {duplicates} duplicates); answers shed under overload {verdict.shed}, "
        f"calls recorded late from the spool {verdict.recorded_late}"
    )
    print("correctness: " + ("OK" if not verdict.problems else "FAILED: " + "; ".join(verdict.problems)))
    if run.not_started:
        print(
            f"driver: {run.not_started} arrivals never started: the driver ran behind and gave them up when it "
            "stopped waiting, so they reached no server (counted as errors; the servers were offered fewer calls)"
        )


def _report_ceiling(run: Run, ceiling: Run) -> None:
    ours = run.latencies("answer_inbound")
    bare = ceiling.latencies("answer_inbound")
    per_call = run.per_call(run.cpu_ms)
    ceiling_cpu = ceiling.per_call(ceiling.cpu_ms)
    print(
        f"ceiling: {ceiling.completed} requests, {len(ceiling.errors)} errors, "
        f"CPU {ceiling_cpu:.2f} ms per request; peak RSS "
        + ", ".join(f"{kb / 1024:.0f} MB" for _, _, kb in ceiling.rss_kb)
    )
    print(
        f"answer_inbound vs ceiling: p50 x{load.percentile(ours, 0.5) / load.percentile(bare, 0.5):.1f}, "
        f"p99 x{load.percentile(ours, 0.99) / load.percentile(bare, 0.99):.1f}; "
        f"CPU per complete call (1 call = {_requests_per_call(run):.1f} requests) "
        f"x{per_call / ceiling_cpu:.1f} the ceiling's per request"
    )


def _requests_per_call(run: Run) -> float:
    total = sum(len(result.latencies) for result in run.results)
    return total / len(run.results) if run.results else float("nan")


# --- the highest sustained rate -------------------------------------------------------------


@dataclass
class Step:
    rate: float
    run: Run
    problems: list[str]  # the verdict's
    inbound_p99_ms: float

    @property
    def failures(self) -> list[str]:
        """Why the step does not count as sustained; empty when it does."""
        failures = []
        offered, achieved = self.run.offered_rate(), self.run.achieved_rate()
        if not achieved >= ACHIEVED_SHARE * offered:
            failures.append(f"achieved {achieved / offered:.0%} of offered")
        if self.run.errors:
            failures.append(f"{len(self.run.errors)} errors, e.g. {self.run.errors[0]}")
        if not self.inbound_p99_ms <= P99_LIMIT_MS:
            failures.append(f"answer_inbound p99 {self.inbound_p99_ms:.0f} ms > {P99_LIMIT_MS:g}")
        if self.problems:
            failures.append("correctness: " + "; ".join(self.problems))
        return failures


def _find_max(args: argparse.Namespace, work: Path) -> int:
    print(
        f"find-max: steps of {args.duration:g} s at {', '.join(f'{rate:g}' for rate in args.steps)} calls/s, "
        f"each on a fresh database and servers ({args.server} x{args.instances} --workers {args.workers} "
        f"--threads {args.threads}, fake latency {args.latency_ms} ms, "
        f"{'whisper_project.wsgi' if args.no_query_count else load.INSTRUMENTED_APP}); a step passes with "
        f"completions ≥ {ACHIEVED_SHARE:.0%} of arrivals (steady, 5th–95th percentile), 0 errors, "
        f"answer_inbound p99 ≤ {P99_LIMIT_MS:g} ms, correctness OK",
        flush=True,
    )
    print()
    header = (
        f"{'rate':>5}{'calls':>7}{'offered/s':>10}{'achieved/s':>11}{'share':>7}{'errors':>7}{'late':>6}"
        f"{'inbound p50':>12}{'p99 ms':>8}{'in app':>8}{'server CPU':>11}{'gen CPU':>9}  result"
    )
    print(header)
    print(f"{'':>73}{'p99 ms':>8}{'ms/call':>11}{'ms/call':>9}")
    steps: list[Step] = []
    for rate in args.steps:
        step = _step(args, work, rate)
        steps.append(step)
        _step_print(step)
        if len(steps) >= 2 and steps[-1].failures and steps[-2].failures:
            print(f"(stopped: two failing steps in a row; {len(args.steps) - len(steps)} steps not run)")
            break
    print()
    passed = [step for step in steps if not step.failures]
    if not passed:
        print(f"highest sustained rate: none of the {len(steps)} steps passed (lowest: {steps[0].failures[0]})")
        return 1
    best = max(passed, key=lambda step: step.rate)
    below = [step for step in steps if step.failures and step.rate < best.rate]
    note = f"; failed below it: {', '.join(f'{step.rate:g}' for step in below)}" if below else ""
    print(f"highest sustained rate: {best.rate:g} calls/s (answer_inbound p99 {best.inbound_p99_ms:.1f} ms){note}")
    return 0


def _step(args: argparse.Namespace, work: Path, rate: float) -> Step:
    with _app_running(args, work) as app:
        run = _run(args, rate, app.servers, _app_drive(app), app.fake, args.database)
        verdict = load.verdict(app.url, fake=app.fake, results=run.warmup + run.results)
    p99 = load.percentile(run.latencies("answer_inbound"), 0.99) * 1000
    return Step(rate=rate, run=run, problems=verdict.problems, inbound_p99_ms=p99)


def _step_print(step: Step) -> None:
    run = step.run
    offered, achieved = run.offered_rate(), run.achieved_rate()
    p50 = load.percentile(run.latencies("answer_inbound"), 0.5) * 1000
    in_app = load.percentile([report.app_seconds for report in run.reports("answer_inbound")], 0.99) * 1000
    failures = step.failures
    print(
        f"{step.rate:>5g}{run.started:>7}{offered:>10.1f}{achieved:>11.1f}{achieved / offered:>7.0%}"
        f"{len(run.errors):>7}{run.late_starts:>6}{p50:>12.1f}{step.inbound_p99_ms:>8.1f}{in_app:>8.1f}"
        f"{run.per_call(run.cpu_ms):>11.1f}{run.per_call(run.generator_cpu_ms):>9.1f}  "
        + ("pass" if not failures else "FAIL: " + "; ".join(failures)),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
