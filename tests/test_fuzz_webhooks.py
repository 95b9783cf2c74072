"""Fuzzing the webhooks from their OpenAPI description (``/api/schema/``).

Schemathesis generates requests from the description, valid and not, and sends them
to the app in-process (WSGI; no socket, no network). Whatever it sends, no webhook may
answer with a server error: Vonage does not retry a 500 on the answer path (the caller
is dropped), and a 503 on /event means the event is lost after the retries. Each
answer must also be one the description documents, in status, content type and shape.

Run deeper locally with ``FUZZ_EXAMPLES=500 .venv/bin/pytest tests/test_fuzz_webhooks.py``.
"""

import os
from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from whisper_project.wsgi import application

# Loaded when the module is collected: schemathesis' lazy fixture loader does not work
# with pytest 9. Serving the description touches no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))


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
    # Signatures are off in the test settings (tests/calls/test_signatures.py covers
    # them), so the checks that expect a 401 without one are not run.
    case.call_and_validate(
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    )
