"""Every CSV the app writes is inert: a cell that a spreadsheet would run as a formula
(OWASP's CSV injection) is written as text, whichever column carries it.

Before: the calls export wrote ``caller`` and ``called number`` verbatim (Vonage's
``from``/``to``: ``=cmd|'/C calc'!A0`` came out as is), and the report CSV its labels."""

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calls.models import Call
from calls.spreadsheets import FORMULA_STARTS, inert_cell
from tests.calls.conftest import member
from tests.conftest import post_json
from tests.factories import CallFactory, CampaignFactory, TrackingNumberFactory

EXPORT = reverse("admin:calls_call_export")
REPORT_CSV = reverse("admin:calls_call_report_csv")
DDE = "=cmd|'/C calc'!A0"
# Each formula start, and each after leading whitespace.
ATTACKS = [
    DDE,
    "+1+cmd|'/C calc'!A0",
    "-2+3+cmd|'/C calc'!A0",
    '@SUM(1+1)*cmd|"/C calc"!A0',
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    '  =HYPERLINK("https://attacker.example")',
    "\u00a0=1+1",
]


def supervisor() -> Client:
    return member("Supervisors")


def parsed(response: Any) -> list[list[str]]:
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))


def assert_inert(table: list[list[str]]) -> None:
    """No cell of the file starts like a formula, even after leading whitespace."""
    for line in table:
        for cell in line:
            assert cell[:1] not in FORMULA_STARTS, cell
            assert cell.lstrip()[:1] not in FORMULA_STARTS or cell.startswith("'"), cell


# --- the rule ------------------------------------------------------------------------------


@pytest.mark.parametrize("attack", ATTACKS)
def test_text_that_starts_like_a_formula_gets_a_leading_quote_and_keeps_the_rest(attack: str) -> None:
    assert inert_cell(attack) == "'" + attack


@pytest.mark.parametrize(
    "value",
    [7, 0, -3, 2.5, Decimal("0.01230000"), "447700900001", "0.429", "6.0", "-1.5", "", "Summer offer", "a=b"],
)
def test_numbers_and_ordinary_text_are_written_as_they_are(value: Any) -> None:
    assert inert_cell(value) == value


def test_none_is_an_empty_cell_and_numbers_stay_numbers() -> None:
    assert inert_cell(None) == ""
    assert isinstance(inert_cell(12), int)
    # A plain number with a sign is a number to a spreadsheet, not a formula; a sign
    # followed by anything else is not.
    assert inert_cell("-12") == "-12"
    assert inert_cell("+447700900001") == "'+447700900001"
    assert inert_cell("-12+cmd") == "'-12+cmd"


# --- the calls export: a malicious value in each column that can carry text --------------


def test_a_caller_number_vonage_sends_as_a_formula_is_exported_as_text(client: Client, db: None) -> None:
    """The attack as it was: a call whose ``from`` is a DDE payload (a SIP caller can
    send anything), then a supervisor opens the export in a spreadsheet."""
    number = TrackingNumberFactory.create(number="447700900001", source="M4 billboard")
    answer = {"to": "447700900001", "from": DDE, "uuid": "caller-leg", "conversation_uuid": "CON-1"}
    assert post_json(client, "/answer_inbound", answer).status_code == 200
    assert Call.objects.get().caller_number == DDE

    table = parsed(supervisor().get(EXPORT))

    header, line = table
    assert line[header.index("caller")] == "'" + DDE
    assert line[header.index("called number")] == number.number  # digits: a number, not run
    assert_inert(table)


@pytest.mark.parametrize("attack", [DDE, "\t@SUM(1+1)", " -1+cmd|'/C calc'!A0"])
@pytest.mark.parametrize(
    ("column", "field"),
    [
        ("campaign", "campaign_name"),
        ("source", "source"),
        ("called number", "called_number"),
        ("caller", "caller_number"),
        ("whisper, as spoken", "whisper_text"),
    ],
)
def test_every_text_column_of_the_export_is_inert(db: None, column: str, field: str, attack: str) -> None:
    call = CallFactory.create()
    if field == "campaign_name":
        assert call.campaign is not None
        call.campaign.name = attack
        call.campaign.save()
    else:
        Call.objects.filter(pk=call.pk).update(**{field: attack})

    table = parsed(supervisor().get(EXPORT))

    header, line = table
    assert line[header.index(column)] == "'" + attack
    assert line[header.index(column)][1:] == attack  # the original, recoverable
    assert_inert(table)


def test_the_exports_figures_stay_numbers(db: None) -> None:
    CallFactory.create(wait_seconds=9, talk_seconds=60, whisper_text=DDE)
    header, line = parsed(supervisor().get(EXPORT))
    assert (line[header.index("wait (s)")], line[header.index("talk (s)")]) == ("9", "60")


# --- the report CSV: every label ------------------------------------------------------------


def test_every_label_of_the_report_csv_is_inert(db: None) -> None:
    campaign = CampaignFactory.create(name=DDE)
    number = TrackingNumberFactory.create(number="447700900001", campaign=campaign, source="@SUM(1+1)")
    CallFactory.create(tracking_number=number, source=" =1+1", wait_seconds=4, talk_seconds=10)
    CallFactory.create(
        tracking_number=None, campaign=None, number_status="unknown", called_number="447700900555", source=""
    )
    today = timezone.localdate().isoformat()

    table = parsed(supervisor().get(REPORT_CSV, {"start": today, "end": today}))

    header, *lines = table
    labels = {(line[0], line[1]) for line in lines}
    assert ("campaign", "'" + DDE) in labels
    # The source table's label starts with the number's "+": a formula to a spreadsheet.
    assert ("source", "'+44 7700 900001 ( =1+1)") in labels
    campaign_line = next(line for line in lines if line[1] == "'" + DDE)
    assert campaign_line[header.index("calls")] == "1"
    assert_inert(table)
