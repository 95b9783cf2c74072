"""SMS alerts through the real ``vonage`` SDK's SMS client against the local TLS fake."""

import base64
from datetime import timedelta

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings

from alerts import services
from alerts.models import AlertDelivery, Channel, DeliveryState
from calls import vonage_adapter
from calls.vonage_adapter import VonageUnavailable
from campaigns.models import Campaign
from devtools.fake_vonage_api import SMS_INVALID_CREDENTIALS, FakeVonageAPI
from tests.alerts.conftest import ended_call, recipient, summer_campaign

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

API_KEY, API_SECRET = "abcd1234", "s3cr3t-s3cr3t"
TEAM_LEADER = "447700900555"


@pytest.fixture
def sms(vonage: FakeVonageAPI, settings: Settings) -> FakeVonageAPI:
    settings.VONAGE_API_KEY = API_KEY
    settings.VONAGE_API_SECRET = API_SECRET
    vonage.api_key, vonage.api_secret = API_KEY, API_SECRET
    return vonage


@pytest.fixture
def campaign(db: None) -> Campaign:
    return summer_campaign()


def test_the_adapter_sends_one_sms_with_the_account_key_and_secret(sms: FakeVonageAPI) -> None:
    message_id = vonage_adapter.sms_send(to=TEAM_LEADER, from_="447700900001", text="Missed call: Summer offer")

    (sent,) = sms.sent_sms
    assert (sent["to"], sent["from"], sent["text"]) == (TEAM_LEADER, "447700900001", "Missed call: Summer offer")
    assert sent["message-id"] == message_id
    (request,) = sms.requests_for("sms")
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
    assert request.path == "/sms/json"


def test_a_missed_call_sends_exactly_one_sms_however_often_the_sender_runs(
    sms: FakeVonageAPI,
    campaign: Campaign,
) -> None:
    recipient(campaign, TEAM_LEADER, channel=Channel.SMS)
    call = ended_call(campaign)

    for _ in range(3):
        services.alerts_run()

    (sent,) = sms.sent_sms
    assert sent["to"] == TEAM_LEADER and sent["from"] == "447700900001"
    assert sent["text"].startswith("Missed call: Summer offer (M4 billboard), caller …0123")
    assert sent["text"].endswith(f"/admin/calls/call/{call.pk}/change/")
    delivery = AlertDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == (DeliveryState.SENT, 1)


@pytest.mark.parametrize(
    ("inject", "why"),
    [
        (
            lambda fake: fake.reject_sms("1", "Throttled"),
            "VonageUnavailable: Vonage refused sending an SMS: Sms.send_message method failed with error code 1: "
            "Throttled",
        ),
        (lambda fake: fake.fail(503, route="sms"), "VonageUnavailable: Vonage answered 503 when sending an SMS"),
    ],
    ids=["refused by the SMS API", "HTTP 503"],
)
def test_a_refused_sms_is_retried_after_the_back_off_then_sent(
    sms: FakeVonageAPI,
    campaign: Campaign,
    inject: object,
    why: str,
) -> None:
    recipient(campaign, TEAM_LEADER, channel=Channel.SMS)
    ended_call(campaign)
    inject(sms)  # type: ignore[operator]
    now = timezone.now()

    assert services.alerts_run(now=now).retrying == 1
    delivery = AlertDelivery.objects.get()
    assert delivery.last_error.startswith(why)
    assert sms.sent_sms == []

    assert services.alerts_send(now=now + timedelta(minutes=1)).sent == 1
    assert len(sms.sent_sms) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_error) == (DeliveryState.SENT, 2, "")


def test_bad_account_credentials_are_why_it_failed(sms: FakeVonageAPI, settings: Settings) -> None:
    settings.VONAGE_API_SECRET = "wrong"

    with pytest.raises(VonageUnavailable, match=f"error code {SMS_INVALID_CREDENTIALS}: Bad Credentials"):
        vonage_adapter.sms_send(to=TEAM_LEADER, from_="447700900001", text="Hello")

    assert sms.sent_sms == []


def test_the_sms_api_refuses_a_number_that_is_not_e164(sms: FakeVonageAPI) -> None:
    with pytest.raises(VonageUnavailable, match="error code 3: Invalid to address"):
        vonage_adapter.sms_send(to="07700 900555", from_="447700900001", text="Hello")

    assert sms.sent_sms == []


def test_a_dropped_answer_is_a_failure_to_retry_though_the_sms_went(sms: FakeVonageAPI) -> None:
    """At least once: the SMS API sent it, but the sender never heard, so it is tried again."""
    sms.drop_after_accept(route="sms")

    with pytest.raises(VonageUnavailable, match="Could not reach Vonage when sending an SMS"):
        vonage_adapter.sms_send(to=TEAM_LEADER, from_="447700900001", text="Hello")

    assert len(sms.sent_sms) == 1
