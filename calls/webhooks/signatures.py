"""Vonage's signed webhooks: ``Authorization: Bearer <JWT>``, HS256 with the account's
signature secret, claims ``iat``, ``jti``, ``iss``, ``api_key``, ``application_id`` and
``payload_hash`` (SHA-256 hex of the body).

Vonage's token has no ``exp``: left alone, a captured token is good forever. So a token
authorises exactly one request here:

- the body must match ``payload_hash``, and a body without one is refused;
- ``iat`` may be at most ``max_age`` seconds old (and at most the clock-skew leeway in
  the future);
- its ``jti`` is remembered (``calls.webhooks.replay``) and refused for any *other* request.

We verify with PyJWT directly rather than ``vonage_jwt.verify_signature``: the SDK
raises on an ``iat`` a few seconds in the future (ordinary clock skew between Vonage
and us) and on a token that still carries its ``Bearer`` prefix (VONAGE.md).
"""

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

CLOCK_SKEW_SECONDS = 60


class InvalidSignature(Exception):
    """The request did not come from Vonage, as far as we can tell."""


class MissingSignature(InvalidSignature):
    """No ``Authorization`` header at all. Vonage's docs: on an internal error it may send
    a callback unsigned, and a 5xx answer makes it retry (a 401 does not)."""


@dataclass(frozen=True)
class SignedRequest:
    """What a valid token vouches for: its id and when it was issued."""

    jti: str
    issued_at: float
    claims: dict[str, Any]


def verify_webhook(
    *, authorization: str, body: bytes, secret: str, max_age_seconds: float, now: float | None = None
) -> SignedRequest:
    """Return what the token vouches for, or raise InvalidSignature saying why."""
    if not authorization.strip():
        raise MissingSignature("The request carries no Vonage signature (Authorization: Bearer <JWT>).")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidSignature("The Authorization header is not a Vonage signature (Bearer <JWT>).")
    try:
        claims = jwt.decode(
            token.strip(),
            secret,
            algorithms=["HS256"],
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["iat", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidSignature(f"The Vonage signature is not valid: {exc}.") from exc
    now = time.time() if now is None else now
    issued_at = claims["iat"]
    if not isinstance(issued_at, int | float) or isinstance(issued_at, bool):
        raise InvalidSignature("The Vonage signature's iat is not a time.")
    if issued_at > now + CLOCK_SKEW_SECONDS:
        raise InvalidSignature("The Vonage signature was issued in the future.")
    if now - issued_at > max_age_seconds:
        raise InvalidSignature(
            f"The Vonage signature was issued {int(now - issued_at)} s ago, more than the "
            f"{int(max_age_seconds)} s a signature is accepted for."
        )
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > 100:
        raise InvalidSignature("The Vonage signature's jti is not a token id.")
    payload_hash = claims.get("payload_hash")
    if body:
        if not isinstance(payload_hash, str) or not payload_hash:
            raise InvalidSignature("The request has a body, but the signature does not cover it (no payload_hash).")
        if payload_hash.lower() != hashlib.sha256(body).hexdigest():
            raise InvalidSignature("The body does not match the signature's payload_hash.")
    return SignedRequest(jti=jti, issued_at=float(issued_at), claims=claims)


def request_digest(*, method: str, path: str, query: str, body: bytes) -> str:
    """What makes a request this request: a retry of it has the same digest."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def sign_webhook(
    *, body: bytes, secret: str, iat: float | None = None, api_key: str = "test-key", jti: str | None = None
) -> str:
    """A token as Vonage makes it: for the simulator and the tests."""
    claims = {
        "iat": int(time.time() if iat is None else iat),
        "jti": jti or str(uuid.uuid4()),
        "iss": "Vonage",
        "api_key": api_key,
        "application_id": "simulated",
    }
    if body:
        claims["payload_hash"] = hashlib.sha256(body).hexdigest()
    return jwt.encode(claims, secret, algorithm="HS256")
