"""The one module that talks to Vonage's REST API (through the ``vonage`` SDK, but for
the agent call: see "the agent call" below).

The rest of the code never imports the SDK. The client is built on first use and
cached, never at import; the SDK's timeout (None by default: wait forever) is always
set; SDK exceptions become :class:`VonageUnavailable`.

Without application credentials nothing is sent: the calls we would place are logged
and given a ``dryrun-`` uuid so the simulator and ``make run`` work without an account.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import platform
import re
import select
import ssl
import threading
import time
import uuid as uuid_lib
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

logger = logging.getLogger(__name__)

DRY_RUN_PREFIX = "dryrun-"
# Vonage signs webhooks' JWTs for 15 minutes; ours are reused for 5 (VONAGE.md: each
# request otherwise signs a fresh RS256 token, about 1 ms of CPU).
_JWT_REUSE_SECONDS = 300
# Hanging up an agent call created after the deadline: tries, and the pause between them.
_LATE_HANG_UP_ATTEMPTS = 4
_LATE_HANG_UP_RETRY_SECONDS = 0.5
# ``region_url`` and ``recording_url`` come from webhooks; only Vonage's API hosts may
# receive our application JWT: ``api.nexmo.com``, ``api-us.nexmo.com``, ``api-us-3.vonage.com``.
_VONAGE_API_HOST = re.compile(r"api(?:-[a-z]{2}(?:-[0-9]{1,2})?)?\.(?:nexmo|vonage)\.com")
_ROOT_PATH = re.compile(r"/?")
_FILES_PATH = re.compile(r"/v1/files/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class VonageUnavailable(Exception):
    """Vonage could not be asked: HTTP error, timeout, bad credentials, no network."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class PlacedCall:
    uuid: str
    conversation_uuid: str
    sent: bool


def credentials_configured() -> bool:
    return bool(settings.VONAGE_APPLICATION_ID and settings.VONAGE_PRIVATE_KEY)


def account_configured() -> bool:
    return bool(settings.VONAGE_API_KEY and settings.VONAGE_API_SECRET)


def read_private_key(value: str) -> str:
    """``VONAGE_PRIVATE_KEY`` is a file path or PKCS#8 PEM text (``\\n`` escapes allowed)."""
    if "BEGIN" in value:
        return value.replace("\\n", "\n")
    return Path(value).expanduser().read_text()


def place_call(
    *,
    to: str,
    from_: str,
    answer_url: str,
    event_url: str,
    deadline_seconds: float,
    ringing_timer: int | None = None,
    machine_detection: str | None = None,
) -> PlacedCall:
    """Place an outbound call; give up after ``deadline_seconds`` whatever the SDK does.

    The timeout bounds each connect and read, not the whole request, so the request
    runs in a worker thread and we stop waiting at the deadline. A call that is created
    after we gave up is hung up when it is, so no agent is rung for a caller we already
    routed elsewhere.
    """
    if not credentials_configured():
        placed = PlacedCall(
            uuid=f"{DRY_RUN_PREFIX}{uuid_lib.uuid4()}",
            conversation_uuid=f"CON-{DRY_RUN_PREFIX}{uuid_lib.uuid4()}",
            sent=False,
        )
        logger.info(
            "vonage.dry_run create_call to=%s from=%s answer_url=%s uuid=%s",
            _mask(to),
            from_,
            answer_url,
            placed.uuid,
        )
        return placed

    body = _create_call_body(
        to=to,
        from_=from_,
        answer_url=answer_url,
        event_url=event_url,
        ringing_timer=ringing_timer,
        machine_detection=machine_detection,
    )
    future = _executor().submit(_create_call, body)
    try:
        return future.result(timeout=deadline_seconds)
    except FutureTimeout:
        # Not ``add_done_callback(_hang_up_late_call)``: a future that completes in
        # between runs its callback at once, in this thread, and the webhook would wait
        # for the hang-up too. The hang-up always runs on a worker.
        future.add_done_callback(lambda late: _executor().submit(_hang_up_late_call, late))
        raise VonageUnavailable(f"Vonage did not create the call within {deadline_seconds:g} s.") from None


