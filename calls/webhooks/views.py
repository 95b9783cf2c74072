"""Vonage's webhooks: verify, parse, dispatch, write once.

The answer routes must answer within Vonage's 5-second budget with a valid NCCO and
never with a 500 (a 500 is not retried: the call goes to the fallback or is dropped),
so anything unexpected there is logged and answered safely: the caller with the call
centre, directly; the agent with a sentence saying the call could not be connected.
"""

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django.core.exceptions import SuspiciousOperation
from django.db import DatabaseError
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, serializers
from rest_framework.parsers import FormParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import agent_dispatch, callbacks, database_outage, events, services
from .. import ncco as nccos
from ..logging import call_context
from ..ncco import Ncco
from . import openapi as api
from . import overload, replay, spool
from .auth import (
    JSONWhateverTheAccept,
    ReplayStoreUnavailable,
    VonageSignatureAuthentication,
    WebhookJSONParser,
    signature_admit,
    webhook_body,
)
from .callback_urls import CALLBACK_PARAMS, SIGNATURE_PARAM, InvalidCallbackSignature, callback_params
from .serializers import (
    AnswerInboundSerializer,
    AnswerOutboundSerializer,
    EventContextSerializer,
    EventSerializer,
    FallbackSerializer,
    storable,
    validated,
)
from .signatures import SignedRequest

logger = logging.getLogger(__name__)

OWN_QUERY_KEYS = frozenset((*CALLBACK_PARAMS, SIGNATURE_PARAM))


class VonageWebhook(APIView):
    authentication_classes = [VonageSignatureAuthentication]
    permission_classes: list[Any] = []
    parser_classes = [WebhookJSONParser, FormParser]
    content_negotiation_class = JSONWhateverTheAccept
    input_serializer: type[serializers.Serializer]
    # This route's URL name: our own parameters on it are signed for it (callback_urls).
    route: str
    # The request's fields, once parsed: for answering after an error.
    payload: dict[str, Any]
    # Our own parameters from the query string (call, attempt, checkpoint), verified.
    callback: dict[str, str]
    # The methods whose signature the webhook's own first statement remembers (auth.py):
    # then ``admission`` is set, and the handler passes it on; else it is remembered in
    # authentication, in a statement of its own.
    admits_in_first_statement: frozenset[str] = frozenset()
    admission: replay.Admission | None = None

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # Log lines carry the call's id once a service has looked the call up.
        with call_context():
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        webhook_body(request)  # 413 before anything else reads it
        _query_readable(request)  # 400 for more parameters than any webhook has
        super().initial(request, *args, **kwargs)
        # DRF authenticates lazily; make a missing or bad signature fail here, first.
        request.user  # noqa: B018
        try:
            self.callback = callback_params(self.route, request.query_params)
        except InvalidCallbackSignature as exc:
            logger.warning(
                "webhook.callback_refused path=%s query=%s: %s",
                request.path,
                request.META.get("QUERY_STRING", "")[:300],
                exc,
            )
            raise exceptions.PermissionDenied(f"{exc} Nothing was done.") from None

    def get(self, request: Request) -> Response:
        self.payload = self.query_fields(request)
        return self.handle(request, self.payload)

    def query_fields(self, request: Request) -> dict[str, Any]:
        """A GET webhook's fields: the query string Vonage built, less our own parameters."""
        return vonage_fields(request.query_params)

    def post(self, request: Request) -> Response:
        # Only the body: Vonage's signature covers it, never the query string, which
        # carries nothing but our own (signed) parameters.
        self.payload = _body_fields(request)
        return self.handle(request, self.payload)

    def validated(self, data: dict[str, Any]) -> dict[str, Any]:
        return validated(self.input_serializer, data)

    def handle(self, request: Request, data: dict[str, Any]) -> Response:
        raise NotImplementedError


