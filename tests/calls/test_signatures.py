"""Signed webhooks: with VONAGE_SIGNATURE_SECRET set, only Vonage's signed requests get in."""

import hashlib
import json
import logging
import time
from typing import Any

import jwt
import pytest
import vonage_jwt
from django.core import checks
from django.test import Client
from pytest_django.fixtures import Settings

from calls import vonage_adapter
from calls.models import Call, CallEvent, CallLeg
from calls.signatures import CLOCK_SKEW_SECONDS, InvalidSignature, sign_webhook, verify_webhook
from calls.vonage_adapter import PlacedCall
from campaigns.models import TrackingNumber
from tests.conftest import load_fixture

SECRET = "account-signature-secret-" + "0123456789abcdef" * 3  # 72 bytes: long enough for HS512
ANSWER = load_fixture("vonage/answer_inbound.json")
RINGING = load_fixture("vonage/event_outbound_ringing.json")


@pytest.fixture
def secret(settings: Settings) -> str:
    settings.VONAGE_SIGNATURE_SECRET = SECRET
    return SECRET


@pytest.fixture
def agent_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    placed: list[dict[str, Any]] = []

    def place_call(**kwargs: Any) -> PlacedCall:
        placed.append(kwargs)
        return PlacedCall(uuid="agent-leg", conversation_uuid="CON-agent", sent=True)

    monkeypatch.setattr(vonage_adapter, "place_call", place_call)
    return placed


def rows() -> tuple[int, int, int]:
    return Call.objects.count(), CallLeg.objects.count(), CallEvent.objects.count()


def post_event(client: Client, payload: dict[str, Any], authorization: str | None) -> Any:
    headers = {} if authorization is None else {"Authorization": authorization}
    return client.post("/event", json.dumps(payload), content_type="application/json", headers=headers)


def signed(body: bytes, *, secret: str = SECRET, iat: float | None = None) -> str:
    return "Bearer " + sign_webhook(body=body, secret=secret, iat=iat)


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


# --- over HTTP ----------------------------------------------------------------------------


def test_signed_event_is_accepted(client: Client, db: None, secret: str) -> None:
    response = post_event(client, RINGING, signed(body_of(RINGING)))

    assert response.status_code == 200
    assert CallEvent.objects.count() == 1


def test_signed_answer_by_get_is_accepted(
    client: Client, summer_number: TrackingNumber, agent_calls: list[dict[str, Any]], secret: str
) -> None:
    response = client.get("/answer_inbound", ANSWER, headers={"Authorization": signed(b"")})

    assert response.status_code == 200
    assert response.json()[-1]["action"] == "conversation"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unsigned_answer_is_401_and_rings_nobody(
    client: Client,
    summer_number: TrackingNumber,
    agent_calls: list[dict[str, Any]],
    secret: str,
    caplog: pytest.LogCaptureFixture,
    method: str,
) -> None:
    if method == "GET":
        response = client.get("/answer_inbound", ANSWER)
    else:
        response = client.post("/answer_inbound", json.dumps(ANSWER), content_type="application/json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert rows() == (0, 0, 0)
    assert agent_calls == []
    assert any(
        r.levelno == logging.WARNING and "webhook.refused" in r.getMessage() and "status=401" in r.getMessage()
        for r in caplog.records
    )


def test_unsigned_event_is_401_and_nothing_is_written(client: Client, db: None, secret: str) -> None:
    response = post_event(client, RINGING, None)

    assert response.status_code == 401
    assert rows() == (0, 0, 0)


def test_event_signed_with_another_secret_is_401(client: Client, db: None, secret: str) -> None:
    response = post_event(client, RINGING, signed(body_of(RINGING), secret="someone-elses-signature-secret-0123456789"))

    assert response.status_code == 401
    assert rows() == (0, 0, 0)


def test_event_whose_body_is_not_the_one_signed_is_401(client: Client, db: None, secret: str) -> None:
    tampered = {**RINGING, "status": "completed"}

    response = post_event(client, tampered, signed(body_of(RINGING)))

    assert response.status_code == 401
    assert rows() == (0, 0, 0)


def test_signature_issued_30_seconds_ahead_of_our_clock_is_accepted(client: Client, db: None, secret: str) -> None:
    response = post_event(client, RINGING, signed(body_of(RINGING), iat=time.time() + 30))

    assert response.status_code == 200


def test_signature_issued_two_minutes_in_the_future_is_401(client: Client, db: None, secret: str) -> None:
    response = post_event(client, RINGING, signed(body_of(RINGING), iat=time.time() + 120))

    assert response.status_code == 401
    assert rows() == (0, 0, 0)


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        ("Bearer {token}", 200),
        ("bearer {token}", 200),
        ("BEARER {token}", 200),
        ("  Bearer   {token}  ", 200),
        ("{token}", 401),  # the bare token: Vonage always sends the scheme
        ("Bearer Bearer {token}", 401),
        ("Basic {token}", 401),
        ("Bearer", 401),
        ("Bearer ", 401),
        ("", 401),
    ],
)
def test_bearer_prefix_is_handled(client: Client, db: None, secret: str, authorization: str, status: int) -> None:
    token = sign_webhook(body=body_of(RINGING), secret=SECRET)

    response = post_event(client, RINGING, authorization.format(token=token))

    assert response.status_code == status