def warm_up() -> None:
    """Build the client and sign its token now. A fresh worker's first request otherwise
    spends a second or more importing the SDK and parsing the key, and the calls paced
    behind it (calls/pacing.py) would then leave together, over the account's limit."""
    if not credentials_configured():
        return
    client = _voice_client(settings.VONAGE_API_HOST)
    try:
        client.http_client.auth.create_jwt_auth_string()
    except Exception as exc:  # a bad key is reported by the request that needs it
        logger.warning("vonage.warm_up_failed error=%s", type(exc).__name__)


def transfer_to_ncco(*, uuid: str, ncco: list[dict[str, Any]], region_url: str = "") -> None:
    """Move a live leg to a new NCCO (``PUT /v1/calls/{uuid}``, action transfer)."""
    models = [_ncco_model(action) for action in ncco]
    if not credentials_configured():
        logger.info("vonage.dry_run transfer uuid=%s actions=%s", uuid, [a.get("action") for a in ncco])
        return
    _call_sdk(region_url, "transfer_call_ncco", uuid, models)


def hang_up(*, uuid: str, region_url: str = "") -> None:
    if not credentials_configured():
        logger.info("vonage.dry_run hangup uuid=%s", uuid)
        return
    _call_sdk(region_url, "hangup", uuid)


def get_call_info(*, uuid: str, region_url: str = "") -> dict[str, Any]:
    info = _call_sdk(region_url, "get_call", uuid)
    return info.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- internals -------------------------------------------------------------------------


def _create_call_body(
    *,
    to: str,
    from_: str,
    answer_url: str,
    event_url: str,
    ringing_timer: int | None,
    machine_detection: str | None,
) -> dict[str, Any]:
    """The create-call request's JSON, as the SDK sends it:
    ``CreateCallRequest.model_dump(by_alias=True, exclude_none=True)``."""
    body: dict[str, Any] = {
        "to": [{"type": "phone", "number": to}],
        "from": {"type": "phone", "number": from_},
        "answer_url": [answer_url],
        "answer_method": "GET",
        "event_url": [event_url],
        "event_method": "POST",
    }
    if ringing_timer is not None:
        body["ringing_timer"] = ringing_timer
    if machine_detection is not None:
        body["machine_detection"] = machine_detection
    return body


