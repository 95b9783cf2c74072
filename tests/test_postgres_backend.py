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
