from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from .phone import E164_DIGITS_REGEX, InvalidNumber, normalize_number
from .whisper import TemplateError, validate_template

DEFAULT_WHISPER = "Incoming call regarding {topic}"
DEFAULT_GREETING = "Please wait while we connect you."


class CampaignQuerySet(models.QuerySet["Campaign"]):
    def active(self) -> "CampaignQuerySet":
        return self.filter(is_active=True)


class Campaign(models.Model):
    name = models.CharField(max_length=120, unique=True)
    topic = models.CharField(
        max_length=200, help_text="What the agent is told the call is about, e.g. “the summer offer”."
    )
    whisper_template = models.TextField(
        default=DEFAULT_WHISPER,
        help_text=(
            "Spoken to the agent before the caller is connected. "
            "Variables: {topic}, {campaign}, {source}, {number}."
        ),
    )
    greeting = models.TextField(
        default=DEFAULT_GREETING, help_text="Spoken to the caller while the agent is rung."
    )
    hold_music_url = models.URLField(
        blank=True, help_text="MP3 the caller hears while waiting. Empty: the default hold music."
    )
    destination = models.CharField(
        max_length=15,
        blank=True,
        help_text="Number of the call centre for this campaign. Empty: CALL_CENTER_NUMBER.",
    )
    is_active = models.BooleanField("active", default=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(destination="") | Q(destination__regex=E164_DIGITS_REGEX),
                name="campaign_destination_e164",
            ),
            models.CheckConstraint(condition=~Q(topic=""), name="campaign_topic_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        for field in ("whisper_template", "greeting"):
            try:
                validate_template(getattr(self, field))
            except TemplateError as exc:
                errors[field] = str(exc)
        if self.destination:
            try:
                self.destination = normalize_number(self.destination)
            except InvalidNumber as exc:
                errors["destination"] = str(exc)
        if errors:
            raise ValidationError(errors)


class TrackingNumberQuerySet(models.QuerySet["TrackingNumber"]):
    def routable(self) -> "TrackingNumberQuerySet":
        """Numbers whose calls are whispered with their campaign."""
        return self.filter(is_active=True, campaign__is_active=True)


class TrackingNumber(models.Model):
    number = models.CharField(
        max_length=15, unique=True, help_text="The advertised number, in international format."
    )
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="numbers")
    source = models.CharField(
        max_length=120, blank=True, help_text="Where this number is advertised, e.g. “M4 billboard”."
    )
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TrackingNumberQuerySet.as_manager()

    class Meta:
        ordering = ["number"]
        constraints = [
            models.CheckConstraint(
                condition=Q(number__regex=E164_DIGITS_REGEX), name="trackingnumber_number_e164"
            ),
        ]

    def __str__(self) -> str:
        label = f" ({self.source})" if self.source else ""
        return f"+{self.number}{label}"

    def clean(self) -> None:
        try:
            self.number = normalize_number(self.number)
        except InvalidNumber as exc:
            raise ValidationError({"number": str(exc)}) from exc
