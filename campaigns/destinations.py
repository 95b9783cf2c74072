"""Where calls may be sent: the operator's allow-list of number prefixes.

Least privilege against toll fraud: a campaign editor (or whoever has taken over that
login) may only send calls to numbers that start with one of
``ALLOWED_DESTINATION_PREFIXES`` (E.164 digits, comma-separated; by default the country
calling code of ``CALL_CENTER_NUMBER``), or to ``CALL_CENTER_NUMBER`` itself, which is
always allowed. Edits are refused by ``Campaign.clean`` (the admin form, the unknown
numbers' quick create, ``import_campaigns``); at call time a destination outside the
list (the setting was narrowed after the campaign was saved) is not rung: the call
centre is, instead (``ringable``).
"""

import re

import phonenumbers
from django.conf import settings

from .phone import InvalidNumber, normalize_number

# A prefix is 1 to 15 E.164 digits; an optional leading "+" is allowed in the setting.
_PREFIX = re.compile(r"\+?([1-9][0-9]{0,14})")


def _configured() -> list[str]:
    raw = settings.ALLOWED_DESTINATION_PREFIXES
    items = raw.split(",") if isinstance(raw, str) else list(raw or [])
    return [str(item).strip() for item in items if str(item).strip()]


def malformed_prefixes() -> list[str]:
    """Entries of the setting that are not number prefixes (system check calls.E005)."""
    return [item for item in _configured() if not _PREFIX.fullmatch(item)]


def call_centre_number() -> str:
    try:
        return normalize_number(settings.CALL_CENTER_NUMBER)
    except InvalidNumber:
        return ""


def country_calling_code(number: str) -> str:
    """The country calling code ``number`` (E.164 digits) starts with, or "" if none.

    Calling codes are prefix-free (ITU-T E.164): at most one of the number's first one,
    two or three digits is assigned, and phonenumbers knows which are.
    """
    for length in (1, 2, 3):
        head = number[:length]
        if head.isdigit() and int(head) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return head
    return ""


def allowed_prefixes() -> tuple[str, ...]:
    """The prefixes in force. A malformed entry allows nothing (it fails closed and is
    reported by ``manage.py check``)."""
    configured = _configured()
    if configured:
        return tuple(match.group(1) for item in configured if (match := _PREFIX.fullmatch(item)))
    code = country_calling_code(call_centre_number())
    return (code,) if code else ()


def destination_allowed(number: str) -> bool:
    if number in (call_centre_number(), settings.CALL_CENTER_NUMBER) and number:
        return True
    return any(number.startswith(prefix) for prefix in allowed_prefixes())


def allowed_text() -> str:
    """The allowed destinations, as a sentence's end: "numbers starting +44 or +353, and
    the call centre's number"."""
    prefixes = [f"+{prefix}" for prefix in allowed_prefixes()]
    if not prefixes:
        return "the call centre's number only"
    listed = prefixes[0] if len(prefixes) == 1 else ", ".join(prefixes[:-1]) + f" or {prefixes[-1]}"
    return f"numbers starting {listed}, and the call centre's number"


def refusal(numbers: list[str]) -> str:
    """The form error for ``numbers`` (normalised) outside the allow-list."""
    shown = ", ".join(f"+{number}" for number in numbers)
    return (
        f"{shown} may not be rung: calls may only go to {allowed_text()} "
        "(ALLOWED_DESTINATION_PREFIXES, set by the operator)."
    )


def ringable(numbers: list[str]) -> tuple[list[str], list[str]]:
    """``numbers`` as they may be rung, in order: each one outside the allow-list
    replaced by the call centre's number (once); and the ones replaced."""
    centre = call_centre_number() or settings.CALL_CENTER_NUMBER
    allowed: list[str] = []
    refused: list[str] = []
    for number in numbers:
        if not destination_allowed(number):
            refused.append(number)
            number = centre
        if number not in allowed:
            allowed.append(number)
    return allowed, refused
