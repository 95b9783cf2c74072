"""Odd numbers and times in Vonage's events never make a 5xx: the field is left out (and
logged once), the event is stored and applied by its other fields.

Before: ``"price": "1e999999999"`` raised ``decimal.Overflow`` in calls/leg_progress.py,
so /event answered 503 and the event was dropped. Each case runs with DEBUG off (the
production settings the suite uses) and on."""

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from calls.models import Call, CallEvent, CallLeg
from tests.conftest import post_json
from tests.factories import CallFactory, CallLegFactory

ABSURD_NUMBERS: list[Any] = [
    "1e999999999",
    "-1e999999999",
    "1e-999999999",
    "NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "1" + "0" * 400,
    10**400,
    1e308,
    "-0.5",
    -3,
    "twelve",
    "0x1F",
    [1],
    {"amount": 1},
    True,
]
ABSURD_TIMES: list[Any] = [
    "99999-01-01T00:00:00Z",
    "+99999-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "1900-01-01T00:00:00Z",
    "2026-13-45T99:99:99Z",
    "9999-12-31T23:59:59-12:00",
    "not a time",
    "1" * 60,
    12345,
    1e308,
    [2026],
    {"year": 2026},
]


@pytest.fixture(params=[False, True], ids=["production", "debug"])
def debug(request: pytest.FixtureRequest, settings: Settings) -> bool:
    settings.DEBUG = request.param
    return bool(request.param)


@pytest.fixture
def leg(db: None) -> CallLeg:
    return CallLegFactory.create(uuid="agent-leg", role="agent", call=CallFactory.create())


def completed(**fields: Any) -> dict[str, Any]:
    return {
        "uuid": "agent-leg",
        "status": "completed",
        "timestamp": "2026-07-01T09:16:10.000Z",
        "start_time": "2026-07-01T09:15:10.000Z",
        "end_time": "2026-07-01T09:16:10.000Z",
        "duration": "60",
        "price": "0.01270000",
        "rate": "0.01270000",
        "network": "23410",
        **fields,
    }


def assert_stored_and_applied(response: Any, leg: CallLeg) -> None:
    assert response.status_code == 200, response.content
    assert response.json() == {"stored": True, "kind": "status"}
    assert CallEvent.objects.get().leg_id == leg.pk
    leg.refresh_from_db()
    assert (leg.status, leg.network) == ("completed", "23410")


def assert_logged_once(caplog: pytest.LogCaptureFixture, field: str) -> None:
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("event.fields_ignored")]
    assert len(lines) == 1, lines
    assert f"fields={field}:" in lines[0]


@pytest.mark.parametrize("value", ABSURD_NUMBERS, ids=repr)
@pytest.mark.parametrize("field", ["price", "rate"])
def test_an_absurd_price_or_rate_is_left_out_and_the_event_applied(
    client: Client, leg: CallLeg, debug: bool, caplog: pytest.LogCaptureFixture, field: str, value: Any
) -> None:
    caplog.set_level(logging.INFO, logger="calls")
    response = post_json(client, "/event", completed(**{field: value}))

    assert_stored_and_applied(response, leg)
    assert getattr(leg, field) is None
    other = "rate" if field == "price" else "price"
    assert (getattr(leg, other), leg.duration) == (Decimal("0.0127"), 60)
    # Kept as Vonage sent it (PostgreSQL's jsonb keeps 1e308 as its decimal digits).
    stored = CallEvent.objects.get().payload[field]
    assert stored == value or Decimal(str(stored)) == Decimal(str(value))
    assert_logged_once(caplog, field)


@pytest.mark.parametrize("value", ABSURD_NUMBERS, ids=repr)
def test_an_absurd_duration_is_left_out_and_the_event_applied(
    client: Client, leg: CallLeg, debug: bool, caplog: pytest.LogCaptureFixture, value: Any
) -> None:
    caplog.set_level(logging.INFO, logger="calls")
    response = post_json(client, "/event", completed(duration=value))

    assert_stored_and_applied(response, leg)
    assert (leg.duration, leg.price) == (None, Decimal("0.0127"))
    assert_logged_once(caplog, "duration")


@pytest.mark.parametrize("value", ABSURD_TIMES, ids=repr)
@pytest.mark.parametrize("field", ["start_time", "end_time"])
def test_an_absurd_start_or_end_time_is_left_out_and_the_event_applied(
    client: Client, leg: CallLeg, debug: bool, caplog: pytest.LogCaptureFixture, field: str, value: Any
) -> None:
    caplog.set_level(logging.INFO, logger="calls")
    response = post_json(client, "/event", completed(**{field: value}))

    assert_stored_and_applied(response, leg)
    assert (leg.duration, leg.price) == (60, Decimal("0.0127"))
    assert leg.ended_at == datetime(2026, 7, 1, 9, 16, 10, tzinfo=UTC)
    assert_logged_once(caplog, field)


