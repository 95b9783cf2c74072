"""Vonage's signed webhooks: ``Authorization: Bearer <JWT>``, HS256 with the account's
signature secret, claims ``iat``, ``jti``, ``iss``, ``api_key``, ``application_id`` and
``payload_hash`` (SHA-256 hex of the body).

We verify with PyJWT directly rather than ``vonage_jwt.verify_signature``: the SDK
raises on an ``iat`` a few seconds in the future (ordinary clock skew between Vonage
and us) and on a token that still carries its ``Bearer`` prefix (VONAGE.md).
"""

import hashlib
import time
import uuid
from typing import Any

import jwt

CLOCK_SKEW_SECONDS = 60


class InvalidSignature(Exception):
    """The request did not come from Vonage, as far as we can tell."""


def verify_webhook(*, authorization: str, body: bytes, secret: str, method: str) -> dict[str, Any]:
    """Return the token's claims, or raise InvalidSignature saying why."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidSignature("The request carries no Vonage signature (Authorization: Bearer <JWT>).")
    try:
        claims = jwt.decode(
            token.strip(),
            secret,
            algorithms=["HS256"],
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["iat"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidSignature(f"The Vonage signature is not valid: {exc}.") from exc
    if claims.get("iat", 0) > time.time() + CLOCK_SKEW_SECONDS:
        raise InvalidSignature("The Vonage signature was issued in the future.")
    # For GET, Vonage hashes a compact JSON of the query string, which is fragile to
    # reproduce; the hash is only checked for bodies.
    payload_hash = claims.get("payload_hash")
    if method != "GET" and body and payload_hash and payload_hash != hashlib.sha256(body).hexdigest():
        raise InvalidSignature("The body does not match the signature's payload_hash.")
    return claims


def sign_webhook(*, body: bytes, secret: str, iat: float | None = None, api_key: str = "test-key") -> str:
    """A token as Vonage makes it: for the simulator and the tests."""
    claims = {
        "iat": int(time.time() if iat is None else iat),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "api_key": api_key,
        "application_id": "simulated",
    }
    if body:
        claims["payload_hash"] = hashlib.sha256(body).hexdigest()
    return jwt.encode(claims, secret, algorithm="HS256")
