"""The URLs we hand Vonage to call back, with their parameters signed by us.

Vonage's own signature never covers a URL's query string (VONAGE.md, signed webhooks),
and our parameters name a call by its sequential id (``/event?call=42&attempt=0``).
Unsigned, anyone could address any live call by editing them. So every parameter we put
into a callback URL is covered by an HMAC of ours (Django's ``Signer``, keyed by
``SECRET_KEY``, with ``SECRET_KEY_FALLBACKS`` honoured so the key can be rotated without
breaking the calls in progress), bound to the route; a request whose parameters do not
carry a valid signature is refused before anything is read or written.

Vonage adds its own fields to the query string of a GET answer webhook; those are not
ours and are not covered (they are Vonage's request, checked by Vonage's signature when
the webhook is POSTed).
"""

import logging
from collections.abc import Mapping
from functools import cache
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.signals import setting_changed
from django.core.signing import BadSignature, Signer
from django.dispatch import receiver
from django.urls import reverse

logger = logging.getLogger(__name__)

# Every parameter the app may put into a callback URL. Add a new one here, or it is
# neither signed nor accepted.
CALLBACK_PARAMS = ("call", "attempt", "checkpoint")
SIGNATURE_PARAM = "sig"
_SALT = "calls.webhooks.callback_urls"


class InvalidCallbackSignature(Exception):
    """The callback URL's parameters are not the ones we signed."""


def callback_url(route: str, **params: object) -> str:
    """The absolute URL of ``route`` (a URL name such as ``calls:event``) with ``params``
    and their signature; without ``params`` the bare route."""
    url = settings.PUBLIC_URL + _path(route)
    return f"{url}?{callback_query(route, params)}" if params else url


def callback_query(route: str, params: Mapping[str, object], *, key: str | None = None) -> str:
    """``params`` and their signature for ``route``, as a query string. ``key`` is for a
    client that plays Vonage against a server with another ``SECRET_KEY`` (benchmarks)."""
    unknown = set(params) - set(CALLBACK_PARAMS)
    if unknown:
        raise ValueError(f"Not a callback parameter: {', '.join(sorted(unknown))}.")
    values = {key_: str(value) for key_, value in params.items()}
    signer = _signer() if key is None else Signer(key=key, salt=_SALT)
    return urlencode({**values, SIGNATURE_PARAM: signer.signature(_message(route, values))})


def callback_params(route: str, query: Mapping[str, str]) -> dict[str, str]:
    """Our parameters from a request's ``query`` for ``route``, verified; {} when it
    carries none. Raises InvalidCallbackSignature for anything we did not sign: a
    parameter added, removed or changed, a signature from another route, or none."""
    values = {key: str(query[key]) for key in CALLBACK_PARAMS if key in query}
    signature = query.get(SIGNATURE_PARAM)
    if not values and signature is None:
        return {}
    if not values or not signature:
        raise InvalidCallbackSignature("The callback URL's parameters are not signed.")
    try:
        _signer().unsign(f"{_message(route, values)}{_signer().sep}{signature}")
    except BadSignature:
        raise InvalidCallbackSignature("The callback URL's parameters do not match their signature.") from None
    return values


def _message(route: str, values: Mapping[str, str]) -> str:
    return route + "?" + urlencode(sorted(values.items()))


# Both are asked for on every call's hot path (a callback URL or two per answer, a
# verification per callback): built once per process, not per request.


@cache
def _path(route: str) -> str:
    return reverse(route)


@cache
def _signer() -> Signer:
    return Signer(salt=_SALT)


@receiver(setting_changed)
def _forget_keys_and_paths(*, setting: str, **kwargs: Any) -> None:
    # Tests rotate SECRET_KEY (and its fallbacks) and swap URL confs; production does
    # neither without a restart.
    if setting in ("SECRET_KEY", "SECRET_KEY_FALLBACKS"):
        _signer.cache_clear()
    if setting == "ROOT_URLCONF":
        _path.cache_clear()
