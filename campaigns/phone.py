"""Phone numbers as Vonage sends them: E.164 digits without the leading ``+``."""

import re

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
    """A number shortened for logs: only the last four digits are kept."""
    if not number:
        return "-"
    return "…" + number[-4:]