class AnswerWebhook(VonageWebhook):
    """An answer route: a valid NCCO whatever happens, 4xx only for bad requests."""

    log_name = "answer"

    def handle(self, request: Request, data: dict[str, Any]) -> Response:
        database_outage.check()  # answered by handle_exception at once
        return self.answer(request, data)

    def answer(self, request: Request, data: dict[str, Any]) -> Response:
        raise NotImplementedError

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ReplayStoreUnavailable):
            # A valid, fresh signature whose jti could not be looked up (the database is
            # down): initial() stopped there, so read the request as it would have. The
            # safe answer changes nothing, and the spool's idempotent writes record an
            # identical request (Vonage's retry, or a replay) once.
            self._read_after_signature()
        elif isinstance(exc, exceptions.APIException):
            return super().handle_exception(exc)
        payload = getattr(self, "payload", None) or {}
        database_outage.notice(exc)
        _log_failure(
            exc,
            "%s.unexpected_error uuid=%s call=%s error=%s: answering with a safe default",
            self.log_name,
            payload.get("uuid"),
            payload.get("call"),
            type(exc).__name__,
        )
        ncco = self.safe_ncco()
        if _database_failed(exc) and hasattr(self, "payload"):
            route, fields, query = self.spooled()
            spool.write(route=route, payload=fields, query=query, answered=ncco)
        return Response(ncco)

    def _read_after_signature(self) -> None:
        """The fields and our parameters, as ``initial`` and ``get``/``post`` read them;
        nothing (no ``payload``: not spooled) when either is refused."""
        try:
            get = self.request.method == "GET"
            payload = self.query_fields(self.request) if get else _body_fields(self.request)
            self.callback = callback_params(self.route, self.request.query_params)
        except (exceptions.APIException, InvalidCallbackSignature):
            return
        self.payload = payload

    def spooled(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """What is kept of this request while the database is unreachable (calls/webhooks/spool.py):
        the route it is recorded as, its fields and our URL's parameters."""
        return self.spool_route, self.payload, getattr(self, "callback", {})

    spool_route = spool.CALLER_ANSWER

    def safe_ncco(self) -> Ncco:
        """The caller is connected to the call centre directly, from the number dialled
        (a POSTed answer carries ``to`` in its body, not the query string)."""
        payload = getattr(self, "payload", None)
        if payload is None:
            payload = vonage_fields(self.request.query_params) if getattr(self, "request", None) else {}
        return services.safe_default_ncco(to=str(payload.get("to") or ""))


@api.caller_answer_schema("answer_inbound", AnswerInboundSerializer, summary="A caller dialled a campaign number")
class AnswerInboundView(AnswerWebhook):
    input_serializer = AnswerInboundSerializer
    route = "calls:answer_inbound"
    log_name = "answer_inbound"
    # The signature is remembered by the new call's first statement (statements.call_start).
    admits_in_first_statement = frozenset({"GET", "POST"})

    def answer(self, request: Request, data: dict[str, Any]) -> Response:
        fields = self.validated(data)
        shed = overload.shed_reason(request.META)
        if shed is not None:
            if self.admission is not None:
                # No call is started: the signature is remembered on its own, as before a
                # shed answer it always was (a replay is refused; the database down gives
                # the same safe answer, spooled by handle_exception).
                signature_admit(request.path, self.admission)
            ncco = services.safe_default_ncco(to=fields["to"])
            # Kept for reconcile_calls to record; if it cannot be kept (no spool, or a
            # failed write), the caller is answered in full instead: late rather than lost.
            # Its one warning is the one below (DEBUG for the spool's own line).
            kept = spool.write(
                route=spool.CALLER_ANSWER,
                payload=self.payload,
                query={},
                answered=ncco,
                reason=shed,
                level=logging.DEBUG,
            )
            if kept:
                marked = overload.conversation_shed_mark(fields["conversation_uuid"])
                logger.warning(
                    "answer_inbound.shed uuid=%s conversation=%s: %s Kept in the spool for reconcile_calls. %s",
                    fields["uuid"],
                    fields["conversation_uuid"],
                    shed,
                    "Its events are kept in the spool too." if marked else "Its events are recorded as they come.",
                )
                return Response(ncco)
        # Vonage's retry of a shed answer, answered in full: its events drive this call now.
        overload.conversation_shed_forget(fields["conversation_uuid"])
        try:
            ncco = services.call_answer_inbound(
                uuid=fields["uuid"],
                to=fields["to"],
                from_=fields["from"],
                conversation_uuid=fields["conversation_uuid"],
                region_url=fields["region_url"],
                admission=self.admission,
            )
        except replay.Replayed as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        return Response(ncco)


@api.placed_call_answer_schema("answer_outbound", summary="The agent answered the call we placed")
class AnswerOutboundView(AnswerWebhook):
    input_serializer = AnswerOutboundSerializer
    route = "calls:answer_outbound"
    log_name = "answer_outbound"
    spool_route = spool.AGENT_ANSWER
    # The signature is remembered by the answer's first statement, the call's locked read.
    admits_in_first_statement = frozenset({"GET", "POST"})

    def safe_ncco(self) -> Ncco:
        # This is the agent's leg: the caller's default (connect to the call centre)
        # would ring a second agent from the first one's phone.
        return nccos.agent_hears_call_failed()

    def answer(self, request: Request, data: dict[str, Any]) -> Response:
        # The call and attempt are ours, from the signed URL: never from Vonage's fields.
        fields = self.validated({**data, **self.callback})
        try:
            ncco = self.answer_leg(fields)
        except replay.Replayed as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        except services.CallNotFound:
            logger.warning("%s.unknown_call call=%s uuid=%s", self.log_name, fields["call"], fields["uuid"])
            raise exceptions.NotFound(f"There is no call {fields['call']}.") from None
        return Response(ncco)

    def answer_leg(self, fields: dict[str, Any]) -> Ncco:
        return services.call_answer_agent(
            call_id=fields["call"],
            uuid=fields["uuid"],
            conversation_uuid=fields["conversation_uuid"],
            region_url=fields["region_url"],
            attempt=fields.get("attempt"),
            admission=self.admission,
        )


@api.placed_call_answer_schema(
    "answer_callback", summary="The staff member answered the call-back we placed to their own phone"
)
class AnswerCallbackView(AnswerOutboundView):
    """A call-back (calls/callbacks.py): the staff leg's answer is the whisper, then the
    caller rung. The call is ours, from the signed URL; the staff member's own phone is
    never connected to the call centre (the agent's safe answer)."""

    route = "calls:answer_callback"
    log_name = "answer_callback"
    admits_in_first_statement = frozenset()  # remembered in authentication

    def answer_leg(self, fields: dict[str, Any]) -> Ncco:
        return callbacks.callback_answer(
            call_id=fields["call"],
            uuid=fields["uuid"],
            conversation_uuid=fields["conversation_uuid"],
            region_url=fields["region_url"],
        )


@api.caller_answer_schema(
    "fallback",
    FallbackSerializer,
    summary="Vonage could not use the answer URL, or an event URL that returns an NCCO: the call must go on",
    responses=api.FALLBACK_RESPONSES,
)
class FallbackView(AnswerWebhook):
    """Vonage's ``fallback_answer_url``: used for an answer webhook *and* for any event
    whose answer is an NCCO (an ``input``, a ``notify``, a synchronous ``connect``
    event) once the original URL failed twice. The request carries the original's
    fields plus ``reason`` and ``original_request {url, type}`` (VONAGE.md), so it is
    answered by the original route's own view, with the original URL's parameters:
    a fallen-back agent ``input`` is not a caller dialling in."""

    input_serializer = FallbackSerializer
    route = "calls:fallback"
    log_name = "fallback"

    def query_fields(self, request: Request) -> dict[str, Any]:
        # A GET fallback (an application set up before vonage_setup POSTed): the original's
        # nested fields (``original_request``, an input's ``dtmf``, a notify's ``payload``)
        # come in the query string, as JSON text or as ``name[key]`` fields.
        return _unflatten(vonage_fields(request.query_params))

    def answer(self, request: Request, data: dict[str, Any]) -> Response:
        original = original_request(data)
        view_class = {"answer_outbound": AnswerOutboundView, "event": EventView}.get(original.route)
        if view_class is None:
            fields = self.validated(data)
            return Response(
                services.call_answer_fallback(
                    uuid=fields["uuid"], to=fields["to"], from_=fields["from"], reason=fields["reason"]
                )
            )
        logger.warning(
            "fallback.dispatch route=%s uuid=%s reason=%s", original.route, data.get("uuid"), data.get("reason")
        )
        view = view_class()
        view.request, view.args, view.kwargs, view.headers = request, (), {}, {}
        view.format_kwarg = None
        # Our parameters from the original URL only (never the body's), and only as we
        # signed them for the original route: a fallback is no way around callback_urls.
        try:
            view.callback = callback_params(view_class.route, original.query)
        except InvalidCallbackSignature as exc:
            logger.warning("fallback.callback_refused route=%s: %s", original.route, exc)
            raise exceptions.PermissionDenied(f"{exc} Nothing was done.") from None
        # The original's body, as the original route read it: Vonage's fields, without the
        # fallback's own.
        view.payload = {key: value for key, value in data.items() if key not in (*FALLBACK_FIELDS, *OWN_QUERY_KEYS)}
        try:
            return view.handle(request, view.payload)
        except exceptions.APIException:
            raise
        except Exception as exc:
            if isinstance(view, AnswerWebhook):
                return view.handle_exception(exc)
            raise  # answered by self.handle_exception, as the original leg needs (safe_ncco)

    def spooled(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """Kept as the original request: the route and parameters of its URL."""
        original = original_request(self.payload)
        fields = {key: value for key, value in self.payload.items() if key not in FALLBACK_FIELDS}
        try:
            ours = callback_params(f"calls:{original.route}", original.query) if original.route else {}
        except InvalidCallbackSignature:
            ours = {}  # not our parameters: kept without them
        if original.route == "answer_outbound":
            return spool.AGENT_ANSWER, fields, ours
        if original.route == "event":
            route = spool.CHECKPOINT if "checkpoint" in ours else spool.EVENT
            return route, fields, ours
        return spool.CALLER_ANSWER, fields, {}

    def safe_ncco(self) -> Ncco:
        """After an unexpected error, the safe answer for the leg the original request
        was about: an agent's phone is never connected to anyone but its caller."""
        payload = getattr(self, "payload", None) or {}
        original = original_request(payload)
        if original.route == "answer_outbound" or (original.route == "event" and "dtmf" in payload):
            return nccos.agent_hears_call_failed()
        if original.route == "event" and not ("checkpoint" in original.query or "attempt" in original.query):
            return []  # an event whose answer nobody runs
        if original.route == "event":
            return services.safe_default_ncco(to="")
        return super().safe_ncco()


# The fields Vonage adds to a request it sends to the fallback URL.
FALLBACK_FIELDS = ("reason", "original_request")


@dataclass(frozen=True)
class OriginalRequest:
    """Which of our routes a fallen-back request was meant for, and its URL's parameters."""

    route: str  # "answer_inbound", "answer_outbound", "event", or "" when not known
    query: dict[str, Any]


def original_request(data: dict[str, Any]) -> OriginalRequest:
    """Read ``original_request {url, type}`` from a fallback request: an object in a JSON
    body (a GET's query string is read into the same shape by ``_unflatten``).

    The route is told by the URL's path (ours end in the route's name); ``type`` (an
    answer or an event) decides when the path is not one of ours.
    """
    original = data.get("original_request")
    if not isinstance(original, dict):
        return OriginalRequest(route="", query={})
    url = original.get("url")
    if not isinstance(url, str) or not url:
        return OriginalRequest(route="", query={})
    try:
        parts = urlsplit(url)
    except ValueError:
        return OriginalRequest(route="", query={})
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    path = parts.path.rstrip("/")
    for route in ("answer_inbound", "answer_outbound", "event"):
        if path.endswith(reverse(f"calls:{route}").rstrip("/")):
            return OriginalRequest(route=route, query=query)
    kind = str(original.get("type") or "").lower()
    return OriginalRequest(route="event" if kind == "event" else "", query=query)


@extend_schema_view(
    get=extend_schema(
        operation_id="event_get",
        tags=api.TAGS,
        summary="Something happened on a leg (event method GET)",
        parameters=[EventSerializer, EventContextSerializer],
        responses=api.EVENT_RESPONSES,
    ),
    post=extend_schema(
        operation_id="event_post",
        tags=api.TAGS,
        summary="Something happened on a leg: every status, key press, recording and error",
        parameters=[EventContextSerializer],
        request=EventSerializer,
        responses=api.EVENT_RESPONSES,
    ),
)
class EventView(VonageWebhook):
    """Every event Vonage posts. Answered 200 with a small receipt, except where
    Vonage runs our answer as an NCCO: an agent's key press (press 1 to accept) and
    the connect strategy's synchronous events (``?call=&attempt=`` on its eventUrl)."""

    input_serializer = EventSerializer
    route = "calls:event"
    # A POSTed event's signature is remembered by the event's own first statement, in its
    # transaction (calls/events.py), not in a statement and transaction of its own.
    admits_in_first_statement = frozenset({"POST"})

    def get(self, request: Request) -> Response:
        if isinstance(request.auth, SignedRequest):
            # Vonage's signature covers a body, not a query string: a signed GET event's
            # fields are not bound to its token (VONAGE.md). vonage_setup makes it POST.
            logger.warning("event.refused_signed_get path=%s", request.path)
            raise exceptions.ParseError("Signed events must be POSTed: a GET event's fields are not signed.")
        return super().get(request)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ReplayStoreUnavailable):
            # The database is down: an event Vonage runs as an NCCO still gets the answer
            # it would get without the database (changing nothing); others a 503.
            try:
                callback = callback_params(self.route, self.request.query_params)
                body = _body_fields(self.request) if self.request.method == "POST" else {}
            except (InvalidCallbackSignature, exceptions.APIException):
                callback, body = {}, {}  # nothing of it is ours to keep
            ncco = _ncco_without_database(callback, body)
            if body:
                route = spool.CHECKPOINT if "checkpoint" in callback else spool.EVENT
                spool.write(route=route, payload=body, query=callback, answered=ncco)
            if ncco is not None:
                return Response(ncco)
            _log_failure(
                exc,
                "event.not_stored call=%s uuid=%s status=%s: its signature cannot be checked without the database",
                callback.get("call"),
                body.get("uuid") or body.get("call_uuid"),
                body.get("status"),
            )
            return Response({"detail": "The event could not be stored; please retry."}, status=503)
        return super().handle_exception(exc)

    def handle(self, request: Request, data: dict[str, Any]) -> Response:
        overload.backlog_note(request.META)
        # Most events carry none of our parameters (a status event's URL is the bare route).
        context = validated(EventContextSerializer, self.callback) if self.callback else {}
        call_id, attempt = context.get("call"), context.get("attempt")
        if context.get("checkpoint"):
            # A notify's body is the payload we chose; our query string names the call.
            return self.checkpoint(call_id, data)
        self.validated(data)
        if call_id is None and self.shed_event_spooled(request, data):
            return Response({"stored": True, "kind": "status"}, status=200)
        try:
            database_outage.check()
            receipt = events.event_record(
                payload=data, call_id=call_id, attempt=attempt, defer=True, admission=self.admission
            )
        except replay.Replayed as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        except Exception as exc:
            database_outage.notice(exc)
            _log_failure(
                exc,
                "event.not_stored call=%s uuid=%s status=%s",
                call_id,
                data.get("uuid") or data.get("call_uuid"),
                data.get("status"),
            )
            if _database_failed(exc):
                spool.write(route=spool.EVENT, payload=data, query=self.callback)
            ncco = _ncco_without_database({"attempt": str(attempt)} if attempt is not None else {}, data)
            if ncco is not None:
                return Response(ncco)
            # Not a 500, and the event is named in the log. Vonage may not send it again (it
            # retries an event only on a timeout): reconcile_calls asks Vonage for the leg's state.
            return Response({"detail": "The event could not be stored; please retry."}, status=503)
        # Vonage waits for an input's answer: the REST work it decided runs after it.
        agent_dispatch.after_answer(receipt.after_answer, call_id=receipt.call_id)
        if receipt.ncco is not None:
            return Response(receipt.ncco)
        if receipt.kind == "input":
            logger.warning("event.input_for_unknown_call call=%s uuid=%s", call_id, data.get("uuid"))
            return Response(nccos.agent_hears_caller_moved_on())
        return Response({"stored": receipt.stored, "kind": receipt.kind}, status=200)

    def shed_event_spooled(self, request: Request, data: dict[str, Any]) -> bool:
        """A status event of a caller shed under overload (calls/webhooks/overload.py):
        kept in the spool with its call, to be recorded by reconcile_calls, its signature
        remembered now (a replay of it is refused as anywhere else). False, to record it
        now, for any other event, or when the spool cannot keep it."""
        conversation = str(data.get("conversation_uuid") or "")
        if events.event_kind(data) != "status" or not overload.conversation_shed(conversation):
            return False
        if self.admission is not None:
            signature_admit(request.path, self.admission)
        return spool.write(
            route=spool.EVENT, payload=data, query=self.callback, reason="its caller was shed", level=logging.DEBUG
        )

    def checkpoint(self, call_id: int | None, data: dict[str, Any]) -> Response:
        """The caller's ``notify`` after the greeting: 204 (an empty answer) lets Vonage
        go on to the hold; an NCCO replaces it (agent_dispatch). Vonage wraps the payload
        of our NCCO: ``{conversation_uuid, payload: {"checkpoint": "agent"}, timestamp}``."""
        if call_id is None:
            raise exceptions.ValidationError({"call": "The checkpoint needs the call's id."})
        ours = data.get("payload")
        if ours is not None and (
            not isinstance(ours, dict) or ours.get("checkpoint", agent_dispatch.CHECKPOINT) != agent_dispatch.CHECKPOINT
        ):
            raise exceptions.ValidationError(
                {"payload": "A notify's payload must be the object our NCCO gave it: the agent checkpoint."}
            )
        if not storable(data):
            unstorable = "A checkpoint may not contain NUL characters, unpaired surrogates or non-finite numbers."
            raise exceptions.ValidationError({"non_field_errors": [unstorable]})
        try:
            database_outage.check()
            ncco = agent_dispatch.checkpoint_answer(call_id=call_id, body=data, admission=self.admission)
        except replay.Replayed as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        except Exception as exc:
            database_outage.notice(exc)
            _log_failure(exc, "checkpoint.failed call=%s: connecting the caller directly", call_id)
            ncco = services.safe_default_ncco(to="")
            if _database_failed(exc):
                spool.write(route=spool.CHECKPOINT, payload=data, query=self.callback, answered=ncco)
            return Response(ncco)
        if ncco is None:
            return Response(status=204)
        return Response(ncco)


def _ncco_without_database(callback: dict[str, str], data: dict[str, Any]) -> Ncco | None:
    """An event Vonage runs our answer to, when the database cannot be used: never leave
    the leg in silence. The caller's checkpoint or a connect event: the call centre,
    directly; an agent's key press: declined (the caller is passed on). None for others."""
    if "checkpoint" in callback or "attempt" in callback:
        return services.safe_default_ncco(to="")
    if "dtmf" in data:
        return nccos.agent_declined()
    return None


def _database_failed(exc: Exception) -> bool:
    """The request could not be written: the database was skipped or failed, or could not
    even check the signature's jti (not a bug, which a replay would only repeat)."""
    return isinstance(exc, database_outage.DatabaseSkipped | DatabaseError | ReplayStoreUnavailable)


def _log_failure(exc: Exception, message: str, *args: object) -> None:
    """With the traceback, unless the database was skipped on purpose (database_outage)."""
    if isinstance(exc, ReplayStoreUnavailable):
        # The signature's jti could not be looked up: say why, as for any other write.
        exc = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
        if not isinstance(exc, database_outage.DatabaseSkipped):
            logger.warning(message + " (database unavailable: %s)", *args, type(exc).__name__)
            return
    if isinstance(exc, database_outage.DatabaseSkipped):
        logger.warning(message + " (database skipped: it could not be reached moments ago)", *args)
    else:
        logger.exception(message, *args)


def vonage_fields(query: Any) -> dict[str, Any]:
    """A GET webhook's fields: the query string Vonage built, less our own parameters."""
    return {key: query.get(key) for key in query if key not in OWN_QUERY_KEYS}


def _body_fields(request: Request) -> dict[str, Any]:
    data = request.data
    if hasattr(data, "dict"):
        # A form body: a QueryDict is a dict of lists; take each field's value.
        data = data.dict()
    if not isinstance(data, dict):
        raise exceptions.ParseError("The body must be a JSON object.")
    return dict(data)


def _query_readable(request: Request) -> None:
    """Django refuses to parse more than DATA_UPLOAD_MAX_NUMBER_FIELDS parameters with a
    SuspiciousOperation; here that is a plain 400, never the safe answer of an error."""
    try:
        request._request.GET  # noqa: B018
    except SuspiciousOperation as exc:
        raise exceptions.ParseError(f"The query string cannot be read: {exc}") from None


def _unflatten(fields: dict[str, Any]) -> dict[str, Any]:
    """A query string's fields with nested objects rebuilt: ``dtmf[digits]=1`` and
    ``dtmf={"digits": "1"}`` both become ``{"dtmf": {"digits": "1"}}``."""
    nested: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, str) and value.startswith("{"):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        names = key.replace("]", "").split("[") if "[" in key and key.endswith("]") else [key]
        target = nested
        for name in names[:-1]:
            inner = target.get(name)
            if not isinstance(inner, dict):
                inner = target[name] = {}
            target = inner
        target[names[-1]] = value
    return nested
