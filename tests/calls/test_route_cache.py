"""Routes kept in memory (calls/route_cache.py), with every routing change in effect
from the very next call: run in autocommit, as the webhooks and the admin run."""

import datetime as dt
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from calls import agent_dispatch
from calls.models import Call, NumberStatus
from campaigns.models import Campaign, OpeningHours, RoutesVersion, TrackingNumber
from tests.factories import CampaignFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_agent_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_dispatch, "ring_first_agent_soon", lambda call_id, **_: None)


@pytest.fixture
def number(db: None) -> TrackingNumber:
    campaign = CampaignFactory(name="Summer offer", topic="the summer offer", greeting="Hello from summer.")
    return TrackingNumberFactory(number="447700900001", campaign=campaign, source="M4 billboard")


def answer(client: Client, to: str = "447700900001") -> tuple[list[dict[str, Any]], Call]:
    caller = str(uuid.uuid4())
    response = client.get("/answer_inbound", {"to": to, "from": "447946000123", "uuid": caller})
    assert response.status_code == 200
    return response.json(), Call.objects.get(legs__uuid=caller)


def route_reads(client: Client) -> int:
    """How many statements of one answer read the tracking numbers' table."""
    with CaptureQueriesContext(connection) as queries:
        answer(client)
    return sum('"campaigns_trackingnumber"' in q["sql"] for q in queries.captured_queries)


def test_the_route_is_read_once_then_kept(client: Client, number: TrackingNumber) -> None:
    assert route_reads(client) == 1
    assert route_reads(client) == 0
    assert route_reads(client) == 0


def test_a_campaign_edit_is_in_effect_for_the_very_next_call(client: Client, number: TrackingNumber) -> None:
    answer(client)
    campaign = number.campaign
    campaign.greeting = "Welcome to the autumn sale."
    campaign.save()

    ncco, _ = answer(client)

    assert ncco[0]["text"] == "Welcome to the autumn sale."


def test_a_number_moved_to_another_campaign_routes_there_at_once(client: Client, number: TrackingNumber) -> None:
    answer(client)
    autumn = CampaignFactory(name="Autumn sale", topic="the autumn sale")
    number.campaign = autumn
    number.save()

    _, call = answer(client)

    assert call.campaign_id == autumn.pk


def test_opening_hours_added_close_the_campaign_for_the_next_call(client: Client, number: TrackingNumber) -> None:
    _, first = answer(client)
    assert first.resolution == ""
    # Open one minute a week, long ago today: closed now whatever the day.
    tomorrow = (dt.datetime.now(dt.UTC).weekday() + 1) % 7
    OpeningHours.objects.create(campaign=number.campaign, weekday=tomorrow, opens=dt.time(3, 0), closes=dt.time(3, 1))

    _, call = answer(client)

    assert call.resolution == "closed"


def test_deactivating_in_the_admin_is_in_effect_for_the_very_next_call(client: Client, number: TrackingNumber) -> None:
    """The admin's action writes in bulk (no signals): it bumps the version itself."""
    answer(client)
    admin = User.objects.create_superuser("boss", "boss@example.com", "a-long-password-1")
    staff = Client()
    staff.force_login(admin)
    response = staff.post(
        reverse("admin:campaigns_campaign_changelist"),
        {"action": "deactivate", "_selected_action": [number.campaign_id]},
    )
    assert response.status_code == 302

    _, call = answer(client)

    assert call.number_status == NumberStatus.INACTIVE


def test_a_deleted_number_is_unknown_for_the_next_call(client: Client, number: TrackingNumber) -> None:
    answer(client)
    number.delete()

    _, call = answer(client)

    assert call.number_status == NumberStatus.UNKNOWN and call.campaign_id is None


def test_without_the_version_row_nothing_is_kept(client: Client, number: TrackingNumber) -> None:
    RoutesVersion.objects.all().delete()  # as a flushed database has it

    assert route_reads(client) == 1
    assert route_reads(client) == 1
    Campaign.objects.filter(pk=number.campaign_id).update(greeting="Changed behind the ORM's back.")
    ncco, _ = answer(client)
    assert ncco[0]["text"] == "Changed behind the ORM's back."
