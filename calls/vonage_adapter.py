"""The one module that talks to Vonage's REST API (through the ``vonage`` SDK).

The rest of the code never imports the SDK. The client is built on first use and
cached, never at import; the SDK's timeout (None by default: wait forever) is always
set; SDK exceptions become :class:`VonageUnavailable`.

Without application credentials nothing is sent: the calls we would place are logged
and given a ``dryrun-`` uuid so the simulator and ``make run`` work without an account.
"""

from __future__ import annotations

import logging
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

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

logger = logging.getLogger(__name__)

DRY_RUN_PREFIX = "dryrun-"
# Vonage signs webhooks' JWTs for 15 minutes; ours are reused for 5 (VONAGE.md: each
# request otherwise signs a fresh RS256 token, about 1 ms of CPU).
_JWT_REUSE_SECONDS = 300


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

    The SDK's timeout bounds each connect and read, not the whole request (and it
    re-sends a POST whose connection dropped), so the request runs in a worker thread
    and we stop waiting at the deadline. A call that is created after we gave up is
    hung up when it is, so no agent is rung for a caller we already routed elsewhere.
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

    future = _executor().submit(
        _create_call, to, from_, answer_url, event_url, ringing_timer, machine_detection
    )
    try:
        return future.result(timeout=deadline_seconds)
    except FutureTimeout:
        future.add_done_callback(_hang_up_late_call)
        raise VonageUnavailable(f"Vonage did not create the call within {deadline_seconds:g} s.") from None


def transfer_to_ncco(*, uuid: str, ncco: list[dict[str, Any]], region_url: str = "") -> None:
    """Move a live leg to a new NCCO (``PUT /v1/calls/{uuid}``, action transfer)."""
    models = [_ncco_model(action) for action in ncco]
    _call_sdk(region_url, "transfer_call_ncco", uuid, models)


def hang_up(*, uuid: str, region_url: str = "") -> None:
    _call_sdk(region_url, "hangup", uuid)


def get_call_info(*, uuid: str, region_url: str = "") -> dict[str, Any]:
    info = _call_sdk(region_url, "get_call", uuid)
    return info.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- internals -------------------------------------------------------------------------


def _create_call(
    to: str,
    from_: str,
    answer_url: str,
    event_url: str,
    ringing_timer: int | None,
    machine_detection: str | None,
) -> PlacedCall:
    from vonage_voice import CreateCallRequest, Phone, ToPhone

    request = CreateCallRequest(
        to=[ToPhone(number=to)],
        from_=Phone(number=from_),
        answer_url=[answer_url],
        answer_method="GET",
        event_url=[event_url],
        event_method="POST",
        ringing_timer=ringing_timer,
        machine_detection=machine_detection,
    )
    response = _call_sdk("", "create_call", request)
    logger.info("vonage.create_call to=%s uuid=%s", _mask(to), response.uuid)
    return PlacedCall(uuid=response.uuid, conversation_uuid=response.conversation_uuid or "", sent=True)


def _hang_up_late_call(future: Future[PlacedCall]) -> None:
    if future.exception() is not None:
        return
    placed = future.result()
    logger.warning("vonage.late_agent_call uuid=%s: created after the deadline, hanging up", placed.uuid)
    try:
        hang_up(uuid=placed.uuid)
    except VonageUnavailable:
        logger.exception("vonage.late_agent_call uuid=%s could not be hung up", placed.uuid)


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
    """A call lives in one region: control it at the host its answer webhook named."""
    if region_url and settings.VONAGE_API_HOST == "api.nexmo.com":
        host = urlsplit(region_url).netloc
        if host:
            return host
    return settings.VONAGE_API_HOST


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


def account_client() -> Any:
    """The SDK client for application and number set-up (account key and secret)."""
    return _voice_client(settings.VONAGE_API_HOST)


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
    if setting.startswith("VONAGE_"):
        _voice_client.cache_clear()
