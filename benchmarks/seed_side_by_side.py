"""This project beside the seed's Node app, on the seed's own routes, on the same machine.

Usage (PostgreSQL on 127.0.0.1:5432, trust auth for ``postgres``; Node, npm and wrk on PATH):

    .venv/bin/python benchmarks/seed_side_by_side.py                 # 20 s per run
    .venv/bin/python benchmarks/seed_side_by_side.py --quick         # 3 s per run (the smoke test)
    SEED_APP_DIR=/somewhere/node-call-whisper .venv/bin/python benchmarks/seed_side_by_side.py

The seed is the tutorial this project grew from, github.com/Nexmo/node-call-whisper at
commit 79d3d6d (an Express app that stores nothing). Its checkout lives outside this
project: ``--seed-dir`` or ``SEED_APP_DIR`` (default ``~/.cache/call-whisper/node-call-whisper``);
when the directory is missing the script clones it there and checks out the pinned commit,
then runs ``npm install`` in it if its dependencies are missing (``--setup-only`` stops
there: CI prepares it so, and the smoke test runs only with the checkout ready, fetching
nothing). Without node, npm or wrk it prints ``skipped: node not found`` (or the tool
missing) and exits 0; so it does when the checkout is missing and cannot be cloned.

Both apps run against the same TLS fake of Vonage's REST API
(``devtools/fake_vonage_api.py``, ``--latency-ms``, default 0), one after the other:

- ours exactly as ``benchmarks/calls.py`` runs it (its ``_app_running``: a fresh PostgreSQL
  database ``--database`` with the demo campaigns, gunicorn ``--workers 2 --threads 8``
  (or granian with as many, ``--server granian``), DEBUG off, webhooks signed as Vonage
  signs them, the agent call placed with the real SDK),
  serving ``whisper_project.wsgi``;
- then the seed with ``node``, its Nexmo SDK sent to the fake by a preloaded script
  (``benchmarks/seed/route_to_fake.js``: the SDK hard-codes api.nexmo.com:443) and the
  fake's CA trusted through ``NODE_EXTRA_CA_CERTS``. For it the fake is as lenient as Vonage
  in two ways it is not for ours: the seed's SDK signs no ``exp`` and its create-call gives
  no ``event_url`` (Vonage uses the application's).

For each app: a warm-up (``answer_inbound`` at 16 connections for a few seconds, then
``answer_outbound``), then ``wrk -t1`` at 16 and at 1 connection for ``--seconds`` each
(default 20, 3 with ``--quick``), on ``/answer_inbound`` and then ``/answer_outbound``.
Every request is a fresh call, sent once (``benchmarks/wrk/replay.lua`` replays a file
prepared just before the run):

- ``answer_inbound``: ``GET /answer_inbound?to=<campaign number>&from=<a new caller>&uuid=…
  &conversation_uuid=…&region_url=…``, for ours with its own Vonage signature (a JWT with a
  fresh ``jti``; they are good for 5 minutes, so they are made right before each run);
  enough for ``--max-rate`` requests a second;
- ``answer_outbound``: for each agent call the app placed at the fake during its
  ``answer_inbound`` runs, the request Vonage makes when the agent answers: the call's
  ``answer_url`` plus the agent leg's ``to``, ``from``, ``uuid``, ``conversation_uuid``.
  So there are only as many as the inbound runs made calls (``--fill-seconds`` makes more,
  unmeasured): after a tenth (at most 500) for the warm-up, the c=16 run gets half of them,
  the c=1 run the rest, and a run that uses all of its calls before ``--seconds`` stops
  there (printed as ``ran out``); req/s is always over the run's own time, first request
  sent to last answer read.

Then, unless ``--no-bare``, a third peer on the same routes: bare Django views returning a
fixed NCCO (``benchmarks/ceiling_wsgi.py``: no database, no signature, no agent call, no
middleware) under the same gunicorn, driven the same way. It is the most any Django app
served so reaches on this machine, so its ratio to the seed bounds what ours can reach.

Printed per app, route and concurrency: requests answered 2xx and not, req/s, p50/p99
latency (wrk's), and the server CPU per request: utime+stime from ``/proc`` of the server's
processes (gunicorn's master and workers; node) after minus before, and, for ours,
PostgreSQL's backends for its database, separately (listed every half second during the
run: a backend that exits mid-run loses at most that much of its CPU; gunicorn keeps its
connections anyway); and the CPU the run cost the shared fake API (this script's threads)
and wrk, per request: the four together are what a request costs the two cores. Then the ratios ours/seed and issue 12's
targets, and the verification: each of our answered calls in PostgreSQL and its agent call
placed at the fake once; each of our answered agent answers recorded as the call's agent leg;
each of the seed's answered calls placed at the fake. Exit status 1 when the verification
fails, 0 otherwise (the targets are printed, not enforced).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid as uuid_lib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import calls as calls_benchmark  # noqa: E402
from benchmarks import load  # noqa: E402

SEED_REPOSITORY = "https://github.com/Nexmo/node-call-whisper.git"
SEED_COMMIT = "79d3d6d"
SEED_DIR_DEFAULT = Path.home() / ".cache" / "call-whisper" / "node-call-whisper"
REPLAY_SCRIPT = ROOT / "benchmarks" / "wrk" / "replay.lua"
PRELOAD_SCRIPT = ROOT / "benchmarks" / "seed" / "route_to_fake.js"
SECOND_CAMPAIGN_NUMBER = "447700900003"  # the winter offer's (demo_campaigns.json)
INBOUND, OUTBOUND = "answer_inbound", "answer_outbound"
CONNECTIONS = (16, 1)
APPS = ("seed", "ours", "bare")  # the order of the report's rows
WARMUP_CONNECTIONS = 16  # every gunicorn thread opens its database connection before measuring
# Issue 12: ours at least this many times the seed's requests per second.
TARGETS = {INBOUND: 1.5, OUTBOUND: 0.5}


def main() -> int:
    args = _arguments()
    missing = [tool for tool in ("node", "npm", "wrk") if shutil.which(tool) is None]
    if missing:
        print(f"skipped: {', '.join(missing)} not found")
        return 0
    try:
        seed_dir = seed_prepare(args.seed_dir)
    except SeedUnavailable as exc:
        print(f"skipped: {exc}")
        return 0
    if args.setup_only:
        print(f"seed: ready at {seed_dir}")
        return 0
    problem = load.postgres_reachable()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="callwhisper-seedbench-"))
    try:
        return _benchmark(args, work, seed_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--seed-dir",
        type=Path,
        default=seed_dir_default(),
        help="the seed app's checkout, outside this project (default $SEED_APP_DIR or %(default)s)",
    )
    parser.add_argument(
        "--setup-only", action="store_true", help="clone the seed app if missing, npm install it, and stop (CI)"
    )
    parser.add_argument("--seconds", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--quick", action="store_true", help="3 s per run and a shorter warm-up")
    parser.add_argument("--latency-ms", type=int, default=0, help="the fake API's latency on every request")
    parser.add_argument(
        "--max-rate", type=int, default=2500, help="answer_inbound requests prepared per second of a run"
    )
    parser.add_argument(
        "--fill-seconds",
        type=int,
        default=0,
        help="after the measured answer_inbound runs, make calls this long more (c=16, unmeasured) so that the "
        "answer_outbound runs have more fresh calls to answer",
    )
    parser.add_argument("--database", default="callwhisper_seedbench")
    parser.add_argument(
        "--server",
        choices=load.SERVERS,
        default="gunicorn",
        help="the WSGI server of ours and of the bare views (default gunicorn, as the README deploys it)",
    )
    parser.add_argument(
        "--no-bare", action="store_true", help="skip the third peer, bare Django views under the same server"
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds = 3
    args.warmup_seconds = 1 if args.quick else 3
    # What benchmarks/calls.py's _app_running reads: one gunicorn as the README deploys it.
    args.instances, args.workers, args.threads = 1, 2, 8
    args.burst, args.calls_per_second, args.talk_seconds = 0, 0.0, 0.0
    args.answer_workers, args.events_nice = 0, 0  # every route on that one gunicorn
    args.no_query_count = True  # production's whisper_project.wsgi, not the instrumented app
    return args


# --- the seed app ---------------------------------------------------------------------------


def seed_dir_default() -> Path:
    return Path(os.environ.get("SEED_APP_DIR") or SEED_DIR_DEFAULT)


def seed_ready(seed_dir: Path) -> bool:
    """The checkout is there with its npm dependencies: nothing left to fetch."""
    return (seed_dir / "package.json").exists() and (seed_dir / "node_modules" / "nexmo").exists()


class SeedUnavailable(Exception):
    """The seed's checkout is missing and could not be cloned (no network, say)."""


