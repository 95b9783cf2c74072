"""Numbers that were called without an active campaign, and turning one into a campaign."""

import html
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calls.models import Call, NumberStatus
from campaigns.models import Campaign, TrackingNumber
from tests.campaigns.test_admin import ADD, CHANGELIST, errors_of, form_data, logged_in, member
from tests.factories import CallFactory, CampaignFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db

LIST = reverse("admin:campaigns_campaign_numbers_without_campaign")


def unknown_call(number: str, *, at: datetime | None = None) -> Call:
    return CallFactory.create(
        tracking_number=None,
        campaign=None,
        called_number=number,
        source="",
        number_status=NumberStatus.UNKNOWN,
        started_at=at or timezone.now(),
    )


def inactive_call(number: TrackingNumber, *, at: datetime | None = None) -> Call:
    return CallFactory.create(
        tracking_number=number, number_status=NumberStatus.INACTIVE, started_at=at or timezone.now()
    )


def listed(client: Client) -> dict[str, Any]:
    response = client.get(LIST)
    assert response.status_code == 200
    return {row.number: row for row in response.context["rows"]}


def create_link(body: str, display: str) -> str:
    match = re.search(r'href="([^"]*)">Create a campaign<', body.split(display, 1)[1])
    assert match is not None, f"no create link for {display}"
    return html.unescape(match.group(1))


def test_changelist_links_to_the_numbers_without_a_campaign(admin_client: Client) -> None:
    body = admin_client.get(CHANGELIST).content.decode()

    assert f'<a href="{LIST}">Numbers without a campaign</a>' in body


def test_lists_unknown_and_inactive_numbers_with_their_calls(admin_client: Client) -> None:
    now = timezone.now()
    unknown_call("447700900555", at=now - timedelta(days=3))
    unknown_call("447700900555", at=now - timedelta(hours=1))
    switched_off = TrackingNumberFactory.create(number="447700900666", is_active=False)
    inactive_call(switched_off, at=now - timedelta(days=1))
    tracked = TrackingNumberFactory.create(number="447700900777")
    CallFactory.create(tracking_number=tracked)  # a campaign number: not listed

    rows = listed(admin_client)

    assert list(rows) == ["447700900555", "447700900666"]  # most recent call first
    assert rows["447700900555"].calls == 2
    assert rows["447700900555"].last_call_at == now - timedelta(hours=1)
    assert rows["447700900555"].tracking_number is None
    assert rows["447700900666"].calls == 1
    assert rows["447700900666"].tracking_number == switched_off


def test_each_unknown_number_has_a_create_link_and_each_inactive_one_its_campaign(admin_client: Client) -> None:
    unknown_call("447700900555")
    paused = CampaignFactory.create(name="Paused offer", is_active=False)
    inactive_call(TrackingNumberFactory.create(number="447700900666", campaign=paused))

    body = admin_client.get(LIST).content.decode()

    assert "+44 7700 900555" in body
    assert create_link(body, "+44 7700 900555") == f"{ADD}?name=Campaign+for+%2B44+7700+900555&number=%2B44+7700+900555"
    row_666 = body.split("+44 7700 900666", 1)[1].split("</tr>", 1)[0]
    assert "the inactive campaign Paused offer" in row_666
    assert reverse("admin:campaigns_campaign_change", args=[paused.pk]) in row_666
    assert "Create a campaign" not in row_666  # the number exists: a second one would be refused


def test_a_number_that_is_not_a_phone_number_gets_no_create_link(admin_client: Client) -> None:
    unknown_call("Restricted")

    body = admin_client.get(LIST).content.decode()

    assert "Restricted" in body
    assert "Create a campaign" not in body


def test_numbers_that_now_belong_to_an_active_campaign_drop_out(admin_client: Client) -> None:
    unknown_call("447700900555")
    number = TrackingNumberFactory.create(number="447700900666", is_active=False)
    inactive_call(number)
    campaign_off = CampaignFactory.create(is_active=False)
    inactive_call(TrackingNumberFactory.create(number="447700900777", campaign=campaign_off))
    assert set(listed(admin_client)) == {"447700900555", "447700900666", "447700900777"}

    TrackingNumberFactory.create(number="447700900555")  # added to an active campaign
    number.is_active = True
    number.save()
    campaign_off.is_active = True
    campaign_off.save()

    assert listed(admin_client) == {}
    assert "Every number that was called belongs to an active campaign." in admin_client.get(LIST).content.decode()


