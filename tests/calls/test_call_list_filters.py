"""What a supervisor expects of the call list: numbers found however they are written,
campaigns and sources by name, filters by date range, source, outcome and talk time,
the same on the CSV; and demo data left out until asked for."""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calls.models import Call, Outcome
from campaigns.models import Campaign
from devtools.simulator import SCENARIOS
from devtools.simulator.scenarios import scenario_campaign
from tests.factories import CallFactory, CampaignFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db

CALLS = reverse("admin:calls_call_changelist")
EXPORT = reverse("admin:calls_call_export")
CAMPAIGNS = reverse("admin:campaigns_campaign_changelist")
NUMBERS = reverse("admin:campaigns_trackingnumber_changelist")
REPORT = reverse("admin:calls_call_report")


@pytest.fixture
def calls(db: None) -> dict[str, Call]:
    summer = CampaignFactory.create(name="Summer offer", topic="the summer offer")
    radio = TrackingNumberFactory.create(number="447700900002", campaign=summer, source="Radio advert")
    billboard = TrackingNumberFactory.create(number="447700900001", campaign=summer, source="M4 billboard")
    demo = CampaignFactory.create(name="Simulator: busy", topic="the busy scenario", is_demo=True)
    demo_number = TrackingNumberFactory.create(number="447700900777", campaign=demo, source="the call simulator")
    now = timezone.now()
    return {
        "long": CallFactory.create(
            tracking_number=radio,
            caller_number="447946000123",
            outcome=Outcome.ANSWERED,
            talk_seconds=383,
            started_at=now - timedelta(hours=1),
        ),
        "short": CallFactory.create(
            tracking_number=billboard,
            caller_number="447946000456",
            outcome=Outcome.ANSWERED,
            talk_seconds=12,
            started_at=now - timedelta(days=10),
        ),
        "missed": CallFactory.create(
            tracking_number=billboard, outcome=Outcome.MISSED, started_at=now - timedelta(days=2)
        ),
        "demo": CallFactory.create(tracking_number=demo_number, outcome=Outcome.BUSY, started_at=now),
    }


def listed(client: Client, **params: str) -> set[int]:
    response = client.get(CALLS, params)
    assert response.status_code == 200, response.get("Location")
    return {call.pk for call in response.context["cl"].result_list}


def exported(client: Client, **params: str) -> int:
    body = b"".join(client.get(EXPORT, params).streaming_content).decode()  # type: ignore[attr-defined]
    return len(body.strip().splitlines()) - 1


@pytest.mark.parametrize("term", ["07946 000123", "07946000123", "+44 7946 000123", "447946000123", "0044 7946 000123"])
def test_search_finds_a_caller_by_any_common_form_of_the_number(
    supervisor: Client, calls: dict[str, Call], term: str
) -> None:
    assert listed(supervisor, q=term) == {calls["long"].pk}


def test_search_finds_the_campaigns_number_in_national_form(supervisor: Client, calls: dict[str, Call]) -> None:
    assert listed(supervisor, q="07700 900002") == {calls["long"].pk}


@pytest.mark.parametrize(("term", "wanted"), [("summer", {"long", "short", "missed"}), ("Radio advert", {"long"})])
def test_search_finds_calls_by_campaign_name_and_by_source(
    supervisor: Client, calls: dict[str, Call], term: str, wanted: set[str]
) -> None:
    assert listed(supervisor, q=term) == {calls[name].pk for name in wanted}


def test_filters_by_date_range_source_outcome_and_talk_time(supervisor: Client, calls: dict[str, Call]) -> None:
    today = timezone.localdate()
    week = {"started_from": (today - timedelta(days=6)).isoformat(), "started_to": today.isoformat()}

    assert listed(supervisor, **week) == {calls["long"].pk, calls["missed"].pk}
    assert listed(supervisor, source="M4 billboard") == {calls["short"].pk, calls["missed"].pk}
    assert listed(supervisor, outcome__exact=Outcome.MISSED) == {calls["missed"].pk}
    assert listed(supervisor, talk="lt30") == {calls["short"].pk}
    assert listed(supervisor, talk="120-600") == {calls["long"].pk}
    assert listed(supervisor, talk="none") == {calls["missed"].pk}


def test_the_source_filter_offers_the_sources_without_demo_ones(supervisor: Client, calls: dict[str, Call]) -> None:
    body = supervisor.get(CALLS).content.decode()
    assert "?source=M4+billboard" in body and "?source=Radio+advert" in body
    assert "the call simulator" not in body