def _create_call(body: dict[str, Any]) -> PlacedCall:
    host = _host_for("")
    if _proxied(host):
        return _create_call_with_sdk(body)
    status, answer = _post_json(host, "/v1/calls", body, method="create_call")
    if not 200 <= status < 300:
        # Not followed: a redirect must not carry the application JWT anywhere else.
        logger.warning("vonage.create_call_refused status=%s body=%.300r", status, answer)
        raise VonageUnavailable(f"Vonage answered {status} to create_call.", status_code=status)
    try:
        created = json.loads(answer)
        placed = PlacedCall(
            uuid=str(created["uuid"]), conversation_uuid=created.get("conversation_uuid") or "", sent=True
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise VonageUnavailable(f"Vonage create_call failed: {type(exc).__name__}: {exc}") from exc
    logger.info("vonage.create_call to=%s uuid=%s", _mask(body["to"][0]["number"]), placed.uuid)
    return placed


def _create_call_with_sdk(body: dict[str, Any]) -> PlacedCall:
    """The same request through the SDK (which honours an HTTPS proxy; http.client does not)."""
    from vonage_voice import CreateCallRequest

    fields = {key: value for key, value in body.items() if key != "from"}
    response = _call_sdk("", "create_call", CreateCallRequest(**fields, from_=body["from"]))
    logger.info("vonage.create_call to=%s uuid=%s", _mask(body["to"][0]["number"]), response.uuid)
    return PlacedCall(uuid=response.uuid, conversation_uuid=response.conversation_uuid or "", sent=True)


def _hang_up_late_call(future: Future[PlacedCall]) -> None:
    if future.exception() is not None:
        return
    placed = future.result()
    logger.warning("vonage.late_agent_call uuid=%s: created after the deadline, hanging up", placed.uuid)
    for attempt in range(1, _LATE_HANG_UP_ATTEMPTS + 1):
        try:
            hang_up(uuid=placed.uuid)
            return
        except VonageUnavailable as exc:
            # An update 1–2 s after the call was created can fail with 400 (VONAGE.md),
            # and a late call is hung up just after it was created: retry briefly.
            if exc.status_code == 400 and attempt < _LATE_HANG_UP_ATTEMPTS:
                time.sleep(_LATE_HANG_UP_RETRY_SECONDS)
                continue
            logger.exception("vonage.late_agent_call uuid=%s could not be hung up", placed.uuid)
            return


def _call_sdk(region_url: str, method: str, *args: Any) -> Any:
    from vonage import VonageError
    from vonage_http_client import HttpRequestError
    from vonage_jwt.errors import VonageJwtError

    client = _voice_client(_host_for(region_url))
    try:
        return getattr(client.voice, method)(*args)
    except HttpRequestError as exc:
        status = exc.response.status_code if exc.response is not None else None
        raise VonageUnavailable(f"Vonage answered {status} to {method}.", status_code=status) from exc
    except (VonageError, VonageJwtError) as exc:
        raise VonageUnavailable(f"Vonage {method} failed: {exc}") from exc
    except Exception as exc:  # requests' connection errors, timeouts, key errors
        raise VonageUnavailable(f"Vonage {method} failed: {type(exc).__name__}: {exc}") from exc


def _host_for(region_url: str) -> str:
    """A call lives in one region: control it at the host its answer webhook named.

    Only when the API host is Vonage's default (an override, such as the local fake,
    wins), and only one of Vonage's API hosts: every request carries a signed
    application JWT, valid for minutes.
    """
    if region_url and settings.VONAGE_API_HOST == "api.nexmo.com":
        host = vonage_api_host(region_url, path_pattern=_ROOT_PATH)
        if host:
            return host
        logger.warning("vonage.region_url_refused region_url=%.200s: not a Vonage API host, not used", region_url)
    return settings.VONAGE_API_HOST


def vonage_api_host(url: str, *, path_pattern: re.Pattern[str]) -> str | None:
    """The host of ``url`` when it is exactly the shape Vonage sends: https, one of
    Vonage's API hosts (``api.nexmo.com``, ``api-us-3.vonage.com``…) or the configured
    ``VONAGE_API_HOST``, no user info, no port (but the configured host's), a path of
    ``path_pattern``, no query, no fragment. Anything else: None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = parts.netloc.lower()
    if parts.scheme != "https" or parts.query or parts.fragment or not path_pattern.fullmatch(parts.path):
        return None
    if host == settings.VONAGE_API_HOST.lower() or _VONAGE_API_HOST.fullmatch(host):
        return host
    return None


def recording_url_valid(url: str) -> bool:
    """Whether a ``record`` event's ``recording_url`` is one Vonage would send: its
    files path on its API host. Only such a URL is stored and fetched with our JWT."""
    return vonage_api_host(url, path_pattern=_FILES_PATH) is not None


@lru_cache(maxsize=8)
def _voice_client(api_host: str) -> Any:
    from vonage import Auth, HttpClientOptions, Vonage

    class ReusedJwtAuth(Auth):
        """Signs one application JWT and reuses it for a few minutes."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._lock = threading.Lock()
            self._token: bytes = b""
            self._signed_at = 0.0

        def create_jwt_auth_string(self) -> bytes:
            with self._lock:
                if not self._token or time.monotonic() - self._signed_at > _JWT_REUSE_SECONDS:
                    self._token = super().create_jwt_auth_string()
                    self._signed_at = time.monotonic()
                return self._token

    auth = ReusedJwtAuth(
        application_id=settings.VONAGE_APPLICATION_ID or None,
        private_key=read_private_key(settings.VONAGE_PRIVATE_KEY) if settings.VONAGE_PRIVATE_KEY else None,
        api_key=settings.VONAGE_API_KEY or None,
        api_secret=settings.VONAGE_API_SECRET or None,
    )
    options = HttpClientOptions(
        api_host=api_host,
        timeout=settings.VONAGE_TIMEOUT_SECONDS,
        # urllib3 must not retry connects on its own: the deadline is ours to keep.
        max_retries=0,
    )
    return Vonage(auth, options)


# --- the agent call: a lean HTTPS client -------------------------------------------------
# ``create_call`` runs for every inbound call. Through the SDK it cost about 1 ms of CPU
# (pydantic models, its validate_call wrapper, requests and urllib3) for one small POST,
# so the agent call is sent with http.client instead: one kept-alive TLS connection per
# thread and host, the SDK's application JWT (reused, see ReusedJwtAuth), the same JSON.
# Transfers, hang-ups, call info, set-up and SMS stay on the SDK: they are rarer.
#
# A POST is never sent twice once it may have reached Vonage: a second agent call rings
# the call centre for nothing (VONAGE.md), which is worse than connecting the caller
# directly. The SDK re-sends on RemoteDisconnected; this client does not. What it does
# instead is avoid sending on a connection the server has closed: one idle for longer than
# _CONNECTION_IDLE_SECONDS is reopened (servers close idle keep-alive connections), and so
# is one whose socket is readable before we send (the server's FIN or TLS close_notify has
# arrived). The one re-send: a reused connection that failed while the request was being
# written. The kernel did not take all of its bytes, so the server cannot have read a whole
# request, let alone acted on it; the request is written once more on a new connection.

# Below the shortest keep-alive timeouts servers commonly use (Apache's 5 s; nginx 75 s).
_CONNECTION_IDLE_SECONDS = 4.0
_USER_AGENT = f"call-whisper python/{platform.python_version()}"
# Bumped by _reset_clients: each thread closes its connections made under older settings.
_connections_generation = 0


@dataclass
class _KeptConnection:
    connection: http.client.HTTPSConnection
    idle_since: float  # time.monotonic() when its last answer was read


class _ThreadConnections(threading.local):
    def __init__(self) -> None:
        self.generation = _connections_generation
        self.kept: dict[str, _KeptConnection] = {}
        self.proxied: dict[str, bool] = {}


_thread_connections = _ThreadConnections()


def _post_json(host: str, path: str, payload: dict[str, Any], *, method: str) -> tuple[int, bytes]:
    """POST ``payload`` to ``https://{host}{path}`` with the application JWT: the status
    and body of the answer. Raises VonageUnavailable when there is no answer."""
    from vonage_jwt.errors import VonageJwtError

    try:
        authorization = _voice_client(host).http_client.auth.create_jwt_auth_string()
    except VonageJwtError as exc:
        raise VonageUnavailable(f"Vonage {method} failed: {exc}") from exc
    except Exception as exc:  # an unreadable or malformed key
        raise VonageUnavailable(f"Vonage {method} failed: {type(exc).__name__}: {exc}") from exc
    headers = {
        "Authorization": authorization,
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": _USER_AGENT,
    }
    body = json.dumps(payload).encode()
    try:
        connection, reused = _connection_for(host)
    except OSError as exc:  # an unreadable CA bundle
        raise VonageUnavailable(f"Vonage {method} failed: {type(exc).__name__}: {exc}") from exc
    try:
        try:
            connection.request("POST", path, body, headers)
        except (ConnectionError, ssl.SSLError):
            if not reused:
                raise
            connection.close()
            connection, reused = _connection_open(host), False
            connection.request("POST", path, body, headers)
        response = connection.getresponse()
        answer = response.read()
    except (OSError, http.client.HTTPException) as exc:  # includes timeouts and TLS errors
        connection.close()
        raise VonageUnavailable(f"Vonage {method} failed: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        connection.close()
        raise
    if response.will_close:
        connection.close()
    else:
        _thread_connections.kept[host] = _KeptConnection(connection, time.monotonic())
    return response.status, answer


def _connection_for(host: str) -> tuple[http.client.HTTPSConnection, bool]:
    """This thread's connection to ``host`` (taken: a failed request does not put it back),
    and whether it carried a request before."""
    mine = _connections_current()
    kept = mine.kept.pop(host, None)
    if kept is not None:
        if time.monotonic() - kept.idle_since < _CONNECTION_IDLE_SECONDS and _connection_open_for_us(kept.connection):
            return kept.connection, True
        kept.connection.close()
    return _connection_open(host), False


def _connections_current() -> _ThreadConnections:
    mine = _thread_connections
    if mine.generation != _connections_generation:
        for kept in mine.kept.values():
            kept.connection.close()
        mine.kept.clear()
        mine.proxied.clear()
        mine.generation = _connections_generation
    return mine


def _connection_open_for_us(connection: http.client.HTTPSConnection) -> bool:
    """Whether nothing arrived on an idle connection: no EOF, no TLS close_notify, no
    stray bytes. Anything readable means the server closed it, or that it is unusable."""
    sock = connection.sock
    if sock is None:
        return False
    poller = select.poll()  # not select(): a descriptor above 1023 is fine
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)


def _connection_open(host: str) -> http.client.HTTPSConnection:
    """A new connection (it connects on its first request), verified as ``requests`` would."""
    return http.client.HTTPSConnection(
        host, timeout=settings.VONAGE_TIMEOUT_SECONDS, context=_tls_context(_ca_bundle())
    )


def _ca_bundle() -> str:
    """The CA bundle ``requests`` (so the SDK) trusts: ``REQUESTS_CA_BUNDLE`` or
    ``CURL_CA_BUNDLE`` when set (tests point it at the fake's CA), else certifi's."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        return bundle
    import certifi

    return str(certifi.where())


@lru_cache(maxsize=4)
def _tls_context(ca_bundle: str) -> ssl.SSLContext:
    if os.path.isdir(ca_bundle):
        return ssl.create_default_context(capath=ca_bundle)
    return ssl.create_default_context(cafile=ca_bundle)


def _proxied(host: str) -> bool:
    """Whether the environment sends HTTPS to ``host`` through a proxy, as ``requests``
    honours. http.client does not: such a host keeps going through the SDK. Decided once
    per thread and settings."""
    mine = _connections_current()
    proxied = mine.proxied.get(host)
    if proxied is None:
        hostname = urlsplit(f"https://{host}").hostname or host
        proxies = getproxies()
        proxied = mine.proxied[host] = bool(proxies.get("https") or proxies.get("all")) and not proxy_bypass(hostname)
    return proxied


@lru_cache(maxsize=1)
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=16, thread_name_prefix="vonage")


def _ncco_model(action: dict[str, Any]) -> Any:
    """Plain NCCO dicts become SDK models: ``transfer_call_ncco`` silently sends
    ``[{}]`` for dicts (VONAGE.md), which Vonage rejects."""
    from vonage_voice import Connect, Conversation, Input, Notify, Record, Stream, Talk

    models = {
        "talk": Talk,
        "conversation": Conversation,
        "connect": Connect,
        "record": Record,
        "input": Input,
        "stream": Stream,
        "notify": Notify,
    }
    # The SDK names the connect action's ``from`` key ``from_``.
    fields = {("from_" if k == "from" else k): v for k, v in action.items() if k != "action"}
    return models[action["action"]].model_validate(fields)


def _mask(number: str) -> str:
    from campaigns.phone import masked

    return masked(number)


@receiver(setting_changed)
def _reset_clients(*, setting: str, **kwargs: Any) -> None:
    global _connections_generation
    if setting.startswith("VONAGE_"):
        _voice_client.cache_clear()
        _connections_generation += 1


# --- application and number set-up ---------------------------------------------------
# Used by ``manage.py vonage_setup`` (calls/vonage_setup.py). The Application and
# Numbers APIs authenticate with the account's API key and secret (basic auth), not an
# application JWT, so they get a client of their own: the voice client above needs the
# application's private key, which a first installation does not have yet (and the SDK
# refuses an application id without its key).

# Set-up is not on a caller's 5-second path, and creating an application makes a key pair.
_SETUP_TIMEOUT_SECONDS = 15
_OWNED_NUMBERS_PAGE_SIZE = 100  # the most the Numbers API returns per page


@dataclass(frozen=True)
class VoiceApplicationSpec:
    """Everything Call Whisper sets on its Vonage application."""

    name: str
    answer_url: str
    fallback_answer_url: str
    event_url: str
    # POST for every webhook: Vonage's signature covers a request's body (payload_hash),
    # never its query string, so a GET request's fields would not be bound to its token.
    answer_method: str = "POST"
    fallback_answer_method: str = "POST"
    event_method: str = "POST"
    signed_callbacks: bool = True


@dataclass(frozen=True)
class CreatedApplication:
    id: str
    private_key: str


@dataclass(frozen=True)
class OwnedNumber:
    msisdn: str
    country: str
    app_id: str


def application_create(*, spec: VoiceApplicationSpec) -> CreatedApplication:
    """Create the application; Vonage returns its private key this once only."""
    created = _call_setup_sdk("creating the application", "application", "create_application", _app_config(spec))
    private_key = (created.keys.model_extra or {}).get("private_key") if created.keys else None
    if not private_key:
        raise VonageUnavailable(f"Vonage created application {created.id} but returned no private key.")
    return CreatedApplication(id=created.id, private_key=private_key)


def application_update(*, application_id: str, spec: VoiceApplicationSpec) -> None:
    """Replace the application's settings with ``spec``: Vonage's update is a PUT of the
    whole configuration, so anything not in ``spec`` is reset. The key pair is kept."""
    _call_setup_sdk("updating the application", "application", "update_application", application_id, _app_config(spec))


def owned_numbers() -> dict[str, OwnedNumber]:
    """Every number the account owns, by E.164 digits, read page by page."""
    from vonage_numbers import ListOwnedNumbersFilter

    owned: dict[str, OwnedNumber] = {}
    index: int | None = 1
    while index is not None:
        page_filter = ListOwnedNumbersFilter(size=_OWNED_NUMBERS_PAGE_SIZE, index=index)
        numbers, _count, index = _call_setup_sdk(
            "listing the account's numbers", "numbers", "list_owned_numbers", page_filter
        )
        for number in numbers:
            if number.msisdn:
                owned[number.msisdn] = OwnedNumber(
                    msisdn=number.msisdn, country=number.country or "", app_id=number.app_id or ""
                )
    return owned


def number_link(*, msisdn: str, country: str, application_id: str) -> None:
    """Send the number's inbound calls to the application (``POST /number/update``)."""
    from vonage_numbers import UpdateNumberParams

    params = UpdateNumberParams(country=country, msisdn=msisdn, app_id=application_id)
    _call_setup_sdk(f"linking {msisdn}", "numbers", "update_number", params)


def _app_config(spec: VoiceApplicationSpec) -> Any:
    from vonage_application import ApplicationConfig, Capabilities, Voice, VoiceUrl, VoiceWebhooks

    return ApplicationConfig(
        name=spec.name,
        capabilities=Capabilities(
            voice=Voice(
                webhooks=VoiceWebhooks(
                    answer_url=VoiceUrl(address=spec.answer_url, http_method=spec.answer_method),
                    fallback_answer_url=VoiceUrl(
                        address=spec.fallback_answer_url, http_method=spec.fallback_answer_method
                    ),
                    event_url=VoiceUrl(address=spec.event_url, http_method=spec.event_method),
                ),
                signed_callbacks=spec.signed_callbacks,
            )
        ),
    )


def _call_setup_sdk(doing: str, api: str, method: str, *args: Any, client: Any = None) -> Any:
    """``client.<api>.<method>(*args)`` (the set-up client by default), its errors turned
    into VonageUnavailable."""
    from vonage import VonageError
    from vonage_http_client import HttpRequestError

    try:
        return getattr(getattr(client or _setup_client(), api), method)(*args)
    except HttpRequestError as exc:
        status = exc.response.status_code if exc.response is not None else None
        detail = _error_detail(exc.response)
        raise VonageUnavailable(
            f"Vonage answered {status} when {doing}{': ' + detail if detail else ''}.", status_code=status
        ) from exc
    except VonageError as exc:
        # The Numbers API reports some failures as HTTP 200 with an "error-code" (NumbersError).
        raise VonageUnavailable(f"Vonage refused {doing}: {exc}") from exc
    except Exception as exc:  # requests' connection errors and timeouts
        raise VonageUnavailable(f"Could not reach Vonage when {doing}: {type(exc).__name__}: {exc}") from exc


def _error_detail(response: Any) -> str:
    """The readable part of a Vonage error body: ``title``/``detail`` (Application API)
    or ``error-code-label`` (Numbers API)."""
    try:
        body = response.json()
    except Exception:  # no body, or not JSON
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(body[key]) for key in ("title", "detail", "error-code-label") if body.get(key)]
    parts += [
        f"{param.get('name')}: {param.get('reason')}"
        for param in body.get("invalid_parameters") or []
        if isinstance(param, dict)
    ]
    return "; ".join(parts).rstrip(".")


