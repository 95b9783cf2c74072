"""The reports page in the admin: the figures over a hand-built set of calls, the chart,
and links that open the call list on exactly the calls each figure counts."""

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from calls.models import Call, NumberStatus, Outcome
from calls.reports import REPORT_OUTCOMES, ReportPeriod
from campaigns.models import Campaign, TrackingNumber
from tests.factories import CallFactory, CampaignFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db

REPORT = reverse("admin:calls_call_report")
REPORT_CSV = reverse("admin:calls_call_report_csv")
CALLS = reverse("admin:calls_call_changelist")
ZONE = ZoneInfo(settings.TIME_ZONE)
PERIOD = {"start": "2026-11-01", "end": "2026-11-03"}
# The cells of a row, in the order of the report's columns.
CALLS_CELL = 0
OUTCOME_CELLS = {o: 1 + n for n, o in enumerate(REPORT_OUTCOMES)}
RATE, MEDIAN_WAIT, MEAN_WAIT, MEAN_TALK, FIRST_TIME, LEADS, SALES, LEAD_RATE = range(
    1 + len(REPORT_OUTCOMES), 9 + len(REPORT_OUTCOMES)
)


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=ZONE)


@pytest.fixture
def calls(db: None) -> dict[str, Any]:
    """The set of tests/calls/test_reports.py, and a call to the radio number from
    before its label was changed (the per-source table keeps it on a row of its own)."""
    summer = CampaignFactory.create(name="Summer offer", topic="the summer offer")
    winter = CampaignFactory.create(name="Winter offer", topic="the winter offer")
    m4 = TrackingNumberFactory.create(number="447700900001", campaign=summer, source="M4 billboard")
    radio = TrackingNumberFactory.create(number="447700900002", campaign=summer, source="Radio advert")
    paper = TrackingNumberFactory.create(number="447700900003", campaign=winter, source="Newspaper")

    def call(number: TrackingNumber, started: datetime, outcome: str, caller: str, **fields: Any) -> Call:
        return CallFactory.create(
            tracking_number=number, started_at=started, outcome=outcome, caller_number=caller, **fields
        )

    # Alice called Summer before the period: a returning caller in it.
    call(m4, at(1) - timedelta(days=10), Outcome.ANSWERED, "447946000001", wait_seconds=10, talk_seconds=60)
    call(m4, at(1), Outcome.ANSWERED, "447946000001", wait_seconds=4, talk_seconds=100)
    call(m4, at(1), Outcome.ANSWERED, "447946000002", wait_seconds=8, talk_seconds=50)  # Bob
    call(radio, at(1), Outcome.MISSED, "447946000009", wait_seconds=9, source="Radio (old)")  # Gina
    call(m4, at(2), Outcome.MISSED, "447946000003", wait_seconds=20)  # Carol
    call(m4, at(2), Outcome.VOICEMAIL, "447946000002", wait_seconds=25)  # Bob again
    call(radio, at(2), Outcome.ANSWERED, "447946000004", wait_seconds=12, talk_seconds=30)  # Dan
    call(radio, at(3), Outcome.ABANDONED, "", wait_seconds=6)  # withheld
    call(radio, at(3), Outcome.CLOSED, "447946000005")  # Erin
    call(paper, at(3), Outcome.BUSY, "447946000006", wait_seconds=15)  # Frank
    call(paper, at(4), Outcome.ANSWERED, "447946000007", wait_seconds=1, talk_seconds=1)  # after the period
    CallFactory.create(
        tracking_number=None,
        campaign=None,
        number_status=NumberStatus.UNKNOWN,
        called_number="447700900555",
        source="",
        started_at=at(2),
        outcome=Outcome.ANSWERED,
        caller_number="447946000008",
        wait_seconds=3,
        talk_seconds=20,
    )
    return {"summer": summer, "winter": winter, "m4": m4, "radio": radio, "paper": paper}


def rows(response: Any, table: str) -> dict[str, list[Any]]:
    """A table of the page as ``{label: [cell text, ...]}``."""
    return {row["label"]: [cell["text"] for cell in row["cells"]] for row in response.context[table]}


def listed(client: Client, url: str) -> int:
    """How many calls the call list shows at ``url``."""
    response = client.get(url)
    assert response.status_code == 200, url
    return response.context["cl"].result_count


