"""Who is told about a missed call or a voicemail, and the outbox of what they are told.

The outbox holds one row per (recipient, call), unique in the database: however often a
run fills it (retried webhooks, two instances, overlapping runs), each call is put in front
of each recipient once. Digest recipients' rows carry the hour they were queued in, and the
hour's rows go out together as one message.
"""

from django.db import models
from django.db.models import Q
from django.urls import reverse

from calls.models import Call
from campaigns.models import Campaign
from campaigns.phone import display_number


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


class Frequency(models.TextChoices):
    EACH_CALL = "each_call", "Each call"
    HOURLY = "hourly", "Hourly digest (email only)"


class AlertEvent(models.TextChoices):
    """What a recipient can be told about."""

    MISSED = "missed", "Missed call"
    VOICEMAIL = "voicemail", "Voicemail"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (gave up)"


class AlertRecipient(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="alert_recipients")
    channel = models.CharField(max_length=5, choices=Channel.choices, default=Channel.EMAIL)
    address = models.CharField(
        max_length=254, help_text="An email address, or for SMS a mobile number in international format."
    )
    on_missed = models.BooleanField("missed calls", default=True)
    on_voicemail = models.BooleanField("voicemails", default=True)
    frequency = models.CharField(max_length=10, choices=Frequency.choices, default=Frequency.EACH_CALL)
    show_caller_number = models.BooleanField(
        "show caller's number",
        default=False,
        help_text="Otherwise the caller's number is masked (…0123). Only staff who may see callers' numbers set it.",
    )
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True, help_text="Calls that ended before this are not alerted.")

    class Meta:
        ordering = ["campaign", "channel", "address"]
        constraints = [
            models.CheckConstraint(condition=Q(channel__in=Channel.values), name="alertrecipient_channel_valid"),
            models.CheckConstraint(condition=Q(frequency__in=Frequency.values), name="alertrecipient_frequency_valid"),
            # One text per call: a digest of calls does not fit an SMS.
            models.CheckConstraint(
                condition=~Q(channel=Channel.SMS, frequency=Frequency.HOURLY), name="alertrecipient_sms_each_call"
            ),
            models.UniqueConstraint(fields=["campaign", "channel", "address"], name="alertrecipient_unique_address"),
        ]

    def __str__(self) -> str:
        shown = display_number(self.address) if self.channel == Channel.SMS else self.address
        return f"{self.get_channel_display()} to {shown}"

    def wants(self, event: str) -> bool:
        return (event == AlertEvent.MISSED and self.on_missed) or (event == AlertEvent.VOICEMAIL and self.on_voicemail)


class AlertDelivery(models.Model):
    """One call to tell one recipient about: the durable outbox."""

    recipient = models.ForeignKey(AlertRecipient, on_delete=models.CASCADE, related_name="deliveries")
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="alert_deliveries")
    event = models.CharField(max_length=10, choices=AlertEvent.choices)
    digest_hour = models.DateTimeField(
        null=True, blank=True, help_text="For an hourly digest: the hour this was queued in; sent after it ends."
    )
    state = models.CharField(max_length=8, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField("why", blank=True, help_text="Why the last attempt failed.")
    next_attempt_at = models.DateTimeField(help_text="Not tried again before this.")
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "alert"
        verbose_name_plural = "alerts (outbox)"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["recipient", "call"], name="alertdelivery_once_per_call"),
            models.CheckConstraint(condition=Q(state__in=DeliveryState.values), name="alertdelivery_state_valid"),
            models.CheckConstraint(condition=Q(event__in=AlertEvent.values), name="alertdelivery_event_valid"),
        ]
        indexes = [
            # The sender's claim: the pending rows that are due.
            models.Index(fields=["next_attempt_at"], condition=Q(state="pending"), name="alertdelivery_due"),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_display()} alert for call {self.call_id} to {self.recipient}"

    def call_admin_path(self) -> str:
        return reverse("admin:calls_call_change", args=[self.call_id])
