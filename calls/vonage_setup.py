"""Pointing Vonage at Call Whisper: the application and its numbers (``manage.py vonage_setup``).

Replaces the seed's Nexmo CLI steps (``nexmo app:create`` and ``nexmo link:app``). The
calls to Vonage go through :mod:`calls.vonage_adapter`; this module decides what to
send, checks what can be checked before anything is sent, and words the outcome.
"""

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.urls import reverse

from campaigns.models import TrackingNumber

from . import vonage_adapter
from .vonage_adapter import CreatedApplication, VoiceApplicationSpec, VonageUnavailable

DEFAULT_APPLICATION_NAME = "Call Whisper"
DEFAULT_PRIVATE_KEY_FILE = "private.key"


class SetupError(Exception):
    """Set-up cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class NumberLink:
    """What happened to one tracking number."""

    number: str
    label: str
    linked: bool
    message: str


def account_check() -> None:
    if not vonage_adapter.account_configured():
        raise SetupError(
            "VONAGE_API_KEY and VONAGE_API_SECRET must be set to set up Vonage: they are the "
            "account's API key and secret, shown at the top of the Vonage dashboard."
        )


def public_url_check(public_url: str) -> None:
    """Vonage must be able to reach the webhooks: refuse a local or non-web address."""
    parts = urlsplit(public_url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise SetupError(f"PUBLIC_URL ({public_url!r}) must be a web address such as https://whisper.example.com.")
    if host == "localhost" or host.endswith(".localhost") or _is_local_address(host):
        raise SetupError(
            f"PUBLIC_URL is {public_url}, which Vonage cannot reach. Set it to the address this app "
            "is reachable at from the internet (for local development, a tunnel such as ngrok)."
        )


def application_spec(*, name: str, public_url: str) -> VoiceApplicationSpec:
    """Call Whisper's application: every webhook signed and POSTed, so that the signature covers its fields."""
    base = public_url.rstrip("/")
    return VoiceApplicationSpec(
        name=name,
        answer_url=base + reverse("calls:answer_inbound"),
        fallback_answer_url=base + reverse("calls:fallback"),
        event_url=base + reverse("calls:event"),
    )


def application_summary(spec: VoiceApplicationSpec) -> list[str]:
    """The settings in ``spec``, one line each, as people read them."""
    return [
        f"  answer URL:          {spec.answer_method} {spec.answer_url}",
        f"  fallback answer URL: {spec.fallback_answer_method} {spec.fallback_answer_url}",
        f"  event URL:           {spec.event_method} {spec.event_url}",
        f"  signed webhooks:     {'on' if spec.signed_callbacks else 'off'}",
    ]


def private_key_file_check(path: Path, *, force: bool) -> None:
    """Checked before the application is created: Vonage hands out its private key once,
    so there must be somewhere to keep it."""
    if path.exists() and not force:
        raise SetupError(
            f"{path} already exists. Vonage gives a new application's private key only once, and "
            "this would overwrite the key there: choose another file with --private-key-file, or "
            "use --force if the old key is no longer needed."
        )
    if not path.parent.is_dir():
        raise SetupError(f"Cannot write the private key to {path}: the folder {path.parent} does not exist.")


def private_key_write(path: Path, private_key: str, *, force: bool) -> None:
    """Write the key readable by its owner only (mode 600) from the first byte."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    descriptor = os.open(path, flags, 0o600)
    # An existing file keeps its mode through O_TRUNC, and the umask may have masked 0o600.
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(private_key if private_key.endswith("\n") else private_key + "\n")


def application_create(*, spec: VoiceApplicationSpec) -> CreatedApplication:
    try:
        return vonage_adapter.application_create(spec=spec)
    except VonageUnavailable as exc:
        raise SetupError(f"The application was not created. {exc}{_hint(exc)}") from exc


def application_update(*, application_id: str, spec: VoiceApplicationSpec) -> None:
    try:
        vonage_adapter.application_update(application_id=application_id, spec=spec)
    except VonageUnavailable as exc:
        hint = _hint(exc)
        if exc.status_code == 404:
            hint = (
                f" This account has no application {application_id}: check VONAGE_APPLICATION_ID, "
                "or unset it to create a new application."
            )
        raise SetupError(f"Application {application_id} was not updated. {exc}{hint}") from exc


def numbers_to_link() -> list[TrackingNumber]:
    """The numbers callers may dial: active numbers of active campaigns."""
    return list(TrackingNumber.objects.routable().select_related("campaign").order_by("number"))


def numbers_link(*, application_id: str, numbers: list[TrackingNumber]) -> list[NumberLink]:
    """Link each number to the application; a number that fails is reported, not fatal.

    The owned-numbers list gives each number's country, which the update requires.
    """
    try:
        owned = vonage_adapter.owned_numbers()
    except VonageUnavailable as exc:
        raise SetupError(f"The account's numbers could not be listed, so none were linked. {exc}{_hint(exc)}") from exc
    return [_number_link(number, owned.get(number.number), application_id) for number in numbers]


def number_label(number: TrackingNumber) -> str:
    details = ", ".join(part for part in (number.source, number.campaign.name) if part)
    return f"{number.number} ({details})"


def _number_link(number: TrackingNumber, owned: vonage_adapter.OwnedNumber | None, application_id: str) -> NumberLink:
    label = number_label(number)
    if owned is None:
        return NumberLink(
            number.number,
            label,
            linked=False,
            message=(
                f"{label} was not linked: this Vonage account does not own it. Buy it in the Vonage "
                "dashboard, or deactivate it in the admin."
            ),
        )
    if owned.app_id == application_id:
        return NumberLink(number.number, label, linked=True, message=f"{label} is already linked.")
    if not owned.country:
        return NumberLink(
            number.number,
            label,
            linked=False,
            message=f"{label} was not linked: Vonage did not say which country it belongs to.",
        )
    try:
        vonage_adapter.number_link(msisdn=owned.msisdn, country=owned.country, application_id=application_id)
    except VonageUnavailable as exc:
        return NumberLink(number.number, label, linked=False, message=f"{label} was not linked. {exc}")
    return NumberLink(number.number, label, linked=True, message=f"Linked {label}.")


def _hint(exc: VonageUnavailable) -> str:
    if exc.status_code == 401:
        return " Check VONAGE_API_KEY and VONAGE_API_SECRET."
    return ""


def _is_local_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global