@pytest.mark.parametrize(
    "params",
    [
        {"q": "07946 000123"},
        {"q": "summer"},
        {"source": "M4 billboard"},
        {"talk": "lt30"},
        {"outcome__exact": Outcome.ANSWERED},
        {"started_from": (timezone.localdate() - timedelta(days=6)).isoformat()},
        {"demo": "show"},
    ],
)
def test_the_csv_follows_the_same_filters(supervisor: Client, calls: dict[str, Call], params: dict[str, str]) -> None:
    assert exported(supervisor, **params) == len(listed(supervisor, **params))


def test_an_unknown_talk_band_is_refused(supervisor: Client, calls: dict[str, Call]) -> None:
    response = supervisor.get(CALLS, {"talk": "forever"})
    assert response.status_code == 302 and "e=1" in response["Location"]


# --- demo data ---------------------------------------------------------------------------


def test_demo_calls_are_hidden_until_shown(supervisor: Client, calls: dict[str, Call]) -> None:
    assert calls["demo"].pk not in listed(supervisor)
    assert calls["demo"].pk in listed(supervisor, demo="show")
    assert exported(supervisor) == 3


def test_the_campaign_filter_leaves_demo_campaigns_out_until_shown(supervisor: Client, calls: dict[str, Call]) -> None:
    assert "Simulator: busy" not in supervisor.get(CALLS).content.decode()
    assert "Simulator: busy" in supervisor.get(CALLS, {"demo": "show"}).content.decode()


def test_calls_to_unknown_numbers_are_not_demo_data(supervisor: Client, calls: dict[str, Call]) -> None:
    unknown = CallFactory.create(tracking_number=None, campaign=None, called_number="447700900404", source="")
    assert unknown.pk in listed(supervisor)


def test_campaign_and_number_lists_hide_demo_campaigns_until_shown(
    admin_client: Client, calls: dict[str, Call]
) -> None:
    assert "Simulator: busy" not in admin_client.get(CAMPAIGNS).content.decode()
    assert "Simulator: busy" in admin_client.get(CAMPAIGNS, {"demo": "show"}).content.decode()
    numbers = {n.number for n in admin_client.get(NUMBERS).context["cl"].result_list}
    assert "447700900777" not in numbers
    assert "447700900777" in {n.number for n in admin_client.get(NUMBERS, {"demo": "show"}).context["cl"].result_list}


def test_reports_leave_demo_calls_out_until_included(supervisor: Client, calls: dict[str, Call]) -> None:
    hidden = supervisor.get(REPORT)
    shown = supervisor.get(REPORT, {"demo": "show"})

    assert hidden.context["total"]["cells"][0]["text"] == 3
    assert "Simulator: busy" not in [row["label"] for row in hidden.context["campaign_table"]]
    assert shown.context["total"]["cells"][0]["text"] == 4
    # The drill-down from a report that includes them shows them on the list too.
    link = shown.context["total"]["cells"][0]["url"]
    assert "demo=show" in link
    assert len(supervisor.get(link).context["cl"].result_list) == 4


def test_the_simulator_marks_its_campaigns_as_demo(db: None) -> None:
    scenario = next(s for s in SCENARIOS.values() if not s.unknown_number)
    campaign = scenario_campaign(scenario, strategy=None)
    assert campaign is not None and campaign.is_demo


def test_the_demo_import_marks_its_campaigns_as_demo(db: None) -> None:
    path = Path(__file__).resolve().parents[2] / "campaigns" / "demo_campaigns.json"
    call_command("import_campaigns", str(path), verbosity=0)
    names = [item["name"] for item in json.loads(path.read_text())]
    assert set(Campaign.objects.filter(name__in=names).values_list("is_demo", flat=True)) == {True}


@pytest.mark.parametrize("extra", [0, 20])
def test_the_filtered_list_query_count_does_not_grow_with_calls(
    supervisor: Client, calls: dict[str, Call], django_assert_num_queries: Any, extra: int
) -> None:
    radio = calls["long"].tracking_number
    for _ in range(extra):
        CallFactory.create(tracking_number=radio, outcome=Outcome.ANSWERED, talk_seconds=200)
    today = timezone.localdate()
    params = {
        "q": "summer",
        "source": "Radio advert",
        "talk": "120-600",
        "outcome__exact": Outcome.ANSWERED,
        "started_from": (today - timedelta(days=6)).isoformat(),
        "started_to": today.isoformat(),
    }
    supervisor.get(CALLS, params)

    # session, user, the user's and groups' permissions, campaigns for the campaign filter,
    # sources for the source filter, the demo campaigns, count, the page of calls with
    # their campaigns, and the date hierarchy's first and last start and its days; the
    # tags for the tag filter and the page's tags (one query for all its calls)
    with django_assert_num_queries(13):
        response = supervisor.get(CALLS, params)
    assert len(response.context["cl"].result_list) == 1 + extra
