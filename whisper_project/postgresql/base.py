"""Django's PostgreSQL backend, without a health check on every request.

With ``CONN_HEALTH_CHECKS`` Django sends ``SELECT 1`` before the first query of every
request that reuses a connection: a round trip on each of a call's dozen webhooks. A
connection that served its last request without an error, having been used in it, less
than ``DATABASE_KNOWN_GOOD_SECONDS`` ago is trusted instead (a request that did not touch
the database, such as one answered during an outage's back-off, proves nothing and
extends nothing); an idle one is still checked,
so a connection that a database restart broke is replaced before it is used. A
restart inside that window costs the requests running then what it costs them anyway
(a database error: the webhooks' safe answer, the spool, a 503 for Vonage to retry),
and Django drops the broken connection at the end of that request.

It also lets psycopg keep the parse of the hot path's longest statement, reads
``timestamptz`` values with Python's own parser, and keeps a few closed cursors for the
next statements on the same connection (all three below).
"""

import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg import _queries, adapt
from psycopg.pq import Format

# psycopg remembers where a query's parameters go (a regular-expression parse of the SQL)
# only for a query of at most 50 parameters; a new call's one statement (the call and its
# caller's leg, calls/statements.py) has about 70, so it was parsed again for every call,
# about a twentieth of a call's Python time under load. The statements are a fixed few
# (every value a parameter), so the cache stays as small as it was.
HOT_STATEMENT_MAX_PARAMS = 128
if getattr(_queries, "MAX_CACHED_STATEMENT_PARAMS", HOT_STATEMENT_MAX_PARAMS) < HOT_STATEMENT_MAX_PARAMS:
    _queries.MAX_CACHED_STATEMENT_PARAMS = HOT_STATEMENT_MAX_PARAMS


class UtcTimestamptzLoader(BaseTzLoader):
    """A ``timestamptz`` read as Django's loader reads it on a UTC connection (an aware
    ``datetime`` in UTC), parsed by ``datetime.fromisoformat``, which is written in C.

    Django's loader runs psycopg's parser, written in Python, for every value, and a call
    reads about a hundred: reading them here saves about 4 % of a call's instructions
    (``benchmarks/instructions.py``). PostgreSQL writes a UTC ``timestamptz`` as ISO 8601
    (``2026-11-25 12:00:00.5+00``); anything else (``infinity``, a date BC, another
    offset or date style) is left to Django's loader, which reads it or refuses it as
    before."""

    timezone = UTC

    def load(self, data: Any) -> datetime:
        try:
            value = datetime.fromisoformat(str(data, "ascii"))
        except ValueError:
            return super().load(data)
        # A zero offset is read as the ``UTC`` object itself, as Django's loader gives it;
        # any other offset (a session not in UTC) is Django's loader's to read.
        if value.tzinfo is not UTC:
            return super().load(data)
        return value


# Closed cursors kept per connection for its next statements (a connection serves one
# thread, and a statement rarely has more than one other cursor open beside it).
KEPT_CURSORS = 4
# Transformers a kept cursor keeps, one per statement it ran, the most recently used: the
# hot path runs about a dozen statements (calls/statements.py).
KEPT_TRANSFORMERS = 16