# --- the figures -------------------------------------------------------------------------


def test_the_campaign_table_shows_the_hand_counted_figures(admin_client: Client, calls: dict[str, Any]) -> None:
    response = admin_client.get(REPORT, PERIOD)

    assert response.status_code == 200
    table = rows(response, "campaign_table")
    assert set(table) == {"Summer offer", "Winter offer", "No campaign (unknown numbers)"}
    summer = table["Summer offer"]
    assert summer[CALLS_CELL] == 8
    assert {o: summer[i] for o, i in OUTCOME_CELLS.items() if summer[i]} == {
        Outcome.ANSWERED: 3,
        Outcome.MISSED: 2,
        Outcome.VOICEMAIL: 1,
        Outcome.ABANDONED: 1,
        Outcome.CLOSED: 1,
    }
    # 3 answered of the 7 that rang an agent (the closed call did not).
    assert summer[RATE:LEADS] == ["43%", "0:08", "0:08", "1:00", 5]
    assert table["Winter offer"][CALLS_CELL] == 1
    assert table["Winter offer"][RATE:LEADS] == ["0%", "–", "–", "–", 1]
    assert table["No campaign (unknown numbers)"][RATE:LEADS] == ["100%", "0:03", "0:03", "0:20", 1]


def test_the_total_line_has_every_figure_over_all_the_calls(admin_client: Client, calls: dict[str, Any]) -> None:
    response = admin_client.get(REPORT, PERIOD)

    total = [cell["text"] for cell in response.context["total"]["cells"]]
    assert total[CALLS_CELL] == 10
    assert total[OUTCOME_CELLS[Outcome.ANSWERED]] == 4
    # Answered waits 3, 4, 8 and 12: the median is 6, the mean 6.75 (shown to the second).
    assert total[RATE:LEADS] == ["44%", "0:06", "0:07", "0:50", 7]


def test_the_source_table_splits_campaigns_by_number_and_label(admin_client: Client, calls: dict[str, Any]) -> None:
    response = admin_client.get(REPORT, PERIOD)

    table = rows(response, "source_table")
    assert {label: cells[CALLS_CELL] for label, cells in table.items()} == {
        "+44 7700 900001 (M4 billboard)": 4,
        "+44 7700 900002 (Radio advert)": 3,
        "+44 7700 900002 (Radio (old))": 1,
        "+44 7700 900003 (Newspaper)": 1,
        "Unknown numbers": 1,
    }
    campaigns = {row["label"]: row["campaign"] for row in response.context["source_table"]}
    assert campaigns["+44 7700 900002 (Radio (old))"] == "Summer offer"
    assert campaigns["Unknown numbers"] == "No campaign (unknown numbers)"


def test_the_page_shows_the_figures_and_the_period(admin_client: Client, calls: dict[str, Any]) -> None:
    body = admin_client.get(REPORT, PERIOD).content.decode()

    assert "Calls started from 1 Nov 2026 to 3 Nov 2026" in body
    for text in ("Summer offer", "+44 7700 900002 (Radio (old))", "Median wait to answer", "First-time callers"):
        assert text in body
    assert '<input type="date" name="start" value="2026-11-01"' in body


def test_a_campaign_filter_limits_every_table_and_the_chart(admin_client: Client, calls: dict[str, Any]) -> None:
    response = admin_client.get(REPORT, {**PERIOD, "campaign": calls["winter"].pk})

    assert list(rows(response, "campaign_table")) == ["Winter offer"]
    assert list(rows(response, "source_table")) == ["+44 7700 900003 (Newspaper)"]
    assert response.context["total"]["cells"][CALLS_CELL]["text"] == 1
    assert "3 Nov 2026: 1 agent busy" in response.context["chart"]
    assert "answered" not in response.context["chart"]


def test_without_dates_the_report_covers_the_last_30_days(admin_client: Client, calls: dict[str, Any]) -> None:
    response = admin_client.get(REPORT)

    assert response.context["period"] == ReportPeriod.last_days(30)
    assert response.context["chart"].count('<g class="day"') == 30


# --- the chart ---------------------------------------------------------------------------


