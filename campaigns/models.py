from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from .destinations import destination_allowed, refusal
from .phone import E164_DIGITS_REGEX, InvalidNumber, display_number, normalize_number
from .schedule import WeeklyHours, is_open
from .whisper import CALLBACK_VARIABLES, MAX_TALK_CHARS, WHISPER_VARIABLES, TemplateError, validate_template

DEFAULT_WHISPER = "Incoming call regarding {topic}"
DEFAULT_CALLBACK_WHISPER = "Calling back a caller who missed {topic}, at {time}"
DEFAULT_GREETING = "Please wait while we connect you."
DEFAULT_FALLBACK_MESSAGE = "Sorry, nobody is available to take your call. Please try again later. Goodbye."
DEFAULT_VOICEMAIL_PROMPT = "Sorry, nobody can take your call right now. Please leave a message after the tone."
DEFAULT_CLOSED_MESSAGE = "Thank you for calling. We are closed right now. Please call again during opening hours."
DEFAULT_ACCEPT_PROMPT = "Press 1 to take this call."

# Built from the variables the renderer knows, so the form's help lists every one; the
# text is stable (WHISPER_VARIABLES keeps its order), so it migrates only when they change.
WHISPER_TEMPLATE_HELP = "Spoken to the agent before the caller is connected. Variables: {}.".format(
    "; ".join(f"{{{name}}} ({meaning})" for name, meaning in WHISPER_VARIABLES.items())
)


CALLBACK_TEMPLATE_HELP = (
    "Spoken to the staff member who presses Call back, before the caller is rung. Variables: {}.".format(
        "; ".join(f"{{{name}}} ({meaning})" for name, meaning in CALLBACK_VARIABLES.items())
    )
)


class Strategy(models.TextChoices):
    """How caller and agent are brought together."""

    # Short: the campaign list shows them in a column.
    CONFERENCE = "conference", "Hold music, then the agent"
    CONNECT = "connect", "Ringing, then the agent"


class Fallback(models.TextChoices):
    """What a caller gets when no agent takes the call."""

    VOICEMAIL = "voicemail", "Take a voicemail"
    MESSAGE = "message", "Play the fallback message, then hang up"
    HANGUP = "hangup", "Say goodbye and hang up"