class KeptCursorMixin:
    """A psycopg cursor that, closed, goes back to its connection's kept cursors instead.

    Django opens a cursor for every statement and closes it after. A new psycopg cursor
    copies the connection's adapters and builds a transformer whose dumpers and loaders
    are then found again for every parameter and column: about a third of what a short
    prepared statement costs in Python (``benchmarks/instructions.py``). A kept cursor has
    them still. Only cursors with the connection's own adapters are kept (Django gives a
    cursor its own time-zone loader when the connection's disagrees); a kept one is handed
    out again only on the connection it came from, with its rows dropped and the
    connection's row factory.

    psycopg also builds a new transformer for each statement unless the cursor's last
    statement was the same query object, so a kept cursor, which serves one statement
    and then another, found every dumper and loader again all the same (a timestamp
    loader made anew for every read of a call). A kept cursor keeps the transformer of
    each statement it ran (``KEPT_TRANSFORMERS``, by the statement's text, without the
    rows it last read) and runs the statement with it again, as psycopg does for a query
    it runs twice in a row."""

    # The list this cursor goes back to when closed; None: closed for good when closed.
    kept_in: list["KeptCursorMixin"] | None = None
    kept_idle = False
    # This cursor's transformer for each statement it ran, least recently used first.
    transformers: dict[str, Any] | None = None

    def _start_query(self, query: Any = None) -> Any:
        cursor: Any = self  # a psycopg cursor (the other base class)
        kept = self.kept_in is not None and isinstance(query, str)
        if kept and query is not cursor._last_query and self.transformers:
            cursor._tx.set_pgresult(None, set_loaders=False)  # kept without the rows it read
            known = self.transformers.pop(query, None)
            if known is not None:
                cursor._tx, cursor._last_query = known, query  # psycopg keeps the last query's
        yield from super()._start_query(query)  # type: ignore[misc]
        if kept:
            transformers = self.transformers
            if transformers is None:
                transformers = self.transformers = {}
            transformers.pop(query, None)
            if len(transformers) >= KEPT_TRANSFORMERS:
                del transformers[next(iter(transformers))]
            transformers[query] = cursor._tx

    def close(self) -> None:
        cursor: Any = self  # a psycopg cursor (the other base class)
        kept = self.kept_in
        if self.kept_idle:
            return  # closed twice (Django's wrapper, then its caller): kept once
        if kept is None or cursor.closed or len(kept) >= KEPT_CURSORS:
            super().close()  # type: ignore[misc]
            return
        cursor._reset()  # the rows and status, as close() drops them
        if cursor.row_factory is not cursor.connection.row_factory:
            cursor.row_factory = cursor.connection.row_factory
        self.kept_idle = True
        kept.append(self)


class KeptServerBindingCursor(KeptCursorMixin, base.ServerBindingCursor):
    pass


class KeptClientCursor(KeptCursorMixin, base.Cursor):
    pass


_KEPT_FACTORIES = {base.ServerBindingCursor: KeptServerBindingCursor, base.Cursor: KeptClientCursor}


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.known_good_until = 0.0
        self.used_since_check = False
        self.kept_cursors: list[KeptCursorMixin] = []

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        template = params.get("context")
        if template is not None and self.timezone == UTC:
            # Django's adapters (its shared template, extended) with the faster loader:
            # its create_cursor sees the same time zone and keeps it.
            params["context"] = adapt.AdaptersMap(template)
            params["context"].register_loader("timestamptz", UtcTimestamptzLoader)
        factory = params.get("cursor_factory")
        params["cursor_factory"] = _KEPT_FACTORIES.get(factory, factory)  # type: ignore[arg-type]
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        self.kept_cursors = []  # a kept cursor of the last connection is never handed out
        return super().get_new_connection(conn_params)

    def create_cursor(self, name: str | None = None) -> Any:
        self.used_since_check = True
        if name is None:
            kept = self.kept_cursors
            while kept:
                cursor = kept.pop()
                if cursor.connection is self.connection and not cursor.closed:  # type: ignore[attr-defined]
                    cursor.kept_idle = False
                    return cursor
        cursor = super().create_cursor(name)
        if name is None and isinstance(cursor, KeptCursorMixin) and self._adapters_shared():
            cursor.kept_in = self.kept_cursors
        return cursor

    def _adapters_shared(self) -> bool:
        """Whether Django's create_cursor left a new cursor the connection's adapters: it
        registers its own time-zone loader on the cursor when the connection's disagrees."""
        loader = self.connection.adapters.get_loader(base.TIMESTAMPTZ_OID, Format.TEXT)
        return getattr(loader, "timezone", None) == self.timezone

    def close_if_unusable_or_obsolete(self) -> None:
        used, self.used_since_check = self.used_since_check, False
        super().close_if_unusable_or_obsolete()
        if self.connection is not None and used and not self.errors_occurred:
            self.known_good_until = time.monotonic() + settings.DATABASE_KNOWN_GOOD_SECONDS

    def close_if_health_check_failed(self) -> None:
        if self.connection is not None and time.monotonic() < self.known_good_until:
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def close(self) -> None:
        self.known_good_until = 0.0
        super().close()
