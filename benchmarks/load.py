"""Complete calls against real gunicorn servers: the parts the load benchmark
(``benchmarks/calls.py``) and the two-instance test (``tests/e2e/test_two_instances.py``)
share.

- a PostgreSQL database created, migrated and filled with the demo campaigns
  (:func:`database_create`, :func:`database_drop`), through subprocesses so that the
  calling process's own Django settings (the test settings, in the suite) play no part;
- a PKCS#8 application key written to a file (:func:`key_file_write`);
- the TLS fake of Vonage's REST API, indexing the agent calls it creates by our call id
  and timing its connection threads' CPU (:class:`IndexedFakeVonageAPI`);
- gunicorn started as in production, not behind anything, or granian beside it for a
  comparison of the servers (:func:`server_start`; serve
  :data:`INSTRUMENTED_APP` to have each response report its database work), its CPU time
  and peak memory read from ``/proc`` (:func:`cpu_ms`, :func:`peak_rss_kb`);
- one complete call, webhook by webhook, as Vonage delivers them (:func:`call_drive`),
  with each request's latency and, from an instrumented server, its :class:`ServerReport`.

Only 127.0.0.1 is used.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid as uuid_lib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
GRANIAN = ROOT / ".venv" / "bin" / "granian"
# The WSGI servers a benchmark may start: gunicorn, as the README deploys it, and granian
# (a server written in Rust, measured beside it: benchmarks/calls.py --server).
SERVERS = ("gunicorn", "granian")
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
APPLICATION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
CAMPAIGN_NUMBER = "447700900001"  # the summer offer's first number (demo_campaigns.json)
CALL_CENTER_NUMBER = "447700900999"
WEBHOOKS = ("answer_inbound", "checkpoint", "answer_outbound", "event")
# benchmarks/instrumented_wsgi.py: the app with its database work counted per request.
INSTRUMENTED_APP = "benchmarks.instrumented_wsgi"
QUERIES_HEADER = "X-Benchmark-Queries"
HEALTH_CHECKS_HEADER = "X-Benchmark-Health-Checks"
TRANSACTIONS_HEADER = "X-Benchmark-Transactions"
APP_MS_HEADER = "X-Benchmark-App-Ms"
# From the X-Request-Start stamp (as a proxy puts it on a request arriving) to the response's
# start, on the server's clock: how long the answer took as the edge would see it, without
# the load generator's own delays in reading it.
STAMPED_MS_HEADER = "X-Benchmark-Stamped-Ms"


# --- PostgreSQL ---------------------------------------------------------------------------


def database_url(name: str) -> str:
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def postgres_reachable(timeout: int = 2) -> str:
    """An empty string when PostgreSQL at 127.0.0.1:5432 answers, else why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=timeout) as connection:
            connection.execute("SELECT 1")
    except Exception as exc:  # any failure means "not usable"
        return f"PostgreSQL at 127.0.0.1:5432 is unreachable ({type(exc).__name__}: {exc})".strip()
    return ""


