"""Signed webhooks: with VONAGE_SIGNATURE_SECRET set, only Vonage's signed requests get in."""

import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import jwt
import pytest
import vonage_jwt
from django.core import checks
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pytest_django.fixtures import Settings

from calls import vonage_adapter
from calls.models import Call, CallEvent, CallLeg
from calls.vonage_adapter import PlacedCall
from calls.webhooks.signatures import CLOCK_SKEW_SECONDS, InvalidSignature, hs256_claims, sign_webhook, verify_webhook
from campaigns.models import TrackingNumber
from tests.conftest import load_fixture

_HASH_OF_EMPTY_OBJECT = hashlib.sha256(b"{}").hexdigest()
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
def test_unsigned_answer_is_503_and_rings_nobody(
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

    # No Authorization header at all: Vonage's docs say an internal error may send a
    # callback unsigned, and only a 5xx makes it retry (a 401 would drop the call).
    assert response.status_code == 503
    assert rows() == (0, 0, 0)
    assert agent_calls == []
    assert any(
        r.levelno == logging.WARNING and "webhook.refused" in r.getMessage() and "status=503" in r.getMessage()
        for r in caplog.records
    )


def test_unsigned_event_is_503_and_nothing_is_written(client: Client, db: None, secret: str) -> None:
    response = post_event(client, RINGING, None)

    assert response.status_code == 503
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
        ("", 503),  # no signature at all: answered so that Vonage retries
    ],
)
def test_bearer_prefix_is_handled(client: Client, db: None, secret: str, authorization: str, status: int) -> None:
    token = sign_webhook(body=body_of(RINGING), secret=SECRET)

    response = post_event(client, RINGING, authorization.format(token=token))

    assert response.status_code == status


def test_without_a_secret_unsigned_webhooks_are_accepted_only_by_a_development_server_or_the_unsafe_opt_out(
    client: Client, db: None, settings: Settings
) -> None:
    settings.VONAGE_SIGNATURE_SECRET = ""
    settings.DEBUG, settings.UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS = True, False
    assert post_event(client, RINGING, None).status_code == 200
    settings.DEBUG, settings.UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS = False, True
    assert post_event(client, {**RINGING, "status": "answered"}, None).status_code == 200
    settings.DEBUG, settings.UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS = False, False
    assert post_event(client, {**RINGING, "status": "completed"}, None).status_code == 503
    assert CallEvent.objects.count() == 2


# --- verify_webhook -----------------------------------------------------------------------


def test_claims_of_a_valid_signature_are_returned() -> None:
    body = body_of(RINGING)

    signed_request = verify_webhook(authorization=signed(body), body=body, secret=SECRET, max_age_seconds=300)

    assert signed_request.claims["iss"] == "Vonage"
    assert signed_request.claims["payload_hash"] == hashlib.sha256(body).hexdigest()
    assert signed_request.jti == signed_request.claims["jti"]


def test_a_request_without_a_body_is_not_held_to_a_payload_hash() -> None:
    # Vonage hashes a compact JSON of a GET's query string; a GET has no body to match.
    token = jwt.encode({"iat": int(time.time()), "jti": "j", "payload_hash": "0" * 64}, SECRET, algorithm="HS256")

    verify_webhook(authorization=f"Bearer {token}", body=b"", secret=SECRET, max_age_seconds=300)


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode({"iat": int(time.time())}, SECRET, algorithm="HS512"),
        jwt.encode({"iat": int(time.time())}, None, algorithm="none"),
        jwt.encode({"jti": "no-iat"}, SECRET, algorithm="HS256"),
        jwt.encode({"iat": int(time.time()), "payload_hash": _HASH_OF_EMPTY_OBJECT}, SECRET, algorithm="HS256"),
        jwt.encode({"iat": "soon", "jti": "j", "payload_hash": _HASH_OF_EMPTY_OBJECT}, SECRET, algorithm="HS256"),
        "not.a.jwt",
    ],
    ids=["other-algorithm", "unsigned", "no-iat", "no-jti", "iat-not-a-time", "garbage"],
)
def test_tokens_vonage_would_never_send_are_refused(token: str) -> None:
    with pytest.raises(InvalidSignature):
        verify_webhook(authorization=f"Bearer {token}", body=b"{}", secret=SECRET, max_age_seconds=300)


