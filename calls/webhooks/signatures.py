"""Vonage's signed webhooks: ``Authorization: Bearer <JWT>``, HS256 with the account's
signature secret, claims ``iat``, ``jti``, ``iss``, ``api_key``, ``application_id`` and
``payload_hash`` (SHA-256 hex of the body).

Vonage's token has no ``exp``: left alone, a captured token is good forever. So a token
authorises exactly one request here:

- the body must match ``payload_hash``, and a body without one is refused;
- ``iat`` may be at most ``max_age`` seconds old (and at most the clock-skew leeway in
  the future);
- its ``jti`` is remembered (``calls.webhooks.replay``) and refused for any *other* request.

Not ``vonage_jwt.verify_signature``: the SDK raises on an ``iat`` a few seconds in the
future (ordinary clock skew between Vonage and us) and on a token that still carries
its ``Bearer`` prefix (VONAGE.md). Nor PyJWT's ``jwt.decode``, which this module used
until 2026-12: it checks each character of a token in a Python loop, and took about a
tenth of a whole call's instructions (``benchmarks/instructions.py``: 433 thousand a
webhook). The token is checked here with the standard library, in C where it counts
(``hmac``, ``base64``, ``json``, one regular expression), and refused wherever PyJWT
(``algorithms=["HS256"]``, ``iat`` and ``jti`` required, a minute's leeway) refuses it;
it is stricter in a few places (only ``HS256``, no padding, no ``crit`` or ``b64``
header: nothing Vonage sends). ``tests/calls/test_signatures.py`` holds it to PyJWT's
verdicts on generated tokens. PyJWT still signs (the simulator, the tests).
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

CLOCK_SKEW_SECONDS = 60
# A compact JWS: three base64url segments (RFC 7515, no padding), each non-empty.
_COMPACT_JWS = re.compile(rb"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")


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
    now = time.time() if now is None else now
    claims = hs256_claims(token.strip(), secret=secret, now=now, leeway=CLOCK_SKEW_SECONDS)
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


def hs256_claims(token: str, *, secret: str, now: float, leeway: float) -> dict[str, Any]:
    """The claims of ``token``, an HS256 JWS signed with ``secret``; raises
    InvalidSignature saying why not. ``iat`` and ``jti`` are required; ``exp`` and
    ``nbf``, when there, are checked against ``now`` with ``leeway`` seconds, as PyJWT
    checks them; a token for an audience is refused (none is ours)."""
    match = _COMPACT_JWS.fullmatch(token.encode("ascii", "replace"))
    if match is None:
        raise InvalidSignature("The Vonage signature is not valid: not a compact JWS of three base64url segments.")
    header_segment, payload_segment, signature_segment = match.groups()
    header = _json_object(header_segment, "header")
    if header.get("alg") != "HS256" or "crit" in header or "b64" in header:
        raise InvalidSignature("The Vonage signature is not valid: not an HS256 signature.")
    if "kid" in header and not isinstance(header["kid"], str):
        raise InvalidSignature("The Vonage signature is not valid: its key id is not a string.")
    expected = hmac.new(secret.encode(), header_segment + b"." + payload_segment, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _base64url(signature_segment, "signature")):
        raise InvalidSignature("The Vonage signature is not valid: the signature does not match.")
    claims = _json_object(payload_segment, "payload")
    for required in ("iat", "jti"):
        if claims.get(required) is None:
            raise InvalidSignature(f'The Vonage signature is not valid: it has no "{required}" claim.')
    if _whole_seconds(claims["iat"], "iat") > now + leeway:
        raise InvalidSignature("The Vonage signature is not valid: it was issued in the future (iat).")
    if "nbf" in claims and _whole_seconds(claims["nbf"], "nbf") > now + leeway:
        raise InvalidSignature("The Vonage signature is not valid: it is not yet valid (nbf).")
    if "exp" in claims and _whole_seconds(claims["exp"], "exp") <= now - leeway:
        raise InvalidSignature("The Vonage signature is not valid: it has expired (exp).")
    if claims.get("aud"):
        raise InvalidSignature("The Vonage signature is not valid: it is meant for an audience.")
    for name in ("sub", "jti"):
        if name in claims and not isinstance(claims[name], str):
            raise InvalidSignature(f"The Vonage signature is not valid: its {name} is not a string.")
    return claims


def _base64url(segment: bytes, part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidSignature(f"The Vonage signature is not valid: its {part} is not base64url.") from None


def _json_object(segment: bytes, part: str) -> dict[str, Any]:
    try:
        value = json.loads(_base64url(segment, part))
    except (ValueError, RecursionError):
        raise InvalidSignature(f"The Vonage signature is not valid: its {part} is not JSON.") from None
    if not isinstance(value, dict):
        raise InvalidSignature(f"The Vonage signature is not valid: its {part} is not a JSON object.")
    return value


def _whole_seconds(value: Any, claim: str) -> int:
    """A time claim as PyJWT reads it (``int(value)``): a number, or a string of digits."""
    try:
        return int(value)
    except (ValueError, TypeError, OverflowError):
        raise InvalidSignature(f"The Vonage signature is not valid: its {claim} is not a time.") from None


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
