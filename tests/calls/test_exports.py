"""The call list as CSV: exactly the calls the list shows, streamed a chunk at a time.

Constant memory is measured, not asserted here: see benchmarks/export_memory.py.
"""

import csv
import io
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import LazySettings
from django.contrib.auth.models import Permission, User
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse

from calls import reports
from calls.models import Call, CallState, NumberStatus, Outcome
from campaigns.models import TrackingNumber
from tests.calls.conftest import member
from tests.factories import CallFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db

EXPORT = reverse("admin:calls_call_export")
CALLS = reverse("admin:calls_call_changelist")
LONDON = ZoneInfo("Europe/London")
HEADER = [
    "start time",
    "campaign",
    "source",
    "called number",
    "caller",
    "outcome",
    "state",
    "wait (s)",
    "talk (s)",
    "whisper, as spoken",
    "tags",
    "notes",
]


def content(response: Any) -> str:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


def lines(response: Any) -> list[list[str]]:
    header, *rows = list(csv.reader(io.StringIO(content(response))))
    assert header == HEADER
    return rows


@pytest.fixture
def calls(summer_number: TrackingNumber, settings: LazySettings) -> dict[str, Call]:
    """Four calls on 1 July 2026 (London summer time, an hour ahead of UTC)."""
    settings.TIME_ZONE = "Europe/London"
    answered = CallFactory.create(
        tracking_number=summer_number,
        started_at=datetime(2026, 7, 1, 9, 15, 7, 250000, tzinfo=LONDON),
        caller_number="447946000123",
        outcome=Outcome.ANSWERED,
        state=CallState.ENDED,
        wait_seconds=9,
        talk_seconds=60,
        whisper_text="Incoming call regarding the summer offer, from the “M4” billboard",
    )
    redacted = CallFactory.create(
        tracking_number=summer_number,
        started_at=datetime(2026, 7, 1, 10, 0, tzinfo=LONDON),
        caller_number="",
        redacted_at=datetime(2026, 7, 2, 3, 0, tzinfo=LONDON),
        outcome=Outcome.MISSED,
        state=CallState.ENDED,
        wait_seconds=20,
    )
    unknown = CallFactory.create(
        tracking_number=None,
        campaign=None,
        number_status=NumberStatus.UNKNOWN,
        called_number="447700900555",
        source="",
        started_at=datetime(2026, 7, 1, 11, 30, tzinfo=LONDON),
        caller_number="447946000999",
        outcome=Outcome.CLOSED,
        state=CallState.ENDED,
    )
    formula = CallFactory.create(
        tracking_number=TrackingNumberFactory.create(number="447700900002", campaign=summer_number.campaign),
        source='=HYPERLINK("https://example.com")',
        started_at=datetime(2026, 7, 1, 12, 0, tzinfo=LONDON),
        caller_number="447946000124",
        outcome=Outcome.IN_PROGRESS,
        state=CallState.WAITING,
    )
    return {"answered": answered, "redacted": redacted, "unknown": unknown, "formula": formula}


# --- what it contains --------------------------------------------------------------------


def test_the_export_is_streamed_as_a_csv_attachment(supervisor: Client, calls: dict[str, Call]) -> None:
    response = supervisor.get(EXPORT)

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="calls-\d{4}-\d{2}-\d{2}\.csv"', response["Content-Disposition"])


def test_the_csv_has_one_line_per_call_newest_first_in_the_site_time_zone(
    supervisor: Client, calls: dict[str, Call]
) -> None:
    rows = lines(supervisor.get(EXPORT))

    # No call has tags or notes (tests/calls/test_tags_and_notes.py has some).
    assert {tuple(row[10:]) for row in rows} == {("", "")}
    assert [row[:10] for row in rows] == [
        [
            "2026-07-01T12:00:00+01:00",
            "Summer offer",
            # Text that a spreadsheet would run as a formula is kept as text.
            '\'=HYPERLINK("https://example.com")',
            "447700900002",
            "447946000124",
            "In progress",
            "waiting",
            "",
            "",
            "",
        ],
        ["2026-07-01T11:30:00+01:00", "", "", "447700900555", "447946000999", "Closed", "ended", "", "", ""],
        # Redacted: the caller's number is gone, the rest is kept for the reports.
        [
            "2026-07-01T10:00:00+01:00",
            "Summer offer",
            "M4 billboard",
            "447700900001",
            "",
            "Missed",
            "ended",
            "20",
            "",
            "",
        ],
        [
            "2026-07-01T09:15:07+01:00",
            "Summer offer",
            "M4 billboard",
            "447700900001",
            "447946000123",
            "Answered",
            "ended",
            "9",
            "60",
            "Incoming call regarding the summer offer, from the “M4” billboard",
        ],
    ]


def test_commas_and_quotes_are_quoted_as_csv_requires(supervisor: Client, calls: dict[str, Call]) -> None:
    text = content(supervisor.get(EXPORT))

    assert '"Incoming call regarding the summer offer, from the “M4” billboard"' in text
    assert '"\'=HYPERLINK(""https://example.com"")"' in text
    assert text.endswith("\r\n")


# --- the list's filters, search and ordering ---------------------------------------------


