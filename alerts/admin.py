"""Alert recipients, edited inline on the campaign (campaigns.admin), and the outbox,
read-only: what was sent, what failed and why."""

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from calls import privacy
from campaigns.phone import display_number

from .models import AlertDelivery, AlertRecipient, Channel, DeliveryState, Frequency
from .services import MAX_ATTEMPTS


class AlertRecipientForm(forms.ModelForm):
    class Meta:
        model = AlertRecipient
        fields = ("channel", "address", "on_missed", "on_voicemail", "frequency", "show_caller_number", "is_active")

    def clean(self) -> dict[str, Any]:
        super().clean()
        channel, address = self.cleaned_data.get("channel"), self.cleaned_data.get("address")
        if channel == Channel.SMS and self.cleaned_data.get("frequency") == Frequency.HOURLY:
            self.add_error("frequency", "An SMS goes out for each call; hourly digests are sent by email only.")
        if not address:
            return self.cleaned_data
        if channel == Channel.SMS:
            from campaigns.admin import PhoneNumberField

            try:
                self.cleaned_data["address"] = PhoneNumberField().clean(address)
            except ValidationError as exc:
                self.add_error("address", exc)
        else:
            address = address.strip()
            try:
                validate_email(address)
            except ValidationError:
                self.add_error("address", f"“{address}” is not an email address.")
            else:
                self.cleaned_data["address"] = address
        return self.cleaned_data


class AlertRecipientInline(admin.TabularInline):
    """On the campaign's page: who is told about its missed calls and voicemails."""

    model = AlertRecipient
    form = AlertRecipientForm
    verbose_name = "alert recipient"
    verbose_name_plural = "alerts: who is told about missed calls and voicemails"
    fields = ("channel", "address", "on_missed", "on_voicemail", "frequency", "show_caller_number", "is_active")
    extra = 0

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Whoever may not see callers' numbers may not send them to an address of their choice.
        if not privacy.sees_caller_numbers(request):
            return ("show_caller_number",)
        return ()


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("pending", "Pending"),
            ("retrying", "Retrying (failed, will try again)"),
            ("sent", "Sent"),
            ("failed", "Failed (gave up)"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AlertDelivery]) -> QuerySet[AlertDelivery]:
        value = self.value()
        if value == "retrying":
            return queryset.filter(state="pending", attempts__gt=0)
        if value in ("pending", "sent", "failed"):
            return queryset.filter(state=value)
        return queryset


class WhyFilter(admin.SimpleListFilter):
    title = "why"
    parameter_name = "why"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("any", "Any failure"), ("none", "No failure")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AlertDelivery]) -> QuerySet[AlertDelivery]:
        if self.value() == "any":
            return queryset.exclude(last_error="")
        if self.value() == "none":
            return queryset.filter(last_error="")
        return queryset


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(admin.ModelAdmin):
    """The outbox: read-only. Rows come from finished calls and the sender's attempts."""

    list_display = (
        "created_at",
        "campaign",
        "call_link",
        "event",
        "recipient_display",
        "status",
        "sent_at",
        "why",
    )
    list_filter = (
        StateFilter,
        WhyFilter,
        "event",
        "recipient__channel",
        ("recipient__campaign", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("recipient__address", "last_error")
    date_hierarchy = "created_at"
    list_select_related = ("recipient", "recipient__campaign", "call")
    fields = (
        "call_link",
        "event",
        "recipient_display",
        "digest_hour",
        "state",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "last_error",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="campaign", ordering="recipient__campaign__name")
    def campaign(self, delivery: AlertDelivery) -> str:
        return delivery.recipient.campaign.name

    @admin.display(description="call", ordering="call_id")
    def call_link(self, delivery: AlertDelivery) -> SafeString:
        url = reverse("admin:calls_call_change", args=[delivery.call_id])
        return format_html('<a href="{}">Call {}</a>', url, delivery.call_id)

    @admin.display(description="to", ordering="recipient__address")
    def recipient_display(self, delivery: AlertDelivery) -> str:
        recipient = delivery.recipient
        address = display_number(recipient.address) if recipient.channel == Channel.SMS else recipient.address
        digest = ", hourly" if recipient.frequency == Frequency.HOURLY else ""
        return f"{address} ({recipient.get_channel_display()}{digest})"

    @admin.display(description="state", ordering="state")
    def status(self, delivery: AlertDelivery) -> str:
        """Pending rows that failed say when they are tried again."""
        if delivery.state == DeliveryState.PENDING and delivery.attempts:
            next_try = timezone.localtime(delivery.next_attempt_at)
            return f"Retrying at {next_try:%H:%M} (tried {delivery.attempts} of {MAX_ATTEMPTS})"
        return delivery.get_state_display()

    @admin.display(description="why")
    def why(self, delivery: AlertDelivery) -> str:
        return delivery.last_error or "-"
