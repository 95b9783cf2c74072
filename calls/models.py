from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from campaigns.destinations import destination_allowed, refusal
from campaigns.models import Campaign, TrackingNumber
from campaigns.phone import E164_DIGITS_REGEX, InvalidNumber, display_number, normalize_number


class Outcome(models.TextChoices):
    """How a call ended, in the words a supervisor uses. Defined once, used everywhere."""

    IN_PROGRESS = "in_progress", "In progress"
    ANSWERED = "answered", "Answered"
    MISSED = "missed", "Missed"
    VOICEMAIL = "voicemail", "Voicemail"
    BUSY = "busy", "Agent busy"
    DECLINED = "declined", "Declined by agent"
    FAILED = "failed", "Failed"
    ABANDONED = "abandoned", "Abandoned by caller"
    CLOSED = "closed", "Closed"
    # The caller's number is blocked (BlockedCaller): told so and hung up, nobody rung.
    BLOCKED = "blocked", "Blocked"


class CallState(models.TextChoices):
    """Where the call is in the flow."""

    WAITING = "waiting", "Caller waiting for the agent"
    CONNECTED = "connected", "Caller and agent connected"
    DIRECT = "direct", "Caller connected without a whisper"
    FALLBACK = "fallback", "Caller at the fallback (message or voicemail)"
    ENDED = "ended", "Ended"


class NumberStatus(models.TextChoices):
    """What the dialled number was when the call came in."""

    TRACKED = "tracked", "Campaign number"
    INACTIVE = "inactive", "Inactive number or campaign"
    UNKNOWN = "unknown", "Unknown number"


class CallDirection(models.TextChoices):
    """Who rang whom: a caller dialling a campaign number, or staff calling a missed caller back."""

    INBOUND = "inbound", "Inbound"
    CALLBACK = "callback", "Outbound call-back"


class CallQuerySet(models.QuerySet["Call"]):
    def with_related(self) -> "CallQuerySet":
        return self.select_related("campaign", "tracking_number")