class ClosedAction(models.TextChoices):
    MESSAGE = "message", "Play the closed message, then hang up"
    VOICEMAIL = "voicemail", "Play the closed message, then take a voicemail"


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
        help_text=WHISPER_TEMPLATE_HELP,
    )
    greeting = models.TextField(default=DEFAULT_GREETING, help_text="Spoken to the caller while the agent is rung.")
    callback_template = models.TextField(
        "call-back whisper", default=DEFAULT_CALLBACK_WHISPER, help_text=CALLBACK_TEMPLATE_HELP
    )
    hold_music_url = models.URLField(
        "hold music",
        blank=True,
        help_text="A link to the MP3 callers hear while they wait. Leave it empty for the usual hold music.",
    )
    destination = models.CharField(
        "call centre number",
        max_length=15,
        blank=True,
        help_text="Where this campaign's calls are answered. Leave it empty for the usual call centre.",
    )
    is_active = models.BooleanField("active", default=True, db_index=True)
    is_demo = models.BooleanField(
        "demo",
        default=False,
        db_index=True,
        help_text="Made by the call simulator or the demo data: left out of lists and reports unless asked for.",
    )

    # How the agent is rung, and what happens when nobody answers.
    strategy = models.CharField(
        "while the agent is rung",
        max_length=10,
        choices=Strategy.choices,
        default=Strategy.CONFERENCE,
        help_text=(
            "What the caller hears until an agent takes the call: hold music while the agent's phone "
            "rings, or ringing as in an ordinary call. Either way the agent hears the whisper first."
        ),
    )
    hunt_numbers = models.TextField(
        "further destinations",
        blank=True,
        help_text="Numbers rung in turn when the destination does not take the call, one per line.",
    )
    ring_seconds = models.PositiveSmallIntegerField(
        default=20, help_text="How long each destination rings before the next step (5 to 120)."
    )
    max_wait_seconds = models.PositiveSmallIntegerField(
        default=120, help_text="The longest a caller waits on hold before the fallback, whatever happens."
    )
    require_accept = models.BooleanField(
        "press 1 to accept",
        default=False,
        help_text="After the whisper the agent must press 1; anything else passes the caller on.",
    )
    accept_prompt = models.CharField(max_length=300, default=DEFAULT_ACCEPT_PROMPT)
    fallback = models.CharField(max_length=10, choices=Fallback.choices, default=Fallback.VOICEMAIL)
    fallback_message = models.TextField(default=DEFAULT_FALLBACK_MESSAGE)
    voicemail_prompt = models.TextField(default=DEFAULT_VOICEMAIL_PROMPT)
    language = models.CharField(
        "spoken language",
        max_length=16,
        default="en-GB",
        help_text="The language of everything the caller and the agent hear, e.g. en-GB (British English), "
        "en-US, de-DE (German).",
    )
    style = models.PositiveSmallIntegerField(
        "voice",
        default=0,
        help_text="Which of the language's voices speaks: 0 is its standard voice, other numbers are "
        "alternative voices.",
    )

    # When the campaign takes calls.
    timezone = models.CharField(
        "time zone", max_length=64, default="Europe/London", help_text="The opening hours are in this time zone."
    )
    starts_on = models.DateField(null=True, blank=True, help_text="First day calls reach an agent.")
    ends_on = models.DateField(null=True, blank=True, help_text="Last day calls reach an agent.")
    closed_action = models.CharField(max_length=10, choices=ClosedAction.choices, default=ClosedAction.MESSAGE)
    closed_message = models.TextField(default=DEFAULT_CLOSED_MESSAGE)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CampaignQuerySet.as_manager()
    # Who changed which field, and when: the campaign's History page in the admin.
    # updated_at is left out: every record has its own time, and it would show as a
    # change in every entry.
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(destination="") | Q(destination__regex=E164_DIGITS_REGEX),
                name="campaign_destination_e164",
            ),
            models.CheckConstraint(condition=~Q(topic=""), name="campaign_topic_not_empty"),
            models.CheckConstraint(
                condition=Q(ring_seconds__gte=5, ring_seconds__lte=120), name="campaign_ring_seconds_range"
            ),
            models.CheckConstraint(
                condition=Q(max_wait_seconds__gte=10, max_wait_seconds__lte=3600),
                name="campaign_max_wait_range",
            ),
            models.CheckConstraint(condition=Q(strategy__in=Strategy.values), name="campaign_strategy_valid"),
            models.CheckConstraint(condition=Q(fallback__in=Fallback.values), name="campaign_fallback_valid"),
            models.CheckConstraint(
                condition=Q(starts_on__isnull=True) | Q(ends_on__isnull=True) | Q(starts_on__lte=F("ends_on")),
                name="campaign_dates_in_order",
            ),
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
        try:
            validate_template(self.callback_template, CALLBACK_VARIABLES)
        except TemplateError as exc:
            errors["callback_template"] = str(exc)
        for field in ("fallback_message", "voicemail_prompt", "closed_message", "accept_prompt"):
            if len(getattr(self, field)) > MAX_TALK_CHARS:
                errors[field] = f"Vonage speaks at most {MAX_TALK_CHARS} characters."
        if self.destination:
            try:
                self.destination = normalize_number(self.destination)
            except InvalidNumber as exc:
                errors["destination"] = str(exc)
        try:
            self.hunt_numbers = "\n".join(parse_number_list(self.hunt_numbers))
        except InvalidNumber as exc:
            errors["hunt_numbers"] = str(exc)
        # Least privilege: only numbers the operator allows (toll fraud through a taken-over login).
        if self.destination and "destination" not in errors and not destination_allowed(self.destination):
            errors["destination"] = refusal([self.destination])
        if "hunt_numbers" not in errors:
            refused = [n for n in parse_number_list(self.hunt_numbers) if not destination_allowed(n)]
            if refused:
                errors["hunt_numbers"] = refusal(refused)
        if not 5 <= (self.ring_seconds or 0) <= 120:
            errors["ring_seconds"] = "Ring each destination for 5 to 120 seconds (Vonage's ringing_timer)."
        if not 10 <= (self.max_wait_seconds or 0) <= 3600:
            errors["max_wait_seconds"] = "The longest wait must be between 10 and 3,600 seconds."
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = f"“{self.timezone}” is not a time zone, e.g. Europe/London."
        if self.starts_on and self.ends_on and self.starts_on > self.ends_on:
            errors["ends_on"] = "The campaign ends before it starts."
        if errors:
            raise ValidationError(errors)

    @property
    def destinations(self) -> list[str]:
        """Every number rung for a call, in order: the destination, then the hunt list."""
        first = self.destination or settings.CALL_CENTER_NUMBER
        return [first, *(n for n in parse_number_list(self.hunt_numbers, strict=False) if n != first)]

    def is_open(self, at: datetime) -> bool:
        hours = [WeeklyHours(h.weekday, h.opens, h.closes) for h in self.opening_hours.all()]
        return is_open(at=at, timezone_name=self.timezone, hours=hours, starts_on=self.starts_on, ends_on=self.ends_on)


