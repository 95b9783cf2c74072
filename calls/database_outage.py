"""Answering at once while the database cannot be reached.

When PostgreSQL's host stops answering, every attempt to connect waits for
``DATABASE_CONNECT_TIMEOUT`` (2 s) before it fails. One such wait fits in Vonage's 5 s
for an answer, but a burst of callers queues behind the waits of the requests before
them on the same worker threads and soon does not. So once a connect has failed, this
process leaves the database alone for ``DATABASE_OUTAGE_BACKOFF_SECONDS``: callers get
the safe answer (the call centre, directly) and events their 503 at once. The first
request after that tries the database again.
"""

import logging
import threading
import time

from django.conf import settings
from django.db import OperationalError, connection

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_skip_until = 0.0


class DatabaseSkipped(Exception):
    """The database was not tried: a connect failed moments ago (see the module)."""


def check() -> None:
    """Raise ``DatabaseSkipped`` while this process is leaving the database alone."""
    if time.monotonic() < _skip_until:
        raise DatabaseSkipped("a connection to the database failed moments ago")


def notice(exc: BaseException) -> None:
    """A webhook failed with ``exc``: if the database could not even be connected to,
    leave it alone for a while. Other database errors (a deadlock, a bad row) do not count."""
    global _skip_until
    if not isinstance(exc, OperationalError) or not connect_failed():
        return
    with _lock:
        starting = time.monotonic() >= _skip_until
        _skip_until = time.monotonic() + settings.DATABASE_OUTAGE_BACKOFF_SECONDS
    if starting:
        logger.error(
            "database.unreachable: answering without the database for %g s", settings.DATABASE_OUTAGE_BACKOFF_SECONDS
        )


def connect_failed() -> bool:
    """The last error was the connect itself: Django holds no connection afterwards."""
    return connection.connection is None


def reset() -> None:
    global _skip_until
    with _lock:
        _skip_until = 0.0