class Call(models.Model):
    """One inbound call to a tracked (or unknown) number, and everything we did for it."""

    tracking_number = models.ForeignKey(
        TrackingNumber, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls")
    number_status = models.CharField(max_length=10, choices=NumberStatus.choices, default=NumberStatus.TRACKED)
    caller_number = models.CharField(max_length=32, blank=True, db_index=True)
    called_number = models.CharField(max_length=32, db_index=True)
    source = models.CharField(max_length=120, blank=True, help_text="The number's label when the call came in.")
    destination = models.CharField(max_length=15, help_text="The call centre number the agent was rung on.")
    conference_name = models.CharField(max_length=64, unique=True)
    whisper_text = models.TextField(blank=True, help_text="What the agent heard, exactly as spoken.")
    caller_ncco = models.JSONField(default=list, help_text="The NCCO the caller was answered with.")
    state = models.CharField(max_length=10, choices=CallState.choices, default=CallState.WAITING)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.IN_PROGRESS, db_index=True)
    strategy = models.CharField(max_length=10, default="conference", help_text="The campaign's strategy then.")
    accept_required = models.BooleanField(default=False, help_text="Press 1 to accept, as the campaign said then.")
    attempt = models.PositiveSmallIntegerField(
        default=0, help_text="Which destination is being rung: the campaign's own, then its further destinations."
    )
    resolution = models.CharField(
        max_length=12,
        choices=Outcome.choices,
        blank=True,
        help_text="An outcome the flow decided (closed, voicemail, declined), kept whatever the legs say.",
    )
    fallback_at = models.DateTimeField(null=True, blank=True, help_text="When the caller was moved to the fallback.")
    recording_url = models.URLField(max_length=500, blank=True, help_text="The voicemail the caller left.")
    recording_seconds = models.PositiveIntegerField(null=True, blank=True)
    redacted_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=("When the caller's number was removed: numbers are kept only as long as the retention policy says."),
    )
    first_call = models.BooleanField(
        null=True,
        blank=True,
        help_text="The caller's first call to this campaign (never for a withheld number); set when recorded.",
    )
    agent_requested_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When we asked Vonage to ring the agent.",
    )
    agent_call_error = models.TextField(
        blank=True, help_text="Why the agent call could not be placed, when it could not."
    )
    ring_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the caller, queued under VONAGE_CALLS_PER_SECOND, is due to be rung (calls/pacing.py).",
    )
    rate_limited = models.PositiveSmallIntegerField(
        default=0, help_text="How many times Vonage refused a call for this caller as over the account's limit (429)."
    )
    recorded_late = models.BooleanField(
        default=False,
        help_text="Answered while the database was unreachable; recorded afterwards from the webhook spool.",
    )
    direction = models.CharField(max_length=8, choices=CallDirection.choices, default=CallDirection.INBOUND)
    callback_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="callbacks",
        help_text="For a call-back: the missed call it answers (calls/callbacks.py).",
    )
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="For a call-back: the staff member who pressed Call back (and whose phone was rung).",
    )
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    agent_answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    wait_seconds = models.PositiveIntegerField(null=True, blank=True)
    talk_seconds = models.PositiveIntegerField(null=True, blank=True)

    objects = CallQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["campaign", "started_at"], name="call_campaign_started"),
            models.Index(fields=["outcome", "started_at"], name="call_outcome_started"),
            # The report's "first-time callers": an earlier call by the same caller.
            models.Index(fields=["campaign", "caller_number", "started_at"], name="call_campaign_caller"),
            # The live board: the few calls not ended, among millions that are.
            models.Index(fields=["started_at"], condition=~Q(state="ended"), name="call_live"),
        ]
        permissions = [
            ("view_report", "Can view the call reports"),
            ("export_calls", "Can export calls and reports as CSV"),
            ("see_caller_numbers", "Can see callers' phone numbers"),
            ("view_live_board", "Can watch calls as they happen"),
            ("call_back", "Can work the call-back queue: call missed callers back, mark them handled"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(outcome__in=Outcome.values), name="call_outcome_valid"),
            models.CheckConstraint(condition=Q(state__in=CallState.values), name="call_state_valid"),
            models.CheckConstraint(condition=Q(number_status__in=NumberStatus.values), name="call_number_status_valid"),
            models.CheckConstraint(condition=Q(direction__in=CallDirection.values), name="call_direction_valid"),
            # The compare-and-set that makes a double-click place one call-back, not two:
            # at most one call-back not ended per missed call, on any number of processes.
            models.UniqueConstraint(
                fields=["callback_of"],
                condition=Q(direction="callback") & ~Q(state="ended"),
                name="call_one_callback_in_progress",
            ),
        ]

    def __str__(self) -> str:
        return f"Call {self.pk} to {display_number(self.called_number)}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding and self.first_call is None:
            # Kept on the call so the reports count first-time callers without
            # looking back through the whole history for every call.
            self.first_call = bool(self.caller_number) and not (
                Call.objects.filter(
                    Q(campaign_id=self.campaign_id) if self.campaign_id else Q(campaign__isnull=True),
                    caller_number=self.caller_number,
                    started_at__lt=self.started_at,
                ).exists()
            )
        super().save(*args, **kwargs)


class LegRole(models.TextChoices):
    CALLER = "caller", "Caller"
    AGENT = "agent", "Agent"


class LegStatus(models.TextChoices):
    """Vonage's call statuses, in the order a leg can move through them."""

    NEW = "new", "New"
    STARTED = "started", "Started"
    RINGING = "ringing", "Ringing"
    ANSWERED = "answered", "Answered"
    COMPLETED = "completed", "Completed"
    BUSY = "busy", "Busy"
    CANCELLED = "cancelled", "Cancelled"
    UNANSWERED = "unanswered", "Unanswered"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"
    TIMEOUT = "timeout", "Timeout"


