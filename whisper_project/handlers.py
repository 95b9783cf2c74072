"""One WSGI application, two middleware stacks: the site's for people, none for Vonage.

The site's middleware is for a person in a browser: sessions, CSRF, authentication, the
admin's messages, django-axes' lockouts, django-simple-history's user. None of it means
anything to a webhook (signed by Vonage, answered with JSON, no cookie, no user) and all
of it runs on every request: on the hot path it was about a sixth of a webhook's Python
time under gunicorn (the messages storage alone builds a cookie signer per request). So
the webhook routes (``calls/urls.py``) are served by a handler with no middleware; every
other path by Django's own, with ``settings.MIDDLEWARE``.

Nothing a webhook does depends on the middleware it skips: its view is CSRF-exempt, its
security is its signature (``calls/webhooks/auth.py``), the HTTPS redirect already exempts
it (Vonage does not follow a redirect on POST), and the headers SecurityMiddleware adds are
for browsers. Request signals (connection management, ``request_finished``) are sent by
both handlers alike.
"""

from collections.abc import Callable
from functools import cached_property
from typing import Any

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler, get_path_info
from django.http import HttpResponseBase
from django.urls import reverse

WSGIEnviron = dict[str, Any]
StartResponse = Callable[..., Any]


class WebhookHandler(WSGIHandler):
    """Django's WSGI handler without middleware: URL resolution, the view, the signals."""

    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler.load_middleware with an empty MIDDLEWARE, which is all it builds then.
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        self._middleware_chain = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]


class SiteHandler(WSGIHandler):
    """The project's WSGI application: webhooks to :class:`WebhookHandler`, the rest
    (the admin, the health check, the API description) through the site's middleware."""

    def __init__(self) -> None:
        super().__init__()
        self.webhooks = WebhookHandler()

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> HttpResponseBase:
        if get_path_info(environ).rstrip("/") in self.webhook_paths:
            return self.webhooks(environ, start_response)
        return super().__call__(environ, start_response)

    @cached_property
    def webhook_paths(self) -> frozenset[str]:
        """Every route of ``calls/urls.py`` (all of them Vonage's), without a trailing slash."""
        from calls import urls

        return frozenset(reverse(f"{urls.app_name}:{route.name}").rstrip("/") for route in urls.urlpatterns)
