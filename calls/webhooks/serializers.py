"""What Vonage may send to each webhook: the input contracts.

Numbers arrive as E.164 digits without ``+``; ``from`` may be absent (in-app calls) or
``anonymous``. Fields we do not use are accepted and ignored, so a new field from
Vonage never breaks a call.
"""

import math
import re
import threading
from typing import Any

from django.core.validators import ProhibitNullCharactersValidator
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

# The largest id a database row can have (PostgreSQL's bigint); a larger ``call`` is
# refused as input rather than overflowing a query.
MAX_ID = 2**63 - 1
# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators: none is
# ever in an identifier, number or status Vonage sends, and each could forge a log line.
# With them, the lone surrogates a JSON ``\\ud800`` escape can put in a ``str``.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def no_control_characters(value: str) -> None:
    found = _CONTROL.search(value)
    if found is None:
        return
    if "\ud800" <= found.group() <= "\udfff":  # DRF's own message for it
        raise serializers.ValidationError(f"Surrogate characters are not allowed: U+{ord(found.group()):X}.")
    raise serializers.ValidationError("Control characters are not allowed here.")


class IdentifierField(serializers.CharField):
    """A string Vonage sends as an id, number or status: no control characters.

    One search of ``_CONTROL`` in place of DRF's NUL and surrogate validators, which it
    covers: those look at the string a character at a time, for each of the five such
    fields of every event."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators = [
            validator
            for validator in self.validators
            if not isinstance(validator, ProhibitNullCharactersValidator | ProhibitSurrogateCharactersValidator)
        ]
        self.validators.append(no_control_characters)


class _WithFrom(serializers.Serializer):
    """``from`` is a Python keyword, so the field is added by name."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = IdentifierField(max_length=64, required=False, allow_blank=True, default="")
        return fields


class AnswerInboundSerializer(_WithFrom):
    """Vonage's answer request for a caller's leg: who called which number."""

    to = IdentifierField(max_length=64)
    uuid = IdentifierField(max_length=64)
    conversation_uuid = IdentifierField(max_length=64, required=False, allow_blank=True, default="")
    region_url = IdentifierField(max_length=200, required=False, allow_blank=True, default="")

    def validate_region_url(self, value: str) -> str:
        # A malformed region is not worth refusing a caller over: fall back to the
        # configured API host.
        return value if value.startswith("https://") else ""


class AnswerOutboundSerializer(AnswerInboundSerializer):
    """Vonage's answer request for an agent's leg; ``call`` is ours, from the answer URL."""

    call = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    attempt = serializers.IntegerField(min_value=0, max_value=50, required=False)
    sig = serializers.CharField(required=False, help_text="Our signature of call and attempt (callback_urls).")
    to = IdentifierField(max_length=64, required=False, allow_blank=True, default="")


class FallbackSerializer(_WithFrom):
    """Vonage's fallback answer request: everything optional, it must always answer."""

    to = IdentifierField(max_length=64, required=False, allow_blank=True, default="")
    uuid = IdentifierField(max_length=64, required=False, allow_blank=True, default="")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class EventSerializer(serializers.Serializer):
    """Any event Vonage posts: status events, ``transfer``, ``record``, ``input``,
    error events (``reason``, no ``status``), and ``human``/``machine`` detection
    events that carry ``call_uuid`` instead of ``uuid``."""

    uuid = IdentifierField(max_length=64, required=False, allow_blank=True)
    call_uuid = IdentifierField(max_length=64, required=False, allow_blank=True)
    conversation_uuid = IdentifierField(max_length=64, required=False, allow_blank=True)
    status = IdentifierField(max_length=32, required=False, allow_blank=True)
    timestamp = IdentifierField(max_length=40, required=False, allow_blank=True)
    reason = serializers.CharField(required=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        identifying = ("uuid", "call_uuid", "conversation_uuid", "recording_uuid")
        if not any(self.initial_data.get(key) for key in identifying):
            raise serializers.ValidationError(
                "An event must name its call: uuid, call_uuid, conversation_uuid or recording_uuid."
            )
        if not storable(self.initial_data):
            # The whole event is kept (CallEvent.payload); PostgreSQL's jsonb refuses these.
            raise serializers.ValidationError(
                "An event may not contain NUL characters, unpaired surrogates or numbers that are not finite."
            )
        return attrs


# NUL, and the lone surrogates a JSON ``\\ud800`` escape can put in a ``str``.
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` can be stored as JSON by every database we run on."""
    if depth > 100:
        return False
    if isinstance(value, str):
        return _UNSTORABLE_CHARACTER.search(value) is None
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(storable(k, depth + 1) and storable(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(storable(item, depth + 1) for item in value)
    return True


class EventContextSerializer(serializers.Serializer):
    """Our own query parameters on the event URLs we hand Vonage (signed: callback_urls)."""

    call = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    attempt = serializers.IntegerField(min_value=0, max_value=50, required=False)
    checkpoint = serializers.ChoiceField(choices=["agent"], required=False)
    sig = serializers.CharField(required=False, help_text="Our signature of the parameters above (callback_urls).")

    class Meta:
        keys = ("call", "attempt", "checkpoint")


# --- validating with a serializer kept per thread ----------------------------------------

_kept = threading.local()


def validated(serializer_class: type[serializers.Serializer], data: dict[str, Any]) -> dict[str, Any]:
    """``serializer_class(data=data)``'s validated data, or its ``ValidationError``.

    A DRF serializer deep-copies and binds its declared fields on first use, which is
    most of what validating a webhook's few fields costs. Each thread keeps one
    serializer per class and validates every request's data with it in turn (the bound
    fields hold no request state; the serializer's own is reset here each time)."""
    kept: dict[type[serializers.Serializer], serializers.Serializer] = _kept.__dict__.setdefault("serializers", {})
    serializer = kept.get(serializer_class)
    if serializer is None:
        serializer = kept[serializer_class] = serializer_class(data={})
    for state in ("_validated_data", "_errors", "_data"):
        serializer.__dict__.pop(state, None)
    serializer.initial_data = data
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
