"""Complete calls against the production setup: gunicorn, PostgreSQL, the real SDK.

Usage (PostgreSQL on 127.0.0.1:5432, trust auth for ``postgres``):

    .venv/bin/python benchmarks/calls.py                          # 20 calls/s for 20 s
    .venv/bin/python benchmarks/calls.py --rate 100 --duration 60 # the issue's target run
    .venv/bin/python benchmarks/calls.py --instances 2            # two servers, one database

It drops and recreates the database ``callwhisper_loadbench``, migrates it, imports
``campaigns/demo_campaigns.json``, starts the TLS fake of Vonage's REST API in this
process (``--latency-ms``, default 200, on every request) and ``--instances`` gunicorn
servers as the README deploys them (``--workers 2 --threads 8``, DEBUG off, nothing in
front), then starts calls open-loop: arrivals are a Poisson process at ``--rate``
calls/s for ``--duration`` s, whatever the servers' speed, each call run in a thread
pool with keep-alive connections per thread. A call is: GET /answer_inbound; the agent
call the app placed at the fake (found by the ``?call=`` of its answer_url); GET that
answer_url; POST each leg's events (``started``/``ringing`` swapped half the time,
``answered``, ``completed`` with times and price, ~5 % delivered twice) to /event. With
several instances each call's requests alternate between them.

Printed: calls/s achieved, p50/p95/p99 per webhook, errors (non-2xx or exceptions),
server CPU ms per complete call (utime+stime of gunicorn masters and workers, from
/proc, after minus before), peak RSS per server process (VmHWM), and a correctness check
from the database. Then the ceiling: a bare Django view returning a fixed NCCO
(``benchmarks/ceiling_wsgi.py``) on as many gunicorn servers of the same shape, driven
at the same rate; our answer_inbound p50/p99 and CPU are given as multiples of it.

Not measured: database queries per webhook (it needs the servers instrumented;
``tests/calls`` pin the query counts instead).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import load  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20.0, help="calls started per second (open loop)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of arrivals")
    parser.add_argument("--latency-ms", type=int, default=200, help="the fake API's latency on every request")
    parser.add_argument("--instances", type=int, default=1, choices=(1, 2, 3, 4))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--database", default="callwhisper_loadbench")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-ceiling", action="store_true", help="skip the bare-view ceiling run")
    args = parser.parse_args()

    problem = load.postgres_reachable()
    if problem:
        print(problem, file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="callwhisper-loadbench-"))
    fake = None
    servers: list[load.Server] = []
    try:
        started = time.perf_counter()
        url = load.database_create(args.database)
        key_path, public_key = load.key_file_write(work)
        fake = load.fake_start(public_key=public_key, latency_ms=args.latency_ms)
        ports = [load.free_port() for _ in range(args.instances)]
        for port in ports:
            env = load.django_env(
                database=url,
                public_url=f"http://127.0.0.1:{port}",
                VONAGE_APPLICATION_ID=load.APPLICATION_ID,
                VONAGE_PRIVATE_KEY=str(key_path),
                VONAGE_API_HOST=fake.host,
                REQUESTS_CA_BUNDLE=fake.ca_bundle_path,
            )
            servers.append(
                load.gunicorn_start(port=port, env=env, log_dir=work, workers=args.workers, threads=args.threads)
            )
        print(
            f"setup {time.perf_counter() - started:.1f} s: database {args.database}, fake API at {fake.host} "
            f"({args.latency_ms} ms), gunicorn x{args.instances} on {', '.join(map(str, ports))} "
            f"(--workers {args.workers} --threads {args.threads})",
            flush=True,
        )

        app = _run(args, servers, lambda webhooks, rng, n: _one_call(webhooks, rng, n, ports, fake, url))
        results = app.results
        verdict = load.verdict(url, fake=fake, results=results)
        for server in servers:
            load.server_stop(server)

        ceiling = None
        if not args.no_ceiling:
            ceiling_servers = []
            for _ in range(args.instances):
                port = load.free_port()
                env = load.django_env(database=url, public_url=f"http://127.0.0.1:{port}")
                env.pop("DJANGO_SETTINGS_MODULE")
                ceiling_servers.append(
                    load.gunicorn_start(
                        port=port,
                        env=env,
                        log_dir=work,
                        workers=args.workers,
                        threads=args.threads,
                        app="benchmarks.ceiling_wsgi",
                        ready_path="/answer_inbound",
                    )
                )
            servers.extend(ceiling_servers)
            cports = [server.port for server in ceiling_servers]
            ceiling = _run(args, ceiling_servers, lambda webhooks, rng, n: _ceiling_call(webhooks, n, cports))

        _report(args, app, verdict, ceiling)
        return 1 if (verdict.problems or app.errors) else 0
    finally:
        for server in servers:
            load.server_stop(server)
        if fake is not None:
            fake.close()
        shutil.rmtree(work, ignore_errors=True)


class Run:
    def __init__(self) -> None:
        self.results: list = []
        self.elapsed = 0.0
        self.cpu_ms = 0.0
        self.rss_kb: list[tuple[int, str, int]] = []  # (port, role, kB)
        self.late_starts = 0  # calls started more than 100 ms after their arrival time
        self.reconnects = 0
        self.unfinished = 0

    @property
    def completed(self) -> int:
        return sum(1 for result in self.results if result.completed)

    @property
    def errors(self) -> list[str]:
        return [error for result in self.results for error in result.errors] + ["unfinished"] * self.unfinished

    def latencies(self, webhook: str) -> list[float]:
        return [seconds for result in self.results for name, seconds in result.latencies if name == webhook]


def _run(args: argparse.Namespace, servers: list[load.Server], drive) -> Run:
    """Start calls open-loop (Poisson arrivals) for ``args.duration`` s; wait for them."""
    run = Run()
    webhooks = load.Webhooks(timeout=10)
    rng = random.Random(args.seed)  # noqa: S311 - arrivals; each call has its own for its events
    pool_size = max(32, min(512, int(args.rate * 3)))
    cpu_before = load.cpu_ms([pid for server in servers for pid in server.pids])
    futures: list[Future] = []
    lock = threading.Lock()

    def task(n: int, due: float):
        if time.perf_counter() - due > 0.1:
            with lock:
                run.late_starts += 1
        return drive(webhooks, random.Random(args.seed * 1_000_003 + n), n)  # noqa: S311

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="call") as pool:
        due, n = started, 0
        while True:
            due += rng.expovariate(args.rate)
            if due - started >= args.duration:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(task, n, due))
            n += 1
        done, not_done = wait(futures, timeout=60)
        for future in not_done:
            future.cancel()
        run.unfinished = len(not_done)
        run.elapsed = time.perf_counter() - started
        run.results = [future.result() for future in done if future.exception() is None]
        run.unfinished += sum(1 for future in done if future.exception() is not None)
    cpu_after = load.cpu_ms([pid for server in servers for pid in server.pids])
    run.cpu_ms = sum(cpu_after[pid] - cpu_before.get(pid, 0.0) for pid in cpu_after)
    for server in servers:
        for pid in server.pids:
            role = "master" if pid == server.process.pid else f"worker {pid}"
            run.rss_kb.append((server.port, role, load.peak_rss_kb(pid)))
    run.reconnects = webhooks.reconnects
    return run


def _one_call(webhooks, rng, n, ports, fake, url, _ids={}):  # noqa: B006 - one CallIds per database
    call_ids = _ids.setdefault(url, load.CallIds(url))
    return load.call_drive(
        webhooks=webhooks,
        ports=ports,
        fake=fake,
        call_ids=call_ids,
        caller_number=f"4479460{n:05d}",
        rng=rng,
        first_port=n % len(ports),
    )


def _ceiling_call(webhooks, n, ports):
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


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def _report(args: argparse.Namespace, app: Run, verdict: load.Verdict, ceiling: Run | None) -> None:
    started = len(app.results) + app.unfinished
    print()
    print(
        f"calls: {started} started in {args.duration:g} s at --rate {args.rate:g} "
        f"(instances {args.instances}, fake latency {args.latency_ms} ms); {app.completed} completed "
        f"in {app.elapsed:.1f} s = {app.completed / app.elapsed:.1f} calls/s achieved"
    )
    print(f"late starts (>100 ms behind the arrival time): {app.late_starts}; keep-alive reconnects: {app.reconnects}")
    print()
    print(f"{'webhook':<16}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    rows = [(name, app.latencies(name)) for name in load.WEBHOOKS]
    if ceiling is not None:
        rows.append(("ceiling (bare)", ceiling.latencies("answer_inbound")))
    for name, values in rows:
        print(
            f"{name:<16}{len(values):>9}{_ms(load.percentile(values, 0.50)):>9}{_ms(load.percentile(values, 0.95)):>9}"
            f"{_ms(load.percentile(values, 0.99)):>9}{_ms(max(values) if values else float('nan')):>9}"
        )
    errors = app.errors
    print()
    print(f"errors (non-2xx or exceptions): {len(errors)}" + (f", e.g. {errors[:3]}" if errors else ""))
    per_call = app.cpu_ms / app.completed if app.completed else float("nan")
    print(f"server CPU: {app.cpu_ms:.0f} ms in all = {per_call:.1f} ms per complete call")
    print("peak RSS (VmHWM): " + ", ".join(f"{port} {role} {kb / 1024:.0f} MB" for port, role, kb in app.rss_kb))
    print("database queries per webhook: not measured (would need the servers instrumented)")
    print()
    deliveries = sum(result.deliveries for result in app.results)
    duplicates = sum(result.duplicates for result in app.results)
    problems = verdict.problems
    print(
        f"correctness: {verdict.calls} calls in the database, {verdict.answered_and_ended} answered+ended; "
        f"agent calls at the fake {verdict.agent_calls_created} ({verdict.create_requests} create requests); "
        f"legs {verdict.legs}; events stored {verdict.events_stored} = distinct delivered "
        f"{verdict.events_expected}? {'yes' if verdict.events_stored == verdict.events_expected else 'NO'} "
        f"({deliveries} deliveries, {duplicates} duplicates)"
    )
    print("correctness: " + ("OK" if not problems else "FAILED: " + "; ".join(problems)))
    if ceiling is not None:
        ours = app.latencies("answer_inbound")
        bare = ceiling.latencies("answer_inbound")
        ceiling_cpu = ceiling.cpu_ms / ceiling.completed if ceiling.completed else float("nan")
        print()
        print(
            f"ceiling: {ceiling.completed} requests, {len(ceiling.errors)} errors, "
            f"CPU {ceiling_cpu:.2f} ms per request; peak RSS "
            + ", ".join(f"{kb / 1024:.0f} MB" for _, _, kb in ceiling.rss_kb)
        )
        print(
            f"answer_inbound vs ceiling: p50 x{load.percentile(ours, 0.5) / load.percentile(bare, 0.5):.1f}, "
            f"p99 x{load.percentile(ours, 0.99) / load.percentile(bare, 0.99):.1f}; "
            f"CPU per complete call (1 call = {_requests_per_call(app):.1f} requests) "
            f"x{per_call / ceiling_cpu:.1f} the ceiling's per request"
        )


def _requests_per_call(run: Run) -> float:
    total = sum(len(result.latencies) for result in run.results)
    return total / len(run.results) if run.results else float("nan")


if __name__ == "__main__":
    sys.exit(main())
