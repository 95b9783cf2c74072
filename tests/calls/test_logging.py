"""What the logs say: the call id on every line, no secrets, no caller's full number.

These run the project's own LOGGING configuration (Django applied it at start-up): the
console handler, its filters and formatter, with its stream swapped for a buffer.
"""

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings

from calls import vonage_adapter
from calls.logging import JsonFormatter, call_context, call_context_set, current_call_id, redact
from calls.models import Call
from calls.vonage_adapter import PlacedCall
from campaigns.models import TrackingNumber
from tests.conftest import callback_path, post_json, with_fields

CALLER = "447946000123"
PRIVATE_KEY = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
    "VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "-----END PRIVATE KEY-----\n"
)


@pytest.fixture
def console() -> Iterator[tuple[logging.Handler, io.StringIO]]:
    """The project's console handler, writing to a buffer for the test."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    buffer = io.StringIO()
    stream = handler.setStream(buffer)
    formatter = handler.formatter
    yield handler, buffer
    handler.setStream(stream)
    handler.setFormatter(formatter)


@pytest.fixture
def sdk_debug() -> Iterator[logging.Logger]:
    """The Vonage SDK's logger at DEBUG, as someone chasing a problem would set it."""
    sdk = logging.getLogger("vonage")
    level = sdk.level
    sdk.setLevel(logging.DEBUG)
    yield sdk
    sdk.setLevel(level)


@pytest.fixture
def secrets(settings: Settings) -> dict[str, str]:
    values = {
        "SECRET_KEY": "django-secret-key-that-must-never-be-logged-0123456789",
        "VONAGE_API_SECRET": "apisecret99",
        "VONAGE_SIGNATURE_SECRET": "signature-secret-abcdefghijklmnop",
        "VONAGE_PRIVATE_KEY": PRIVATE_KEY,
    }
    for name, value in values.items():
        setattr(settings, name, value)
    return values


# --- secrets ---------------------------------------------------------------------------------


def test_the_sdks_debug_lines_and_our_own_carry_no_secret(
    console: tuple[logging.Handler, io.StringIO], sdk_debug: logging.Logger, secrets: dict[str, str]
) -> None:
    _, buffer = console
    token = jwt.encode(
        {"application_id": "app", "iat": 1_700_000_000, "jti": "x"},
        "a-test-signing-key-of-32-bytes-or-more",
        algorithm="HS256",
    )
    # What vonage_http_client logs before every request and after every response.
    sdk_debug.debug(
        f"POST request to https://api.nexmo.com/v1/calls, with data: {{'to': [...]}}; "
        f"headers: {{'User-Agent': 'vonage-python-sdk', 'Authorization': b'Bearer {token}'}}"
    )
    sdk_debug.debug(
        "GET request to https://rest.nexmo.com/account/numbers; headers: {'Authorization': 'Basic YWJjOmRlZg=='}"
    )
    sdk_debug.debug("data: {'api_key': 'abc', 'api_secret': '%s'}", secrets["VONAGE_API_SECRET"])
    logger = logging.getLogger("calls.test")
    logger.warning("settings: %s %s", secrets["SECRET_KEY"], secrets["VONAGE_SIGNATURE_SECRET"])
    logger.warning("key loaded: %r", PRIVATE_KEY)  # escaped line breaks
    logger.warning("key loaded:\n%s", PRIVATE_KEY)
    logger.warning("a signed webhook: Authorization: Bearer %s", token)
    try:
        raise ValueError(f"bad signature with {secrets['VONAGE_SIGNATURE_SECRET']} for {token}")
    except ValueError:
        logger.exception("webhook.error")

    output = buffer.getvalue()
    assert output.count("\n") >= 8
    for secret in [
        *secrets.values(),
        token,
        "YWJjOmRlZg==",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw",
        "BEGIN PRIVATE KEY",
    ]:
        assert secret.strip() not in output
    assert "Bearer [redacted]" in output
    assert "Basic [redacted]" in output
    assert "[redacted private key]" in output
    assert "ValueError: bad signature with [redacted]" in output  # the traceback too


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")  # only its password is read here
def test_a_secret_changed_after_lines_were_logged_is_redacted_at_once(settings: Settings) -> None:
    # The secret settings are read once and kept (a line is logged on every event); a
    # changed one must not slip through with the old values kept.
    settings.VONAGE_SIGNATURE_SECRET = "the-first-signature-secret-0001"
    assert redact("a the-first-signature-secret-0001 b") == "a [redacted] b"
    settings.VONAGE_SIGNATURE_SECRET = "the-second-signature-secret-0002"
    assert redact("a the-second-signature-secret-0002 b") == "a [redacted] b"
    default = {**settings.DATABASES["default"], "PASSWORD": "db-pass-0003"}
    settings.DATABASES = {**settings.DATABASES, "default": default}
    assert redact("password db-pass-0003") == "password [redacted]"


