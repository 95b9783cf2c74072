"""A local TLS fake of Vonage's Voice REST API, for tests, benchmarks and the simulator.

The ``vonage`` SDK always builds ``https://{api_host}{path}`` (VONAGE.md), so the fake
serves TLS on 127.0.0.1 with a throwaway ``trustme`` CA: point ``VONAGE_API_HOST`` at
:attr:`FakeVonageAPI.host` and ``REQUESTS_CA_BUNDLE`` at :attr:`FakeVonageAPI.ca_bundle_path`.

Routes, shaped like Vonage's:

- ``POST /v1/calls``: create an outbound call → 201 ``{uuid, status, direction, conversation_uuid}``
- ``PUT /v1/calls/{uuid}``: hangup, transfer, mute, unmute, earmuff, unearmuff → 204
- ``GET /v1/calls/{uuid}``: the call's record → 200
- ``GET /v1/calls``: the calls, ``_embedded.calls``, filtered by ``conversation_uuid``/``status``
- ``POST /sms/json``: Vonage's SMS API (form-encoded, the account's API key and secret) →
  200 with ``message-count`` and ``messages``; a refused message is a 200 too, with a
  non-zero ``status`` and an ``error-text`` (bad credentials, a bad number, or one injected
  with :meth:`FakeVonageAPI.reject_sms`)

With ``calls_per_second`` (``--calls-per-second``) the fake enforces the account's limit
on new outbound calls as Vonage does (VONAGE.md: about 3 a second, create-calls and
``connect`` actions alike): a token bucket holding ``calls_per_second`` tokens, refilled
at that rate; a ``POST /v1/calls`` without a token is answered 429 and creates nothing
(:attr:`FakeVonageAPI.rate_limited` counts them), and the simulator takes a token for each
``connect`` it runs (:meth:`FakeVonageAPI.new_call_allowed`).

Every request is recorded (:attr:`FakeVonageAPI.requests`), the application JWT is
verified when a public key is given, and faults can be injected per route at run time:
latency, an error status for the next N requests or a share of them, a hang past the
client's timeout, and a connection dropped after the request was acted on.

Imported only by tests, benchmarks and dev tools, never on the request path::

    python -m devtools.fake_vonage_api --port 8443 --latency-ms 200
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid as uuid_lib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
import trustme

Route = Literal["create", "update", "get", "list", "sms"]
ROUTES: tuple[Route, ...] = ("create", "update", "get", "list", "sms")

UPDATE_ACTIONS = frozenset({"hangup", "transfer", "mute", "unmute", "earmuff", "unearmuff"})
TERMINAL_STATUSES = frozenset({"completed", "busy", "cancelled", "unanswered", "rejected", "failed", "timeout"})
# E.164 digits without "+", as Vonage wants them (the SDK's own PhoneNumber pattern).
_NUMBER = re.compile(r"^[1-9]\d{6,14}$")
_CALL_PATH = re.compile(r"^/v1/calls/(?P<uuid>[^/]+)/?$")
_SMS_PATH = "/sms/json"
# The SMS API's own status codes (its answer is HTTP 200 either way).
SMS_THROTTLED = "1"
SMS_MISSING_PARAMS = "2"
SMS_INVALID_PARAMS = "3"
SMS_INVALID_CREDENTIALS = "4"

# Vonage's error bodies: RFC 7807-style, ``type`` pointing at the error catalogue.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad Request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not Found"),
    405: ("method-not-allowed", "Method Not Allowed"),
    429: ("throttled", "Too Many Requests"),
    500: ("internal-error", "Internal Server Error"),
    502: ("bad-gateway", "Bad Gateway"),
    503: ("service-unavailable", "Service Unavailable"),
    504: ("gateway-timeout", "Gateway Timeout"),
}


@dataclass
class RecordedRequest:
    """One request as the fake received it, and what it did about it."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    time: float  # time.monotonic() when it arrived
    route: Route | None
    # Filled in once answered: the status sent, or None when the fake hung or dropped.
    status: int | None = None
    fault: str = ""  # "", "status", "hang", "drop", "sms" (refused) or "rate" (over calls_per_second)
    jwt_claims: dict[str, Any] | None = None

    @property
    def action(self) -> str:
        """For ``PUT /v1/calls/{uuid}``: the action asked for."""
        return str(self.json.get("action", "")) if isinstance(self.json, dict) else ""

    @property
    def call_uuid(self) -> str:
        return _uuid_in(self.path)