def test_the_chart_has_one_bar_group_per_day_with_the_days_figures(admin_client: Client, calls: dict[str, Any]) -> None:
    body = admin_client.get(REPORT, PERIOD).content.decode()

    assert body.count('class="stacked-bars"') == 1
    assert body.count('<g class="day"') == 3
    for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
        assert f'<g class="day" data-day="{day}">' in body
    assert "<title>1 Nov 2026: 3 calls</title>" in body
    assert "<title>1 Nov 2026: 2 answered</title>" in body
    assert "<title>2 Nov 2026: 4 calls</title>" in body
    assert "<title>3 Nov 2026: 1 abandoned by caller</title>" in body
    assert "<script" not in body.split('class="stacked-bars"')[1].split("</svg>")[0]


# --- every figure opens the calls it counts ----------------------------------------------


def expected_count(cells: list[dict[str, Any]], index: int) -> int:
    """What the call list must show for a cell: its own count, or for the rate, medians
    and means the answered calls they are computed from."""
    if RATE <= index <= MEAN_TALK:
        return cells[OUTCOME_CELLS[Outcome.ANSWERED]]["text"]
    if index == LEAD_RATE:  # the answered calls tagged lead
        return cells[index]["count"]
    return cells[index]["text"]


def test_every_figure_links_to_the_call_list_showing_that_many_calls(
    admin_client: Client, calls: dict[str, Any]
) -> None:
    response = admin_client.get(REPORT, PERIOD)
    body = response.content.decode()
    lines = [*response.context["campaign_table"], *response.context["source_table"], response.context["total"]]

    checked = 0
    for line in lines:
        for index, cell in enumerate(line["cells"]):
            assert f'href="{cell["url"].replace("&", "&amp;")}"' in body
            assert listed(admin_client, cell["url"]) == expected_count(line["cells"], index), (line["label"], index)
            checked += 1
    assert checked == 9 * len(line["cells"])


def test_the_links_open_exactly_those_calls(admin_client: Client, calls: dict[str, Any]) -> None:
    response = admin_client.get(REPORT, PERIOD)
    radio_old = next(r for r in response.context["source_table"] if r["label"] == "+44 7700 900002 (Radio (old))")
    summer = next(r for r in response.context["campaign_table"] if r["label"] == "Summer offer")

    old_label = admin_client.get(radio_old["cells"][CALLS_CELL]["url"]).context["cl"].result_list
    first_time = admin_client.get(summer["cells"][FIRST_TIME]["url"]).context["cl"].result_list

    assert [c.caller_number for c in old_label] == ["447946000009"]
    assert sorted(c.caller_number for c in first_time) == [
        "447946000002",  # Bob's first call, not his voicemail the next day
        "447946000003",
        "447946000004",
        "447946000005",
        "447946000009",
    ]


def test_the_call_list_shows_the_reports_filters_in_its_sidebar(admin_client: Client, calls: dict[str, Any]) -> None:
    radio = calls["radio"]
    url = CALLS + f"?period=2026-11-01..2026-11-03&number={radio.pk}&source=Radio+advert"

    body = admin_client.get(url).content.decode()

    assert "1 Nov 2026 to 3 Nov 2026" in body
    assert "+44 7700 900002 (Radio advert)" in body


@pytest.mark.parametrize("query", ["period=2026-11-03..2026-11-01", "period=last-week", "number=radio"])
def test_the_call_list_refuses_a_malformed_report_filter(admin_client: Client, query: str) -> None:
    response = admin_client.get(f"{CALLS}?{query}")

    assert response.status_code == 302
    assert response["Location"] == f"{CALLS}?e=1"


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"start": "2026-13-01", "end": "2026-11-03"}, "start", "Enter a valid date."),
        ({"start": "01/11/2026", "end": "2026-11-03"}, "start", "Enter a valid date."),
        ({"start": "2026-11-03", "end": "2026-11-01"}, "end", "The period ends (2026-11-01) before it starts"),
        ({"start": "2024-01-01", "end": "2026-11-01"}, "end", "Choose at most 366 days"),
        ({"start": "2026-11-01"}, "end", "This field is required."),
        ({**PERIOD, "campaign": "999999"}, "campaign", "Select a valid choice."),
        ({**PERIOD, "campaign": "summer"}, "campaign", "Select a valid choice."),
    ],
)
def test_bad_input_shows_the_form_with_its_errors(
    admin_client: Client, query: dict[str, str], field: str, message: str
) -> None:
    response = admin_client.get(REPORT, query)

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert message.split(" (")[0] in response.content.decode()
    assert "campaign_table" not in response.context
    assert "stacked-bars" not in response.content.decode()