def _setup_hosts() -> tuple[str, str]:
    """(api host, rest host). The Application API is on api.nexmo.com and the Numbers
    API on rest.nexmo.com; a local fake of Vonage (any other host) serves both."""
    host = settings.VONAGE_API_HOST
    if host.endswith((".nexmo.com", ".vonage.com")):
        return "api.nexmo.com", "rest.nexmo.com"
    return host, host


@lru_cache(maxsize=1)
def _setup_client() -> Any:
    from vonage import Auth, HttpClientOptions, Vonage

    api_host, rest_host = _setup_hosts()
    auth = Auth(api_key=settings.VONAGE_API_KEY, api_secret=settings.VONAGE_API_SECRET)
    options = HttpClientOptions(api_host=api_host, rest_host=rest_host, timeout=_SETUP_TIMEOUT_SECONDS)
    return Vonage(auth, options)


@lru_cache(maxsize=1)
def _sms_client() -> Any:
    from vonage import Auth, HttpClientOptions, Vonage

    api_host, rest_host = _setup_hosts()
    auth = Auth(api_key=settings.VONAGE_API_KEY, api_secret=settings.VONAGE_API_SECRET)
    options = HttpClientOptions(
        api_host=api_host, rest_host=rest_host, timeout=_SETUP_TIMEOUT_SECONDS, max_retries=0, pool_maxsize=1
    )
    return Vonage(auth, options)


