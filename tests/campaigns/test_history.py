"""Who changed which campaign field, and when; and calls keep the whisper they played."""

import importlib
from datetime import time
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse

from calls.models import Call
from campaigns.models import Campaign, OpeningHours, Strategy, TrackingNumber, Weekday
from tests.campaigns.test_admin import (
    CHANGELIST,
    _add_form,
    _answered_call,
    add_number,
    change_url,
    errors_of,
    form_data,
    logged_in,
    member,
)
from tests.factories import CallFactory, CampaignFactory

pytestmark = pytest.mark.django_db


def history_url(campaign: Campaign) -> str:
    return reverse("admin:campaigns_campaign_history", args=[campaign.pk])


def edit(client: Client, campaign: Campaign, **changes: Any) -> None:
    data = form_data(client.get(change_url(campaign)), **changes)
    response = client.post(change_url(campaign), data)
    assert response.status_code == 302, errors_of(response)


def changes_on_page(response: Any) -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """(user, history type, [(field, old, new)]) of each entry on the History page, newest first."""
    return [
        (
            str(record.history_user or ""),
            record.history_type,
            [(c["field"], str(c["old"]), str(c["new"])) for c in getattr(record, "history_delta_changes", [])],
        )
        for record in response.context["page_obj"]
    ]


def test_a_topic_edited_by_marketing_shows_who_and_old_and_new(summer_number: TrackingNumber) -> None:
    campaign = summer_number.campaign
    marketing = member("Marketing", username="maria")
    client = logged_in(marketing)

    edit(client, campaign, topic="the winter deals")
    response = client.get(history_url(campaign))

    assert response.status_code == 200
    newest, created = changes_on_page(response)
    assert newest == ("maria", "~", [("Topic", "the summer offer", "the winter deals")])
    assert created[1] == "+"
    record = campaign.history.first()
    assert (record.history_user, record.topic) == (marketing, "the winter deals")
    body = response.content.decode()
    assert "maria" in body
    assert "Topic:</strong>" in body
    assert "the summer offer" in body
    assert "the winter deals" in body


def test_every_changed_field_is_listed_with_choices_as_people_read_them(admin_client: Client) -> None:
    campaign = CampaignFactory.create(name="Spring", topic="the spring sale")

    edit(admin_client, campaign, strategy=Strategy.CONNECT, ring_seconds="30", whisper_template="About {topic}")
    newest = changes_on_page(admin_client.get(history_url(campaign)))[0]

    assert newest[0] == "admin"
    assert sorted(newest[2]) == [
        ("Ring seconds", "20", "30"),
        ("While the agent is rung", Strategy.CONFERENCE.label, Strategy.CONNECT.label),
        ("Whisper template", "Incoming call regarding {topic}", "About {topic}"),
    ]


def test_supervisors_read_the_history_too(summer_campaign: Campaign) -> None:
    edit(logged_in(member("Marketing")), summer_campaign, topic="the winter deals")

    response = logged_in(member("Supervisors")).get(history_url(summer_campaign))

    assert response.status_code == 200
    assert changes_on_page(response)[0][0] == "marketing"


def test_numbers_and_opening_hours_changes_are_on_the_campaigns_history(summer_number: TrackingNumber) -> None:
    campaign = summer_number.campaign
    OpeningHours.objects.create(campaign=campaign, weekday=Weekday.MONDAY, opens=time(9), closes=time(17))
    client = logged_in(member("Marketing", username="maria"))

    data = form_data(
        client.get(change_url(campaign)),
        **{"numbers-0-source": "M5 billboard", "opening_hours-0-weekday": str(Weekday.TUESDAY.value)},
    )
    add_number(data, "+44 7700 900002", source="Radio")
    response = client.post(change_url(campaign), data)
    assert response.status_code == 302, errors_of(response)
    page = client.get(history_url(campaign))

    related = {(c.kind, c.row, c.record.history_type): c for c in page.context["related_changes"]}
    number = related[("Number", "+44 7700 900001 (M5 billboard)", "~")]
    assert str(number.record.history_user) == "maria"
    assert [(c["field"], c["old"], c["new"]) for c in number.changes] == [("Source", "M4 billboard", "M5 billboard")]
    hours = related[("Opening hours", "Tuesday 09:00–17:00", "~")]
    assert [(c["field"], c["old"], c["new"]) for c in hours.changes] == [("Weekday", "Monday", "Tuesday")]
    assert ("Number", "+44 7700 900002 (Radio)", "+") in related
    body = page.content.decode()
    assert "Numbers and opening hours" in body
    assert "M4 billboard" in body


@pytest.mark.parametrize("edits", [1, 10])
def test_the_history_page_query_count_does_not_grow_with_edits(
    admin_client: Client, summer_number: TrackingNumber, django_assert_max_num_queries: Any, edits: int
) -> None:
    campaign = summer_number.campaign
    for n in range(edits):
        edit(admin_client, campaign, topic=f"topic {n}", **{"numbers-0-source": f"source {n}"})

    # session, user, campaign, count and page of its history, (the user content type),
    # its numbers' history, its opening hours' history: the authors come with their entries
    with django_assert_max_num_queries(8):
        response = admin_client.get(history_url(campaign))
    assert len(response.context["page_obj"]) == edits + 1
    assert len(response.context["related_changes"]) == edits + 1