@pytest.mark.parametrize("value", [v for v in ABSURD_TIMES if isinstance(v, str) and len(v) <= 40], ids=repr)
def test_an_absurd_timestamp_is_left_out_and_the_event_applied(
    client: Client, leg: CallLeg, debug: bool, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    caplog.set_level(logging.INFO, logger="calls")
    response = post_json(client, "/event", completed(timestamp=value))

    assert_stored_and_applied(response, leg)
    assert CallEvent.objects.get().occurred_at is None
    # The leg's end comes from end_time, the event's own time being unusable.
    assert leg.ended_at == datetime(2026, 7, 1, 9, 16, 10, tzinfo=UTC)
    assert_logged_once(caplog, "timestamp")


def test_everything_absurd_at_once_is_still_one_stored_event(
    client: Client, leg: CallLeg, debug: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="calls")
    payload = completed(
        timestamp="99999-01-01T00:00:00Z",
        start_time=[1],
        end_time="1e999999999",
        duration="1e999999999",
        price="1e999999999",
        rate="NaN",
    )
    response = post_json(client, "/event", payload)

    assert_stored_and_applied(response, leg)
    assert (leg.duration, leg.price, leg.rate, leg.ended_at) == (None, None, None, None)
    assert_logged_once(caplog, "timestamp,start_time,end_time,duration,price,rate")


def test_an_answer_time_decades_away_does_not_overflow_the_wait(client: Client, db: None, debug: bool) -> None:
    """An ``answered`` stamped in 2099 for a call that started now: the wait would be
    ~73 years of seconds, beyond PostgreSQL's integer; it is left unknown instead."""
    call = CallFactory.create()
    CallLegFactory.create(uuid="caller-leg", role="caller", call=call, status="answered")
    agent = CallLegFactory.create(uuid="agent-leg", role="agent", call=call)

    answered = {"uuid": "agent-leg", "status": "answered", "timestamp": "2099-12-31T00:00:00.000Z"}
    response = post_json(client, "/event", answered)

    assert response.status_code == 200
    agent.refresh_from_db()
    assert agent.status == "answered"
    assert Call.objects.get(pk=call.pk).wait_seconds is None


def test_an_odd_price_vonage_merely_formats_differently_is_kept(client: Client, leg: CallLeg) -> None:
    response = post_json(client, "/event", completed(price=0.0127, rate="1.27E-2", duration=60))
    assert_stored_and_applied(response, leg)
    assert (leg.price, leg.rate, leg.duration) == (Decimal("0.0127"), Decimal("0.0127"), 60)


# --- the same values in Vonage's call record, read by reconcile_calls ---------------------------


def test_reconcile_leaves_out_absurd_values_in_vonages_call_record(
    db: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``GET /v1/calls/{uuid}`` is Vonage's data too: its record becomes a status event
    through the same parsers, so the run fixes the leg and reports no error."""
    from calls import vonage_adapter
    from tests.calls.test_reconcile import NOW, VonageStub, connected_call, run

    caplog.set_level(logging.INFO, logger="calls")
    stub = VonageStub()  # the adapter replaced at its seam, as tests/calls/test_reconcile.py does
    for name in ("get_call_info", "hang_up", "transfer_to_ncco", "place_call"):
        monkeypatch.setattr(vonage_adapter, name, getattr(stub, name))
    monkeypatch.setattr(vonage_adapter, "credentials_configured", lambda: True)
    campaign = CallFactory.create().campaign
    assert campaign is not None
    _, caller, agent = connected_call(campaign)
    absurd = {"start_time": "99999-01-01 00:00:00", "end_time": [1], "duration": "1e999999999"}
    stub.record(caller, "completed", price="1e999999999", rate="NaN", network="23410", **absurd)
    stub.record(agent, "completed", price="-1", rate={"x": 1}, network="23410", **absurd)

    report = run()

    assert (report.checked, report.fixed, report.errors) == (2, 2, 0)
    for leg in (caller, agent):
        leg.refresh_from_db()
        # The record's times are unusable: the leg ends when the run saw it had.
        assert (leg.status, leg.ended_at, leg.network) == ("completed", NOW, "23410")
        assert (leg.duration, leg.price, leg.rate) == (None, None, None)
    assert "event.fields_ignored" in caplog.text
