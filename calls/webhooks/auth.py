"""DRF plumbing for the webhooks: signature authentication, body limit, error answers."""

import logging
from collections.abc import Iterable, Mapping
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler

from .. import database_outage
from . import replay
from .signatures import InvalidSignature, MissingSignature, SignedRequest, request_digest, verify_webhook

logger = logging.getLogger(__name__)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than a Vonage webhook can be."
    default_code = "payload_too_large"


class SignatureCheckUnavailable(exceptions.APIException):
    """The signature could not be checked now: Vonage retries a 503."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The request's signature cannot be checked right now; please retry."
    default_code = "signature_check_unavailable"


class ReplayStoreUnavailable(SignatureCheckUnavailable):
    """A valid, fresh signature whose ``jti`` could not be looked up (the database is
    down). The answer routes then give their safe answer, which changes nothing."""


class UnsignedRequest(exceptions.APIException):
    """No ``Authorization`` header at all. Vonage's docs: it may send a callback unsigned on
    an internal error, and a 5xx makes it retry (a 401 would not). Nothing is done."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The request carries no Vonage signature; nothing was done. Vonage retries this."
    default_code = "unsigned"


def signatures_required() -> bool:
    """Whether webhooks must be signed: always, unless this is a development server
    (DEBUG) with no secret, or the operator opted out with a setting named unsafe."""
    if settings.VONAGE_SIGNATURE_SECRET:
        return True
    return not (settings.DEBUG or settings.UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS)


class VonageSignatureAuthentication(BaseAuthentication):
    """Every webhook signed by Vonage, and each signature good for one request only."""

    def authenticate(self, request: Request) -> tuple[None, SignedRequest] | None:
        if not signatures_required():
            return None
        secret = settings.VONAGE_SIGNATURE_SECRET
        if not secret:
            # Safe by default: production without the secret serves no webhook at all
            # (calls.E005 also fails `manage.py check` and the WSGI start).
            logger.error(
                "webhook.refused_unconfigured path=%s: VONAGE_SIGNATURE_SECRET is not set, so no webhook "
                "is accepted (set it, or UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS=true to accept anyone's)",
                request.path,
            )
            raise SignatureCheckUnavailable("Webhooks are refused: this server has no signature secret configured.")
        body = webhook_body(request)
        try:
            signed = verify_webhook(
                authorization=request.META.get("HTTP_AUTHORIZATION", ""),
                body=body,
                secret=secret,
                max_age_seconds=settings.VONAGE_SIGNATURE_MAX_AGE_MINUTES * 60,
            )
        except MissingSignature as exc:
            raise UnsignedRequest() from exc
        except InvalidSignature as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        admission = replay.Admission(
            jti=signed.jti,
            digest=request_digest(
                method=request.method or "GET",
                path=request.path,
                query=request.META.get("QUERY_STRING", ""),
                body=body,
            ),
        )
        view = (request.parser_context or {}).get("view")
        if request.method in getattr(view, "admits_in_first_statement", ()):
            # Remembered by the webhook's own first statement (EventView: in its transaction;
            # AnswerInboundView: the new call's first): nothing is done before it, and a
            # replay changes nothing.
            view.admission = admission  # type: ignore[union-attr]
            return (None, signed)
        signature_admit(request.path, admission)
        return (None, signed)

    def authenticate_header(self, request: Request) -> str:
        # A value here makes DRF answer 401 rather than 403.
        return 'Bearer realm="vonage-webhooks"'


class JSONWhateverTheAccept(DefaultContentNegotiation):
    """Vonage reads an NCCO as JSON whatever its ``Accept`` header says: the webhooks
    answer with their one renderer, never 406 (DRF's default for an ``Accept`` it cannot
    serve, which would leave a caller in silence). Parsers are chosen as DRF chooses them,
    by ``Content-Type``. It also skips parsing ``Accept`` on every request."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


def signature_admit(path: str, admission: replay.Admission) -> None:
    """Remember the signature now, in a statement of its own: refused as a replay when
    used for another request; ``ReplayStoreUnavailable`` when the database is down."""
    try:
        database_outage.check()
        admitted = replay.signed_request_admit(jti=admission.jti, digest=admission.digest)
    except (DatabaseError, database_outage.DatabaseSkipped) as exc:
        database_outage.notice(exc)
        logger.warning("webhook.replay_unchecked path=%s jti=%s: the database is unavailable", path, admission.jti)
        raise ReplayStoreUnavailable() from exc
    if not admitted:
        raise exceptions.AuthenticationFailed(replay.REPLAY_REFUSED)


class WebhookJSONParser(JSONParser):
    """DRF's JSON parser, with a body nested too deeply for Python's decoder (a few
    thousand brackets fit in 64 KiB) refused as malformed instead of crashing."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the body is nested too deeply.") from None


def webhook_body(request: Request) -> bytes:
    """The raw body, refused past ``WEBHOOK_MAX_BODY_BYTES`` before it is parsed."""
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise PayloadTooLarge()
    try:
        body = request._request.body
    except RequestDataTooBig as exc:
        raise PayloadTooLarge() from exc
    if len(body) > limit:
        raise PayloadTooLarge()
    return body


def webhook_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's answer, plus one log line for every refused webhook."""
    response = exception_handler(exc, context)
    request = context.get("request")
    path = request.path if request is not None else "?"
    if response is not None:
        logger.warning("webhook.refused path=%s status=%s detail=%s", path, response.status_code, _detail(exc))
    return response


def _detail(exc: Exception) -> str:
    if isinstance(exc, exceptions.APIException):
        return str(exc.detail)[:300]
    return type(exc).__name__
