"""The campaigns file: what ``import_campaigns`` accepts and ``export_campaigns`` writes.

One JSON list of campaigns, each with its numbers::

    [{"name": "Summer offer", "topic": "the summer offer", "destination": "447700900999",
      "numbers": [{"number": "447700900001", "source": "M4 billboard"}]}]

and, optionally, how the agent is rung and when the campaign takes calls::

    "strategy": "conference", "further_destinations": ["447700900998"], "ring_seconds": 20,
    "starts_on": "2025-06-01", "ends_on": "2025-08-31", "timezone": "Europe/London",
    "opening_hours": [{"day": "monday", "opens": "09:00", "closes": "17:30"}]

``opening_hours``, when present, is the campaign's whole week: it replaces the hours
the campaign had (``[]``: open around the clock).

Optional keys left out keep the stored value on an update (a new campaign or number
gets the model's default), so a minimal file never resets what staff set in the admin.
Unknown keys are refused rather than ignored: a typo such as ``"topik"`` must not
silently leave a campaign without its topic. Each serializer checks the shape of its
part, then hands the values to the model's own validation (``full_clean``), so the
rules for templates, numbers and URLs live in one place.
"""

from collections.abc import Mapping
from datetime import time
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import serializers
from rest_framework.settings import api_settings

from .models import Campaign, ClosedAction, Fallback, OpeningHours, Strategy, TrackingNumber, Weekday, parse_number_list
from .phone import InvalidNumber, normalize_number

# Model field → key in the campaigns file, where they differ.
CAMPAIGN_FILE_KEYS = {"is_active": "active", "hunt_numbers": "further_destinations"}
# Days by name in the file, Monday first, as the models number them.
DAYS = {day.name.lower(): day.value for day in Weekday}


class StrictBooleanField(serializers.BooleanField):
    """``true`` or ``false`` only: DRF's own field also takes ``"no"``, ``"off"``, ``0``…"""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid")
        raise AssertionError("unreachable")  # fail() always raises


class StrictIntegerField(serializers.IntegerField):
    """A JSON whole number only: DRF's own field also takes ``"20"``, ``20.0``…"""

    default_error_messages = {"invalid": "Must be a whole number."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class NamedChoiceField(serializers.ChoiceField):
    """One of a few words, named in the error when the file has another."""

    def __init__(self, choices: Any, **kwargs: Any) -> None:
        super().__init__(choices, **kwargs)
        words = ", ".join(f"“{choice}”" for choice in self.choices)
        self.error_messages["invalid_choice"] = f"“{{input}}” is not one of {words}."


class PhoneNumberField(serializers.CharField):
    """A number in international format, stored as E.164 digits (``447700900001``)."""

    def __init__(self, **kwargs: Any) -> None:
        # Long enough for what people type ("+44 (0) 7700-900 001"); the digits are checked below.
        kwargs.setdefault("max_length", 32)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        text = super().to_internal_value(data)
        if text == "":
            return text
        try:
            return normalize_number(text)
        except InvalidNumber as exc:
            raise serializers.ValidationError(str(exc)) from exc


class NumberListField(serializers.ListField):
    """A list of numbers in the file; one per line in the model (``hunt_numbers``)."""

    child = PhoneNumberField()

    def to_internal_value(self, data: Any) -> str:  # type: ignore[override]
        numbers = super().to_internal_value(data)
        # In order, each once: as the admin stores them.
        return "\n".join(dict.fromkeys(numbers))

    def to_representation(self, data: str) -> list[str]:  # type: ignore[override]
        return parse_number_list(data, strict=False)


class DayField(serializers.Field):
    """``"monday"`` … ``"sunday"`` in the file; 0 … 6 in the model."""

    default_error_messages = {"invalid": f"Must be the name of a day: {', '.join(DAYS)}."}

    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, str) or data.strip().lower() not in DAYS:
            self.fail("invalid")
        return DAYS[data.strip().lower()]

    def to_representation(self, value: int) -> str:
        return Weekday(value).name.lower()