def test_allowed_clock_skew_is_a_minute() -> None:
    body = body_of(RINGING)

    verify_webhook(
        authorization=signed(body, iat=time.time() + CLOCK_SKEW_SECONDS - 5),
        body=body,
        secret=SECRET,
        max_age_seconds=300,
    )
    with pytest.raises(InvalidSignature):
        verify_webhook(
            authorization=signed(body, iat=time.time() + CLOCK_SKEW_SECONDS + 5),
            body=body,
            secret=SECRET,
            max_age_seconds=300,
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


def test_production_without_a_signature_secret_is_an_error(settings: Settings) -> None:
    settings.DEBUG, settings.UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS = False, False
    settings.VONAGE_SIGNATURE_SECRET = ""

    assert "calls.E005" in {message.id for message in checks.run_checks(include_deployment_checks=True)}


def test_the_unsafe_opt_out_turns_the_error_into_a_warning(settings: Settings) -> None:
    settings.DEBUG, settings.UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS = False, True
    settings.VONAGE_SIGNATURE_SECRET = ""

    ids = {message.id for message in checks.run_checks(include_deployment_checks=True)}
    assert "calls.W001" in ids
    assert "calls.E005" not in ids


def test_production_with_a_signature_secret_is_not_warned_about(settings: Settings) -> None:
    settings.DEBUG = False
    settings.VONAGE_SIGNATURE_SECRET = SECRET

    ids = {message.id for message in checks.run_checks(include_deployment_checks=True)}
    assert "calls.W001" not in ids
    assert "calls.E005" not in ids


# --- the verifier against PyJWT's verdicts --------------------------------------------------

_MISSING = object()
# Times from the moment the token is made, well clear of the minute's leeway on either
# side, so that the two verifiers (PyJWT reads the clock itself) agree whatever the few
# milliseconds between them.
_TIMES = st.sampled_from([-1000, -90, 0, 30, 120, 1000]).map(lambda offset: time.time() + offset)
_CLAIM_VALUES = st.one_of(
    _TIMES,
    _TIMES.map(int),
    _TIMES.map(lambda t: str(int(t))),
    st.sampled_from(["soon", "", None, True, False, [], {}, 1e308, float("nan"), -1]),
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@st.composite
def _tokens(draw: st.DrawFn) -> str:
    """Tokens as a forger might make them: any header, any claims, signed with our secret
    or another, then perhaps damaged."""
    header: dict[str, Any] = {"alg": draw(st.sampled_from(["HS256", "HS256", "HS512", "none", "RS256", "hs256"]))}
    header.update(draw(st.sampled_from([{}, {"typ": "JWT"}, {"kid": "k"}, {"kid": 7}, {"crit": ["exp"]}])))
    claims: dict[str, Any] = {}
    for name, default in (("iat", int(time.time())), ("jti", "j-1")):
        value = draw(st.one_of(st.just(default), st.just(_MISSING), _CLAIM_VALUES, st.integers()))
        if value is not _MISSING:
            claims[name] = value
    for name in ("exp", "nbf"):
        value = draw(st.one_of(st.just(_MISSING), _CLAIM_VALUES))
        if value is not _MISSING:
            claims[name] = value
    claims.update(draw(st.sampled_from([{}, {"aud": "x"}, {"aud": ""}, {"aud": []}, {"sub": 5}, {"sub": "s"}])))
    claims["payload_hash"] = draw(st.sampled_from(["0" * 64, "", None]))
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    key = draw(st.sampled_from([SECRET, SECRET, "another-secret-" + "x" * 40]))
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(signature)}"
    damage = draw(st.sampled_from(["none", "none", "none", "flip", "pad", "drop", "extra", "space", "junk"]))
    if damage == "flip":
        # A position drawn without the token's length, which moves with the clock's digits:
        # what is drawn must not depend on when.
        index = draw(st.integers(min_value=0, max_value=10_000)) % len(token)
        token = token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]
    elif damage == "pad":
        token += "=="
    elif damage == "drop":
        token = token.rsplit(".", 1)[0]
    elif damage == "extra":
        token += ".e30"
    elif damage == "space":
        token = token.replace(".", ". ", 1)
    elif damage == "junk":
        token = draw(st.text(max_size=40))
    return token


def _pyjwt_claims(token: str) -> dict[str, Any] | None:
    try:
        return jwt.decode(
            token, SECRET, algorithms=["HS256"], leeway=CLOCK_SKEW_SECONDS, options={"require": ["iat", "jti"]}
        )
    except (jwt.PyJWTError, ValueError):
        return None


def _our_claims(token: str) -> dict[str, Any] | None:
    try:
        return hs256_claims(token, secret=SECRET, now=time.time(), leeway=CLOCK_SKEW_SECONDS)
    except InvalidSignature:
        return None


@hypothesis_settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tokens())
def test_a_token_is_accepted_only_where_pyjwt_accepts_it(token: str) -> None:
    ours, pyjwt = _our_claims(token), _pyjwt_claims(token)
    if ours is not None:
        assert pyjwt == ours  # never looser, and the same claims
    elif pyjwt is not None:
        # Stricter only where Vonage never goes: padding, or a header naming extensions.
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        assert token.endswith("=") or "crit" in header, token


def test_a_token_vonage_sends_is_accepted_with_its_claims() -> None:
    token = sign_webhook(body=b"{}", secret=SECRET, jti="vonage-1")
    claims = hs256_claims(token, secret=SECRET, now=time.time(), leeway=CLOCK_SKEW_SECONDS)
    assert claims == _pyjwt_claims(token)
    assert claims["jti"] == "vonage-1" and claims["payload_hash"] == hashlib.sha256(b"{}").hexdigest()