class CallLeg(models.Model):
    """One Vonage call (leg): the caller's inbound leg or the agent's outbound leg."""

    uuid = models.CharField(max_length=64, unique=True)
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="legs")
    role = models.CharField(max_length=6, choices=LegRole.choices)
    conversation_uuid = models.CharField(max_length=64, blank=True, db_index=True)
    from_number = models.CharField(max_length=32, blank=True)
    to_number = models.CharField(max_length=32, blank=True)
    direction = models.CharField(max_length=8, blank=True)
    status = models.CharField(max_length=10, choices=LegStatus.choices, default=LegStatus.NEW)
    detail = models.CharField(max_length=64, blank=True, help_text="Vonage's reason for a failure status.")
    machine_detected = models.CharField(max_length=8, blank=True, help_text="human or machine, when detected.")
    attempt = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Which destination this leg rang.")
    accepted_at = models.DateTimeField(null=True, blank=True, help_text="When the agent pressed 1.")
    declined_at = models.DateTimeField(null=True, blank=True, help_text="When the agent declined or let it pass.")
    started_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds, as Vonage billed it.")
    price = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    rate = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    network = models.CharField(max_length=32, blank=True)
    region_url = models.URLField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(role__in=LegRole.values), name="callleg_role_valid"),
            models.CheckConstraint(condition=Q(status__in=LegStatus.values), name="callleg_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()} leg {self.uuid}"


class CallEvent(models.Model):
    """Every delivery Vonage made to /event, stored once."""

    dedupe_key = models.CharField(max_length=100, unique=True, help_text="Same key for a redelivery of the same event.")
    call = models.ForeignKey(Call, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    leg = models.ForeignKey(CallLeg, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    leg_uuid = models.CharField(max_length=64, blank=True, db_index=True)
    conversation_uuid = models.CharField(max_length=64, blank=True)
    kind = models.CharField(max_length=12)
    status = models.CharField(max_length=32, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True, help_text="Vonage's timestamp.")
    received_at = models.DateTimeField(default=timezone.now)
    payload = models.JSONField()

    class Meta:
        ordering = ["received_at", "id"]
        indexes = [models.Index(fields=["call", "received_at"], name="callevent_call_received")]

    def __str__(self) -> str:
        return f"{self.kind} {self.status or ''} {self.leg_uuid}".strip()


class SignedWebhook(models.Model):
    """A Vonage signature we have accepted, remembered so that it authorises one request.

    Vonage's tokens have no expiry; ``jti`` is unique per token. A second request with
    the same ``jti`` is a replay unless its ``digest`` (method, path, query and body) is
    the same: then it is Vonage retrying that very request, which the webhooks already
    answer idempotently. Rows older than the signature's maximum age are useless (such a
    token is refused for its ``iat``) and are forgotten by ``reconcile_calls``.
    """

    jti = models.CharField(max_length=100, unique=True)
    digest = models.CharField(max_length=64, help_text="SHA-256 of the request's method, path, query and body.")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"signature {self.jti}"


class CallPacer(models.Model):
    """The account's next free send time for a new outbound call (calls/pacing.py).

    One row, shared by every process and instance: Vonage counts the account's new
    calls per second, whichever server placed them.
    """

    next_free_us = models.BigIntegerField(
        default=0, help_text="Microseconds since the epoch (UTC) before which no new call may be sent."
    )

    class Meta:
        verbose_name = "call pacer"

    def __str__(self) -> str:
        return f"Call pacer {self.pk}"


# --- what staff add to a call: tags, notes, and callers blocked (calls/annotations.py) ----


class BuiltinTag(models.TextChoices):
    """The tags every installation has (made by a data migration). The report counts
    leads and sales by these, whatever an operator renames them to."""

    LEAD = "lead", "lead"
    SALE = "sale", "sale"
    SPAM = "spam", "spam"
    WRONG_NUMBER = "wrong_number", "wrong number"


class Tag(models.Model):
    """A word staff put on calls: the built-in ones, and any an operator adds."""

    name = models.CharField(max_length=40, help_text="Unique, whatever the case: “Lead” and “lead” are one tag.")
    builtin = models.CharField(
        max_length=12,
        choices=BuiltinTag.choices,
        blank=True,
        help_text="Which built-in tag this is (the report counts leads and sales by it); empty for tags added here.",
    )
    calls = models.ManyToManyField(
        Call,
        through="CallTag",
        related_name="tags",
        blank=True,
        help_text="Every call ever given this tag, removals included: CallTag.objects.current() for the tags on now.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="tag_name_unique_any_case"),
            models.UniqueConstraint(fields=["builtin"], condition=~Q(builtin=""), name="tag_builtin_unique"),
            models.CheckConstraint(condition=Q(builtin__in=["", *BuiltinTag.values]), name="tag_builtin_valid"),
        ]

    def __str__(self) -> str:
        return self.name


class CallTagQuerySet(models.QuerySet["CallTag"]):
    def current(self) -> "CallTagQuerySet":
        """The tags on the calls now (a removed tag stays as history)."""
        return self.filter(removed_at__isnull=True)


class CallTag(models.Model):
    """A tag put on a call: who put it and when, and (kept, not deleted) who took it off."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="tag_links")
    tag = models.ForeignKey(Tag, on_delete=models.PROTECT, related_name="call_links")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", help_text="Who tagged it."
    )
    added_at = models.DateTimeField(default=timezone.now)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    removed_at = models.DateTimeField(null=True, blank=True, help_text="When the tag was taken off, if it was.")

    objects = CallTagQuerySet.as_manager()

    class Meta:
        verbose_name = "call tag"
        ordering = ["added_at", "id"]
        permissions = [("tag_call", "Can tag calls and untag them")]
        constraints = [
            # A tag is on a call once at a time; taken off and put back, it has a second row.
            models.UniqueConstraint(
                fields=["call", "tag"], condition=Q(removed_at__isnull=True), name="calltag_current_once"
            ),
        ]
        indexes = [
            # The call list's and the report's "tagged lead": calls having a current tag.
            models.Index(fields=["tag", "call"], condition=Q(removed_at__isnull=True), name="calltag_current"),
        ]

    def __str__(self) -> str:
        return f"{self.tag} on call {self.call_id}"


class CallNote(models.Model):
    """A note staff wrote about a call. Notes are appended, never edited."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "call note"
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["call", "created_at"], name="callnote_call_created")]

    def __str__(self) -> str:
        return f"Note on call {self.call_id}"


class BlockedCaller(models.Model):
    """A caller's number whose calls are not put through: they hear a short message and
    are hung up (Outcome.BLOCKED). Unblocking deletes the row; both are written on the
    call it came from as notes, so the call's history keeps them."""

    number = models.CharField(max_length=32, unique=True, help_text="As Vonage sent it (E.164 digits).")
    blocked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    blocked_at = models.DateTimeField(default=timezone.now)
    reason = models.TextField(blank=True)
    call = models.ForeignKey(
        Call,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="blocks",
        help_text="The call (tagged spam) it was blocked from.",
    )

    class Meta:
        verbose_name = "blocked caller"
        ordering = ["-blocked_at", "-id"]
        constraints = [models.CheckConstraint(condition=~Q(number=""), name="blockedcaller_number_not_empty")]

    def __str__(self) -> str:
        return f"Blocked caller {display_number(self.number)}"


class CallbackHandled(models.Model):
    """A missed caller dealt with without a call-back (calls/callbacks.py): who, when, and how.

    Kept on the queue entry's call (the caller's oldest unhandled missed call); every
    missed call of that caller to that campaign up to ``handled_at`` leaves the queue.
    """

    call = models.OneToOneField(Call, on_delete=models.CASCADE, related_name="callback_handled")
    handled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    handled_at = models.DateTimeField(default=timezone.now)
    note = models.TextField(help_text="What was done, in a sentence or two.")

    class Meta:
        verbose_name = "call-back handled"
        verbose_name_plural = "call-backs handled"
        constraints = [models.CheckConstraint(condition=~Q(note=""), name="callbackhandled_note_not_empty")]

    def __str__(self) -> str:
        return f"Call {self.call_id} handled"


class StaffProfile(models.Model):
    """What the app knows of a staff member beyond the login: the phone a call-back rings first."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile")
    phone = models.CharField(
        "own phone",
        max_length=15,
        blank=True,
        help_text="Rung when you press Call back in the call-back queue, e.g. +44 7700 900123.",
    )

    class Meta:
        verbose_name = "staff profile"
        constraints = [
            models.CheckConstraint(
                condition=Q(phone="") | Q(phone__regex=E164_DIGITS_REGEX), name="staffprofile_phone_e164"
            )
        ]

    def __str__(self) -> str:
        return f"Profile of {self.user}"

    def clean(self) -> None:
        if not self.phone:
            return
        try:
            self.phone = normalize_number(self.phone)
        except InvalidNumber as exc:
            raise ValidationError({"phone": str(exc)}) from None
        # Least privilege, as for a campaign's destination: a taken-over login must not
        # turn call-backs into calls to a premium number.
        if not destination_allowed(self.phone):
            raise ValidationError({"phone": refusal([self.phone])})
