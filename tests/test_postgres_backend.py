"""whisper_project/postgresql: no ``SELECT 1`` before a request on a connection that
served the last one without error moments ago; an idle or failed one is still checked."""

import time
from typing import Any

import psycopg
import pytest
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, connection
from django.db.backends.postgresql.base import DatabaseWrapper as DjangoPostgres
from django.test import Client, RequestFactory
from pytest_django.fixtures import Settings

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the backend is PostgreSQL's"),
]


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> list[str]:
    """Each health check Django runs (``is_usable``), counted; connections kept across
    requests as in production."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", True)
    connection.close()
    done: list[str] = []
    usable = DjangoPostgres.is_usable

    def counted(self: Any) -> bool:
        done.append(self.alias)
        return bool(usable(self))

    monkeypatch.setattr(DjangoPostgres, "is_usable", counted)
    return done


def request(client: Client) -> None:
    """A request through Django's WSGI handler, which (unlike the test client) runs the
    connection upkeep before and after each request, as gunicorn's workers do."""
    status: list[str] = []
    environ = RequestFactory().get("/healthz").environ
    response = get_wsgi_application()(environ, lambda code, headers, *_: status.append(code))
    body = b"".join(response)
    response.close()  # as the server does: Django's request_finished
    assert status == ["200 OK"], body


def test_a_connection_known_good_is_not_checked(client: Client, checks: list[str]) -> None:
    for _ in range(5):
        request(client)

    assert checks == []


def test_an_idle_connection_is_checked_before_use(client: Client, checks: list[str], settings: Settings) -> None:
    settings.DATABASE_KNOWN_GOOD_SECONDS = 0
    request(client)
    request(client)

    assert checks == ["default"]


def test_a_connection_broken_while_idle_is_replaced_before_use(
    client: Client, checks: list[str], settings: Settings
) -> None:
    settings.DATABASE_KNOWN_GOOD_SECONDS = 0
    request(client)
    old = connection.connection
    # PostgreSQL restarted, as far as this connection knows: its server process is ended
    # from another connection.
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [old.info.backend_pid])

    request(client)

    assert checks == ["default"]
    assert connection.connection is not old


def test_a_request_that_did_not_use_the_connection_does_not_vouch_for_it(
    client: Client, checks: list[str], settings: Settings
) -> None:
    """A request answered without the database (an outage's back-off) says nothing of the
    connection: the next request that uses it checks it first."""
    settings.DATABASE_KNOWN_GOOD_SECONDS = 0.3
    request(client)  # used: known good for 0.3 s
    time.sleep(0.2)
    close_old_connections()  # a request that never touched the database: starts…
    close_old_connections()  # …and ends
    time.sleep(0.2)  # past the window the first request opened

    request(client)

    assert checks == ["default"]


# --- timestamptz values, read by UtcTimestamptzLoader -------------------------------------

TIMESTAMPS = [
    "2026-11-25 12:00:00+00",
    "2026-11-25 12:00:00.5+00",
    "2026-11-25 12:00:00.000001+00",
    "2026-11-25 12:00:00.123456+00",
    "2026-03-29 01:30:00+01",  # written with another offset: the same instant, in UTC
    "2026-11-25 23:59:59.999999-08",
    "0001-01-01 00:00:00+00",
    "1969-12-31 23:59:59.999999+00",
    "9999-12-31 23:59:59.999999+00",
]
REFUSED = ["infinity", "-infinity", "0044-03-15 00:00:00+00 BC"]


def _read(sql: str, *, djangos: bool) -> Any:
    """One value selected through our connection: with its own loaders, or with Django's
    ``timestamptz`` loader registered on the cursor (as Django's backend has it)."""
    from django.db.backends.postgresql.psycopg_any import register_tzloader

    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        if djangos:
            register_tzloader(connection.timezone, cursor)
        cursor.execute(sql)
        return cursor.fetchone()[0]


def test_the_connection_reads_timestamptz_with_the_fast_loader() -> None:
    from psycopg.pq import Format

    from whisper_project.postgresql.base import UtcTimestamptzLoader

    connection.ensure_connection()
    oid = connection.connection.adapters.types["timestamptz"].oid
    assert connection.connection.adapters.get_loader(oid, Format.TEXT) is UtcTimestamptzLoader


@pytest.mark.parametrize("literal", TIMESTAMPS)
def test_a_timestamp_reads_as_djangos_loader_reads_it(literal: str) -> None:
    sql = f"SELECT '{literal}'::timestamptz"
    ours, djangos = _read(sql, djangos=False), _read(sql, djangos=True)
    assert ours == djangos
    assert ours.tzinfo is djangos.tzinfo
    assert (ours.year, ours.microsecond, ours.utcoffset()) == (djangos.year, djangos.microsecond, djangos.utcoffset())


@pytest.mark.parametrize("literal", REFUSED)
def test_a_timestamp_python_cannot_hold_is_refused_as_by_djangos_loader(literal: str) -> None:
    sql = f"SELECT '{literal}'::timestamptz"
    with pytest.raises(psycopg.DataError) as ours:
        _read(sql, djangos=False)
    with pytest.raises(psycopg.DataError) as djangos:
        _read(sql, djangos=True)
    assert str(ours.value) == str(djangos.value)


def test_timestamps_written_by_the_orm_read_back_the_same() -> None:
    from datetime import UTC, datetime

    from calls.models import SignedWebhook

    moment = datetime(2026, 12, 7, 1, 2, 3, 450000, tzinfo=UTC)
    SignedWebhook.objects.create(jti="a-moment", digest="d", received_at=moment)
    read = SignedWebhook.objects.get(jti="a-moment").received_at
    assert read == moment and read.tzinfo is UTC


def test_a_timestamp_written_in_another_time_zone_is_left_to_djangos_loader() -> None:
    """Django keeps the session in UTC; should it not be, its loader decides, as before."""
    connection.ensure_connection()
    connection.connection.execute("SET TIME ZONE 'Asia/Kolkata'")
    try:
        sql = "SELECT '2026-11-25 12:00:00+00'::timestamptz"
        ours, djangos = _read(sql, djangos=False), _read(sql, djangos=True)
    finally:
        connection.connection.execute("SET TIME ZONE 'UTC'")
    assert (ours, ours.tzinfo, ours.hour) == (djangos, djangos.tzinfo, djangos.hour)
