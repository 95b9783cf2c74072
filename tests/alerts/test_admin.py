"""Alert recipients on the campaign's page, and the read-only outbox, as staff use them."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertDelivery, AlertRecipient, Channel, DeliveryState, Frequency
from calls.models import Outcome
from campaigns.models import Campaign
from tests.calls.conftest import member
from tests.campaigns.test_admin import change_url, errors_of, form_data

from .conftest import ended_call, recipient

pytestmark = pytest.mark.django_db

OUTBOX = reverse("admin:alerts_alertdelivery_changelist")


def add_recipient(data: dict[str, Any], address: str, **fields: Any) -> None:
    """Fill in one more row of the alerts inline (email, missed and voicemail, each call, active)."""
    index = int(data["alert_recipients-TOTAL_FORMS"])
    row = {"channel": Channel.EMAIL, "address": address, "frequency": Frequency.EACH_CALL}
    row |= {name: "on" for name in ("on_missed", "on_voicemail", "is_active")}
    row |= fields
    for name, value in row.items():
        if value is not None:
            data[f"alert_recipients-{index}-{name}"] = value
    data["alert_recipients-TOTAL_FORMS"] = index + 1


def save_with_recipient(client: Client, campaign: Campaign, address: str, **fields: Any) -> Any:
    data = form_data(client.get(change_url(campaign)))
    add_recipient(data, address, **fields)
    return client.post(change_url(campaign), data)


def test_marketing_adds_an_email_and_an_sms_recipient_on_the_campaign(campaign: Campaign) -> None:
    client = member("Marketing")

    response = save_with_recipient(client, campaign, " sales@example.com ", frequency=Frequency.HOURLY)
    assert response.status_code == 302, errors_of(response)
    response = save_with_recipient(client, campaign, "+44 7700 900555", channel=Channel.SMS, on_voicemail=None)
    assert response.status_code == 302, errors_of(response)

    assert list(
        campaign.alert_recipients.values_list("channel", "address", "frequency", "on_missed", "on_voicemail")
    ) == [
        (Channel.EMAIL, "sales@example.com", Frequency.HOURLY, True, True),
        (Channel.SMS, "447700900555", Frequency.EACH_CALL, True, False),
    ]


@pytest.mark.parametrize(
    ("address", "fields", "error"),
    [
        ("sales at example", {}, "“sales at example” is not an email address."),
        ("not a number", {"channel": Channel.SMS}, "is not a phone number in international format"),
        (
            "447700900555",
            {"channel": Channel.SMS, "frequency": Frequency.HOURLY},
            "An SMS goes out for each call; hourly digests are sent by email only.",
        ),
    ],
    ids=["bad email", "bad number", "sms digest"],
)
def test_a_bad_recipient_is_refused_with_a_sentence_and_nothing_saved(
    campaign: Campaign, address: str, fields: dict[str, Any], error: str
) -> None:
    response = save_with_recipient(member("Marketing"), campaign, address, **fields)

    assert response.status_code == 200
    assert error in errors_of(response)
    assert not AlertRecipient.objects.exists()


def test_marketing_cannot_have_callers_numbers_sent_to_an_address_of_their_choice(campaign: Campaign) -> None:
    """The attack: a marketer who sees masked numbers posts show_caller_number=on."""
    client = member("Marketing")
    page = client.get(change_url(campaign))
    assert 'name="alert_recipients-__prefix__-show_caller_number"' not in page.content.decode()

    response = save_with_recipient(client, campaign, "me@example.com", show_caller_number="on")

    assert response.status_code == 302, errors_of(response)
    assert AlertRecipient.objects.get().show_caller_number is False


def test_a_superuser_may_show_callers_numbers_to_a_recipient(admin_client: Client, campaign: Campaign) -> None:
    response = save_with_recipient(admin_client, campaign, "boss@example.com", show_caller_number="on")

    assert response.status_code == 302, errors_of(response)
    assert AlertRecipient.objects.get().show_caller_number is True


def test_supervisors_see_recipients_but_cannot_change_them(campaign: Campaign) -> None:
    recipient(campaign)
    client = member("Supervisors")

    page = client.get(change_url(campaign))

    assert page.status_code == 200
    assert "sales@example.com" in page.content.decode()
    assert client.post(change_url(campaign), {"name": "x"}).status_code == 403


# --- the outbox ---------------------------------------------------------------------------


@pytest.fixture
def outbox(campaign: Campaign) -> dict[str, AlertDelivery]:
    sales, sms = recipient(campaign), recipient(campaign, "447700900555", channel=Channel.SMS)
    now = timezone.now()
    sent = AlertDelivery.objects.create(
        recipient=sales,
        call=ended_call(campaign),
        event="missed",
        state=DeliveryState.SENT,
        attempts=1,
        sent_at=now,
        next_attempt_at=now,
    )
    failed = AlertDelivery.objects.create(
        recipient=sms,
        call=ended_call(campaign, Outcome.VOICEMAIL),
        event="voicemail",
        state=DeliveryState.FAILED,
        attempts=8,
        last_error="VonageUnavailable: Vonage answered 401 when sending an SMS.",
        next_attempt_at=now,
    )
    retrying = AlertDelivery.objects.create(
        recipient=sales,
        call=ended_call(campaign, Outcome.BUSY),
        event="missed",
        attempts=2,
        last_error="SMTPServerDisconnected: Connection unexpectedly closed",
        next_attempt_at=now,
    )
    return {"sent": sent, "failed": failed, "retrying": retrying}


def shown(response: Any) -> set[int]:
    return {row.pk for row in response.context["cl"].result_list}


@pytest.mark.parametrize("group", ["Marketing", "Supervisors"])
def test_staff_see_what_was_sent_what_failed_and_why(group: str, outbox: dict[str, AlertDelivery]) -> None:
    response = member(group).get(OUTBOX)

    assert response.status_code == 200
    page = response.content.decode()
    assert "VonageUnavailable: Vonage answered 401 when sending an SMS." in page
    assert "+44 7700 900555 (SMS)" in page and "sales@example.com (Email)" in page
    next_try = timezone.localtime(outbox["retrying"].next_attempt_at)
    assert f"Retrying at {next_try:%H:%M} (tried 2 of 8)" in page
    assert "Failed (gave up)" in page
    assert shown(response) == {row.pk for row in outbox.values()}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=sent", {"sent"}),
        ("state=failed", {"failed"}),
        ("state=retrying", {"retrying"}),
        ("state=pending", {"retrying"}),
        ("why=any", {"failed", "retrying"}),
        ("why=none", {"sent"}),
        ("recipient__channel__exact=sms", {"failed"}),
        ("event__exact=voicemail", {"failed"}),
    ],
)
def test_the_outbox_filters(
    admin_client: Client, outbox: dict[str, AlertDelivery], query: str, expected: set[str]
) -> None:
    response = admin_client.get(f"{OUTBOX}?{query}")

    assert shown(response) == {outbox[name].pk for name in expected}


def test_the_outbox_list_query_count_does_not_grow_with_rows(
    admin_client: Client, outbox: dict[str, AlertDelivery], django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(12):
        admin_client.get(OUTBOX)
    for _ in range(20):
        AlertDelivery.objects.create(
            recipient=outbox["sent"].recipient,
            call=ended_call(outbox["sent"].call.campaign),
            event="missed",
            next_attempt_at=timezone.now(),
        )
    with django_assert_max_num_queries(12):
        admin_client.get(OUTBOX)


def test_the_outbox_is_read_only_even_for_a_superuser(admin_client: Client, outbox: dict[str, AlertDelivery]) -> None:
    row = outbox["failed"]
    change = reverse("admin:alerts_alertdelivery_change", args=[row.pk])

    assert admin_client.get(reverse("admin:alerts_alertdelivery_add")).status_code == 403
    assert admin_client.post(change, {"state": "sent", "last_error": ""}).status_code == 403
    delete = reverse("admin:alerts_alertdelivery_delete", args=[row.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403

    row.refresh_from_db()
    assert (row.state, row.attempts) == (DeliveryState.FAILED, 8)
    assert admin_client.get(change).status_code == 200  # viewable


def test_staff_without_a_role_do_not_see_the_outbox(outbox: dict[str, AlertDelivery]) -> None:
    client = Client()
    client.force_login(User.objects.create_user(username="temp", password="x", is_staff=True))

    assert client.get(OUTBOX).status_code == 403
