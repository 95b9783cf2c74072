"""DRF plumbing for the webhooks: signature authentication, body limit, error answers."""

import logging
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler

from .signatures import InvalidSignature, verify_webhook

logger = logging.getLogger(__name__)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than a Vonage webhook can be."
    default_code = "payload_too_large"


class VonageSignatureAuthentication(BaseAuthentication):
    """When ``VONAGE_SIGNATURE_SECRET`` is set, every webhook must be signed by Vonage."""

    def authenticate(self, request: Request) -> tuple[None, dict[str, Any]] | None:
        secret = settings.VONAGE_SIGNATURE_SECRET
        if not secret:
            return None
        try:
            claims = verify_webhook(
                authorization=request.META.get("HTTP_AUTHORIZATION", ""),
                body=webhook_body(request),
                secret=secret,
                method=request.method or "GET",
            )
        except InvalidSignature as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        return (None, claims)

    def authenticate_header(self, request: Request) -> str:
        # A value here makes DRF answer 401 rather than 403.
        return 'Bearer realm="vonage-webhooks"'


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
