"""The report's leads and sales: calls tagged lead or sale now, per campaign and per
source, and leads as a share of answered calls; every figure opens the calls it counts.

Over the hand-built calls of tests/calls/test_admin_reports.py, some of them tagged."""

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from calls import annotations
from calls.models import BuiltinTag, Call, Outcome, Tag
from tests.calls.test_admin_reports import (
    LEAD_RATE,
    LEADS,
    PERIOD,
    REPORT,
    REPORT_CSV,
    SALES,
    at,
    calls,  # noqa: F401 - the fixture
    expected_count,
    listed,
    rows,
)

pytestmark = pytest.mark.django_db


def put(call: Call, *builtins: BuiltinTag) -> None:
    for builtin in builtins:
        annotations.call_tag_add(call=call, tag=Tag.objects.get(builtin=builtin), user=AnonymousUser())


@pytest.fixture
def tagged(calls: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    """Summer: Alice (answered) a lead, Bob (answered) a lead and a sale, Carol (missed)
    a lead, Gina (missed, old radio label) tagged lead and then not; Dan (answered,
    radio) spam. Winter: Frank (busy) a sale. Alice's call before the period: a lead."""
    by_caller = {c.caller_number: c for c in Call.objects.filter(started_at__gte=at(1, 0))}
    before = Call.objects.filter(started_at__lt=at(1, 0)).get()
    put(before, BuiltinTag.LEAD)
    put(by_caller["447946000001"], BuiltinTag.LEAD)
    bob = Call.objects.get(caller_number="447946000002", outcome=Outcome.ANSWERED)
    put(bob, BuiltinTag.LEAD, BuiltinTag.SALE)
    put(by_caller["447946000003"], BuiltinTag.LEAD)
    gina = by_caller["447946000009"]
    put(gina, BuiltinTag.LEAD)
    annotations.call_tag_remove(call=gina, tag=Tag.objects.get(builtin=BuiltinTag.LEAD), user=AnonymousUser())
    put(by_caller["447946000004"], BuiltinTag.SPAM)
    put(by_caller["447946000006"], BuiltinTag.SALE)
    return calls


def test_leads_and_sales_per_campaign_are_the_hand_counted_figures(admin_client: Client, tagged: Any) -> None:
    response = admin_client.get(REPORT, PERIOD)
    table = rows(response, "campaign_table")

    # Summer: 3 leads (Alice, Bob, Carol; not Gina's, taken off), 1 sale; 2 of 3 answered calls are leads.
    assert table["Summer offer"][LEADS:] == [3, 1, "67%"]
    # Winter: Frank's busy call was a sale; no call answered.
    assert table["Winter offer"][LEADS:] == [0, 1, "–"]
    assert table["No campaign (unknown numbers)"][LEADS:] == [0, 0, "0%"]
    total = [cell["text"] for cell in response.context["total"]["cells"]]
    assert total[LEADS:] == [3, 2, "50%"]  # 2 of the 4 answered calls
    assert "Leads of answered calls" in response.content.decode()


def test_leads_and_sales_per_source(admin_client: Client, tagged: Any) -> None:
    table = rows(admin_client.get(REPORT, PERIOD), "source_table")

    assert table["+44 7700 900001 (M4 billboard)"][LEADS:] == [3, 1, "100%"]
    assert table["+44 7700 900002 (Radio advert)"][LEADS:] == [0, 0, "0%"]
    assert table["+44 7700 900002 (Radio (old))"][LEADS:] == [0, 0, "–"]
    assert table["+44 7700 900003 (Newspaper)"][LEADS:] == [0, 1, "–"]


def test_every_lead_figure_opens_exactly_the_calls_it_counts(admin_client: Client, tagged: Any) -> None:
    response = admin_client.get(REPORT, PERIOD)
    lines = [*response.context["campaign_table"], *response.context["source_table"], response.context["total"]]

    for line in lines:
        for index in (LEADS, SALES, LEAD_RATE):
            cell = line["cells"][index]
            assert listed(admin_client, cell["url"]) == expected_count(line["cells"], index), (line["label"], index)
    summer = next(r for r in response.context["campaign_table"] if r["label"] == "Summer offer")
    answered_leads = admin_client.get(summer["cells"][LEAD_RATE]["url"]).context["cl"].result_list
    assert sorted(c.caller_number for c in answered_leads) == ["447946000001", "447946000002"]
    assert "2 of the 3 answered calls are tagged lead" in summer["cells"][LEAD_RATE]["title"]


def test_the_report_csv_has_the_leads_and_sales(supervisor: Client, tagged: Any) -> None:
    response = supervisor.get(REPORT_CSV, PERIOD)
    header, *lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert header[-3:] == ["leads", "sales", "leads of answered calls"]
    summer = next(line for line in lines if line[:2] == ["campaign", "Summer offer"])
    assert summer[-3:] == ["3", "1", "0.667"]
