"""A leg's status only moves forward, whatever order Vonage delivers its events in."""

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from calls.leg_progress import StatusEvent, apply_status, is_terminal
from calls.models import CallLeg, LegRole, LegStatus
from tests.conftest import LEG_FIELDS, load_fixture

FAILURES = ("busy", "cancelled", "timeout", "unanswered", "rejected", "failed")


def event(name: str) -> dict[str, Any]:
    return load_fixture(f"vonage/event_{name}.json")


def fresh_leg(role: str = LegRole.AGENT) -> CallLeg:
    return CallLeg(uuid="leg", role=role)


def replay(payloads: list[dict[str, Any]], role: str = LegRole.AGENT) -> dict[str, Any]:
    leg = fresh_leg(role)
    for payload in payloads:
        apply_status(leg, StatusEvent.from_payload(payload))
    return {field: getattr(leg, field) for field in LEG_FIELDS}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_an_answered_agent_leg_keeps_every_fact_vonage_reported() -> None:
    leg = replay([event(f"outbound_{s}") for s in ("started", "ringing", "answered", "completed")])

    assert leg == {
        "status": LegStatus.COMPLETED,
        "detail": "",
        "machine_detected": "",
        "started_at": at("2024-06-12T09:15:01.020"),
        # Vonage bills from start_time: the answered event is stamped a moment later.
        "answered_at": at("2024-06-12T09:15:09"),
        "ended_at": at("2024-06-12T09:17:05"),
        "duration": 116,
        "price": Decimal("0.02320000"),
        "rate": Decimal("0.01200000"),
        "network": "23415",
    }


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_every_order_of_a_legs_four_events_gives_the_same_leg(direction: str) -> None:
    payloads = [event(f"{direction}_{s}") for s in ("started", "ringing", "answered", "completed")]
    expected = replay(payloads)

    for order in itertools.permutations(payloads):
        assert replay(list(order)) == expected, [p["status"] for p in order]


@pytest.mark.parametrize("failure", FAILURES)
def test_every_order_of_a_failed_legs_events_gives_the_same_leg(failure: str) -> None:
    payloads = [
        event("outbound_started"),
        event("outbound_ringing"),
        event(f"outbound_{failure}"),
        event("outbound_completed_unanswered"),
    ]
    expected = replay(payloads)

    assert expected["status"] == failure
    assert expected["ended_at"] == at("2024-06-12T09:16:01")
    assert expected["answered_at"] is None
    for order in itertools.permutations(payloads):
        assert replay(list(order)) == expected, [p["status"] for p in order]


def test_a_duplicate_event_changes_nothing() -> None:
    payloads = [event(f"outbound_{s}") for s in ("started", "ringing", "answered", "completed")]

    assert replay(payloads + payloads) == replay(payloads)


def test_completed_leg_does_not_go_back_to_ringing() -> None:
    leg = fresh_leg()
    apply_status(leg, StatusEvent.from_payload(event("outbound_completed")))

    changed = apply_status(leg, StatusEvent.from_payload(event("outbound_ringing")))

    assert leg.status == LegStatus.COMPLETED
    assert "status" not in changed


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failure_reported_after_completed_still_says_why_the_leg_ended(failure: str) -> None:
    completed_first = replay([event("outbound_completed_unanswered"), event(f"outbound_{failure}")])
    failure_first = replay([event(f"outbound_{failure}"), event("outbound_completed_unanswered")])

    assert completed_first["status"] == failure_first["status"] == failure
    assert completed_first == failure_first


def test_failure_detail_is_kept() -> None:
    assert replay([event("outbound_rejected")])["detail"] == "declined"
    assert replay([event("outbound_failed")])["detail"] == "cannot_route"
    assert replay([event("outbound_unanswered")])["detail"] == "timeout"


def test_a_lost_answered_event_is_recovered_from_completed_start_time() -> None:
    leg = replay([event("outbound_started"), event("outbound_completed")])

    assert leg["answered_at"] == at("2024-06-12T09:15:09")


def test_completed_with_no_talk_time_does_not_invent_an_answer() -> None:
    assert replay([event("outbound_completed_unanswered")])["answered_at"] is None


@pytest.mark.parametrize("detected", ["human", "machine"])
def test_machine_detection_is_recorded_without_moving_the_status(detected: str) -> None:
    leg = fresh_leg()
    apply_status(leg, StatusEvent.from_payload(event("outbound_answered")))

    changed = apply_status(leg, StatusEvent.from_payload(event(detected)))

    assert changed == ["machine_detected"]
    assert leg.machine_detected == detected
    assert leg.status == LegStatus.ANSWERED


def test_an_unknown_status_changes_nothing() -> None:
    leg = fresh_leg()
    apply_status(leg, StatusEvent.from_payload(event("outbound_ringing")))

    changed = apply_status(leg, StatusEvent.from_payload({**event("outbound_ringing"), "status": "teleported"}))

    assert changed == []
    assert leg.status == LegStatus.RINGING


def test_terminal_statuses() -> None:
    assert all(is_terminal(s) for s in ("completed", *FAILURES))
    assert not any(is_terminal(s) for s in ("new", "started", "ringing", "answered", "human", ""))


def test_status_event_reads_vonages_strings() -> None:
    parsed = StatusEvent.from_payload(event("outbound_completed"))

    assert parsed.status == "completed"
    assert parsed.timestamp == at("2024-06-12T09:17:05.402")
    assert parsed.start_time == at("2024-06-12T09:15:09")
    assert parsed.duration == 116
    assert parsed.price == Decimal("0.02320000")
    assert parsed.rate == Decimal("0.01200000")
    assert parsed.network == "23415"


def test_status_event_reads_the_rest_apis_time_format_as_utc() -> None:
    parsed = StatusEvent.from_payload({"status": "completed", "start_time": "2024-06-12 09:15:09"})

    assert parsed.start_time == at("2024-06-12T09:15:09")


@pytest.mark.parametrize(
    "garbage",
    [
        {"duration": "-5", "price": "NaN", "rate": "Infinity", "timestamp": "yesterday"},
        {"duration": "abc", "price": "1e9", "rate": "x", "timestamp": 12345},
        {"duration": None, "price": None, "rate": "", "timestamp": "2024-13-45T99:00:00Z"},
    ],
)
def test_status_event_turns_nonsense_into_nothing(garbage: dict[str, Any]) -> None:
    parsed = StatusEvent.from_payload({"status": "completed", **garbage})

    assert (parsed.duration, parsed.price, parsed.rate, parsed.timestamp) == (None, None, None, None)


IGNORED_SAMPLES = [
    "2026-12-07T16:00:00.000Z",
    "1999-01-01T00:00:00Z",
    "12",
    "-3",
    "0.01270000",
    "1e999999999",
    "x",
    7,
    True,
]


@pytest.mark.parametrize("value", IGNORED_SAMPLES)
def test_a_status_event_parses_each_field_with_its_listed_parser(value: Any) -> None:
    """ignored_fields reads what StatusEvent parsed: each field must be its parser's result."""
    from calls.leg_progress import PARSED_FIELDS, ignored_fields

    for field, parse in PARSED_FIELDS.items():
        payload = {"status": "completed", field: value}
        parsed = StatusEvent.from_payload(payload)
        assert getattr(parsed, field) == parse(value)
        assert ignored_fields(payload, parsed) == ([field] if parse(value) is None else [])
