"""The report over a hand-built set of calls, with the expected figures written out."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings

from calls import reports
from calls.models import Call, NumberStatus, Outcome
from calls.reports import ReportPeriod
from tests.factories import CallFactory, CampaignFactory, TrackingNumberFactory

ZONE = ZoneInfo(settings.TIME_ZONE)
PERIOD = ReportPeriod(start=date(2026, 11, 1), end=date(2026, 11, 3))


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=ZONE)


@pytest.fixture
def calls(db: None) -> dict[str, object]:
    summer = CampaignFactory.create(name="Summer offer", topic="the summer offer")
    winter = CampaignFactory.create(name="Winter offer", topic="the winter offer")
    m4 = TrackingNumberFactory.create(number="447700900001", campaign=summer, source="M4 billboard")
    radio = TrackingNumberFactory.create(number="447700900002", campaign=summer, source="Radio advert")
    paper = TrackingNumberFactory.create(number="447700900003", campaign=winter, source="Newspaper")

    def call(number: object, day: int, outcome: str, caller: str, wait: int | None = None, talk: int | None = None):
        return CallFactory.create(
            tracking_number=number,
            started_at=at(day),
            outcome=outcome,
            caller_number=caller,
            wait_seconds=wait,
            talk_seconds=talk,
        )

    # An earlier call (before the period) makes Alice a returning caller for Summer.
    call(m4, 1, Outcome.ANSWERED, "447946000001", wait=10, talk=60).__class__.objects.filter(started_at=at(1)).update(
        started_at=at(1) - timedelta(days=10)
    )
    call(m4, 1, Outcome.ANSWERED, "447946000001", wait=4, talk=100)  # Alice again
    call(m4, 1, Outcome.ANSWERED, "447946000002", wait=8, talk=50)  # Bob, first time
    call(m4, 2, Outcome.MISSED, "447946000003", wait=20)
    call(m4, 2, Outcome.VOICEMAIL, "447946000002", wait=25)  # Bob again
    call(radio, 2, Outcome.ANSWERED, "447946000004", wait=12, talk=30)
    call(radio, 3, Outcome.ABANDONED, "", wait=6)  # withheld: never first-time
    call(radio, 3, Outcome.CLOSED, "447946000005")
    call(paper, 3, Outcome.BUSY, "447946000006", wait=15)
    # After the period: not counted.
    call(paper, 4, Outcome.ANSWERED, "447946000007", wait=1, talk=1)
    # A call to an unknown number.
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


def by_label(rows: list[reports.ReportRow]) -> dict[str, reports.ReportRow]:
    return {row.label: row for row in rows}


def test_campaign_rows_match_the_hand_counted_figures(calls: dict[str, object]) -> None:
    rows = by_label(reports.campaign_rows(PERIOD))

    assert set(rows) == {"Summer offer", "Winter offer", "No campaign (unknown numbers)"}
    summer = rows["Summer offer"]
    assert summer.calls == 7
    assert summer.outcomes == {
        Outcome.ANSWERED: 3,
        Outcome.MISSED: 1,
        Outcome.BUSY: 0,
        Outcome.DECLINED: 0,
        Outcome.FAILED: 0,
        Outcome.VOICEMAIL: 1,
        Outcome.ABANDONED: 1,
        Outcome.CLOSED: 1,
        Outcome.BLOCKED: 0,
        Outcome.IN_PROGRESS: 0,
    }
    # Answer rate leaves out the closed call: 3 answered of 6 that rang an agent.
    assert summer.answer_rate == pytest.approx(0.5)
    assert summer.median_wait == pytest.approx(8.0)  # answered waits 4, 8, 12
    assert summer.mean_wait == pytest.approx(8.0)
    assert summer.mean_talk == pytest.approx(60.0)  # 100, 50, 30
    # Bob, Carol (missed), Dan (radio) and Erin (closed): Alice called before; the
    # withheld caller cannot be told apart; Bob's second call is not a first.
    assert summer.first_time_callers == 4

    winter = rows["Winter offer"]
    assert (winter.calls, winter.outcomes[Outcome.BUSY], winter.answered) == (1, 1, 0)
    assert winter.answer_rate == 0.0
    assert winter.median_wait is None

    unknown = rows["No campaign (unknown numbers)"]
    assert (unknown.calls, unknown.answered, unknown.first_time_callers) == (1, 1, 1)


def test_source_rows_split_the_campaign_by_advert(calls: dict[str, object]) -> None:
    rows = by_label(reports.source_rows(PERIOD))

    assert rows["+44 7700 900001 (M4 billboard)"].calls == 4
    assert rows["+44 7700 900002 (Radio advert)"].calls == 3
    assert rows["+44 7700 900002 (Radio advert)"].outcomes[Outcome.CLOSED] == 1
    assert rows["+44 7700 900003 (Newspaper)"].calls == 1
    assert rows["Unknown numbers"].calls == 1
    # The sources add up to the campaigns.
    assert sum(r.calls for r in rows.values()) == sum(r.calls for r in reports.campaign_rows(PERIOD))


def test_campaign_filter_limits_every_figure(calls: dict[str, object]) -> None:
    winter = calls["winter"]
    rows = reports.campaign_rows(PERIOD, campaign_id=winter.pk)  # type: ignore[attr-defined]
    assert [r.label for r in rows] == ["Winter offer"]
    daily = dict(reports.daily_outcomes(PERIOD, campaign_id=winter.pk))  # type: ignore[attr-defined]
    assert daily[date(2026, 11, 3)][Outcome.BUSY] == 1
    assert sum(sum(day.values()) for day in daily.values()) == 1


def test_daily_outcomes_have_every_day_and_agree_with_the_rows(calls: dict[str, object]) -> None:
    daily = reports.daily_outcomes(PERIOD)

    assert [day for day, _ in daily] == [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]
    assert daily[0][1][Outcome.ANSWERED] == 2
    assert daily[1][1] == {**dict.fromkeys(reports.REPORT_OUTCOMES, 0), "missed": 1, "voicemail": 1, "answered": 2}
    total = reports.totals(reports.campaign_rows(PERIOD))
    for outcome in reports.REPORT_OUTCOMES:
        assert sum(counts[outcome] for _, counts in daily) == total.outcomes[outcome]


def test_report_counts_the_same_calls_the_call_list_filters_show(calls: dict[str, object]) -> None:
    """The links from the report open the call list on ``calls_in`` with an outcome."""
    summer = calls["summer"]
    listed = reports.calls_in(PERIOD, campaign_id=summer.pk).filter(outcome=Outcome.ANSWERED)  # type: ignore[attr-defined]
    row = by_label(reports.campaign_rows(PERIOD))["Summer offer"]
    assert listed.count() == row.answered
    assert all(isinstance(c, Call) for c in listed)


def test_csv_rows_have_a_header_and_one_line_per_row(calls: dict[str, object]) -> None:
    lines = list(reports.csv_rows(reports.campaign_rows(PERIOD)))
    assert lines[0][:3] == ["row", "calls", "Answered"]
    summer = next(line for line in lines if line[0] == "Summer offer")
    assert summer[1] == 7
    assert summer[lines[0].index("answer rate")] == "0.500"
    assert summer[lines[0].index("first-time callers")] == 4


def test_last_days_period_ends_today() -> None:
    period = ReportPeriod.last_days(30, today=date(2026, 11, 25))
    assert (period.start, period.end) == (date(2026, 10, 27), date(2026, 11, 25))
    assert len(period.days()) == 30
