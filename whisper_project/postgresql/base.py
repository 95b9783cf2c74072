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

It also lets psycopg keep the parse of the hot path's longest statement, and reads
``timestamptz`` values with Python's own parser (both below).
"""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg import _queries, adapt

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
            value = datetime.fromisoformat(bytes(data).decode())
        except ValueError:
            value = None
        if value is None or value.utcoffset() != timedelta(0):
            return super().load(data)
        return value.replace(tzinfo=UTC)


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.known_good_until = 0.0
        self.used_since_check = False

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        template = params.get("context")
        if template is not None and self.timezone == UTC:
            # Django's adapters (its shared template, extended) with the faster loader:
            # its create_cursor sees the same time zone and keeps it.
            params["context"] = adapt.AdaptersMap(template)
            params["context"].register_loader("timestamptz", UtcTimestamptzLoader)
        return params

    def create_cursor(self, name: str | None = None) -> Any:
        self.used_since_check = True
        return super().create_cursor(name)

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
