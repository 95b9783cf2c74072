"""gunicorn on its own PostgreSQL database, reached through a :class:`PostgresProxy`, for
the fault-injection tests (``test_database_outage.py``, ``test_worker_killed.py``).

Built from the pieces ``benchmarks/load.py`` gives the load benchmark and the
two-instance test: a database created, migrated and filled with the demo campaigns, the
TLS fake of Vonage's REST API with the application's key, gunicorn started as in
production. The only difference is ``DATABASE_URL``: it points at the proxy, so a test
can take the database away, or freeze one connection, under a running server. The
test's own checks read PostgreSQL directly (:meth:`LiveServer.rows`).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmarks import load
from tests.e2e.tcp_proxy import PostgresProxy

# What Vonage allows an answer webhook (VONAGE.md): a reply within 5 s.
ANSWER_BUDGET_SECONDS = 5.0


def postgres_or_skip() -> None:
    problem = load.postgres_reachable()
    if problem:
        pytest.skip(f"needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth): {problem}")


@dataclass
class LiveServer:
    database: str  # the database's name
    url: str  # DATABASE_URL straight to PostgreSQL, for the test's own checks
    proxy: PostgresProxy
    fake: Any  # load.IndexedFakeVonageAPI
    server: load.Server
    env: dict[str, str]  # gunicorn's environment (DATABASE_URL through the proxy)
    work: Path

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def workers(self) -> list[int]:
        return self.server.pids[1:]

    def log(self) -> str:
        return self.server.log_path.read_text(errors="replace")

    def log_lines(self, *needles: str) -> list[str]:
        """The server's log lines that contain every one of ``needles``."""
        return [line for line in self.log().splitlines() if all(needle in line for needle in needles)]

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url.replace("postgres://", "postgresql://", 1), connect_timeout=5) as connection:
            return [tuple(row) for row in connection.execute(sql, params).fetchall()]

    def manage(self, *args: str) -> subprocess.Popen[bytes]:
        """``manage.py *args`` in the background, with gunicorn's environment; its output
        goes to ``<work>/manage-<command>.log``. Stop it with :func:`process_stop`."""
        output = (self.work / f"manage-{args[0]}.log").open("ab")
        try:
            return subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
                [str(load.PYTHON), str(load.ROOT / "manage.py"), *args],
                cwd=load.ROOT,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            output.close()


def process_stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM ``process``'s session (it was started with a session of its own), then SIGKILL."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextmanager
def live_server(label: str, *, workers: int, threads: int, **extra_env: str) -> Iterator[LiveServer]:
    """Database ``callwhisper_<label>_<pid>``, the fake, the proxy and gunicorn; all
    stopped, closed and dropped on the way out, whatever happened."""
    name = f"callwhisper_{label}_{os.getpid()}"
    server: load.Server | None = None
    proxy: PostgresProxy | None = None
    fake = None
    with tempfile.TemporaryDirectory(prefix=f"callwhisper-{label}-") as directory:
        work = Path(directory)
        try:
            url = load.database_create(name)
            key_path, public_key = load.key_file_write(work)
            fake = load.fake_start(public_key=public_key, latency_ms=0)
            proxy = PostgresProxy().start()
            port = load.free_port()
            env = load.django_env(
                database=proxy.database_url(name),
                public_url=f"http://127.0.0.1:{port}",
                VONAGE_APPLICATION_ID=load.APPLICATION_ID,
                VONAGE_PRIVATE_KEY=str(key_path),
                VONAGE_API_HOST=fake.host,
                REQUESTS_CA_BUNDLE=fake.ca_bundle_path,
                **extra_env,
            )
            server = load.server_start(port=port, env=env, log_dir=work, workers=workers, threads=threads)
            yield LiveServer(database=name, url=url, proxy=proxy, fake=fake, server=server, env=env, work=work)
        finally:
            if server is not None:
                load.server_stop(server)
            if proxy is not None:
                proxy.close()
            if fake is not None:
                fake.close()
            try:
                load.database_drop(name)
            except Exception:  # noqa: S110 - the database may never have been made
                pass


# --- HTTP, one connection per request ----------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # parsed JSON, or None
    seconds: float


def request(port: int, method: str, path: str, payload: Any = None, *, timeout: float = 10.0) -> Reply:
    """One request on a connection of its own, as Vonage makes them; raises on a
    transport error (a connection reset, a server gone mid-request)."""
    body = None if payload is None else json.dumps(payload).encode()
    headers = {"Connection": "close", "Authorization": load.vonage_authorization(body)}
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.perf_counter()
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    seconds = time.perf_counter() - started
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = None
    return Reply(status=response.status, body=parsed, seconds=seconds)


# --- NCCOs ------------------------------------------------------------------------------


def conversation_name(ncco: Any) -> str | None:
    """The conversation the caller waits in, when the NCCO has one."""
    actions = ncco if isinstance(ncco, list) else []
    return next((a.get("name") for a in actions if isinstance(a, dict) and a.get("action") == "conversation"), None)


def connects_to(ncco: Any, number: str) -> bool:
    """The NCCO is a valid answer (a list of actions) whose last action connects the
    caller to the phone ``number``."""
    if not isinstance(ncco, list) or not ncco or not all(isinstance(a, dict) and a.get("action") for a in ncco):
        return False
    last = ncco[-1]
    return last.get("action") == "connect" and last.get("endpoint") == [{"type": "phone", "number": number}]