def parse_number_list(text: str, *, strict: bool = True) -> list[str]:
    """Numbers one per line (or comma-separated), normalised; the first bad one raises."""
    numbers: list[str] = []
    for raw in text.replace(",", "\n").splitlines():
        if not raw.strip():
            continue
        try:
            number = normalize_number(raw.strip())
        except InvalidNumber:
            if strict:
                raise
            continue
        if number not in numbers:
            numbers.append(number)
    return numbers


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class OpeningHours(models.Model):
    """One weekly opening period; a campaign with none is open around the clock."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="opening_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens = models.TimeField()
    closes = models.TimeField()

    history = HistoricalRecords()

    class Meta:
        ordering = ["weekday", "opens"]
        verbose_name_plural = "opening hours"
        constraints = [
            models.CheckConstraint(condition=Q(opens__lt=F("closes")), name="openinghours_opens_before_closes"),
            models.CheckConstraint(condition=Q(weekday__gte=0, weekday__lte=6), name="openinghours_weekday"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}–{self.closes:%H:%M}"


class TrackingNumberQuerySet(models.QuerySet["TrackingNumber"]):
    def routable(self) -> "TrackingNumberQuerySet":
        """Numbers whose calls are whispered with their campaign."""
        return self.filter(is_active=True, campaign__is_active=True)


class TrackingNumber(models.Model):
    number = models.CharField(max_length=15, unique=True, help_text="The advertised number, in international format.")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="numbers")
    source = models.CharField(
        max_length=120, blank=True, help_text="Where this number is advertised, e.g. “M4 billboard”."
    )
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TrackingNumberQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["number"]
        constraints = [
            models.CheckConstraint(condition=Q(number__regex=E164_DIGITS_REGEX), name="trackingnumber_number_e164"),
        ]

    def __str__(self) -> str:
        label = f" ({self.source})" if self.source else ""
        return f"{display_number(self.number)}{label}"

    def clean(self) -> None:
        try:
            self.number = normalize_number(self.number)
        except InvalidNumber as exc:
            raise ValidationError({"number": str(exc)}) from exc


class RoutesVersion(models.Model):
    """A counter bumped in the same transaction as any change to how calls are routed
    (campaigns, their numbers and hours: campaigns/routing.py). Web processes keep
    routes in memory and read this one row with each call's first statement, so an
    admin's edit is in effect from the very next call."""

    version = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "routes version"

    def __str__(self) -> str:
        return f"routes version {self.version}"
