"""Phone numbers as Vonage sends them: E.164 digits without the leading ``+``."""

import re
from functools import lru_cache

import phonenumbers
from django.conf import settings

_SEPARATORS = re.compile(r"[\s\-().]")
_E164_DIGITS = re.compile(r"^[1-9][0-9]{6,14}$")
E164_DIGITS_REGEX = _E164_DIGITS.pattern


class InvalidNumber(ValueError):
    """A string that is not a phone number in international format."""


def normalize_number(raw: str) -> str:
    """Return ``raw`` as E.164 digits (``447700900001``), or raise InvalidNumber.

    Accepts what people type into the admin and what Vonage sends:
    ``+44 7700 900001``, ``0044-7700-900001``, ``447700900001``.
    """
    text = _SEPARATORS.sub("", str(raw or ""))
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    if not _E164_DIGITS.match(text):
        raise InvalidNumber(f"“{raw}” is not a phone number in international format (7 to 15 digits).")
    return text


def spoken_digits(number: str) -> str:
    """Digits separated so text-to-speech reads them one by one: ``4 4 7 7``."""
    return " ".join(ch for ch in number if ch.isdigit())


def masked(number: str) -> str:
    """A number shortened for logs, and for staff who may not see callers' numbers
    (``calls.privacy``): only the last four digits are kept, ``…0123``."""
    if not number:
        return "-"
    return "…" + number[-4:]


@lru_cache(maxsize=8)
def home_region(call_centre_number: str) -> str | None:
    """The country of the call centre's number (``GB``): how national numbers are read."""
    try:
        country = phonenumbers.parse(f"+{call_centre_number}").country_code
    except phonenumbers.NumberParseException:
        return None
    # By country code, not the whole number: Ofcom's drama numbers (07700 900…) are valid
    # in no region, but a call centre's country is still the UK.
    if country is None:
        return None
    region = phonenumbers.region_code_for_country_code(country)
    return None if region == phonenumbers.UNKNOWN_REGION else region


def _region() -> str | None:
    return home_region(settings.CALL_CENTER_NUMBER) if settings.CALL_CENTER_NUMBER else None


def number_from_search(term: str) -> str | None:
    """A search term that is a whole phone number as E.164 digits, else None.

    International forms (``+44 7946 000123``, ``0044…``, ``447946000123``) and, read
    in the call centre's country (CALL_CENTER_NUMBER), national ones (``07946 000123``).
    """
    text = term.strip()
    if not text or not any(ch.isdigit() for ch in text):
        return None
    bare = _SEPARATORS.sub("", text)
    region = _region()
    if region and bare.startswith("0") and not bare.startswith("00") and bare[1:].isdigit():
        try:
            parsed = phonenumbers.parse(bare, region)
        except phonenumbers.NumberParseException:
            return None
        return f"{parsed.country_code}{parsed.national_number}"
    try:
        return normalize_number(text)
    except InvalidNumber:
        return None


def display_number(number: str) -> str:
    """E.164 digits as people write them, one way throughout the admin: international
    (``+44 7946 000123``) or national (``07946 000123``) for numbers of the call
    centre's country, as PHONE_NUMBER_DISPLAY says. Anything else is shown as stored."""
    if not number or not number.isdigit():
        return number
    try:
        parsed = phonenumbers.parse(f"+{number}")
    except phonenumbers.NumberParseException:
        return f"+{number}"
    if not phonenumbers.is_possible_number(parsed):
        return f"+{number}"
    region = _region()
    national = (
        settings.PHONE_NUMBER_DISPLAY == "national"
        and region is not None
        and parsed.country_code == phonenumbers.country_code_for_region(region)
    )
    style = phonenumbers.PhoneNumberFormat.NATIONAL if national else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(parsed, style)
