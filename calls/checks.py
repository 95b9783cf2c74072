"""System checks for the Vonage settings (``manage.py check``, and at every start)."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from campaigns.destinations import malformed_prefixes
from campaigns.phone import InvalidNumber, normalize_number


@register("calls")
def vonage_settings_check(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    messages: list[Any] = []
    if not settings.CALL_CENTER_NUMBER:
        messages.append(
            Error(
                "CALL_CENTER_NUMBER is not set: calls to unknown numbers, and campaigns with "
                "no destination, have nowhere to go.",
                hint="Set it to the call centre's number in international format, e.g. 447700900999.",
                id="calls.E001",
            )
        )
    else:
        try:
            normalize_number(settings.CALL_CENTER_NUMBER)
        except InvalidNumber as exc:
            messages.append(Error(f"CALL_CENTER_NUMBER: {exc}", id="calls.E002"))
    if malformed := malformed_prefixes():
        messages.append(
            Error(
                "ALLOWED_DESTINATION_PREFIXES has entries that are not number prefixes: {}.".format(
                    ", ".join(f"“{item}”" for item in malformed)
                ),
                hint="Use E.164 digits, comma-separated, e.g. 44,353 (empty: CALL_CENTER_NUMBER's country code).",
                id="calls.E006",
            )
        )
    if bool(settings.VONAGE_APPLICATION_ID) != bool(settings.VONAGE_PRIVATE_KEY):
        messages.append(
            Error(
                "Set both VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY, or neither (calls are "
                "then recorded but not placed).",
                id="calls.E003",
            )
        )
    if not settings.DEBUG and not settings.PUBLIC_URL.startswith("https://"):
        messages.append(
            Warning(
                "PUBLIC_URL is not https: Vonage would send webhooks, and their signatures, in clear text.",
                id="calls.W002",
            )
        )
    if settings.VONAGE_TIMEOUT_SECONDS < 1 or settings.AGENT_CALL_DEADLINE_SECONDS >= 4.5:
        messages.append(
            Error(
                "VONAGE_TIMEOUT_SECONDS must be at least 1 and AGENT_CALL_DEADLINE_SECONDS under 4.5: "
                "Vonage waits 5 s for an answer NCCO.",
                id="calls.E004",
            )
        )
    return messages


@register("calls", deploy=True)
def webhook_signature_check(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """A deployment check (``check --deploy``): set-up commands such as ``migrate`` and
    ``createsuperuser`` run before the secret is in place; the server itself refuses to
    start without it (``refuse_unsafe_start``)."""
    return webhook_signature_messages()


def webhook_signature_messages() -> list[Any]:
    """Production without the signature secret is refused (calls.E005), unless the
    operator opted out with the setting named unsafe, which is still a warning."""
    if settings.VONAGE_SIGNATURE_SECRET or settings.DEBUG:
        return []
    if settings.UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS:
        return [
            Warning(
                "UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS is on: anyone who finds the webhook URLs can place "
                "billable calls and steer live calls.",
                hint="Set VONAGE_SIGNATURE_SECRET to the account's signature secret and remove the opt-out.",
                id="calls.W001",
            )
        ]
    return [
        Error(
            "VONAGE_SIGNATURE_SECRET is not set: with DEBUG off, no webhook is accepted without Vonage's signature.",
            hint=(
                "Set it to the account's signature secret (Vonage dashboard, API settings). "
                "UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS=true accepts anyone's webhooks instead; never on a reachable server."
            ),
            id="calls.E005",
        )
    ]


def refuse_unsafe_start() -> None:
    """Called when a server process starts (WSGI/ASGI): gunicorn runs no system checks,
    so an unsafe configuration would otherwise serve requests."""
    errors = [message for message in webhook_signature_messages() if message.is_serious()]
    if errors:
        raise ImproperlyConfigured(f"{errors[0].msg} {errors[0].hint}")