def test_redact_leaves_ordinary_lines_alone(secrets: dict[str, str]) -> None:
    line = "event.stored call=12 uuid=63f61863-4a51-4f6b-86e1-46edebcf9356 kind=status status=completed"
    assert redact(line) == line


# --- caller numbers ------------------------------------------------------------------------


@pytest.fixture
def vonage(monkeypatch: pytest.MonkeyPatch) -> None:
    placed = iter(range(1, 100))
    monkeypatch.setattr(
        vonage_adapter,
        "place_call",
        lambda **kwargs: PlacedCall(uuid=f"agent-{next(placed)}", conversation_uuid="CON-agent", sent=True),
    )


def whole_call(client: Client, caller_uuid: str = "caller-1") -> Call:
    """A caller rings the summer offer; the agent answers, hears the whisper, talks, hangs up."""
    response = client.get(
        "/answer_inbound", {"to": "447700900001", "from": CALLER, "uuid": caller_uuid, "conversation_uuid": "CON-1"}
    )
    assert response.status_code == 200
    call = Call.objects.get(legs__uuid=caller_uuid)
    agent = call.legs.get(role="agent").uuid
    assert (
        client.get(
            with_fields(callback_path("answer_outbound", call=call.pk), {"uuid": agent, "to": "447700900999"})
        ).status_code
        == 200
    )
    start = timezone.now()

    def event(uuid: str, status: str, seconds: float, **extra: Any) -> None:
        inbound = uuid == caller_uuid
        payload = {
            "uuid": uuid,
            "status": status,
            "from": CALLER if inbound else "447700900001",
            "to": "447700900001" if inbound else "447700900999",
            "direction": "inbound" if inbound else "outbound",
            "conversation_uuid": "CON-1" if inbound else "CON-agent",
            "timestamp": (start + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z"),
            **extra,
        }
        assert post_json(client, "/event", payload).status_code == 200

    for leg, offset in ((caller_uuid, 0), (agent, 1)):
        event(leg, "started", offset)
        event(leg, "ringing", offset)
    event(caller_uuid, "answered", 0.1)
    event(agent, "answered", 5)
    begun = (start + timedelta(seconds=5)).isoformat()
    event(agent, "completed", 60, start_time=begun, duration="55", price="0.01", rate="0.01")
    event(caller_uuid, "completed", 60, start_time=start.isoformat(), duration="60", price="0.02", rate="0.01")
    event(caller_uuid, "completed", 60)  # a redelivery
    call.refresh_from_db()
    assert call.outcome == "answered"
    return call


def test_a_whole_call_logs_only_the_last_digits_of_the_callers_number(
    client: Client, summer_number: TrackingNumber, vonage: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    whole_call(client)
    assert client.get("/fallback", {"to": "447700900001", "from": CALLER, "uuid": "caller-2"}).status_code == 200

    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) > 10
    assert not [message for message in messages if CALLER in message]
    assert any("caller=…0123" in message for message in messages)


# --- the call id -----------------------------------------------------------------------------


def test_in_json_mode_every_line_of_a_webhook_names_its_call(
    client: Client,
    summer_number: TrackingNumber,
    vonage: None,
    console: tuple[logging.Handler, io.StringIO],
) -> None:
    handler, buffer = console
    handler.setFormatter(JsonFormatter())

    call = whole_call(client)
    post_json(client, "/event", {"uuid": "not-ours", "status": "started"})  # unmatched: no call

    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    about_the_call = [line for line in lines if f"call={call.pk} " in line["message"] + " "]
    assert len(about_the_call) > 10
    assert all(line["call_id"] == call.pk for line in about_the_call)
    assert {line["message"].split()[0] for line in about_the_call} >= {
        "answer_inbound.waiting",
        "answer_outbound.whisper",
        "event.stored",
        "event.duplicate",
        "call.outcome",
    }
    unmatched = next(line for line in lines if "event.unmatched uuid=not-ours" in line["message"])
    assert "call_id" not in unmatched
    for line in lines:
        assert set(line) <= {"timestamp", "level", "logger", "message", "call_id", "exception", "stack"}
        assert line["timestamp"].endswith("Z") and line["level"] in ("INFO", "WARNING", "ERROR")


def test_the_call_id_stays_inside_its_scope() -> None:
    call_context_set(7)  # outside any scope: nothing to name
    assert current_call_id() is None
    with call_context():
        call_context_set(12)
        assert current_call_id() == 12
        with call_context(13):
            assert current_call_id() == 13
        assert current_call_id() == 12
    assert current_call_id() is None