@receiver(setting_changed)
def _reset_setup_client(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("VONAGE_"):
        _setup_client.cache_clear()
        _sms_client.cache_clear()


# --- SMS (alerts) ----------------------------------------------------------------------
# Alerts about missed calls go out as SMS through Vonage's SMS API (``POST /sms/json`` on
# the REST host, form-encoded, authenticated with the account's API key and secret, as the
# SDK's ``vonage_sms`` sends it), to the set-up client's hosts (a local fake when
# VONAGE_API_HOST names one). The API answers 200 even when it refuses a message
# (``status`` other than "0" with an ``error-text``): the SDK raises SmsError for that.
#
# A client of its own that never re-sends: the SDK's HttpClient re-sends a request whose
# connection closed before the answer (RemoteDisconnected) up to ``pool_maxsize`` times
# (10 by default), and urllib3 retries on its own, so a text Vonage had already accepted
# would go out again, once per re-send (found with the fake's drop_after_accept). With a
# pool of one and no urllib3 retries it is sent once per attempt; the alert outbox decides
# about trying again (tests/e2e/test_alert_sms.py).


def sms_send(*, to: str, from_: str, text: str) -> str:
    """Send one SMS; return Vonage's message id. Raises VonageUnavailable."""
    from vonage_sms import SmsMessage

    if not account_configured():
        raise VonageUnavailable("VONAGE_API_KEY and VONAGE_API_SECRET are needed to send an SMS.")
    message = SmsMessage(to=to, from_=from_, text=text)
    response = _call_setup_sdk("sending an SMS", "sms", "send", message, client=_sms_client())
    message_id = str(response.messages[0].message_id or "")
    logger.info("vonage.sms_sent to=%s message_id=%s", _mask(to), message_id)
    return message_id


# --- voicemail recordings -------------------------------------------------------------
# A voicemail is fetched with the application's JWT from the URL Vonage's record event
# gave (``recording_url``, e.g. https://api.nexmo.com/v1/files/<id>). That URL arrived in
# a webhook, so only a Vonage host, or the API host we are configured to use (such as the
# local fake), may receive the token. Not the SDK's ``voice.download_recording``: it sends
# the request without a timeout, and its host check is a substring test (``"vonage.com"
# in url``) that any URL with that text in its query passes and the local fake fails.
# The SDK still signs the token: the voice client's auth, reused like every other call's.

# Far more than any voicemail: a bound on what one admin page view holds in memory.
_RECORDING_MAX_BYTES = 50 * 1024 * 1024


def recording_download(*, url: str) -> bytes:
    """The recording at ``url`` (MP3, as Vonage records it); raises VonageUnavailable."""
    import requests
    from vonage_jwt.errors import VonageJwtError

    if not recording_url_valid(url):
        logger.warning("vonage.recording_url_refused url=%.200s: not Vonage's files path, not fetched", url)
        raise VonageUnavailable("The recording's address is not one Vonage gives, so it was not fetched.")
    if not credentials_configured():
        raise VonageUnavailable("VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY are needed to fetch a recording.")
    http = _voice_client(settings.VONAGE_API_HOST).http_client
    try:
        headers = {"User-Agent": http.user_agent, "Authorization": http.auth.create_jwt_auth_string()}
    except (VonageJwtError, ValueError, OSError) as exc:
        raise VonageUnavailable(f"The application JWT could not be signed: {exc}") from exc
    chunks: list[bytes] = []
    size = 0
    try:
        # A redirect to another host is followed without the token: requests drops the
        # Authorization header when the host (or the scheme) changes.
        with requests.get(url, headers=headers, timeout=settings.VONAGE_TIMEOUT_SECONDS, stream=True) as response:
            if response.status_code != 200:
                raise VonageUnavailable(
                    f"Vonage answered {response.status_code} for the recording.", status_code=response.status_code
                )
            for chunk in response.iter_content(chunk_size=64 * 1024):
                size += len(chunk)
                if size > _RECORDING_MAX_BYTES:
                    raise VonageUnavailable("The recording is larger than any voicemail should be; it was not fetched.")
                chunks.append(chunk)
    except (requests.RequestException, OSError) as exc:  # OSError: e.g. an unreadable CA bundle
        raise VonageUnavailable(f"The recording could not be fetched: {type(exc).__name__}: {exc}") from exc
    logger.info("vonage.recording_download bytes=%d", size)
    return b"".join(chunks)