def test_a_bad_period_for_the_report_csv_is_a_400_saying_why(supervisor: Client) -> None:
    response = supervisor.get(REPORT_CSV, {"start": "2026-11-03", "end": "2026-11-01"})

    assert response.status_code == 400
    assert "The period ends (2026-11-01) before it starts (2026-11-03)." in response.content.decode()


# --- who may read it ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["marketing", "supervisor"])
def test_both_roles_read_the_report(request: pytest.FixtureRequest, role: str, calls: dict[str, Any]) -> None:
    client: Client = request.getfixturevalue(role)

    response = client.get(REPORT, PERIOD)

    assert response.status_code == 200
    assert rows(response, "campaign_table")["Summer offer"][CALLS_CELL] == 8


def test_staff_without_the_report_permission_get_a_403() -> None:
    user = User.objects.create_user("clerk", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_call"))
    client = Client()
    client.force_login(user)

    assert client.get(REPORT).status_code == 403
    assert client.get(REPORT_CSV).status_code == 403
    assert "Reports" not in client.get(reverse("admin:index")).content.decode()


def test_the_report_needs_a_login(client: Client) -> None:
    response = client.get(REPORT)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_admin_home_links_to_the_reports(marketing: Client) -> None:
    body = marketing.get(reverse("admin:index")).content.decode()

    assert f'<a href="{REPORT}" class="section" title="Call reports">Reports</a>' in body


def test_the_call_list_links_to_the_reports_and_to_a_csv_for_those_who_may_export(
    marketing: Client, supervisor: Client
) -> None:
    for_marketing = marketing.get(CALLS).content.decode()
    for_supervisor = supervisor.get(CALLS, {"outcome__exact": "missed"}).content.decode()

    assert f'href="{REPORT}"' in for_marketing and "Download CSV" not in for_marketing
    assert f'href="{REPORT}"' in for_supervisor
    assert f'href="{reverse("admin:calls_call_export")}?outcome__exact=missed"' in for_supervisor


# --- the report as CSV -------------------------------------------------------------------


def test_the_report_csv_has_both_tables_and_the_total(supervisor: Client, calls: dict[str, Any]) -> None:
    response = supervisor.get(REPORT_CSV, PERIOD)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="call-report-2026-11-01-to-2026-11-03.csv"'
    header, *lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert header[:4] == ["table", "row", "calls", "Answered"]
    by_row = {(line[0], line[1]): line for line in lines}
    # (the order of "No campaign" depends on where the database sorts NULL)
    assert {key for key in by_row if key[0] == "campaign"} == {
        ("campaign", "No campaign (unknown numbers)"),
        ("campaign", "Summer offer"),
        ("campaign", "Winter offer"),
    }
    assert by_row[("campaign", "Summer offer")][2] == "8"
    assert by_row[("campaign", "Summer offer")][header.index("answer rate")] == "0.429"
    assert by_row[("total", "All calls")][2] == "10"
    assert by_row[("total", "All calls")][header.index("median wait to answer (s)")] == "6.0"
    assert by_row[("total", "All calls")][header.index("first-time callers")] == "7"
    # A label that starts with "+" would be a formula to a spreadsheet: calls/spreadsheets.py.
    assert by_row[("source", "'+44 7700 900002 (Radio (old))")][2] == "1"
    assert len([key for key in by_row if key[0] == "source"]) == 5


def test_the_report_page_links_to_its_csv_for_those_who_may_export(marketing: Client, supervisor: Client) -> None:
    expected = f'href="{REPORT_CSV}?start=2026-11-01&amp;end=2026-11-03"'

    assert expected in supervisor.get(REPORT, PERIOD).content.decode()
    assert "Download CSV" not in marketing.get(REPORT, PERIOD).content.decode()


def test_marketing_may_not_download_the_report_csv(marketing: Client) -> None:
    assert marketing.get(REPORT_CSV, PERIOD).status_code == 403


# --- queries -----------------------------------------------------------------------------


def several_campaigns(calls_per_campaign: int) -> None:
    """Three campaigns of two numbers each, every outcome, over three days."""
    for c in range(3):
        campaign = CampaignFactory.create(name=f"Campaign {c}")
        numbers = TrackingNumberFactory.create_batch(2, campaign=campaign)
        for n in range(calls_per_campaign):
            CallFactory.create(
                tracking_number=numbers[n % 2],
                started_at=at(1 + n % 3, hour=9 + n % 8),
                outcome=REPORT_OUTCOMES[n % len(REPORT_OUTCOMES)],
                wait_seconds=5 + n,
                talk_seconds=60,
            )


def report_queries(*, staff: bool) -> int:
    # session, user; the campaign and number tables (counts by outcome); the answered
    # calls' waits, for every median; the days; the campaigns for the form's choices;
    # the weekday × hour heatmap; the built-in tags' ids for the leads' and sales' links
    queries = 2 + 2 + 1 + 1 + 1 + 1 + 1
    # a staff member who is not a superuser: their own and their groups' permissions
    return queries + (2 if staff else 0)


@pytest.mark.parametrize("calls_per_campaign", [1, 30])
def test_report_query_count_does_not_grow_with_calls_or_campaigns(
    admin_client: Client, django_assert_num_queries: Any, calls_per_campaign: int
) -> None:
    several_campaigns(calls_per_campaign)

    with django_assert_num_queries(report_queries(staff=False)):
        response = admin_client.get(REPORT, PERIOD)

    assert len(response.context["campaign_table"]) == 3
    assert len(response.context["source_table"]) == 3 * min(calls_per_campaign, 2)
    assert response.context["total"]["cells"][CALLS_CELL]["text"] == 3 * calls_per_campaign


@pytest.mark.parametrize("calls_per_campaign", [1, 30])
def test_report_query_count_for_a_supervisor_and_one_campaign(
    supervisor: Client, django_assert_num_queries: Any, calls_per_campaign: int
) -> None:
    several_campaigns(calls_per_campaign)
    campaign = Campaign.objects.get(name="Campaign 1")

    # and the chosen campaign, checked by the form
    with django_assert_num_queries(report_queries(staff=True) + 1):
        response = supervisor.get(REPORT, {**PERIOD, "campaign": campaign.pk})

    assert [row["label"] for row in response.context["campaign_table"]] == ["Campaign 1"]
    assert response.context["total"]["cells"][CALLS_CELL]["text"] == calls_per_campaign


def test_report_periods_are_whole_days_in_the_site_time_zone() -> None:
    period = ReportPeriod.from_param("2026-11-01..2026-11-03")

    assert period == ReportPeriod(start=date(2026, 11, 1), end=date(2026, 11, 3))
    assert period.param == "2026-11-01..2026-11-03"
    assert (period.since, period.until) == (at(1, 0), at(4, 0))


def test_a_campaigns_report_counts_days_in_the_campaigns_time_zone(admin_client: Client, settings: Any) -> None:
    settings.TIME_ZONE = "Europe/London"
    tokyo = CampaignFactory.create(name="Tokyo launch", topic="the launch", timezone="Asia/Tokyo")
    number = TrackingNumberFactory.create(campaign=tokyo)
    # 20:00 in London on 1 March is 05:00 on 2 March in Tokyo.
    call = CallFactory.create(
        tracking_number=number, started_at=datetime(2026, 3, 1, 20, 0, tzinfo=ZoneInfo("Europe/London"))
    )

    site = admin_client.get(REPORT, {"start": "2026-03-02", "end": "2026-03-02"})
    own = admin_client.get(REPORT, {"start": "2026-03-02", "end": "2026-03-02", "campaign": tokyo.pk})

    assert site.context["total"]["cells"][0]["text"] == 0
    assert own.context["total"]["cells"][0]["text"] == 1
    assert "times in Asia/Tokyo, the campaign's time zone" in own.content.decode()
    # Its figure opens exactly that call, counted in the same zone.
    listed = admin_client.get(own.context["total"]["cells"][0]["url"])
    assert list(listed.context["cl"].result_list) == [call]