def test_activating_from_the_list_is_recorded_with_its_author(admin_client: Client) -> None:
    campaign = CampaignFactory.create(is_active=False)

    admin_client.post(CHANGELIST, {"action": "activate", "_selected_action": [campaign.pk]})

    record = campaign.history.first()
    assert (record.is_active, str(record.history_user), record.history_type) == (True, "admin", "~")
    assert changes_on_page(admin_client.get(history_url(campaign)))[0][2] == [("Active", "False", "True")]


def test_the_changelist_query_count_is_unchanged_by_history(
    admin_client: Client, django_assert_num_queries: Any
) -> None:
    for campaign in CampaignFactory.create_batch(5):
        edit(admin_client, campaign, topic="edited")
    admin_client.get(CHANGELIST)

    with django_assert_num_queries(5):
        admin_client.get(CHANGELIST)


def test_an_old_version_opens_read_only_for_supervisors(summer_campaign: Campaign) -> None:
    edit(logged_in(member("Marketing")), summer_campaign, topic="the winter deals")
    first = summer_campaign.history.earliest()

    response = logged_in(member("Supervisors")).get(
        reverse("admin:campaigns_campaign_simple_history", args=[summer_campaign.pk, first.history_id])
    )

    assert response.status_code == 200
    assert "the summer offer" in response.content.decode()
    assert "Revert" not in response.context["title"]


def test_reverting_to_an_old_version_restores_its_topic(admin_client: Client, summer_campaign: Campaign) -> None:
    edit(admin_client, summer_campaign, topic="the winter deals")
    first = summer_campaign.history.earliest()
    url = reverse("admin:campaigns_campaign_simple_history", args=[summer_campaign.pk, first.history_id])
    page = admin_client.get(url)
    assert page.status_code == 200

    data: dict[str, Any] = {}
    _add_form(data, page.context["adminform"].form)  # the old version's fields; no inlines here
    response = admin_client.post(url, data)

    assert response.status_code == 302
    summer_campaign.refresh_from_db()
    assert summer_campaign.topic == "the summer offer"
    assert summer_campaign.history.first().history_type == "~"


def test_the_baseline_migration_gives_existing_rows_a_first_record(summer_number: TrackingNumber) -> None:
    OpeningHours.objects.create(campaign=summer_number.campaign, weekday=Weekday.MONDAY, opens=time(9), closes=time(17))
    for model in (Campaign, TrackingNumber, OpeningHours):
        model.history.all().delete()  # as before history was installed
    baseline = importlib.import_module("campaigns.migrations.0004_history_baseline")

    baseline.forwards(apps, None)

    for model in (Campaign, TrackingNumber, OpeningHours):
        record = model.history.get()
        assert (record.history_type, record.history_change_reason) == ("+", "History starts here")
    assert Campaign.history.get().topic == "the summer offer"
    assert TrackingNumber.history.get().source == "M4 billboard"


# --- calls keep what they played -------------------------------------------------------------


def test_a_call_keeps_the_whisper_it_played_after_the_topic_changes(
    admin_client: Client, client: Client, summer_number: TrackingNumber
) -> None:
    spoken, before = _answered_call(client, "before-edit")
    assert spoken == "Incoming call regarding the summer offer"

    edit(admin_client, summer_number.campaign, topic="the winter deals")
    _, after = _answered_call(client, "after-edit")

    before.refresh_from_db()
    assert before.whisper_text == "Incoming call regarding the summer offer"
    assert after.whisper_text == "Incoming call regarding the winter deals"
    page = admin_client.get(reverse("admin:calls_call_change", args=[before.pk])).content.decode()
    assert "Incoming call regarding the summer offer" in page
    assert "the winter deals" not in page


def test_a_stored_whisper_is_not_rendered_again(summer_number: TrackingNumber) -> None:
    call = CallFactory.create(tracking_number=summer_number, whisper_text="Incoming call regarding the summer offer")
    campaign = summer_number.campaign
    campaign.topic = "something else"
    campaign.whisper_template = "New {topic}"
    campaign.save()

    assert Call.objects.get(pk=call.pk).whisper_text == "Incoming call regarding the summer offer"


def test_saving_without_changing_the_campaign_adds_no_empty_entry(
    admin_client: Client, summer_number: TrackingNumber
) -> None:
    campaign = summer_number.campaign

    edit(admin_client, campaign)  # nothing changed
    edit(admin_client, campaign, **{"numbers-0-source": "Radio"})  # only a number changed

    assert [r.history_type for r in campaign.history.all()] == ["+"]
    assert [(r.history_type, r.source) for r in summer_number.history.all()] == [("~", "Radio"), ("+", "M4 billboard")]


def test_a_numbers_own_history_page_lists_its_changes(admin_client: Client, summer_number: TrackingNumber) -> None:
    edit(admin_client, summer_number.campaign, **{"numbers-0-source": "Radio"})

    response = admin_client.get(reverse("admin:campaigns_trackingnumber_history", args=[summer_number.pk]))

    assert response.status_code == 200
    assert changes_on_page(response)[0] == ("admin", "~", [("Source", "M4 billboard", "Radio")])
