"""The webhooks' OpenAPI description at /api/schema/ (the fuzz test sends what it says)."""

from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.test import Client

WEBHOOKS = ["/answer_callback/", "/answer_inbound/", "/answer_outbound/", "/event/", "/fallback/"]


@pytest.fixture
def description(client: Client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_description_is_served_as_yaml_by_default(client: Client) -> None:
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.safe_load(response.content)["info"]["title"] == "Call Whisper webhooks"


def test_it_describes_each_webhook_for_get_and_post_and_nothing_else(description: dict) -> None:
    assert sorted(description["paths"]) == WEBHOOKS
    for path in WEBHOOKS:
        assert set(description["paths"][path]) == {"get", "post"}


def test_answers_are_ncco_arrays_and_errors_are_documented(description: dict) -> None:
    paths = description["paths"]
    inbound = paths["/answer_inbound/"]["get"]
    ncco = inbound["responses"]["200"]["content"]["application/json"]["schema"]
    assert ncco["type"] == "array"
    assert ncco["items"]["required"] == ["action"]
    assert {p["name"] for p in inbound["parameters"]} == {"to", "from", "uuid", "conversation_uuid", "region_url"}
    assert set(inbound["responses"]) == {"200", "400", "401", "403", "413", "503"}
    assert set(paths["/answer_outbound/"]["get"]["responses"]) == {"200", "400", "401", "403", "404", "413", "503"}
    event = paths["/event/"]["post"]
    assert set(event["responses"]) == {"200", "204", "400", "401", "403", "413", "503"}
    receipt, answer = event["responses"]["200"]["content"]["application/json"]["schema"]["oneOf"]
    assert receipt["required"] == ["stored", "kind"]
    assert answer["type"] == "array"
    assert {p["name"] for p in event["parameters"]} == {"call", "attempt", "checkpoint", "sig"}
    # A POSTed agent answer names the call in the query string, the leg in the body.
    outbound = paths["/answer_outbound/"]["post"]
    assert {p["name"] for p in outbound["parameters"]} == {"call", "attempt", "sig"}


def test_signed_webhooks_are_the_security_scheme(description: dict) -> None:
    scheme = description["components"]["securitySchemes"]["vonageSignature"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert description["paths"]["/event/"]["post"]["security"] == [{"vonageSignature": []}]


def test_the_description_is_valid_openapi_without_generator_warnings(tmp_path: Path) -> None:
    # ``check --deploy`` runs the same generation and fails on any warning (drf_spectacular.W001).
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3.0.3")


def test_the_swagger_ui_uses_only_local_assets(client: Client) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn." not in page and "unpkg" not in page