@dataclass
class FakeCall:
    """A call the fake created, with the fields Vonage reports for it."""

    uuid: str
    conversation_uuid: str
    to: dict[str, Any]
    from_: dict[str, Any]
    answer_url: list[str] | None
    ncco: list[dict[str, Any]] | None
    event_url: list[str] | None
    status: str = "started"
    direction: str = "outbound"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    start_time: datetime | None = None
    end_time: datetime | None = None
    rate: str | None = None
    price: str | None = None
    duration: str | None = None
    network: str | None = None
    transfers: list[dict[str, Any]] = field(default_factory=list)

    def as_vonage(self) -> dict[str, Any]:
        """The record ``GET /v1/calls/{uuid}`` answers (times as ``YYYY-MM-DD HH:MM:SS``)."""
        record: dict[str, Any] = {
            "_links": {"self": {"href": f"/v1/calls/{self.uuid}"}},
            "uuid": self.uuid,
            "conversation_uuid": self.conversation_uuid,
            "to": dict(self.to),
            "from": dict(self.from_),
            "status": self.status,
            "direction": self.direction,
            "rate": self.rate,
            "price": self.price,
            "duration": self.duration,
            "start_time": _vonage_time(self.start_time),
            "end_time": _vonage_time(self.end_time),
            "network": self.network,
        }
        return {key: value for key, value in record.items() if value is not None}


@dataclass
class _Fault:
    kind: Literal["status", "hang", "drop", "sms"]
    status: int = 0
    sms_status: str = ""  # kind "sms": the SMS API's refusal, answered with HTTP 200
    error_text: str = ""
    remaining: int | None = None  # None: every matching request
    share: float = 1.0


