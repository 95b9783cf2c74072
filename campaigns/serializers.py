"""The campaigns file: what ``import_campaigns`` accepts and ``export_campaigns`` writes.

One JSON list of campaigns, each with its numbers::

    [{"name": "Summer offer", "topic": "the summer offer", "destination": "447700900999",
      "numbers": [{"number": "447700900001", "source": "M4 billboard"}]}]

Optional keys left out keep the stored value on an update (a new campaign or number
gets the model's default), so a minimal file never resets what staff set in the admin.
Unknown keys are refused rather than ignored: a typo such as ``"topik"`` must not
silently leave a campaign without its topic. Each serializer checks the shape of its
part, then hands the values to the model's own validation (``full_clean``), so the
rules for templates, numbers and URLs live in one place.
"""

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import serializers
from rest_framework.settings import api_settings

from .models import Campaign, TrackingNumber
from .phone import InvalidNumber, normalize_number


class StrictBooleanField(serializers.BooleanField):
    """``true`` or ``false`` only: DRF's own field also takes ``"no"``, ``"off"``, ``0``…"""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid")
        raise AssertionError("unreachable")  # fail() always raises


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


class CampaignFileSerializer(_ClosedSerializer):
    """One campaign. Optional keys left out keep the campaign's current value (a new
    campaign gets the model's default)."""

    kind = "A campaign"

    name = serializers.CharField()
    topic = serializers.CharField()
    destination = PhoneNumberField(required=False, allow_blank=True)
    whisper_template = serializers.CharField(required=False)
    greeting = serializers.CharField(required=False)
    hold_music_url = serializers.CharField(required=False, allow_blank=True)
    active = StrictBooleanField(source="is_active", required=False)
    numbers = TrackingNumberFileSerializer(many=True, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        fields = {key: value for key, value in attrs.items() if key != "numbers"}
        _full_clean(Campaign(**fields), renamed={"is_active": "active"}, exclude=[])
        return attrs