def seed_prepare(seed_dir: Path) -> Path:
    """The seed's checkout at ``seed_dir`` (cloned at the pinned commit when missing), its
    npm dependencies installed."""
    if not (seed_dir / "package.json").exists():
        print(f"seed: cloning {SEED_REPOSITORY} into {seed_dir}", flush=True)
        seed_dir.parent.mkdir(parents=True, exist_ok=True)
        for command in (
            ["git", "clone", "--quiet", SEED_REPOSITORY, str(seed_dir)],
            ["git", "-C", str(seed_dir), "checkout", "--quiet", SEED_COMMIT],
        ):
            done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
            if done.returncode != 0:
                raise SeedUnavailable(
                    f"the seed app is not at {seed_dir} and could not be cloned at {SEED_COMMIT} "
                    f"({' '.join(command[:2])}: {done.stderr.strip() or done.returncode}); "
                    "give its checkout with --seed-dir or SEED_APP_DIR"
                )
    head = subprocess.run(  # noqa: S603
        ["git", "-C", str(seed_dir), "rev-parse", "--short=7", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if head != SEED_COMMIT:
        print(f"seed: warning: {seed_dir} is at {head or 'an unknown commit'}, not {SEED_COMMIT}", flush=True)
    if not seed_ready(seed_dir):
        print(f"seed: npm install in {seed_dir}", flush=True)
        subprocess.run(
            ["npm", "install", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],  # noqa: S607
            cwd=seed_dir,
            check=True,
            timeout=600,
        )
    return seed_dir


def seed_start(*, seed_dir: Path, fake: Any, key_path: Path, log_dir: Path, timeout: float = 30.0) -> load.Server:
    """``node lib/server.js`` with the variables of the seed's ``.env.example``, its Nexmo
    SDK sent to ``fake``; waits until it answers."""
    port = load.free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("NEXMO_", "NODE_"))}
    env.update(
        PORT=str(port),
        NEXMO_API_KEY="seedbench",
        NEXMO_API_SECRET="seedbench-secret",  # noqa: S106 - not used for the Voice API
        NEXMO_APP_ID=load.APPLICATION_ID,
        NEXMO_APP_FILE_NAME=str(key_path),
        CALL_CENTER_NUMBER=load.CALL_CENTER_NUMBER,
        INBOUND_NUMBER_1=load.CAMPAIGN_NUMBER,
        INBOUND_NUMBER_2=SECOND_CAMPAIGN_NUMBER,
        DOMAIN=f"127.0.0.1:{port}",
        NODE_ENV="production",
        NODE_EXTRA_CA_CERTS=fake.ca_bundle_path,
        FAKE_VONAGE_HOST=fake.host,
    )
    log_path = log_dir / f"seed-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603
            ["node", "-r", str(PRELOAD_SCRIPT), "lib/server.js"],  # noqa: S607
            cwd=seed_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one (load.server_stop)
        )
    server = load.Server(port=port, process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the seed app exited ({process.returncode}):\n{server.log_tail()}")
        try:
            status, _, _ = load.Webhooks(timeout=2).request(port, "GET", "/answer_outbound?conference_id=0")
            if status == 200:
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            load.server_stop(server)
            raise RuntimeError(f"the seed app did not answer within {timeout:g} s:\n{server.log_tail()}")
        time.sleep(0.1)


@contextmanager
def _seed_running(*, seed_dir: Path, fake: Any, key_path: Path, log_dir: Path) -> Iterator[load.Server]:
    # The seed's SDK signs no exp, and its create-call gives no event_url: Vonage accepts
    # both (the application's event URL is used), the fake does when told to.
    fake.require_exp = False
    server = seed_start(seed_dir=seed_dir, fake=fake, key_path=key_path, log_dir=log_dir)
    fake.application_event_url = f"http://127.0.0.1:{server.port}/event"
    try:
        yield server
    finally:
        load.server_stop(server)


# --- requests, prepared ------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """Requests for one run: path and query, and whether each carries Vonage's signature."""

    paths: list[str]
    signed: bool

    def write(self, path: Path) -> Path:
        """One line per request, ``PATH<TAB>AUTHORIZATION``; signed just now (5 minutes' validity)."""
        with path.open("w") as file:
            for request_path in self.paths:
                authorization = load.vonage_authorization(None) if self.signed else ""
                file.write(f"{request_path}\t{authorization}\n")
        return path


def inbound_paths(count: int, *, first: int, region_url: str) -> list[str]:
    """``count`` callers dialling the summer offer, each a new call (numbers from ``first``)."""
    return [
        "/answer_inbound?"
        + urlencode(
            {
                "to": load.CAMPAIGN_NUMBER,
                "from": f"4479{first + n:08d}",
                "uuid": str(uuid_lib.uuid4()),
                "conversation_uuid": f"CON-{uuid_lib.uuid4()}",
                "region_url": region_url,
            }
        )
        for n in range(count)
    ]


def outbound_paths(agent_calls: list[Any], *, region_url: str) -> list[str]:
    """For each agent call placed at the fake, its answer webhook as Vonage makes it: the
    ``answer_url`` the app gave, with the agent leg's fields added."""
    paths = []
    for call in agent_calls:
        answer_url = urlsplit(call.answer_url[0])
        query = {
            **dict(parse_qsl(answer_url.query)),
            "to": call.to["number"],
            "from": call.from_["number"],
            "uuid": call.uuid,
            "conversation_uuid": call.conversation_uuid,
            "region_url": region_url,
        }
        paths.append(f"{answer_url.path}?{urlencode(query)}")
    return paths


def agent_calls_of(fake: Any, port: int) -> list[Any]:
    """The calls the fake created whose answer URL is on ``port``'s app, oldest first."""
    prefix = f"http://127.0.0.1:{port}/"
    return [call for call in fake.created_calls() if call.answer_url and call.answer_url[0].startswith(prefix)]


def create_requests_of(fake: Any, port: int) -> int:
    prefix = f"http://127.0.0.1:{port}/"
    return sum(
        1
        for request in fake.create_requests()
        if isinstance(request.json, dict) and str((request.json.get("answer_url") or [""])[0]).startswith(prefix)
    )


# --- one wrk run -------------------------------------------------------------------------------


@dataclass
class Result:
    app: str  # "seed", "ours" or "bare"
    route: str
    connections: int
    prepared: int
    sent: int
    answered: int
    ok: int  # answered 2xx
    seconds: float  # first request sent to last answer read
    p50_ms: float
    p99_ms: float
    socket_errors: int  # connect, read, write errors and timeouts
    server_cpu_ms: float
    database_cpu_ms: float  # PostgreSQL's backends for our database; 0 for the seed
    fake_cpu_ms: float  # the fake Vonage API, shared by both apps (this process's threads)
    wrk_cpu_ms: float  # the load generator
    ran_out: bool  # every prepared request was sent before the run's time was up
    warmup: bool = False  # not measured: its calls are verified, its figures in no report

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else float("nan")

    def per_request(self, cpu_ms: float) -> float:
        return cpu_ms / self.answered if self.answered else float("nan")


def wrk_run(
    *,
    app: str,
    route: str,
    port: int,
    connections: int,
    seconds: int,
    prepared: Prepared,
    server_pids: list[int],
    database: str | None,
    work: Path,
) -> Result:
    """``wrk -t1`` replaying ``prepared`` at ``connections`` for up to ``seconds``; CPU from /proc."""
    requests_file = prepared.write(work / f"requests-{app}-{route}-{connections}.txt")
    server_before = load.cpu_ms(server_pids)
    # The fake API runs in this process's threads: this process's CPU over the run, less
    # the main thread's (waiting on wrk) and the PostgreSQL sampler's, is the fake's.
    process_before, main_before, wrk_before = time.process_time(), time.thread_time(), _children_cpu()
    with load.DatabaseCpu(database) if database else nullcontext() as database_cpu:
        completed = _wrk(connections=connections, seconds=seconds, port=port, requests_file=requests_file)
    server_after = load.cpu_ms(server_pids)
    harness = time.thread_time() - main_before + (database_cpu.own_cpu_ms / 1000 if database_cpu else 0.0)
    fake_cpu_ms = (time.process_time() - process_before - harness) * 1000
    wrk_cpu_ms = (_children_cpu() - wrk_before) * 1000
    requests_file.unlink()
    line = next((line for line in completed.stdout.splitlines() if line.startswith("wrk-result ")), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    figures = json.loads(line.removeprefix("wrk-result "))
    return Result(
        app=app,
        route=route,
        connections=connections,
        prepared=figures["prepared"],
        sent=figures["sent"],
        answered=figures["answered"],
        ok=figures["ok"],
        seconds=figures["elapsed_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        socket_errors=sum(figures[key] for key in ("connect_errors", "read_errors", "write_errors", "timeouts")),
        server_cpu_ms=load.cpu_spent(server_before, server_after),
        database_cpu_ms=database_cpu.spent_ms if database_cpu is not None else 0.0,
        fake_cpu_ms=fake_cpu_ms,
        wrk_cpu_ms=wrk_cpu_ms,
        ran_out=figures["sent"] >= figures["prepared"],
    )


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended (wrk, once it is waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wrk(*, connections: int, seconds: int, port: int, requests_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [  # noqa: S607
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(REPLAY_SCRIPT),
            f"http://127.0.0.1:{port}",
            "--",
            str(requests_file),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )


# --- both apps ---------------------------------------------------------------------------------


@dataclass
class Verification:
    lines: list[str]
    passed: bool


def _benchmark(args: argparse.Namespace, work: Path, seed_dir: Path) -> int:
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()  # noqa: S607
    print(
        f"side by side on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}: wrk -t1 at {' and '.join(f'c={c}' for c in CONNECTIONS)} for up to "
        f"{args.seconds} s per run, fresh calls; fake API latency {args.latency_ms} ms; seed {seed_dir} "
        f"at {SEED_COMMIT} (node {node})",
        flush=True,
    )
    results: list[Result] = []
    with calls_benchmark._app_running(args, work) as app:
        key_path = work / "private.key"  # where _app_running had load.key_file_write put the fake's key
        if not key_path.exists():
            raise RuntimeError(f"{key_path} is missing: benchmarks/calls.py now keeps the key elsewhere")
        server = app.servers[0]
        print(f"ours: {args.server} on {server.port} (--workers {args.workers} --threads {args.threads})", flush=True)
        ours = _app_runs(args, work, app="ours", server=server, fake=app.fake, database=args.database, signed=True)
        results += ours
        checks = [_verify_ours(app.url, app.fake, server.port, ours)]
        app.stop()
        with _seed_running(seed_dir=seed_dir, fake=app.fake, key_path=key_path, log_dir=work) as seed:
            print(f"seed: node on {seed.port}", flush=True)
            seed_results = _app_runs(args, work, app="seed", server=seed, fake=app.fake, database=None, signed=False)
            results += seed_results
            checks.append(_verify_seed(app.fake, seed.port, seed_results))
        if not args.no_bare:
            with _bare_running(args, work) as bare:
                print(f"bare: {args.server} on {bare.port} (benchmarks.ceiling_wsgi, as ours)", flush=True)
                results += _bare_runs(args, work, server=bare, region_url=app.fake.url)
    print()
    _report(results)
    print()
    _report_ratios(results)
    print()
    for check in checks:
        for line in check.lines:
            print(line)
    passed = all(check.passed for check in checks)
    print("verification: " + ("OK" if passed else "FAILED"))
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (this machine's other work shows in every figure)")
    return 0 if passed else 1


def _app_runs(
    args: argparse.Namespace,
    work: Path,
    *,
    app: str,
    server: load.Server,
    fake: Any,
    database: str | None,
    signed: bool,
) -> list[Result]:
    """Warm-up, then answer_inbound and answer_outbound at each concurrency. The warm-ups'
    results are returned too (at WARMUP_CONNECTIONS, in no figure): their calls are verified."""
    pids = server.pids

    def run(route: str, connections: int, seconds: int, paths: list[str]) -> Result:
        return wrk_run(
            app=app,
            route=route,
            port=server.port,
            connections=connections,
            seconds=seconds,
            prepared=Prepared(paths=paths, signed=signed),
            server_pids=pids,
            database=database,
            work=work,
        )

    callers = 0

    def new_callers(seconds: int) -> list[str]:
        nonlocal callers
        count = args.max_rate * seconds
        paths = inbound_paths(count, first=callers, region_url=fake.url)
        callers += count
        return paths

    def warm_up(route: str, connections: int, seconds: int, paths: list[str]) -> Result:
        return dataclasses.replace(run(route, connections, seconds, paths), warmup=True)

    warmups = [warm_up(INBOUND, WARMUP_CONNECTIONS, args.warmup_seconds, new_callers(args.warmup_seconds))]
    measured = []
    for connections in CONNECTIONS:
        measured.append(run(INBOUND, connections, args.seconds, new_callers(args.seconds)))
        print(_row(measured[-1]), flush=True)
    if args.fill_seconds:
        warmups.append(warm_up(INBOUND, CONNECTIONS[0], args.fill_seconds, new_callers(args.fill_seconds)))
    placed = _agent_calls_settled(fake, server.port, expected=sum(r.ok for r in warmups + measured))
    pool = outbound_paths(placed, region_url=fake.url)
    warmup_share = min(len(pool) // 10, 500)
    warmups.append(warm_up(OUTBOUND, WARMUP_CONNECTIONS, args.warmup_seconds, pool[:warmup_share]))
    pool = pool[warmup_share:]
    half = len(pool) // 2
    for connections, paths in zip(CONNECTIONS, (pool[:half], pool[half:]), strict=True):
        measured.append(run(OUTBOUND, connections, args.seconds, paths))
        print(_row(measured[-1]), flush=True)
    return warmups + measured


@contextmanager
def _bare_running(args: argparse.Namespace, work: Path) -> Iterator[load.Server]:
    port = load.free_port()
    env = load.django_env(database=load.database_url(args.database), public_url=f"http://127.0.0.1:{port}")
    env.pop("DJANGO_SETTINGS_MODULE")  # ceiling_wsgi configures its own settings
    server = calls_benchmark.server_start(args, port=port, env=env, work=work, app=calls_benchmark.CEILING_APP)
    try:
        yield server
    finally:
        load.server_stop(server)


def _bare_runs(args: argparse.Namespace, work: Path, *, server: load.Server, region_url: str) -> list[Result]:
    """The bare views, as the apps are run: a warm-up, then each route at each concurrency,
    with requests shaped as Vonage's (the views read none of them)."""
    results = []
    runs = [(WARMUP_CONNECTIONS, args.warmup_seconds, True)] + [(c, args.seconds, False) for c in CONNECTIONS]
    for route in (INBOUND, OUTBOUND):
        for connections, seconds, warmup in runs:
            paths = [
                path.replace(f"/{INBOUND}?", f"/{route}?", 1)
                for path in inbound_paths(args.max_rate * seconds, first=0, region_url=region_url)
            ]
            result = wrk_run(
                app="bare",
                route=route,
                port=server.port,
                connections=connections,
                seconds=seconds,
                prepared=Prepared(paths=paths, signed=False),
                server_pids=server.pids,
                database=None,
                work=work,
            )
            results.append(dataclasses.replace(result, warmup=warmup))
            if not warmup:
                print(_row(result), flush=True)
    return results


def _agent_calls_settled(fake: Any, port: int, *, expected: int, timeout: float = 60.0) -> list[Any]:
    """The agent calls the app placed, once at least ``expected`` are there and no more
    have come for a second (ours places them after answering)."""
    deadline = time.monotonic() + timeout
    placed = agent_calls_of(fake, port)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = agent_calls_of(fake, port)
        if len(now) >= expected and len(now) == len(placed):
            return now
        placed = now
    return placed


def _verify_ours(url: str, fake: Any, port: int, results: list[Result]) -> Verification:
    import psycopg

    inbound = [r for r in results if r.route == INBOUND]
    outbound = [r for r in results if r.route == OUTBOUND]
    answered, sent = sum(r.ok for r in inbound), sum(r.sent for r in inbound)
    agent_answered, agent_sent = sum(r.ok for r in outbound), sum(r.sent for r in outbound)
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=5) as connection:
        calls = load._count_rows(connection, "calls_call")
        # The agent leg is recorded when the call is placed; its answer stores the whisper spoken.
        row = connection.execute("SELECT count(*) FROM calls_call WHERE whisper_text <> ''").fetchone()
        whispered = int(row[0]) if row else 0
    placed, creates = len(agent_calls_of(fake, port)), create_requests_of(fake, port)
    recorded = answered <= calls <= sent
    all_placed = placed == calls == creates
    legs = agent_answered <= whispered <= agent_sent
    return Verification(
        lines=[
            f"ours: {calls} calls in PostgreSQL for {answered} answer_inbound answered 2xx ({sent} sent, warm-up "
            f"included): every answered call recorded: {'yes' if recorded else 'NO'}",
            f"ours: agent calls placed at the fake: {placed} from {creates} create requests for {calls} calls: "
            f"each placed once: {'yes' if all_placed else 'NO'}",
            f"ours: calls with the agent's whisper in PostgreSQL: {whispered} for {agent_answered} answer_outbound "
            f"answered 2xx ({agent_sent} sent): every answered agent recorded: {'yes' if legs else 'NO'}",
        ],
        passed=recorded and all_placed and legs,
    )


def _verify_seed(fake: Any, port: int, results: list[Result]) -> Verification:
    inbound = [r for r in results if r.route == INBOUND]
    answered, sent = sum(r.ok for r in inbound), sum(r.sent for r in inbound)
    placed = len(agent_calls_of(fake, port))
    # The seed answers only once its create-call succeeded, and stores nothing.
    ok = answered <= placed <= sent
    return Verification(
        lines=[
            f"seed: agent calls placed at the fake: {placed} for {answered} answer_inbound answered 2xx "
            f"({sent} sent, warm-up included): every answered call placed: {'yes' if ok else 'NO'} "
            "(the seed stores nothing)"
        ],
        passed=ok,
    )


# --- the report ------------------------------------------------------------------------------


HEADER = (
    f"{'route':<16}{'c':>3}  {'app':<5}{'2xx':>8}{'other':>7}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
    f"{'server CPU':>12}{'PostgreSQL':>12}{'fake API':>10}{'wrk':>6}  note"
)


def _row(result: Result) -> str:
    other = result.answered - result.ok + result.socket_errors
    database = f"{result.per_request(result.database_cpu_ms):>12.2f}" if result.app == "ours" else f"{'-':>12}"
    note = (
        f"ran out: all {result.prepared} requests in {result.seconds:.1f} s"
        if result.ran_out
        else f"{result.seconds:.1f} s"
    )
    return (
        f"{result.route:<16}{result.connections:>3}  {result.app:<5}{result.ok:>8}{other:>7}{result.rate:>9.1f}"
        f"{result.p50_ms:>8.2f}{result.p99_ms:>8.2f}{result.per_request(result.server_cpu_ms):>12.2f}{database}"
        f"{result.per_request(result.fake_cpu_ms):>10.2f}{result.per_request(result.wrk_cpu_ms):>6.2f}  {note}"
    )


def _measured(results: list[Result], app: str, route: str, connections: int) -> Result:
    return next(r for r in results if (r.app, r.route, r.connections, r.warmup) == (app, route, connections, False))


def _report(results: list[Result]) -> None:
    print(
        "CPU columns: ms per answered request (utime+stime from /proc, after minus before the run); "
        "'fake API' is the TLS fake both apps place their calls at, 'wrk' the load generator: with the "
        "server's and PostgreSQL's, what one request costs the two cores"
    )
    print(HEADER)
    for route in (INBOUND, OUTBOUND):
        for connections in CONNECTIONS:
            for app in APPS:
                if any(r.app == app for r in results):
                    print(_row(_measured(results, app, route, connections)))


def _report_ratios(results: list[Result]) -> None:
    print("ours / seed")
    for route in (INBOUND, OUTBOUND):
        for connections in CONNECTIONS:
            ours, seed = (_measured(results, app, route, connections) for app in ("ours", "seed"))
            ratio = ours.rate / seed.rate if seed.rate else math.nan
            target = TARGETS[route]
            seed_cpu = seed.per_request(seed.server_cpu_ms)
            print(
                f"{route} c={connections}: req/s x{ratio:.2f} (issue 12 wants ≥ {target:g}: "
                f"{'met' if ratio >= target else 'NOT met'}); p50 x{ours.p50_ms / seed.p50_ms:.2f}, "
                f"p99 x{ours.p99_ms / seed.p99_ms:.2f}; server CPU per request "
                f"x{ours.per_request(ours.server_cpu_ms) / seed_cpu:.2f}, with PostgreSQL's "
                f"x{ours.per_request(ours.server_cpu_ms + ours.database_cpu_ms) / seed_cpu:.2f}"
            )

    if not any(r.app == "bare" for r in results):
        return
    print("bare / seed (Django views doing nothing: the most a Django app served so reaches here)")
    for route in (INBOUND, OUTBOUND):
        for connections in CONNECTIONS:
            bare, seed = (_measured(results, app, route, connections) for app in ("bare", "seed"))
            ratio = bare.rate / seed.rate if seed.rate else math.nan
            target = TARGETS[route]
            cpu = bare.per_request(bare.server_cpu_ms) / seed.per_request(seed.server_cpu_ms)
            print(
                f"{route} c={connections}: bare req/s x{ratio:.2f} of the seed's (issue 12 wants ours ≥ {target:g}: "
                f"{'within' if ratio >= target else 'beyond'} what bare Django reaches here); "
                f"server CPU per request x{cpu:.2f}"
            )


if __name__ == "__main__":
    sys.exit(main())