def database_drop(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def database_create(name: str) -> str:
    """Drop and recreate database ``name``, migrate it, import the demo campaigns;
    return its ``DATABASE_URL``."""
    import psycopg
    from psycopg import sql

    database_drop(name)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = database_url(name)
    env = django_env(database=url, public_url="http://127.0.0.1:8000")
    for command in (
        ["migrate", "--noinput", "-v0"],
        ["import_campaigns", str(ROOT / "campaigns" / "demo_campaigns.json"), "-v0"],
    ):
        subprocess.run(  # noqa: S603 - our own interpreter and manage.py
            [str(PYTHON), str(ROOT / "manage.py"), *command],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=120,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    return url


# --- the application's key ------------------------------------------------------------------


def key_file_write(directory: Path) -> tuple[Path, bytes]:
    """A fresh RSA key as PKCS#8 PEM in ``directory/private.key`` (the SDK reads a value
    ending in a file extension as a path); returns the path and the public key PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "private.key"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, public


# --- the fake of Vonage's REST API ----------------------------------------------------------


def _fake_class() -> type:
    from devtools.fake_vonage_api import FakeVonageAPI

    class IndexedFakeVonageAPI(FakeVonageAPI):
        """The fake, also indexing each created call by the ``?call=`` of its answer_url."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._by_call: dict[int, list[Any]] = {}
            self.created_at: dict[str, float] = {}  # agent call uuid → time.monotonic() when created
            self._index = threading.Condition()
            self._cpu_seconds = 0.0  # connection threads that ended
            self._cpu_threads: set[int] = set()  # native ids of those running
            self._cpu_lock = threading.Lock()

        def start(self) -> Any:
            """Start, timing the CPU of each connection's thread (TLS, parsing, JWT, JSON)."""
            super().start()
            server = self._server
            assert server is not None
            serve = server.process_request_thread

            def timed(request: Any, client_address: Any) -> None:
                thread = threading.get_native_id()
                with self._cpu_lock:
                    self._cpu_threads.add(thread)
                try:
                    serve(request, client_address)
                finally:
                    spent = time.thread_time()
                    with self._cpu_lock:
                        self._cpu_threads.discard(thread)
                        self._cpu_seconds += spent

            setattr(server, "process_request_thread", timed)  # noqa: B010 - looked up per connection
            return self

        @property
        def cpu_seconds(self) -> float:
            """CPU time of the fake's connection threads so far, ended and running (kept-alive
            connections hold theirs), in this process."""
            with self._cpu_lock:
                ended, running = self._cpu_seconds, list(self._cpu_threads)
            return ended + sum(thread_cpu_ms(thread) for thread in running) / 1000

        def _route_create(self, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
            status, payload = super()._route_create(path, query, body)
            if status == 201:
                answer_url = (body.get("answer_url") or [""])[0]
                call_id = dict(parse_qsl(urlsplit(answer_url).query)).get("call", "")
                if call_id.isdigit():
                    with self._index:
                        self.created_at[payload["uuid"]] = time.monotonic()
                        self._by_call.setdefault(int(call_id), []).append(self.call(payload["uuid"]))
                        self._index.notify_all()
            return status, payload

        def agent_calls(self, call_id: int, timeout: float = 0.0) -> list[Any]:
            """The agent calls placed for our call ``call_id`` (waiting up to ``timeout``)."""
            deadline = time.monotonic() + timeout
            with self._index:
                while not self._by_call.get(call_id):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._index.wait(remaining)
                return list(self._by_call.get(call_id, []))

    return IndexedFakeVonageAPI


def fake_start(*, public_key: bytes | None, latency_ms: int, calls_per_second: float | None = None) -> Any:
    """The TLS fake on a free 127.0.0.1 port, verifying the application's JWTs; with
    ``calls_per_second``, answering 429 to create-calls above the account's limit."""
    fake = _fake_class()(
        public_key=public_key, application_id=APPLICATION_ID, calls_per_second=calls_per_second
    ).start()
    fake.set_latency(latency_ms)
    return fake


# --- gunicorn ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SECRET_KEY = "load-benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105
SIGNATURE_SECRET = "load-benchmark-only-signature-secret-0123456789abcdef"  # noqa: S105


def vonage_authorization(body: bytes | None) -> str:
    """``Authorization`` as Vonage sends it: a fresh signed token for this request."""
    from calls.webhooks.signatures import sign_webhook

    return "Bearer " + sign_webhook(body=body or b"", secret=SIGNATURE_SECRET)


def callback_path(route: str, **params: object) -> str:
    """``/route?params&sig=…`` as a server started by django_env signs it: for a client
    playing a callback the server never handed out (an outage test, say)."""
    from calls.webhooks.callback_urls import callback_query

    return f"/{route}?{callback_query(f'calls:{route}', params, key=SECRET_KEY)}"


def django_env(*, database: str, public_url: str, **extra: str) -> dict[str, str]:
    """The production environment (DEBUG off), pointed at 127.0.0.1 only."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "VONAGE_", "DATABASE_")) and key not in ("REQUESTS_CA_BUNDLE",)
    }
    env.update(
        DJANGO_SETTINGS_MODULE="whisper_project.settings",
        ENV_FILE=os.devnull,  # not a developer's .env
        DEBUG="false",
        SECRET_KEY=SECRET_KEY,
        # Webhooks are signed as Vonage signs them (Webhooks, vonage_authorization): the
        # servers run as production does, refusing anything unsigned.
        VONAGE_SIGNATURE_SECRET=SIGNATURE_SECRET,
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=database,
        PUBLIC_URL=public_url,
        CALL_CENTER_NUMBER=CALL_CENTER_NUMBER,
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="WARNING",
        no_proxy="127.0.0.1,localhost",
        NO_PROXY="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        # Unpaced unless a run says otherwise (--burst, tests/e2e/test_burst.py): the throughput
        # figures model an account whose call limit Vonage raised, and the fake sets no limit.
        VONAGE_CALLS_PER_SECOND="0",
    )
    env.update(extra)
    return env


@dataclass
class Server:
    """One server's main process (gunicorn's master or granian's) and its workers on
    127.0.0.1:``port``."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pids(self) -> list[int]:
        return [self.process.pid, *_children(self.process.pid)]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def django_in_process(database_url: str, **extra: str) -> None:
    """Django set up in this process on ``database_url``, in the production environment
    (:func:`django_env`), for the benchmarks that call the app without a server."""
    os.environ.update(django_env(database=database_url, public_url="http://127.0.0.1:8000", **extra))
    import django

    django.setup()


def server_start(
    *,
    port: int,
    env: dict[str, str],
    log_dir: Path,
    workers: int = 2,
    threads: int = 8,
    app: str = "whisper_project.wsgi",
    ready_path: str = "/healthz",
    timeout: float = 30.0,
    server: str = "gunicorn",
    nice: int = 0,
) -> Server:
    """Start gunicorn as the README deploys it (or, with ``server="granian"``, granian with
    as many worker processes and threads), at ``nice`` (as a unit's ``Nice=``), and wait
    until ``ready_path`` answers 200."""
    log_path = log_dir / f"{server}-{port}.log"
    log = log_path.open("wb")
    command = server_command(server, app=app, port=port, workers=workers, threads=threads)
    process = subprocess.Popen(  # noqa: S603 - our own server
        ["nice", "-n", str(nice), *command] if nice else command,  # nice execs it: the same pid
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped as one
    )
    log.close()
    started = Server(port=port, process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{server} on port {port} exited ({process.returncode}):\n{started.log_tail()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", ready_path)
            status = connection.getresponse().status
            connection.close()
            if status == 200 and len(started.pids) > workers:  # every worker booted
                return started
        except OSError:
            pass
        if time.monotonic() > deadline:
            server_stop(started)
            raise RuntimeError(f"{server} on port {port} not ready within {timeout:g} s:\n{started.log_tail()}")
        time.sleep(0.1)


def server_command(server: str, *, app: str, port: int, workers: int, threads: int) -> list[str]:
    """The command line serving the WSGI module ``app`` on 127.0.0.1:``port`` with ``workers``
    processes of ``threads`` request threads each."""
    if server == "gunicorn":
        return [str(GUNICORN), app, "--workers", str(workers), "--threads", str(threads), "--bind", f"127.0.0.1:{port}"]
    if server == "granian":
        return [
            str(GRANIAN),
            "--interface",
            "wsgi",
            "--workers",
            str(workers),
            "--blocking-threads",
            str(threads),
            "--respawn-failed-workers",  # as gunicorn replaces a worker that died
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            f"{app}:application",
        ]
    raise ValueError(f"unknown server {server!r}: one of {', '.join(SERVERS)}")


def server_stop(server: Server, timeout: float = 10.0) -> None:
    """SIGTERM the process group (graceful), then SIGKILL; return once every process of
    it has exited (a worker still dying of the SIGKILL would otherwise outlive the call);
    idempotent."""
    process = server.process
    pids = server.pids if process.poll() is None else []
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # workers left behind, if any
    except (ProcessLookupError, PermissionError):
        pass
    if process.poll() is None:
        process.wait(timeout=5)
    deadline = time.monotonic() + 5
    while any(process_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (dead, waiting to be reaped) does not."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ms(pids: list[int]) -> dict[int, float]:
    """utime + stime of each process, in ms (from /proc/<pid>/stat)."""
    result = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        result[pid] = (int(fields[11]) + int(fields[12])) * 1000 / _TICKS
    return result


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU ms spent between two ``cpu_ms`` readings, by every process of the later one."""
    return sum(after[pid] - before.get(pid, 0.0) for pid in after)


class DatabaseCpu:
    """The CPU of PostgreSQL's backends for ``database`` over a run, from ``/proc``: the
    backends are listed before, every ``interval`` seconds during the run and after, and
    each one's last reading counts, so one that exits mid-run loses at most ``interval``
    of its CPU. The listing connects to the ``postgres`` database, not the one measured."""

    def __init__(self, database: str, interval: float = 0.5) -> None:
        self.database = database
        self.interval = interval
        self._before: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: Any = None
        # The sampling thread's own CPU (this process's, not PostgreSQL's): set once it stopped.
        self.own_cpu_ms = 0.0

    def __enter__(self) -> DatabaseCpu:
        import psycopg

        self._connection = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
        self._before = self._read()
        self._last = dict(self._before)
        self._thread = threading.Thread(target=self._sample, name="database-cpu", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._last.update(self._read())
        self._connection.close()

    @property
    def spent_ms(self) -> float:
        return cpu_spent(self._before, self._last)

    def _read(self) -> dict[int, float]:
        rows = self._connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
        ).fetchall()
        return cpu_ms([int(row[0]) for row in rows])

    def _sample(self) -> None:
        started = time.thread_time()
        while not self._stop.wait(self.interval):
            self._last.update(self._read())
        self.own_cpu_ms = (time.thread_time() - started) * 1000


def thread_cpu_ms(thread: int) -> float:
    """utime + stime of thread ``thread`` (a native id) of this process, in ms; 0 when gone."""
    try:
        fields = Path(f"/proc/self/task/{thread}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1000 / _TICKS


def peak_rss_kb(pid: int) -> int:
    """VmHWM of ``pid``, in kB (0 when gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    try:
        yield servers
    finally:
        for server in servers:
            server_stop(server)


# --- HTTP, keep-alive per thread ----------------------------------------------------------------


class Webhooks:
    """Plays Vonage's webhooks at servers on 127.0.0.1, one keep-alive connection per
    thread and port. gunicorn closes an idle keep-alive connection after 2 s: a request
    that finds its reused connection closed is sent again on a new one (counted in
    :attr:`reconnects`, not an error)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self.reconnects = 0

    def request(self, port: int, method: str, path: str, payload: Any = None) -> tuple[int, Any, float]:
        """(status, parsed JSON or None, seconds). Raises on a transport error."""
        response = self.exchange(port, method, path, payload)
        return response.status, response.body, response.seconds

    def exchange(self, port: int, method: str, path: str, payload: Any = None) -> Answer:
        """The answer, with the instrumented server's database counts. Raises on a transport error."""
        connections = self._local.__dict__.setdefault("connections", {})
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        headers["Authorization"] = vonage_authorization(body)
        # What deploy/nginx.conf stamps on a request as it arrives (nothing sits between
        # this client and gunicorn here): how long it then waited behind the app. Truncated
        # to the millisecond, as nginx's $msec is: rounded, a stamp could be up to half a
        # millisecond in the future, which the app reads as no stamp.
        headers["X-Request-Start"] = f"t={int(time.time() * 1000) / 1000:.3f}"
        for attempt in (0, 1):
            connection = connections.get(port)
            reused = connection is not None
            if connection is None:
                connection = connections[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout)
            started = time.perf_counter()
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                connections.pop(port, None)
                if reused and attempt == 0:
                    with self._lock:
                        self.reconnects += 1
                    continue
                raise
            except Exception:
                connection.close()
                connections.pop(port, None)
                raise
            elapsed = time.perf_counter() - started
            if response.will_close:
                connection.close()
                connections.pop(port, None)
            try:
                parsed = json.loads(data) if data else None
            except ValueError:
                parsed = None
            return Answer(response.status, parsed, elapsed, _server_report(response))
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class ServerReport:
    """What ``benchmarks/instrumented_wsgi.py`` reports of one request: its database work, its own time."""

    statements: int
    health_checks: int
    transactions: int
    app_seconds: float  # from the WSGI entry to the response's start, in the server
    # From the request's X-Request-Start stamp to the response's start (nan without one).
    stamped_seconds: float = float("nan")


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON, or None
    seconds: float
    server: ServerReport | None  # None: the server is not instrumented


def _server_report(response: http.client.HTTPResponse) -> ServerReport | None:
    statements = response.getheader(QUERIES_HEADER)
    if statements is None:
        return None
    return ServerReport(
        statements=int(statements),
        health_checks=int(response.getheader(HEALTH_CHECKS_HEADER) or 0),
        transactions=int(response.getheader(TRANSACTIONS_HEADER) or 0),
        app_seconds=float(response.getheader(APP_MS_HEADER) or "nan") / 1000,
        stamped_seconds=float(response.getheader(STAMPED_MS_HEADER) or "nan") / 1000,
    )


class CallIds:
    """Our call id for a caller leg's uuid, read from the database (one query a call).

    The calls in flight share at most ``connections`` connections: one per driver thread
    would take PostgreSQL's ``max_connections`` (100) from the servers under test."""

    def __init__(self, url: str, connections: int = 4) -> None:
        self.url = url.replace("postgres://", "postgresql://", 1)
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(connections)

    def for_caller(self, uuid: str) -> int | None:
        import psycopg

        with self._slots:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                connection = None
            if connection is None or connection.closed:
                connection = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            try:
                row = connection.execute("SELECT call_id FROM calls_callleg WHERE uuid = %s", (uuid,)).fetchone()
            except Exception:
                connection.close()
                raise
            self._idle.put(connection)
        return int(row[0]) if row else None

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


# --- one complete call -------------------------------------------------------------------------


def vonage_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class CallResult:
    caller_uuid: str
    call_id: int | None = None
    agent_uuid: str = ""
    # (webhook, seconds) for every request answered, whatever its status
    latencies: list[tuple[str, float]] = field(default_factory=list)
    # (webhook, counts) for every request an instrumented server answered
    server: list[tuple[str, ServerReport]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # (leg uuid, status) delivered at least once, and how many deliveries in all
    delivered: set[tuple[str, str]] = field(default_factory=set)
    deliveries: int = 0
    duplicates: int = 0
    completed: bool = False
    answered: float = 0.0  # time.monotonic() when the caller's answer came back
    agent_rung: float = 0.0  # time.monotonic() when the fake created the agent call
    # The answer was shed (calls/webhooks/overload.py): the caller was connected to the call
    # centre directly and the call is recorded afterwards, from the spool.
    shed: bool = False


def _shed_call_drive(caller: dict[str, str], event: Callable[[dict[str, Any]], None], rng: random.Random) -> None:
    """A shed answer connected the caller to the call centre directly: Vonage's events
    for the caller's leg and for the connect leg it made, in the caller's conversation."""
    direct = {
        "from": CAMPAIGN_NUMBER,
        "to": CALL_CENTER_NUMBER,
        "uuid": str(uuid_lib.uuid4()),
        "conversation_uuid": caller["conversation_uuid"],
        "direction": "outbound",
    }
    t0 = datetime.now(UTC)
    first, second = ("started", "ringing") if rng.random() < 0.5 else ("ringing", "started")
    for status in (first, second):
        event(_leg_event(caller, status, t0))
    event(_leg_event(caller, "answered", t0, start_time=None, rate=None, network=None))
    t1 = t0 + timedelta(seconds=1)
    for status in ("started", "ringing"):
        event(_leg_event(direct, status, t1))
    t2 = t1 + timedelta(seconds=6)
    event(_leg_event(direct, "answered", t2, start_time=None, rate=None, network=None))
    t3 = t2 + timedelta(seconds=60)
    event(_completed(direct, t2, t3, price="0.02700000"))
    event(_completed(caller, t0, t3 + timedelta(seconds=1), price="0.00448500"))


def _leg_event(leg: dict[str, str], status: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "from": leg["from"],
        "to": leg["to"],
        "uuid": leg["uuid"],
        "conversation_uuid": leg["conversation_uuid"],
        "status": status,
        "direction": leg["direction"],
        "timestamp": vonage_time(at),
        **extra,
    }


def _completed(leg: dict[str, str], start: datetime, end: datetime, price: str) -> dict[str, Any]:
    return _leg_event(
        leg,
        "completed",
        end,
        start_time=vonage_time(start),
        end_time=vonage_time(end),
        duration=str(round((end - start).total_seconds())),
        rate="0.00390000",
        price=price,
        network="23410",
    )


# The requests a caller waits on, which deploy/nginx.conf sends to processes of their own:
# the two answers, and the checkpoint (the notify after the greeting: Vonage waits for its
# answer before the caller's hold begins), told from the other events by its query string.
ANSWERS_APART = frozenset({"answer_inbound", "answer_outbound", "checkpoint"})


def call_drive(
    *,
    webhooks: Webhooks,
    ports: list[int],
    fake: Any,
    call_ids: CallIds,
    caller_number: str,
    rng: random.Random,
    duplicate_share: float = 0.05,
    first_port: int = 0,
    talk_seconds: float = 0.0,
    agent_timeout: float = 5.0,
    checkpoint_first: bool = False,
    answer_ports: list[int] | None = None,
) -> CallResult:
    """One complete call: the caller's answer webhook, the agent call the app placed at
    the fake, the agent's answer webhook, then every event of both legs (``started`` and
    ``ringing`` sometimes swapped, ``duplicate_share`` of them delivered twice). Each
    request goes to the next of ``ports`` in turn, starting at ``ports[first_port]``,
    except the answers and the checkpoint (:data:`ANSWERS_APART`) when ``answer_ports``
    names a server of their own (the bulkhead deploy/nginx.conf configures);
    ``talk_seconds`` of real time pass between the agent's answer and the hang-ups.
    ``agent_timeout``: how long to wait for the agent call at the fake (a burst queued
    under the account's limit waits its turn); ``checkpoint_first`` posts the caller's
    checkpoint before that wait, as Vonage does once the greeting is over."""
    caller = {
        "from": caller_number,
        "to": CAMPAIGN_NUMBER,
        "uuid": str(uuid_lib.uuid4()),
        "conversation_uuid": f"CON-{uuid_lib.uuid4()}",
        "direction": "inbound",
    }
    result = CallResult(caller_uuid=caller["uuid"])
    turn = [first_port]

    def send(webhook: str, method: str, path: str, payload: Any = None) -> Any:
        if answer_ports and webhook in ANSWERS_APART:
            port = answer_ports[turn[0] % len(answer_ports)]
        else:
            port = ports[turn[0] % len(ports)]
            turn[0] += 1
        try:
            answer = webhooks.exchange(port, method, path, payload)
        except Exception as exc:  # counted, reported
            result.errors.append(f"{webhook}: {type(exc).__name__}: {exc}")
            return None
        result.latencies.append((webhook, answer.seconds))
        if answer.server is not None:
            result.server.append((webhook, answer.server))
        if not 200 <= answer.status < 300:
            result.errors.append(f"{webhook}: HTTP {answer.status}")
            return None
        return answer.body

    def event(payload: dict[str, Any]) -> None:
        result.delivered.add((payload["uuid"], payload["status"]))
        copies = 2 if rng.random() < duplicate_share else 1
        result.duplicates += copies - 1
        for _ in range(copies):
            result.deliveries += 1
            send("event", "POST", "/event", payload)

    region_url = fake.url
    query = urlencode({**{k: caller[k] for k in ("to", "from", "uuid", "conversation_uuid")}, "region_url": region_url})
    caller_ncco = send("answer_inbound", "GET", f"/answer_inbound?{query}")
    result.answered = time.monotonic()
    if caller_ncco is None:
        return result
    room = next((a.get("name") for a in caller_ncco if isinstance(a, dict) and a.get("action") == "conversation"), None)
    if room is None and caller_ncco and caller_ncco[-1].get("action") == "connect":
        _shed_call_drive(caller, event, rng)
        result.shed = result.completed = not result.errors
        return result
    if room is None:
        result.errors.append(f"answer_inbound: no conversation in the caller's NCCO: {caller_ncco}")
        return result
    notify = next((a for a in caller_ncco if isinstance(a, dict) and a.get("action") == "notify"), None)

    t0 = datetime.now(UTC)
    first, second = ("started", "ringing") if rng.random() < 0.5 else ("ringing", "started")
    for status in (first, second):
        event(_leg_event(caller, status, t0))
    event(_leg_event(caller, "answered", t0, start_time=None, rate=None, network=None))

    result.call_id = call_ids.for_caller(caller["uuid"])
    if result.call_id is None:
        result.errors.append("answer_inbound: no call recorded for the caller's uuid")
        return result

    def checkpoint() -> None:
        if notify is None:
            return
        # The greeting is over: Vonage posts the caller's checkpoint; 204 lets the caller
        # go on to the hold (the agent is being rung, or the caller is queued), an NCCO
        # would replace it.
        url = urlsplit(notify["eventUrl"][0])
        result.delivered.add((f"checkpoint of call {result.call_id}", "notify"))  # stored once, as events are
        # Vonage wraps the NCCO's payload: {conversation_uuid, payload, timestamp}.
        body = {
            "conversation_uuid": caller["conversation_uuid"],
            "payload": notify.get("payload") or {},
            "timestamp": vonage_time(datetime.now(UTC)),
        }
        answer = send("checkpoint", "POST", f"{url.path}?{url.query}", body)
        if answer is not None:
            result.errors.append(f"checkpoint: the caller was moved off the hold: {answer}")

    if checkpoint_first:
        checkpoint()
    placed = fake.agent_calls(result.call_id, timeout=agent_timeout)
    if len(placed) != 1:
        result.errors.append(f"agent calls placed for call {result.call_id}: {len(placed)}, not 1")
        if not placed:
            return result
    agent_call = placed[0]
    result.agent_uuid = agent_call.uuid
    result.agent_rung = getattr(fake, "created_at", {}).get(agent_call.uuid, 0.0)
    if not checkpoint_first:
        checkpoint()
    agent = {
        "from": CAMPAIGN_NUMBER,
        "to": CALL_CENTER_NUMBER,
        "uuid": agent_call.uuid,
        "conversation_uuid": agent_call.conversation_uuid,
        "direction": "outbound",
    }
    t1 = t0 + timedelta(seconds=1)
    first, second = ("started", "ringing") if rng.random() < 0.5 else ("ringing", "started")
    for status in (first, second):
        event(_leg_event(agent, status, t1))

    answer_url = urlsplit(agent_call.answer_url[0])
    agent_query = urlencode(
        {
            **dict(parse_qsl(answer_url.query)),
            **{k: agent[k] for k in ("to", "from", "uuid", "conversation_uuid")},
            "region_url": region_url,
        }
    )
    agent_ncco = send("answer_outbound", "GET", f"{answer_url.path}?{agent_query}")
    if agent_ncco is None:
        return result
    agent_room = next(
        (a.get("name") for a in agent_ncco if isinstance(a, dict) and a.get("action") == "conversation"), None
    )
    if agent_room != room:
        result.errors.append(
            f"answer_outbound: agent joins {agent_room!r}, the caller waits in {room!r}; "
            f"its answer: {json.dumps(agent_ncco)[:300]}"
        )

    t2 = t1 + timedelta(seconds=6)
    event(_leg_event(agent, "answered", t2, start_time=None, rate=None, network=None))
    if talk_seconds:
        time.sleep(talk_seconds)  # the two talk: the call stays in progress, overlapping others
    t3 = t2 + timedelta(seconds=60)
    event(_completed(agent, t2, t3, price="0.02700000"))
    event(_completed(caller, t0, t3 + timedelta(seconds=1), price="0.00448500"))
    result.completed = not result.errors
    return result


# --- what the database says at the end ------------------------------------------------------------


@dataclass
class Verdict:
    calls: int
    answered_and_ended: int
    wrong: list[tuple[int, str, str]]  # (id, outcome, state) of calls not answered + ended
    legs: int
    events_stored: int
    events_expected: int
    agent_calls_created: int
    create_requests: int
    shed: int = 0  # answers shed under overload: no agent call, recorded late from the spool
    recorded_late: int = 0

    @property
    def problems(self) -> list[str]:
        problems = []
        rung = self.calls - self.shed
        if self.agent_calls_created != rung or self.create_requests != rung:
            problems.append(
                f"agent calls at the fake: {self.agent_calls_created} created from {self.create_requests} "
                f"requests for {rung} calls not shed"
            )
        if self.recorded_late != self.shed:
            problems.append(f"{self.shed} answers shed, {self.recorded_late} calls recorded late from the spool")
        if self.wrong:
            problems.append(f"{len(self.wrong)} calls not answered+ended, e.g. {self.wrong[:3]}")
        if self.legs != 2 * self.calls:
            problems.append(f"{self.legs} legs for {self.calls} calls")
        if self.events_stored != self.events_expected:
            problems.append(f"{self.events_stored} events stored, {self.events_expected} distinct delivered")
        return problems


def verdict(url: str, *, fake: Any, results: list[CallResult]) -> Verdict:
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=5) as connection:
        calls = _count_rows(connection, "calls_call")
        wrong = connection.execute(
            "SELECT id, outcome, state FROM calls_call WHERE NOT (outcome = 'answered' AND state = 'ended') ORDER BY id"
        ).fetchall()
        legs = _count_rows(connection, "calls_callleg")
        events = _count_rows(connection, "calls_callevent")
        late_row = connection.execute("SELECT count(*) FROM calls_call WHERE recorded_late").fetchone()
    return Verdict(
        calls=calls,
        answered_and_ended=calls - len(wrong),
        wrong=[tuple(row) for row in wrong],
        legs=legs,
        events_stored=events,
        events_expected=sum(len(result.delivered) for result in results),
        agent_calls_created=len(fake.created_calls()),
        create_requests=len(fake.create_requests()),
        shed=sum(result.shed for result in results),
        recorded_late=int(late_row[0]) if late_row else 0,
    )


def _count_rows(connection: Any, table: str) -> int:
    row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 - our own table names
    return int(row[0]) if row else 0


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0–1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


if __name__ == "__main__":  # pragma: no cover
    sys.exit("Import this module; run benchmarks/calls.py.")
