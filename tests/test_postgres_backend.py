"""whisper_project/postgresql: no ``SELECT 1`` before a request on a connection that
served the last one without error moments ago; an idle or failed one is still checked."""

import time
from datetime import timedelta
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


# --- closed cursors kept for the connection's next statements -------------------------------


def _psycopg_cursor(cursor: Any) -> Any:
    """The psycopg cursor inside Django's wrapper."""
    return cursor.cursor


def test_a_closed_cursor_serves_the_next_statement_with_its_own_rows() -> None:
    with connection.cursor() as first:
        first.execute("SELECT %s::text, %s::int", ["one", 1])
        assert first.fetchall() == [("one", 1)]
        kept = _psycopg_cursor(first)
    with connection.cursor() as second:
        assert _psycopg_cursor(second) is kept
        assert second.description is None  # nothing of the last statement's left
        second.execute("SELECT %s::numeric, now() > %s", ["2.5", "2000-01-01T00:00:00Z"])
        row = second.fetchone()
    assert [str(row[0]), row[1]] == ["2.5", True]


def test_cursors_open_at_once_are_distinct_and_keep_their_own_rows() -> None:
    with connection.cursor() as outer:
        outer.execute("SELECT generate_series(1, 3)")
        with connection.cursor() as inner:
            assert _psycopg_cursor(inner) is not _psycopg_cursor(outer)
            inner.execute("SELECT 'inner'")
            assert inner.fetchall() == [("inner",)]
        assert outer.fetchall() == [(1,), (2,), (3,)]


def test_a_cursor_closed_twice_is_kept_once() -> None:
    cursor = connection.cursor()
    cursor.execute("SELECT 1")
    cursor.close()
    cursor.close()
    a, b = connection.cursor(), connection.cursor()
    try:
        assert _psycopg_cursor(a) is not _psycopg_cursor(b)
    finally:
        a.close()
        b.close()


def test_no_more_than_a_few_cursors_are_kept() -> None:
    from whisper_project.postgresql.base import KEPT_CURSORS

    open_at_once = [connection.cursor() for _ in range(KEPT_CURSORS + 3)]
    for cursor in open_at_once:
        cursor.close()
    assert len(connection.kept_cursors) == KEPT_CURSORS
    assert sum(_psycopg_cursor(cursor).closed for cursor in open_at_once) == 3


def test_a_cursor_of_a_closed_connection_is_not_handed_out_on_the_next() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        old = _psycopg_cursor(cursor)
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)
        assert _psycopg_cursor(cursor) is not old
        assert _psycopg_cursor(cursor).connection is connection.connection


def test_a_row_factory_set_on_a_cursor_is_not_passed_on() -> None:
    from psycopg.rows import dict_row

    with connection.cursor() as cursor:
        _psycopg_cursor(cursor).row_factory = dict_row
        cursor.execute("SELECT 1 AS one")
        assert cursor.fetchone() == {"one": 1}
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 AS one")
        assert cursor.fetchone() == (1,)


def test_a_cursor_with_its_own_time_zone_loader_is_not_kept(settings: Settings) -> None:
    """Django gives a cursor its own ``timestamptz`` loader when the connection's time zone
    changed after it connected (its adapters are the old zone's); such a cursor is closed,
    not kept, and the next one gets its own again."""
    connection.ensure_connection()  # adapters for UTC
    settings.USE_TZ = False  # the connection's zone is then TIME_ZONE's
    settings.TIME_ZONE = "Asia/Kolkata"
    try:
        for _ in range(2):
            with connection.cursor() as cursor:
                cursor.execute("SELECT '2026-11-25 12:00:00+00'::timestamptz")
                assert cursor.fetchone()[0].hour == 17
                own = _psycopg_cursor(cursor)
            assert own.closed and own not in connection.kept_cursors
    finally:
        connection.close()


def test_a_failed_statement_leaves_the_kept_cursor_usable() -> None:
    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT 1 / 0")
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::int", [7])
        assert cursor.fetchone() == (7,)


READ_A = "SELECT %s::int, now() - %s * interval '1 hour'"
READ_B = "SELECT %s::text, now()"


def _tx(cursor: Any) -> Any:
    return _psycopg_cursor(cursor)._tx


def test_a_kept_cursor_runs_a_statement_again_with_that_statements_transformer() -> None:
    """psycopg made a new transformer whenever the query was not its last: the statements
    taking turns on a kept cursor found their loaders again every time."""
    with connection.cursor() as cursor:
        cursor.execute(READ_A, [1, 1])
        first_a = _tx(cursor)
        hour_ago = cursor.fetchone()
    with connection.cursor() as cursor:
        cursor.execute(READ_B, ["b"])
        assert cursor.fetchone()[0] == "b"
        assert _tx(cursor) is not first_a
        assert first_a.pgresult is None  # kept without the rows it read
    with connection.cursor() as cursor:
        cursor.execute(READ_A, [2, 3])
        assert _tx(cursor) is first_a
        again = cursor.fetchone()
    assert again[0] == 2 and hour_ago[0] == 1
    assert timedelta(hours=1, minutes=59) < hour_ago[1] - again[1] < timedelta(hours=2, minutes=1)


def test_a_kept_transformer_takes_other_parameter_types_and_results() -> None:
    statement = "SELECT %s, %s::text IS NULL"
    for value, expected in ((7, (7, False)), ("seven", ("seven", False)), (None, (None, True))):
        with connection.cursor() as cursor:
            cursor.execute(statement, [value, value])
            assert cursor.fetchone() == expected
        with connection.cursor() as cursor:
            cursor.execute(READ_B, ["between"])  # the statement's transformer set aside
            assert cursor.fetchone()[0] == "between"


def test_a_kept_cursor_keeps_the_transformers_of_its_latest_statements_only() -> None:
    from whisper_project.postgresql.base import KEPT_TRANSFORMERS

    statements = [f"SELECT {n}::int" for n in range(KEPT_TRANSFORMERS + 2)]
    for statement in statements:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            kept = _psycopg_cursor(cursor)
    assert kept.transformers is not None
    assert list(kept.transformers) == statements[2:]


def test_the_orms_chunked_reads_still_use_their_own_named_cursor() -> None:
    from calls.models import SignedWebhook

    SignedWebhook.objects.bulk_create(SignedWebhook(jti=f"j{n}", digest="d") for n in range(5))
    seen = []
    for row in SignedWebhook.objects.order_by("jti").iterator(chunk_size=2):
        seen.append(row.jti)
        SignedWebhook.objects.filter(jti=row.jti).update(digest="e")  # other statements meanwhile
    assert seen == [f"j{n}" for n in range(5)]
    assert set(SignedWebhook.objects.values_list("digest", flat=True)) == {"e"}
