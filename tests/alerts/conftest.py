"""Alert recipients and finished calls, as the outbox sees them."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from alerts.models import AlertRecipient, Channel, Frequency
from calls.models import Call, CallState, Outcome
from campaigns.models import Campaign
from tests.factories import CallFactory, CampaignFactory, TrackingNumberFactory

CALLER = "447946000123"


def summer_campaign() -> Campaign:
    """The campaign the alerts are about, with its number on the M4 billboard."""
    campaign = CampaignFactory(name="Summer offer", topic="the summer offer", timezone="Europe/London")
    TrackingNumberFactory(campaign=campaign, number="447700900001", source="M4 billboard")
    return campaign


@pytest.fixture
def campaign(db: None) -> Campaign:
    return summer_campaign()


def recipient(
    campaign: Campaign,
    address: str = "sales@example.com",
    *,
    channel: str = Channel.EMAIL,
    frequency: str = Frequency.EACH_CALL,
    created_at: datetime | None = None,
    **fields: bool,
) -> AlertRecipient:
    made = AlertRecipient.objects.create(
        campaign=campaign, channel=channel, address=address, frequency=frequency, **fields
    )
    # Added before the calls the tests make (auto_now_add: set afterwards).
    AlertRecipient.objects.filter(pk=made.pk).update(created_at=created_at or timezone.now() - timedelta(hours=2))
    made.refresh_from_db()
    return made


def ended_call(
    campaign: Campaign,
    outcome: str = Outcome.MISSED,
    *,
    ended_ago: timedelta = timedelta(minutes=5),
    now: datetime | None = None,
    **fields: object,
) -> Call:
    """A call of ``campaign`` that ended ``ended_ago`` before ``now``."""
    ended = (now or timezone.now()) - ended_ago
    number = campaign.numbers.first()
    values: dict[str, object] = {
        "caller_number": CALLER,
        "state": CallState.ENDED,
        "started_at": ended - timedelta(seconds=40),
        "ended_at": ended,
        "wait_seconds": 40,
        **fields,
    }
    return CallFactory(tracking_number=number, campaign=campaign, outcome=outcome, **values)