def test_the_create_link_opens_the_add_form_filled_in(admin_client: Client) -> None:
    unknown_call("447700900555")
    link = create_link(admin_client.get(LIST).content.decode(), "+44 7700 900555")

    response = admin_client.get(link)

    assert response.status_code == 200
    assert response.context["adminform"].form["name"].value() == "Campaign for +44 7700 900555"
    numbers = response.context["inline_admin_formsets"][0].formset
    assert numbers.prefix == "numbers"
    assert numbers.forms[0]["number"].value() == "+44 7700 900555"
    assert numbers.forms[0]["is_active"].value() is True
    assert 'value="+44 7700 900555"' in response.content.decode()


def _posted_as_rendered(response: Any, **changes: Any) -> dict[str, Any]:
    """What the browser posts for the rendered add form: its extra inline rows included."""
    data = form_data(response, **changes)
    numbers = response.context["inline_admin_formsets"][0].formset
    for form in numbers.extra_forms:
        for name in ("number", "source"):
            data[form.add_prefix(name)] = form[name].value() or ""
        if form["is_active"].value():
            data[form.add_prefix("is_active")] = "on"
    data["numbers-TOTAL_FORMS"] = len(numbers.forms)
    return data


def test_saving_the_filled_in_form_creates_the_campaign_with_the_number(admin_client: Client) -> None:
    unknown_call("447700900555")
    response = admin_client.get(create_link(admin_client.get(LIST).content.decode(), "+44 7700 900555"))

    saved = admin_client.post(ADD, _posted_as_rendered(response, topic="the radio advert"))

    assert saved.status_code == 302, errors_of(saved)
    campaign = Campaign.objects.get(name="Campaign for +44 7700 900555")
    assert campaign.topic == "the radio advert"
    assert [(n.number, n.is_active) for n in campaign.numbers.all()] == [("447700900555", True)]
    assert listed(admin_client) == {}  # and the number leaves the list


def test_the_add_form_without_a_number_has_an_empty_row(admin_client: Client) -> None:
    response = admin_client.get(ADD, {"name": "Plain"})

    numbers = response.context["inline_admin_formsets"][0].formset
    assert [form["number"].value() for form in numbers.forms] == [None]


def test_supervisors_see_the_list_without_create_links() -> None:
    unknown_call("447700900555")
    client = logged_in(member("Supervisors"))

    response = client.get(LIST)

    assert response.status_code == 200
    body = response.content.decode()
    assert "+44 7700 900555" in body
    assert "Create a campaign" not in body


def test_marketing_sees_the_create_links() -> None:
    unknown_call("447700900555")

    body = logged_in(member("Marketing")).get(LIST).content.decode()

    assert "Create a campaign" in body


def test_staff_without_view_campaign_are_refused() -> None:
    user = User.objects.create_user(username="someone", password="x", is_staff=True)

    assert logged_in(user).get(LIST).status_code == 403


def test_anonymous_visitors_are_sent_to_the_login(client: Client) -> None:
    response = client.get(LIST)

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_the_call_count_links_to_the_numbers_calls(admin_client: Client) -> None:
    unknown_call("447700900555")
    unknown_call("447700900555")
    unknown_call("447700900556")

    body = admin_client.get(LIST).content.decode()
    link = re.search(r'href="([^"]*called_number=447700900555)">2<', body)

    assert link is not None
    calls = admin_client.get(html.unescape(link.group(1)))
    assert calls.status_code == 200
    assert calls.context["cl"].result_count == 2


@pytest.mark.parametrize("numbers", [1, 20])
def test_query_count_does_not_grow_with_numbers(
    admin_client: Client, django_assert_num_queries: Any, numbers: int
) -> None:
    for n in range(numbers):
        unknown_call(f"4477009006{n:02d}")
        inactive_call(TrackingNumberFactory.create(number=f"4477009007{n:02d}", is_active=False))
    admin_client.get(LIST)

    # session, user, count, page of numbers, their tracking numbers with campaigns
    with django_assert_num_queries(5):
        response = admin_client.get(LIST)
    assert len(response.context["rows"]) == 2 * numbers
