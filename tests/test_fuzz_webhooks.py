"""Fuzzing the webhooks from their OpenAPI description (``/api/schema/``).

Schemathesis generates requests from the description, valid and not, and sends them
to the app in-process (WSGI; no socket, no network). Whatever it sends, no webhook may
answer with a server error: Vonage does not retry a 500 on the answer path (the caller
is dropped), and a 503 on /event means the event is lost after the retries. Each
answer must also be one the description documents, in status, content type and shape.

Run deeper locally with ``FUZZ_EXAMPLES=500 .venv/bin/pytest tests/test_fuzz_webhooks.py``.
"""

import io
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from pytest_django.fixtures import Settings as DjangoSettings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from calls.webhooks.callback_urls import CALLBACK_PARAMS, callback_query
from calls.webhooks.signatures import sign_webhook
from whisper_project.wsgi import application

# Loaded when the module is collected: schemathesis' lazy fixture loader does not work
# with pytest 9. Serving the description touches no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
SIGNATURE_SECRET = "fuzz-signature-secret-0123456789abcdef"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(autouse=True)
def _keep_the_test_connection() -> Iterator[None]:
    """Requests go through the real WSGI handler, which closes the database connection
    after each one; inside the test's transaction that would end it (PostgreSQL).
    Django's test client unhooks the same signal handlers."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_the_description_covers_every_webhook_both_ways() -> None:
    operations = {(op.method.upper(), op.path) for op in (result.ok() for result in schema.get_all_operations())}
    for path in ("/answer_inbound/", "/answer_outbound/", "/event/", "/fallback/"):
        assert {("GET", path), ("POST", path)} <= operations


@schema.parametrize()
@pytest.mark.django_db
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_webhook_request_gets_a_server_error(case: schemathesis.Case) -> None:
    # Unsigned: the test settings accept unsigned webhooks (UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS),
    # so the generated fields reach the views; our own URL parameters are refused (403).
    case.call_and_validate(checks=CHECKS)


class SignAsVonage:
    """A WSGI layer that signs every request as Vonage would (a fresh token over the exact
    body it carries) and signs our own URL parameters as the app would have, so that
    whatever schemathesis generates gets past both checks and reaches the views."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["HTTP_AUTHORIZATION"] = "Bearer " + sign_webhook(body=body, secret=SIGNATURE_SECRET)
        route = environ.get("PATH_INFO", "").strip("/")
        query = [(k, v) for k, v in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True) if k != "sig"]
        own = {k: v for k, v in query if k in CALLBACK_PARAMS}
        rest = urlencode([(k, v) for k, v in query if k not in CALLBACK_PARAMS])
        if own:
            rest += "&" + callback_query(f"calls:{route}", own)
        environ["QUERY_STRING"] = rest
        return self.app(environ, start_response)


signed_schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", SignAsVonage(application))


@signed_schema.parametrize()
@pytest.mark.django_db
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_signed_webhook_request_gets_a_server_error(case: schemathesis.Case, _signatures_on: None) -> None:
    """With signatures required, every generated request signed for real, and our own
    parameters signed too: huge call ids, odd attempts and every odd field reach the
    views, and none gets a server error."""
    response = case.call_and_validate(checks=CHECKS)
    # Past both signature checks: what is refused is refused for its fields.
    assert response.status_code not in (401, 403), response.text


@pytest.fixture
def _signatures_on(settings: DjangoSettings) -> None:
    settings.VONAGE_SIGNATURE_SECRET = SIGNATURE_SECRET
    settings.UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS = False