class FakeVonageAPI:
    """Vonage's Voice REST API on ``https://127.0.0.1:<port>``; a context manager.

    ``public_key`` (PEM) makes the fake verify each request's ``Authorization: Bearer``
    JWT as RS256 and answer 401 otherwise, as Vonage does for bad credentials;
    ``application_id`` also requires the token's ``application_id`` claim to match.
    ``seed`` fixes which requests a ``share`` of faults hits. ``api_key`` and
    ``api_secret``, when given, are what the SMS API accepts (basic auth, as the SDK sends).
    """

    def __init__(
        self,
        *,
        public_key: str | bytes | None = None,
        application_id: str | None = None,
        port: int = 0,
        seed: int = 0,
        hang_seconds: float = 30.0,
        ca_dir: str | Path | None = None,
        calls_per_second: float | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
    ) -> None:
        self.public_key = public_key
        self.api_key = api_key
        self.api_secret = api_secret
        self._sms: list[dict[str, str]] = []
        self.application_id = application_id
        self.hang_seconds = hang_seconds
        self._port = port
        self._ca_dir_given = ca_dir is not None
        self._ca_dir = Path(ca_dir) if ca_dir is not None else None
        self._lock = threading.Lock()
        self._random = random.Random(seed)  # noqa: S311 - fault injection, not security
        self._requests: list[RecordedRequest] = []
        self._calls: dict[str, FakeCall] = {}
        self._latency_ms: dict[Route | None, int] = {}
        self._faults: list[tuple[Route | None, _Fault]] = []
        self._stopping = threading.Event()
        self._server: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self.ca_bundle_path = ""
        self._calls_per_second: float | None = None
        self._tokens = 0.0
        self._tokens_at = 0.0
        self.rate_limited = 0  # create-calls (and simulated connects) refused as over the limit
        self.set_calls_per_second(calls_per_second)
        # Stricter than Vonage by default, to catch this app forgetting either. Vonage accepts
        # an application JWT without ``exp`` (the tutorial's SDK, nexmo 1.2.1, signs none) and
        # falls back to the application's event URL when a create-call gives none:
        # benchmarks/seed_side_by_side.py relaxes both for the seed's Node app.
        self.require_exp = True
        self.application_event_url: str | None = None

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> FakeVonageAPI:
        ca = trustme.CA()
        if self._ca_dir is None:
            self._ca_dir = Path(tempfile.mkdtemp(prefix="fake-vonage-"))
        self._ca_dir.mkdir(parents=True, exist_ok=True)
        ca_path = self._ca_dir / "fake-vonage-ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        self.ca_bundle_path = str(ca_path)

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._server = _TLSServer(("127.0.0.1", self._port), _Handler, context, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-vonage-api",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving (hung requests are released, open connections closed); idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._ca_dir is not None and not self._ca_dir_given:
            shutil.rmtree(self._ca_dir, ignore_errors=True)

    def __enter__(self) -> FakeVonageAPI:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("The fake Vonage API is not running.")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the value for ``VONAGE_API_HOST``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``: a ``region_url`` that points at the fake."""
        return f"https://{self.host}"

    # --- fault injection --------------------------------------------------------------

    def set_latency(self, ms: int, *, route: Route | None = None) -> None:
        """Wait ``ms`` before answering ``route`` (every route when None)."""
        with self._lock:
            self._latency_ms[route] = ms

    def fail(self, status: int, *, route: Route | None = None, times: int | None = 1, share: float = 1.0) -> None:
        """Answer ``status`` (500, 429, 401…) to the next ``times`` requests (None: all),
        or to a ``share`` of them, chosen with the seeded random generator."""
        self._add_fault(route, _Fault("status", status=status, remaining=times, share=share))

    def hang(self, *, route: Route | None = None, times: int | None = 1, share: float = 1.0) -> None:
        """Never answer: hold the request for ``hang_seconds`` (past any client timeout),
        then close the connection."""
        self._add_fault(route, _Fault("hang", remaining=times, share=share))

    def drop_after_accept(self, *, route: Route | None = "create", times: int | None = 1, share: float = 1.0) -> None:
        """Act on the request (create the call, hang it up…), then close the connection
        without answering.

        The SDK sees ``RemoteDisconnected`` and re-sends the same request, POST included
        (VONAGE.md): each re-sent ``POST /v1/calls`` creates another call.
        """
        self._add_fault(route, _Fault("drop", remaining=times, share=share))

    def reject_sms(
        self, status: str = SMS_THROTTLED, error_text: str = "Throttled", *, times: int | None = 1, share: float = 1.0
    ) -> None:
        """Refuse the next ``times`` SMS as the SMS API does: HTTP 200, ``status`` non-zero."""
        self._add_fault("sms", _Fault("sms", sms_status=status, error_text=error_text, remaining=times, share=share))

    def set_calls_per_second(self, rate: float | None) -> None:
        """Enforce the account's limit on new calls (None: no limit); the bucket starts full."""
        with self._lock:
            self._calls_per_second = rate if rate and rate > 0 else None
            self._tokens = self._bucket_size()
            self._tokens_at = time.monotonic()

    def new_call_allowed(self) -> bool:
        """Take a token for one new outbound call; False (counted) when over the limit."""
        with self._lock:
            rate = self._calls_per_second
            if rate is None:
                return True
            now = time.monotonic()
            self._tokens = min(self._bucket_size(), self._tokens + (now - self._tokens_at) * rate)
            self._tokens_at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            self.rate_limited += 1
            return False

    def _bucket_size(self) -> float:
        return max(self._calls_per_second or 0.0, 1.0)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latency_ms.clear()

    def _add_fault(self, route: Route | None, fault: _Fault) -> None:
        if route is not None and route not in ROUTES:
            raise ValueError(f"Unknown route {route!r}; use one of {', '.join(ROUTES)}.")
        with self._lock:
            self._faults.append((route, fault))

    def _take_fault(self, route: Route | None) -> _Fault | None:
        with self._lock:
            for index, (fault_route, fault) in enumerate(self._faults):
                if fault_route is not None and fault_route != route:
                    continue
                if fault.share < 1.0 and self._random.random() >= fault.share:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._faults[index]
                return fault
        return None

    def _latency_for(self, route: Route | None) -> float:
        with self._lock:
            ms = self._latency_ms.get(route, self._latency_ms.get(None, 0))
        return ms / 1000

    # --- what happened ----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first (a snapshot)."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, route: Route) -> list[RecordedRequest]:
        return [request for request in self.requests if request.route == route]

    def create_requests(self) -> list[RecordedRequest]:
        """Every ``POST /v1/calls`` received, whatever was answered."""
        return self.requests_for("create")

    def created_calls(self) -> list[FakeCall]:
        """The calls the fake created, oldest first (including those whose answer was dropped)."""
        with self._lock:
            return list(self._calls.values())  # dicts keep insertion order

    def updates(self, action: str | None = None) -> list[RecordedRequest]:
        """``PUT /v1/calls/{uuid}`` requests, optionally only those asking for ``action``."""
        return [r for r in self.requests_for("update") if action is None or r.action == action]

    def transfers(self) -> list[RecordedRequest]:
        return self.updates("transfer")

    def hangups(self) -> list[RecordedRequest]:
        return self.updates("hangup")

    def call(self, uuid: str) -> FakeCall:
        with self._lock:
            return self._calls[uuid]

    @property
    def sent_sms(self) -> list[dict[str, str]]:
        """The SMS the fake accepted, oldest first: the form fields sent and the ``message-id`` given."""
        with self._lock:
            return [dict(message) for message in self._sms]

    def add_call(
        self,
        *,
        uuid: str,
        conversation_uuid: str,
        to: str,
        from_: str,
        direction: str = "inbound",
        status: str = "started",
    ) -> FakeCall:
        """Know a call Vonage made itself, not through this API: an inbound call, or the
        leg a ``connect`` action rings. The simulator adds them so that a transfer or a
        hang-up of such a leg, and ``GET``, are answered as Vonage answers them. They are
        listed by :meth:`created_calls` too, with no ``answer_url`` or ``ncco``."""
        call = FakeCall(
            uuid=uuid,
            conversation_uuid=conversation_uuid,
            to={"type": "phone", "number": to},
            from_={"type": "phone", "number": from_},
            answer_url=None,
            ncco=None,
            event_url=None,
            status=status,
            direction=direction,
        )
        with self._lock:
            self._calls[uuid] = call
        return call

    def set_call_status(self, uuid: str, status: str, **fields: Any) -> None:
        """Shape what ``GET /v1/calls/{uuid}`` reports: the status, with plausible times and
        charges for ``answered``/``completed``; ``fields`` override any of them."""
        with self._lock:
            self._set_status(self._calls[uuid], status)
            call = self._calls[uuid]
            for name, value in fields.items():
                if not hasattr(call, name):
                    raise AttributeError(f"A call has no field {name!r}.")
                setattr(call, name, value)

    def _set_status(self, call: FakeCall, status: str) -> None:
        now = datetime.now(UTC)
        call.status = status
        if status == "answered" and call.start_time is None:
            call.start_time = now
        if status in TERMINAL_STATUSES and call.end_time is None:
            call.end_time = now
        if status == "completed":
            seconds = int((now - call.start_time).total_seconds()) if call.start_time else 0
            call.duration = str(seconds)
            call.rate = call.rate or "0.02700000"
            call.price = f"{seconds * 0.027 / 60:.8f}"
            call.network = call.network or "23410"

    # --- handling ---------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        arrived = time.monotonic()
        parts = urlsplit(handler.path)
        path, query = parts.path, dict(parse_qsl(parts.query))
        route = _route_for(handler.command, path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body: Any = None
        body_error = ""
        if raw and route == "sms":
            # The SMS API takes a form, not JSON.
            body = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body_error = "The request body is not valid JSON."
        request = RecordedRequest(
            method=handler.command,
            path=path,
            query=query,
            json=body,
            headers={key: value for key, value in handler.headers.items()},
            time=arrived,
            route=route,
        )
        with self._lock:
            self._requests.append(request)

        latency = self._latency_for(route)
        if latency and self._stopping.wait(latency):
            return

        fault = self._take_fault(route)
        if fault is not None and fault.kind == "hang":
            self._note(request, fault="hang")
            self._stopping.wait(self.hang_seconds)
            handler.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            self._note(request, fault="status")
            self._answer(handler, request, fault.status, _error(fault.status, "Injected by the fake."))
            return

        if route == "sms":
            # The account's key and secret, not the application's JWT: checked by the route.
            if fault is not None and fault.kind in ("sms", "drop"):
                self._note(request, fault=fault.kind)
            status, payload = self._route_sms(handler.headers.get("Authorization", ""), body, fault)
            if fault is not None and fault.kind == "drop":
                handler.drop_connection()  # the message was sent; the client never hears
                return
            self._answer(handler, request, status, payload)
            return
        claims, auth_error = self._authenticate(handler.headers.get("Authorization", ""))
        self._note(request, jwt_claims=claims)
        if auth_error:
            self._answer(handler, request, 401, _error(401, auth_error))
            return

        if body_error:
            status, payload = 400, _error(400, body_error)
        elif route == "create" and not self.new_call_allowed():
            self._note(request, fault="rate")
            status, payload = 429, _error(429, "You have exceeded the number of new calls allowed per second.")
        elif route is None:
            known = path.rstrip("/") == "/v1/calls" or _CALL_PATH.match(path)
            status = 405 if known else 404
            payload = _error(status, f"{handler.command} {path} is not part of the fake Voice API.")
        else:
            routes = {
                "create": self._route_create,
                "update": self._route_update,
                "get": self._route_get,
                "list": self._route_list,
            }
            status, payload = routes[route](path, query, body)

        if fault is not None and fault.kind == "drop":
            # The request was acted on (a call created, hung up…) but the client never hears:
            # close the TLS session cleanly so the client reads EOF where the status line
            # should be, which http.client reports as RemoteDisconnected.
            self._note(request, fault="drop")
            handler.drop_connection()
            return
        self._answer(handler, request, status, payload)

    def _answer(self, handler: _Handler, request: RecordedRequest, status: int, payload: Any) -> None:
        self._note(request, status=status)
        handler.send_json(status, payload)

    def _note(self, request: RecordedRequest, **fields: Any) -> None:
        with self._lock:
            for name, value in fields.items():
                setattr(request, name, value)

    def _authenticate(self, authorization: str) -> tuple[dict[str, Any] | None, str]:
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or not token:
            return None, "You did not provide correct credentials."
        try:
            if self.public_key is None:
                claims = jwt.decode(token, options={"verify_signature": False})
            else:
                required = (
                    ["iat", "exp", "jti", "application_id"] if self.require_exp else ["iat", "jti", "application_id"]
                )
                claims = jwt.decode(token, self.public_key, algorithms=["RS256"], options={"require": required})
        except jwt.PyJWTError as exc:
            return None, f"Invalid token: {exc}."
        if self.application_id is not None and claims.get("application_id") != self.application_id:
            return claims, "The token was not issued for this application."
        return claims, ""

    def _route_create(self, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if isinstance(body, dict) and "event_url" not in body and self.application_event_url:
            body = {**body, "event_url": [self.application_event_url]}
        problem = _create_problem(body)
        if problem:
            return 400, _error(400, problem)
        call = FakeCall(
            uuid=str(uuid_lib.uuid4()),
            conversation_uuid=f"CON-{uuid_lib.uuid4()}",
            to=dict(body["to"][0]),
            from_=dict(body.get("from") or {"type": "phone", "number": "random"}),
            answer_url=body.get("answer_url"),
            ncco=body.get("ncco"),
            event_url=body.get("event_url"),
        )
        with self._lock:
            self._calls[call.uuid] = call
        return 201, {
            "uuid": call.uuid,
            "status": call.status,
            "direction": call.direction,
            "conversation_uuid": call.conversation_uuid,
        }

    def _route_update(self, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        uuid = _uuid_in(path)
        with self._lock:
            call = self._calls.get(uuid)
            if call is None:
                # Also what another region's host answers for a call it does not hold.
                return 404, _error(404, f"Call {uuid} was not found.")
            if not isinstance(body, dict) or body.get("action") not in UPDATE_ACTIONS:
                return 400, _error(400, f"action must be one of {', '.join(sorted(UPDATE_ACTIONS))}.")
            if call.status in TERMINAL_STATUSES:
                return 400, _error(400, f"Call {uuid} has already ended ({call.status}).")
            action = body["action"]
            if action == "transfer":
                problem = _transfer_problem(body.get("destination"))
                if problem:
                    return 400, _error(400, problem)
                call.transfers.append(body["destination"])
            elif action == "hangup":
                # A call hung up before it was answered is cancelled, after, completed.
                self._set_status(call, "completed" if call.status == "answered" else "cancelled")
        return 204, None

    def _route_sms(self, authorization: str, form: Any, fault: _Fault | None) -> tuple[int, Any]:
        """``POST /sms/json``. Every refusal is HTTP 200 with one message whose ``status``
        is not "0", as the SMS API answers (its documented status codes)."""
        form = form if isinstance(form, dict) else {}
        to = str(form.get("to", ""))

        def refused(status: str, text: str) -> tuple[int, Any]:
            return 200, {"message-count": "1", "messages": [{"to": to, "status": status, "error-text": text}]}

        scheme, _, encoded = authorization.partition(" ")
        try:
            key, _, secret = base64.b64decode(encoded).decode().partition(":") if scheme == "Basic" else ("", "", "")
        except ValueError:
            key, secret = "", ""
        key, secret = key or str(form.get("api_key", "")), secret or str(form.get("api_secret", ""))
        if not key or not secret or (self.api_key, self.api_secret) not in ((None, None), (key, secret)):
            return refused(SMS_INVALID_CREDENTIALS, "Bad Credentials")
        if fault is not None and fault.kind == "sms":
            return refused(fault.sms_status, fault.error_text)
        missing = [name for name in ("from", "to", "text") if not form.get(name)]
        if missing:
            return refused(SMS_MISSING_PARAMS, f"Missing {missing[0]} param")
        if not _NUMBER.match(to):
            return refused(SMS_INVALID_PARAMS, "Invalid to address")
        message_id = uuid_lib.uuid4().hex.upper()[:16]
        with self._lock:
            self._sms.append({**{k: str(v) for k, v in form.items()}, "message-id": message_id})
        answer = {
            "to": to,
            "message-id": message_id,
            "status": "0",
            "remaining-balance": "10.00000000",
            "message-price": "0.03330000",
            "network": "23410",
        }
        return 200, {"message-count": "1", "messages": [answer]}

    def _route_get(self, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        uuid = _uuid_in(path)
        with self._lock:
            call = self._calls.get(uuid)
            if call is None:
                return 404, _error(404, f"Call {uuid} was not found.")
            return 200, call.as_vonage()

    def _route_list(self, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        try:
            page_size = min(max(int(query.get("page_size", 10)), 1), 100)
            record_index = max(int(query.get("record_index", 0)), 0)
        except ValueError:
            return 400, _error(400, "page_size and record_index must be integers.")
        with self._lock:
            calls = list(self._calls.values())
            if query.get("order", "asc") == "desc":
                calls.reverse()
            for key in ("conversation_uuid", "status"):
                if query.get(key):
                    calls = [call for call in calls if getattr(call, key) == query[key]]
            page = [call.as_vonage() for call in calls[record_index : record_index + page_size]]
        links: dict[str, Any] = {"self": {"href": _list_href(query, record_index, page_size)}}
        if record_index + page_size < len(calls):
            links["next"] = {"href": _list_href(query, record_index + page_size, page_size)}
        return 200, {
            "count": len(calls),
            "page_size": page_size,
            "record_index": record_index,
            "_links": links,
            "_embedded": {"calls": page},
        }


# --- validation, as strict as Vonage is about what it runs ------------------------------


def _create_problem(body: Any) -> str:
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    to = body.get("to")
    if not isinstance(to, list) or not to or not isinstance(to[0], dict):
        return "to must be a list with one endpoint."
    if to[0].get("type") != "phone" or not _NUMBER.match(str(to[0].get("number", ""))):
        return "to[0] must be a phone endpoint with a number in E.164 format without '+'."
    from_ = body.get("from")
    if body.get("random_from_number") is not True:
        if not isinstance(from_, dict) or not _NUMBER.match(str(from_.get("number", ""))):
            return "from must be a phone endpoint with one of your Vonage numbers."
    has_answer_url, has_ncco = "answer_url" in body, "ncco" in body
    if has_answer_url == has_ncco:
        return "Give either answer_url or ncco."
    if has_answer_url and not _url_list(body["answer_url"]):
        return "answer_url must be a list with one URL."
    if has_ncco:
        problem = _ncco_problem(body["ncco"])
        if problem:
            return problem
    # Vonage itself falls back to the application's event URL; this app always sends one.
    if not _url_list(body.get("event_url")):
        return "event_url must be a list with one URL."
    return ""


def _transfer_problem(destination: Any) -> str:
    if not isinstance(destination, dict) or destination.get("type") != "ncco":
        return "destination.type must be ncco."
    if "url" in destination:
        return "" if _url_list(destination["url"]) else "destination.url must be a list with one URL."
    return _ncco_problem(destination.get("ncco"))


def _ncco_problem(ncco: Any) -> str:
    # The SDK's transfer_call_ncco sends [{}] when given plain dicts (VONAGE.md); Vonage
    # refuses an action without "action", and so does the fake.
    if not isinstance(ncco, list) or not ncco:
        return "Invalid NCCO: it must be a non-empty list of actions."
    for index, action in enumerate(ncco):
        if not isinstance(action, dict) or not action or not action.get("action"):
            return f"Invalid NCCO: action {index} has no 'action'."
    return ""


def _url_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(u, str) and u for u in value)


def _route_for(method: str, path: str) -> Route | None:
    collection, one_call = path.rstrip("/") == "/v1/calls", bool(_CALL_PATH.match(path))
    if collection and method == "POST":
        return "create"
    if collection and method == "GET":
        return "list"
    if one_call and method == "PUT":
        return "update"
    if one_call and method == "GET":
        return "get"
    if path.rstrip("/") == _SMS_PATH and method == "POST":
        return "sms"
    return None


def _uuid_in(path: str) -> str:
    match = _CALL_PATH.match(path)
    return match["uuid"] if match else ""


def _error(status: int, detail: str) -> dict[str, str]:
    slug, title = _ERRORS.get(status, ("error", "Error"))
    return {
        "type": f"https://developer.nexmo.com/api-errors#{slug}",
        "title": title,
        "detail": detail,
        "instance": str(uuid_lib.uuid4()),
    }


def _list_href(query: dict[str, str], record_index: int, page_size: int) -> str:
    params = {**query, "record_index": str(record_index), "page_size": str(page_size)}
    return f"/v1/calls?{urlencode(params)}"


def _vonage_time(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else None


# --- the server ---------------------------------------------------------------------------


class _TLSServer(ThreadingHTTPServer):
    """A threading HTTP server whose connections are TLS, handshaken in their own thread
    (so one slow client cannot stall the accept loop)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        context: ssl.SSLContext,
        api: FakeVonageAPI,
    ) -> None:
        self.ssl_context = context
        self.api = api
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        return self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        try:
            request.settimeout(10)
            request.do_handshake()
            request.settimeout(None)
            super().finish_request(request, client_address)
        except (OSError, ssl.SSLError):
            pass  # the client went away; nothing to answer
        finally:
            with self._open_lock:
                self._open.discard(request)

    def close_connections(self) -> None:
        """End idle keep-alive connections so their threads finish."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # connection resets are part of the job


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, as requests' pool expects from Vonage.
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: without TCP_NODELAY the body waits for the
    # client's delayed ACK, 40 ms a request.
    disable_nagle_algorithm = True
    server: _TLSServer

    def do_GET(self) -> None:
        self.server.api._handle(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def send_json(self, status: int, payload: Any) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def drop_connection(self) -> None:
        self.close_connection = True
        connection = self.connection
        try:
            connection.settimeout(1)
            connection.unwrap()  # TLS close_notify: a clean EOF
        except (OSError, ssl.SSLError, ValueError):
            pass
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the recorded requests are the log


# --- command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.fake_vonage_api",
        description="Serve a fake of Vonage's Voice REST API over TLS on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay before every answer")
    parser.add_argument("--public-key", type=Path, help="PEM file: verify the application JWT with it")
    parser.add_argument("--application-id", help="require this application_id claim")
    parser.add_argument("--ca-dir", type=Path, help="where to write the CA certificate (default: a temp dir)")
    parser.add_argument(
        "--calls-per-second", type=float, help="answer 429 to create-calls above this rate (Vonage's account limit)"
    )
    args = parser.parse_args(argv)

    fake = FakeVonageAPI(
        public_key=args.public_key.read_bytes() if args.public_key else None,
        application_id=args.application_id,
        port=args.port,
        ca_dir=args.ca_dir,
        calls_per_second=args.calls_per_second,
    )
    with fake:
        fake.set_latency(args.latency_ms)
        print(f"VONAGE_API_HOST={fake.host}", flush=True)
        print(f"REQUESTS_CA_BUNDLE={fake.ca_bundle_path}", flush=True)
        try:
            for line in _tail(fake):
                print(line, flush=True)
        except KeyboardInterrupt:
            pass


def _tail(fake: FakeVonageAPI) -> Iterator[str]:
    """One line per request, as they are answered."""
    shown = 0
    while True:
        time.sleep(0.2)
        requests = fake.requests
        for request in requests[shown:]:
            if request.status is None and not request.fault:
                break  # not answered yet
            outcome = request.status if request.status is not None else request.fault
            yield f"{request.method} {request.path} {request.action or ''} → {outcome}".replace("  ", " ")
            shown += 1


if __name__ == "__main__":
    main()