def test_the_export_keeps_the_lists_outcome_filter_and_search(supervisor: Client, calls: dict[str, Call]) -> None:
    CallFactory.create(caller_number="447946000123", outcome=Outcome.MISSED)  # the same caller, missed

    searched = lines(supervisor.get(EXPORT, {"q": "+44 7946 000123"}))
    filtered = lines(supervisor.get(EXPORT, {"q": "+44 7946 000123", "outcome__exact": Outcome.ANSWERED}))
    by_outcome = lines(supervisor.get(EXPORT, {"outcome__exact": Outcome.MISSED}))

    assert [(row[4], row[5]) for row in searched] == [("447946000123", "Missed"), ("447946000123", "Answered")]
    assert [(row[4], row[5]) for row in filtered] == [("447946000123", "Answered")]
    assert [row[0] for row in by_outcome][1:] == ["2026-07-01T10:00:00+01:00"]


def test_the_export_keeps_the_reports_filters_and_the_lists_ordering(
    supervisor: Client, calls: dict[str, Call]
) -> None:
    CallFactory.create(
        tracking_number=calls["answered"].tracking_number, started_at=calls["answered"].started_at - timedelta(days=3)
    )
    number = calls["answered"].tracking_number_id

    in_period = lines(
        supervisor.get(EXPORT, {"period": "2026-07-01..2026-07-01", "number": number, "source": "M4 billboard"})
    )
    # "o=0": the list's first column, the start time (no action checkbox for supervisors)
    oldest_first = lines(supervisor.get(EXPORT, {"period": "2026-07-01..2026-07-01", "o": "0"}))

    assert [row[5] for row in in_period] == ["Missed", "Answered"]
    assert [row[0][:16] for row in oldest_first] == [
        "2026-07-01T09:15",
        "2026-07-01T10:00",
        "2026-07-01T11:30",
        "2026-07-01T12:00",
    ]


def test_the_download_link_exports_every_call_the_list_shows(supervisor: Client, calls: dict[str, Call]) -> None:
    CallFactory.create_batch(60, outcome=Outcome.MISSED, caller_number="447946000777")
    listed = supervisor.get(CALLS, {"outcome__exact": Outcome.MISSED, "q": "000777", "p": "2"})
    [link] = re.findall(r'href="([^"]+)" class="calls-csv"', listed.content.decode())

    exported = lines(supervisor.get(link.replace("&amp;", "&")))

    assert link.startswith(EXPORT + "?")
    assert "p=2" not in link
    assert listed.context["cl"].result_count == 60
    assert len(listed.context["cl"].result_list) == 10  # the second page of the list
    assert len(exported) == 60  # every page in the CSV


def test_a_page_number_does_not_cut_the_export(supervisor: Client, calls: dict[str, Call]) -> None:
    assert len(lines(supervisor.get(EXPORT, {"p": "99"}))) == 4


@pytest.mark.parametrize("query", ["period=last-week", "number=radio", "started_at__year=twenty"])
def test_filters_the_list_refuses_are_a_400_saying_so(supervisor: Client, query: str) -> None:
    response = supervisor.get(f"{EXPORT}?{query}")

    assert response.status_code == 400
    assert response.content.decode().startswith("These filters cannot be applied to the call list:")


def test_the_csv_is_written_a_chunk_of_rows_at_a_time(
    supervisor: Client, calls: dict[str, Call], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports, "CALLS_CSV_CHUNK", 2)
    CallFactory.create()

    pieces = list(supervisor.get(EXPORT).streaming_content)

    # the header and 2 calls, 2 calls, the last call
    assert [piece.count(b"\r\n") for piece in pieces] == [3, 2, 1]


# --- who may export ----------------------------------------------------------------------


def test_marketing_may_not_export_calls(calls: dict[str, Call]) -> None:
    client = member("Marketing")

    assert client.get(EXPORT).status_code == 403
    assert "Download CSV" not in client.get(CALLS).content.decode()


def test_staff_who_may_only_view_calls_may_not_export_them(calls: dict[str, Call]) -> None:
    user = User.objects.create_user("clerk", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_call", "view_report"]))
    client = Client()
    client.force_login(user)

    assert client.get(EXPORT).status_code == 403


def test_exporting_without_viewing_calls_is_refused(calls: dict[str, Call]) -> None:
    user = User.objects.create_user("exporter", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="export_calls"))
    client = Client()
    client.force_login(user)

    assert client.get(EXPORT).status_code == 403


def test_the_export_needs_a_login(client: Client) -> None:
    response = client.get(EXPORT)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


# --- queries -----------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 30])
def test_export_query_count_does_not_grow_with_calls(
    supervisor: Client, django_assert_num_queries: Any, count: int
) -> None:
    CallFactory.create_batch(count, outcome=Outcome.ANSWERED, caller_number="447946000123")

    # session, user, the user's and the groups' permissions, the campaigns the list's
    # filter offers, the demo campaigns (calls.admin.CallDemoFilter), the tags the tag
    # filter offers, then one query for every call (fetched in chunks from one cursor)
    # and the tags and the notes of every chunk of calls
    with django_assert_num_queries(10):
        response = supervisor.get(EXPORT, {"outcome__exact": Outcome.ANSWERED, "q": "4479"})
        exported = lines(response)

    assert len(exported) == count


# --- redaction in the detail page --------------------------------------------------------


def test_the_call_detail_shows_when_the_callers_number_was_removed(
    admin_client: Client, calls: dict[str, Call]
) -> None:
    response = admin_client.get(reverse("admin:calls_call_change", args=[calls["redacted"].pk]))

    first_section = next(iter(response.context["adminform"]))
    names = [field.field["name"] for line in first_section for field in line]
    assert names.index("redacted_at") == names.index("caller") + 1
    body = response.content.decode()
    assert "<label>Redacted at:</label>" in body
    assert '<div class="readonly">2 Jul 2026, 03:00:00</div>' in body  # in the site's time zone, London