def test_without_a_secret_unsigned_webhooks_are_accepted(client: Client, db: None, settings: Settings) -> None:
    settings.VONAGE_SIGNATURE_SECRET = ""

    assert post_event(client, RINGING, None).status_code == 200


# --- verify_webhook -----------------------------------------------------------------------


def test_claims_of_a_valid_signature_are_returned() -> None:
    body = body_of(RINGING)

    claims = verify_webhook(authorization=signed(body), body=body, secret=SECRET, method="POST")

    assert claims["iss"] == "Vonage"
    assert claims["payload_hash"] == hashlib.sha256(body).hexdigest()


def test_get_requests_are_not_held_to_a_payload_hash() -> None:
    # Vonage hashes a compact JSON of the query string for GET; we do not reproduce it.
    token = jwt.encode({"iat": int(time.time()), "payload_hash": "0" * 64}, SECRET, algorithm="HS256")

    verify_webhook(authorization=f"Bearer {token}", body=b"", secret=SECRET, method="GET")


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode({"iat": int(time.time())}, SECRET, algorithm="HS512"),
        jwt.encode({"iat": int(time.time())}, None, algorithm="none"),
        jwt.encode({"jti": "no-iat"}, SECRET, algorithm="HS256"),
        "not.a.jwt",
    ],
    ids=["other-algorithm", "unsigned", "no-iat", "garbage"],
)
def test_tokens_vonage_would_never_send_are_refused(token: str) -> None:
    with pytest.raises(InvalidSignature):
        verify_webhook(authorization=f"Bearer {token}", body=b"{}", secret=SECRET, method="POST")


def test_allowed_clock_skew_is_a_minute() -> None:
    body = body_of(RINGING)

    verify_webhook(
        authorization=signed(body, iat=time.time() + CLOCK_SKEW_SECONDS - 5),
        body=body,
        secret=SECRET,
        method="POST",
    )
    with pytest.raises(InvalidSignature):
        verify_webhook(
            authorization=signed(body, iat=time.time() + CLOCK_SKEW_SECONDS + 5),
            body=body,
            secret=SECRET,
            method="POST",
        )


# --- why not vonage_jwt.verify_signature --------------------------------------------------


def test_sdk_verifier_accepts_a_token_issued_now() -> None:
    token = sign_webhook(body=b"{}", secret=SECRET)

    assert vonage_jwt.verify_signature(token, SECRET) is True


def test_sdk_verifier_raises_on_ordinary_clock_skew_which_is_why_we_do_not_use_it() -> None:
    token = sign_webhook(body=b"{}", secret=SECRET, iat=time.time() + 30)

    with pytest.raises(vonage_jwt.VonageVerifyJwtError):
        vonage_jwt.verify_signature(token, SECRET)


def test_sdk_verifier_raises_on_a_left_on_bearer_prefix() -> None:
    token = sign_webhook(body=b"{}", secret=SECRET)

    with pytest.raises(vonage_jwt.VonageVerifyJwtError):
        vonage_jwt.verify_signature(f"Bearer {token}", SECRET)


# --- the system check ---------------------------------------------------------------------


def test_production_without_a_signature_secret_is_warned_about(settings: Settings) -> None:
    settings.DEBUG = False
    settings.VONAGE_SIGNATURE_SECRET = ""

    assert "calls.W001" in {message.id for message in checks.run_checks()}


def test_production_with_a_signature_secret_is_not_warned_about(settings: Settings) -> None:
    settings.DEBUG = False
    settings.VONAGE_SIGNATURE_SECRET = SECRET

    assert "calls.W001" not in {message.id for message in checks.run_checks()}
