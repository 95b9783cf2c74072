"""When calls come: the report's weekday × hour heatmap of calls and missed calls, in the
campaign's time zone (or the business's), each count opening exactly the calls it counts."""

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from calls.heatmap import week_hour_counts
from calls.models import Call, CallState, Outcome
from calls.reports import ReportPeriod
from campaigns.models import Campaign, TrackingNumber
from tests.factories import CallFactory, CampaignFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db

REPORT = reverse("admin:calls_call_report")
CALLS = reverse("admin:calls_call_changelist")
PERIOD = {"start": "2026-11-01", "end": "2026-11-08"}
MONDAY, TUESDAY, SUNDAY = 1, 2, 7


@pytest.fixture
def tokyo(db: None) -> TrackingNumber:
    campaign = CampaignFactory.create(name="Tokyo offer", timezone="Asia/Tokyo")
    return TrackingNumberFactory.create(campaign=campaign, source="Shibuya poster")


@pytest.fixture
def london(db: None) -> TrackingNumber:
    campaign = CampaignFactory.create(name="London offer", timezone="Europe/London")
    return TrackingNumberFactory.create(campaign=campaign, source="Tube poster")


def call(number: TrackingNumber, at: datetime, outcome: str = Outcome.ANSWERED) -> Call:
    return CallFactory.create(tracking_number=number, started_at=at, outcome=outcome, state=CallState.ENDED)


@pytest.fixture
def calls(tokyo: TrackingNumber, london: TrackingNumber) -> dict[str, Call]:
    """Monday 2 November 2026: 23:30 UTC is 08:30 on Tuesday in Tokyo."""
    return {
        "late": call(tokyo, datetime(2026, 11, 2, 23, 30, tzinfo=UTC)),
        "late_missed": call(tokyo, datetime(2026, 11, 2, 23, 45, tzinfo=UTC), Outcome.MISSED),
        "morning": call(tokyo, datetime(2026, 11, 2, 0, 15, tzinfo=UTC), Outcome.VOICEMAIL),  # Mon 09:15 Tokyo
        "closed": call(tokyo, datetime(2026, 11, 2, 0, 20, tzinfo=UTC), Outcome.CLOSED),  # not missed
        "london": call(london, datetime(2026, 11, 2, 23, 30, tzinfo=UTC), Outcome.BUSY),  # Mon 23:30 London
        "sunday": call(london, datetime(2026, 11, 1, 12, 0, tzinfo=UTC)),
    }


def test_a_call_at_2330_utc_counts_on_the_next_day_in_tokyo(calls: dict[str, Call], tokyo: TrackingNumber) -> None:
    period = ReportPeriod.from_param("2026-11-01..2026-11-08")

    counts = week_hour_counts(period, campaign_id=tokyo.campaign_id, zone="Asia/Tokyo")

    assert counts.calls == {(TUESDAY, 8): 2, (MONDAY, 9): 2}
    assert counts.missed == {(TUESDAY, 8): 1, (MONDAY, 9): 1}


def test_in_the_business_time_zone_the_same_calls_fall_on_monday_night(calls: dict[str, Call]) -> None:
    period = ReportPeriod.from_param("2026-11-01..2026-11-08")

    counts = week_hour_counts(period, campaign_id=None, zone="UTC")

    assert counts.calls == {(MONDAY, 23): 3, (MONDAY, 0): 2, (SUNDAY, 12): 1}
    assert counts.missed == {(MONDAY, 23): 2, (MONDAY, 0): 1}


def cells(html: str, table: str) -> dict[tuple[str, int], tuple[int, str]]:
    """A heatmap's non-empty cells: (weekday, hour) -> (count, link)."""
    section = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    found = {}
    for day, body in re.findall(r'<th scope="row">(\w+)</th>(.*?)</tr>', section, re.S):
        for hour, td in enumerate(re.findall(r"<td class=\"number\"[^>]*>(.*?)</td>", body)[:24]):
            link = re.search(r'<a href="([^"]+)">(\d+)</a>', td)
            if link:
                found[(day, hour)] = (int(link.group(2)), link.group(1).replace("&amp;", "&"))
    return found


def test_one_campaign_is_shown_in_its_own_time_zone_and_each_count_opens_its_calls(
    admin_client: Client, calls: dict[str, Call], tokyo: TrackingNumber
) -> None:
    html = admin_client.get(REPORT, {**PERIOD, "campaign": tokyo.campaign_id}).content.decode()

    assert "Asia/Tokyo time (the campaign's time zone)" in html
    every = cells(html, "heatmap-calls")
    missed = cells(html, "heatmap-missed")
    assert {key: n for key, (n, _) in every.items()} == {("Tuesday", 8): 2, ("Monday", 9): 2}
    assert {key: n for key, (n, _) in missed.items()} == {("Tuesday", 8): 1, ("Monday", 9): 1}

    # The links open exactly the calls counted.
    listed = admin_client.get(every[("Tuesday", 8)][1]).context["cl"].result_list
    assert {c.pk for c in listed} == {calls["late"].pk, calls["late_missed"].pk}
    listed = admin_client.get(missed[("Monday", 9)][1]).context["cl"].result_list
    assert {c.pk for c in listed} == {calls["morning"].pk}
    query = parse_qs(urlsplit(missed[("Tuesday", 8)][1]).query)
    assert query["zone"] == ["Asia/Tokyo"] and query["campaign__id__exact"] == [str(tokyo.campaign_id)]


@override_settings(TIME_ZONE="Asia/Tokyo")
def test_all_campaigns_are_shown_in_the_business_time_zone(admin_client: Client, calls: dict[str, Call]) -> None:
    html = admin_client.get(REPORT, PERIOD).content.decode()

    every = cells(html, "heatmap-calls")
    assert {key: n for key, (n, _) in every.items()} == {("Tuesday", 8): 3, ("Monday", 9): 2, ("Sunday", 21): 1}
    listed = admin_client.get(every[("Tuesday", 8)][1]).context["cl"].result_list
    assert {c.pk for c in listed} == {calls["late"].pk, calls["late_missed"].pk, calls["london"].pk}


@pytest.mark.parametrize(
    "query", ["weekday=8&hour=1&zone=UTC", "weekday=1&hour=24&zone=UTC", "weekday=1&hour=1&zone=Mars/Base"]
)
def test_a_bad_heatmap_cell_in_the_call_list_is_refused(admin_client: Client, query: str) -> None:
    response = admin_client.get(f"{CALLS}?{query}")
    # The admin's answer to parameters it cannot apply: back to the list with ?e=1.
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_the_heatmap_is_one_query(admin_client: Client, django_assert_num_queries: Any, london: Campaign) -> None:
    from calls.heatmap import report_context

    for day in range(1, 8):
        call(london, datetime(2026, 11, day, 9 + day, tzinfo=UTC))
    with django_assert_num_queries(1):
        context = report_context(ReportPeriod.from_param("2026-11-01..2026-11-08"), campaign=None)
    assert sum(row["total"] for row in context["heatmap_calls"]) == 7
