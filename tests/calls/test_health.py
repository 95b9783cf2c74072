"""``/healthz``: the load balancer's question, is this process and its database up?"""

from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client
from pytest_django.fixtures import Settings

from calls import health


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/healthz/"])
def test_a_healthy_process_answers_ok(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


class _DatabaseDown:
    def cursor(self) -> Any:
        raise OperationalError('connection to server at "db.internal" failed: Connection refused')


@pytest.mark.django_db
def test_a_database_that_does_not_answer_is_a_503(
    client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(health, "connection", _DatabaseDown())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "database unavailable"}
    assert "healthz.database_unavailable error=OperationalError" in caplog.text


@pytest.mark.django_db
def test_it_needs_no_login_or_signature_and_is_not_redirected_to_https(settings: Settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.VONAGE_SIGNATURE_SECRET = "a-signature-secret"
    client = Client()  # a new client builds the middleware with these settings

    assert client.get("/healthz").status_code == 200
    assert client.get("/admin/login/").status_code == 301  # the admin is redirected


@pytest.mark.django_db
def test_it_only_answers_reads(client: Client) -> None:
    assert client.post("/healthz").status_code == 405
    assert client.head("/healthz").status_code == 200
