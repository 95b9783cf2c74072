"""``whisper_project.wsgi`` with its database work counted per request, for ``benchmarks/calls.py``.

The load benchmark serves this module (``gunicorn benchmarks.instrumented_wsgi``) instead of
``whisper_project.wsgi`` unless given ``--no-query-count``, so **the counting is on** in the
CPU, latency and memory figures it prints. It costs a thread-local lookup and an integer
increment per SQL statement, and four response headers per request.

Every ``DatabaseWrapper`` the worker opens (every alias, every thread: Django's connections
are per thread, gunicorn runs ``--threads``) gets, once, when ``connection_created`` fires:

- an execute wrapper (``connection.execute_wrappers``, what ``connection.execute_wrapper()``
  installs): every ``execute``/``executemany`` through Django's cursor, savepoints
  (``SAVEPOINT``/``RELEASE SAVEPOINT``) included;
- a count of the health checks (``CONN_HEALTH_CHECKS``: ``SELECT 1`` before the first query
  of a request on a persistent connection). Django runs them on psycopg's raw cursor,
  bypassing the execute wrappers, so they are counted apart;
- a count of transactions ended (``commit``/``rollback``). ``BEGIN`` and ``COMMIT`` are not
  cursor statements (psycopg sends ``BEGIN`` before a transaction's first statement,
  ``COMMIT`` on ``connection.commit()``): one transaction is two more round trips than
  the statements counted.

Not counted: the statements a new connection runs to configure itself (time zone, role),
on the raw connection too.

What a thread does while serving a request is reported on the response:
``X-Benchmark-Queries`` (statements), ``X-Benchmark-Health-Checks``,
``X-Benchmark-Transactions``; ``X-Benchmark-App-Ms``, the time from this module's
entry to the response's start (the app's own time: not gunicorn's queueing, not the
network, not the client's), so a client can tell its own delays from the server's; and
``X-Benchmark-Stamped-Ms``, the time from the request's ``X-Request-Start`` stamp (a
proxy's, or here the load generator's as it sends) to the response's start: the queue
and the app, as the edge in front of the servers would time the answer.

What threads do outside any request (work handed to a background thread), and what a
request thread does after its response was started (``request_finished``), are added up
per worker process and written, when the worker exits, to
``$BENCHMARK_QUERY_DIR/queries-<pid>.json`` (nothing when the variable is unset).
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from benchmarks.load import APP_MS_HEADER, HEALTH_CHECKS_HEADER, QUERIES_HEADER, STAMPED_MS_HEADER, TRANSACTIONS_HEADER
from calls.webhooks.overload import queued_seconds
from whisper_project.wsgi import application as _django_application

KINDS = ("statements", "health_checks", "transactions")
Counts = list[int]  # one per KINDS
StartResponse = Callable[..., Any]

# .counts: the Counts of the request this thread is serving (None between requests);
# .served: this thread serves requests (gunicorn's), so what it runs between them is the
# end of the last one (request_finished, once the response was sent), not background work.
_local = threading.local()
_outside: dict[str, Counts] = {"background": [0, 0, 0], "after_response": [0, 0, 0]}
_outside_lock = threading.Lock()


def _count(kind: int) -> None:
    counts = getattr(_local, "counts", None)
    if counts is not None:
        counts[kind] += 1  # only this thread touches its request's counts
        return
    with _outside_lock:
        _outside["after_response" if getattr(_local, "served", False) else "background"][kind] += 1


def _statement(execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]) -> Any:
    _count(0)
    return execute(sql, params, many, context)


def _counted(method: Callable[..., Any], kind: int) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _count(kind)
        return method(*args, **kwargs)

    return wrapper


def _instrument(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """Sent on every connect, reconnects included: instrument each wrapper object once."""
    if getattr(connection, "_benchmark_counted", False):
        return
    connection._benchmark_counted = True  # type: ignore[attr-defined]
    connection.execute_wrappers.append(_statement)
    # Instance attributes shadow the methods Django calls as self.is_usable() etc.
    for name, kind in (("is_usable", 1), ("_commit", 2), ("_rollback", 2)):
        setattr(connection, name, _counted(getattr(connection, name), kind))


def _outside_write() -> None:
    directory = os.environ.get("BENCHMARK_QUERY_DIR")
    if not directory:
        return
    with _outside_lock:
        totals = {where: dict(zip(KINDS, counts, strict=True)) for where, counts in _outside.items()}
    (Path(directory) / f"queries-{os.getpid()}.json").write_text(json.dumps(totals))


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    entered = time.perf_counter()
    waited = queued_seconds(environ)  # the stamp's age as the request reaches the app
    counts: Counts = [0, 0, 0]
    _local.counts = counts
    _local.served = True

    def counted_start_response(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        # Django calls this once the response exists: every query of the view has run.
        headers = [
            *headers,
            (QUERIES_HEADER, str(counts[0])),
            (HEALTH_CHECKS_HEADER, str(counts[1])),
            (TRANSACTIONS_HEADER, str(counts[2])),
            (APP_MS_HEADER, f"{(time.perf_counter() - entered) * 1000:.3f}"),
        ]
        if waited is not None:
            headers.append((STAMPED_MS_HEADER, f"{(waited + time.perf_counter() - entered) * 1000:.3f}"))
        return start_response(status, headers, *args)

    try:
        return _django_application(environ, counted_start_response)
    finally:
        _local.counts = None


connection_created.connect(_instrument, dispatch_uid="benchmarks.instrumented_wsgi")
atexit.register(_outside_write)