class ClockTimeField(serializers.TimeField):
    """``"09:00"``: hours and minutes, the way opening hours are written."""

    default_error_messages = {"invalid": "Must be a time of day as HH:MM, e.g. “09:00” or “17:30”."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%H:%M", input_formats=["%H:%M"], **kwargs)

    def to_internal_value(self, value: Any) -> time:
        if not isinstance(value, str):
            self.fail("invalid")
        return super().to_internal_value(value)


class _ClosedSerializer(serializers.Serializer):
    """Refuses keys it does not know, naming them and the keys it does."""

    kind = "An item"

    def to_internal_value(self, data: Any) -> Any:
        unknown: list[str] = []
        if isinstance(data, Mapping):
            unknown = sorted(str(key) for key in data if key not in self.fields)
        errors: dict[str, Any] = {}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not unknown:
                raise
            if isinstance(exc.detail, dict):
                errors.update(exc.detail)
        else:
            if not unknown:
                return value
        # Reported with the other problems of the same item, so one run names them all.
        known = ", ".join(sorted(self.fields))
        messages = [f"{self.kind} has no key “{key}”. Its keys are: {known}." for key in unknown]
        errors[api_settings.NON_FIELD_ERRORS_KEY] = messages + list(errors.get(api_settings.NON_FIELD_ERRORS_KEY, []))
        raise serializers.ValidationError(errors)


def _model_errors(exc: DjangoValidationError, renamed: Mapping[str, str]) -> dict[str, list[str]]:
    """A model's ``full_clean`` errors keyed by the file's names for its fields."""
    errors: dict[str, list[str]] = {}
    for field, messages in exc.message_dict.items():
        key = api_settings.NON_FIELD_ERRORS_KEY if field == "__all__" else renamed.get(field, field)
        errors.setdefault(key, []).extend(messages)
    return errors


def _full_clean(instance: models.Model, *, renamed: Mapping[str, str], exclude: list[str]) -> None:
    # Uniqueness is not checked here: the import matches campaigns by name and numbers
    # by number, so an existing name or number is updated, never duplicated.
    try:
        instance.full_clean(exclude=exclude, validate_unique=False)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(_model_errors(exc, renamed)) from exc


class TrackingNumberFileSerializer(_ClosedSerializer):
    kind = "A number"

    number = PhoneNumberField()
    # DRF's metaclass takes declared fields off the class, so this does not shadow Field.source.
    source = serializers.CharField(required=False, allow_blank=True)  # type: ignore[assignment]
    active = StrictBooleanField(source="is_active", required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        number = TrackingNumber(**attrs)
        # The campaign may not exist yet: it is created by the import.
        _full_clean(number, renamed={"is_active": "active"}, exclude=["campaign"])
        return attrs


class OpeningHoursFileSerializer(_ClosedSerializer):
    kind = "An opening period"

    day = DayField(source="weekday")
    opens = ClockTimeField()
    closes = ClockTimeField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # The model's constraint says the same, but only by its name.
        if attrs["opens"] >= attrs["closes"]:
            raise serializers.ValidationError(
                {
                    "closes": (
                        f"{attrs['closes']:%H:%M} is not after opens ({attrs['opens']:%H:%M}). Hours that pass "
                        "midnight are two periods: until 23:59, then from 00:00 the next day."
                    )
                }
            )
        _full_clean(OpeningHours(**attrs), renamed={"weekday": "day"}, exclude=["campaign"])
        return attrs


class CampaignFileSerializer(_ClosedSerializer):
    """One campaign. Optional keys left out keep the campaign's current value (a new
    campaign gets the model's default)."""

    kind = "A campaign"

    name = serializers.CharField()
    topic = serializers.CharField()
    destination = PhoneNumberField(required=False, allow_blank=True)
    whisper_template = serializers.CharField(required=False)
    callback_template = serializers.CharField(required=False)
    greeting = serializers.CharField(required=False)
    hold_music_url = serializers.CharField(required=False, allow_blank=True)
    active = StrictBooleanField(source="is_active", required=False)
    demo = StrictBooleanField(source="is_demo", required=False)
    language = serializers.CharField(required=False)
    # Like ``source`` above: taken off the class by DRF, so Field.style is not shadowed.
    style = StrictIntegerField(required=False, min_value=0)  # type: ignore[assignment]
    strategy = NamedChoiceField(Strategy.values, required=False)
    further_destinations = NumberListField(source="hunt_numbers", required=False)
    ring_seconds = StrictIntegerField(required=False)
    require_accept = StrictBooleanField(required=False)
    accept_prompt = serializers.CharField(required=False)
    max_wait_seconds = StrictIntegerField(required=False)
    fallback = NamedChoiceField(Fallback.values, required=False)
    fallback_message = serializers.CharField(required=False)
    voicemail_prompt = serializers.CharField(required=False)
    timezone = serializers.CharField(required=False)
    starts_on = serializers.DateField(required=False, allow_null=True)
    ends_on = serializers.DateField(required=False, allow_null=True)
    closed_action = NamedChoiceField(ClosedAction.values, required=False)
    closed_message = serializers.CharField(required=False)
    opening_hours = OpeningHoursFileSerializer(many=True, required=False)
    numbers = TrackingNumberFileSerializer(many=True, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        fields = {key: value for key, value in attrs.items() if key not in ("numbers", "opening_hours")}
        _full_clean(Campaign(**fields), renamed=CAMPAIGN_FILE_KEYS, exclude=[])
        return attrs
