"""The client's address, for throttling admin logins (``AXES_CLIENT_IP_CALLABLE``).

``X-Forwarded-For`` is read only when ``TRUSTED_PROXY_COUNT`` says how many proxies of
ours append to it: each appends the address it received the request from, so the client
is the entry that many places from the right. Entries further left are whatever the
client sent and are never trusted.
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < proxies:
        # Not through all our proxies (a direct request, or a misconfigured count).
        return remote
    candidate = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
