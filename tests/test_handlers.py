"""whisper_project/handlers.py: through the WSGI application gunicorn serves, Vonage's
webhooks skip the site's middleware (sessions, CSRF, messages, axes, history) and work;
every other path still goes through it."""

import json
from typing import Any

import pytest
from django.test import RequestFactory

from calls.models import Call, CallLeg
from tests.conftest import load_fixture
from whisper_project.wsgi import application

ANSWER = load_fixture("vonage/answer_inbound.json")


def served(environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    """One request through the project's WSGI application, closed as a server closes it."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    response = application(environ, lambda status, headers, *_: started.append((status, headers)))
    body = b"".join(response)
    response.close()  # Django's request_finished, as gunicorn sends it
    status, headers = started[0]
    return status, {name.lower(): value for name, value in headers}, body


def test_the_webhook_paths_are_exactly_vonages_routes() -> None:
    routes = {"/answer_inbound", "/answer_outbound", "/answer_callback", "/event", "/fallback"}
    assert application.webhook_paths == routes


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("summer_number")
@pytest.mark.parametrize("path", ["/answer_inbound", "/answer_inbound/"])
def test_a_caller_is_answered_and_recorded_without_the_sites_middleware(path: str) -> None:
    status, headers, body = served(RequestFactory().get(path, ANSWER).environ)

    assert status == "200 OK", body
    assert json.loads(body)[0]["action"] == "talk"
    assert CallLeg.objects.get(uuid=ANSWER["uuid"]).call.campaign.name == "Summer offer"
    # The site's middleware did not run: no clickjacking header, no cookie, no Vary: Cookie.
    assert "x-frame-options" not in headers
    assert "set-cookie" not in headers
    assert "cookie" not in headers.get("vary", "").lower()


@pytest.mark.django_db(transaction=True)
def test_a_refused_webhook_is_still_a_clear_4xx_without_the_middleware() -> None:
    status, _, body = served(RequestFactory().post("/event", b"[1, 2", content_type="application/json").environ)

    assert status.startswith("400"), body
    assert Call.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_admin_still_goes_through_the_sites_middleware() -> None:
    status, headers, _ = served(RequestFactory().get("/admin/login/").environ)

    assert status == "200 OK"
    assert headers["x-frame-options"] == "DENY"
    assert "csrftoken=" in headers["set-cookie"]
