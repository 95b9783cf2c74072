"""Callers' numbers, shown only to staff allowed to see them (``calls.see_caller_numbers``).

Everyone else (Marketing) sees them masked, one way everywhere (:func:`campaigns.phone.masked`:
``…0123``): in the call list and the call's page, its legs, the event payloads Vonage
sent, the whisper as spoken (``{caller}`` reads the number digit by digit) and the CSV.
They cannot search or filter by a caller's number either: a search that matched would
tell them the number, a digit at a time.
"""

from typing import Any

from django.http import HttpRequest

from campaigns.phone import display_number, masked, spoken_digits

SEE_CALLER_NUMBERS = "calls.see_caller_numbers"

# Fields and lookups through which a caller's number could be read or matched. (Lookups
# through a relation, ?call__caller_number=…, the admin refuses by itself unless a list
# filter names them.)
CALL_FIELDS_WITH_CALLER = frozenset({"caller_number", "whisper_text", "caller_ncco", "legs", "events"})
EVENT_FIELDS_WITH_CALLER = frozenset({"payload"})


def sees_caller_numbers(request: HttpRequest) -> bool:
    """Superusers have every permission; Supervisors are given this one (calls.roles)."""
    return bool(request.user.has_perm(SEE_CALLER_NUMBERS))


def caller_display(number: str, *, visible: bool) -> str:
    """The caller's number as this user may see it; "withheld" when there is none."""
    if not number:
        return "withheld"
    return display_number(number) if visible else masked(number)


def masked_text(text: str, caller: str) -> str:
    """``text`` with every form of ``caller``'s number in it masked: digits as stored,
    with a ``+``, as displayed, and as text-to-speech reads them (``4 4 7 9 …``)."""
    if not text or not caller:
        return text
    digits = "".join(ch for ch in caller if ch.isdigit())
    forms = {caller, f"+{caller}", display_number(caller)}
    if digits:
        forms |= {digits, spoken_digits(digits)}
    # Longest first, so "+44…" is masked whole rather than leaving its "+".
    for form in sorted((f for f in forms if len(f) >= 4), key=len, reverse=True):
        text = text.replace(form, masked(digits or caller))
    return text


def masked_payload(value: Any, caller: str, *, unknown_caller_keys: tuple[str, ...] = ()) -> Any:
    """A copy of an event payload with the caller's number masked wherever it appears.

    ``unknown_caller_keys`` are masked whatever they hold: for an event that matched no
    call the caller's number is not known, and Vonage's ``from`` may be it.
    """
    if isinstance(value, dict):
        return {
            key: (
                masked(str(item))
                if key in unknown_caller_keys and isinstance(item, str | int) and item
                else masked_payload(item, caller, unknown_caller_keys=unknown_caller_keys)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked_payload(item, caller, unknown_caller_keys=unknown_caller_keys) for item in value]
    if isinstance(value, str):
        return masked_text(value, caller)
    return value


def lookup_mentions(lookup: str, fields: frozenset[str]) -> bool:
    """Whether a list filter's query-string lookup (``caller_number__startswith``)
    reads one of ``fields``."""
    return lookup.split("__", 1)[0] in fields
