"""The call flow's writes: idempotent answers, and events that any delivery order cannot confuse."""

import itertools
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import IntegrityError
from pytest_django.fixtures import Settings

from calls import agent_dispatch, events, services, vonage_adapter
from calls.models import Call, CallEvent, CallLeg, CallState, LegRole, LegStatus, NumberStatus, Outcome
from calls.vonage_adapter import PlacedCall
from campaigns.models import Campaign, TrackingNumber
from tests.conftest import LEG_FIELDS, callback, load_fixture, notify_body

ANSWER = load_fixture("vonage/answer_inbound.json")
AGENT_ANSWER = load_fixture("vonage/answer_outbound.json")
CALLER_UUID = ANSWER["uuid"]
AGENT_UUID = AGENT_ANSWER["uuid"]
STEPS = ("started", "ringing", "answered", "completed")
# When our answer webhook ran; the fixtures' events follow it.
CALL_START = datetime(2024, 6, 12, 9, 15, tzinfo=UTC)

CALL_FIELDS = ("state", "outcome", "agent_answered_at", "ended_at", "wait_seconds", "talk_seconds")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


EXPECTED_CALLER_LEG = {
    "status": LegStatus.COMPLETED,
    "detail": "",
    "machine_detected": "",
    "started_at": at("2024-06-12T09:15:00.120"),
    "answered_at": at("2024-06-12T09:15:00"),
    "ended_at": at("2024-06-12T09:17:05"),
    "duration": 125,
    "price": Decimal("0.00937500"),
    "rate": Decimal("0.00450000"),
    "network": "23410",
}
EXPECTED_AGENT_LEG = {
    "status": LegStatus.COMPLETED,
    "detail": "",
    "machine_detected": "",
    "started_at": at("2024-06-12T09:15:01.020"),
    "answered_at": at("2024-06-12T09:15:09"),
    "ended_at": at("2024-06-12T09:17:05"),
    "duration": 116,
    "price": Decimal("0.02320000"),
    "rate": Decimal("0.01200000"),
    "network": "23415",
}
EXPECTED_CALL = {
    "state": CallState.ENDED,
    "outcome": Outcome.ANSWERED,
    "agent_answered_at": at("2024-06-12T09:15:09"),
    "ended_at": at("2024-06-12T09:17:05"),
    "wait_seconds": 9,
    "talk_seconds": 116,
}


def event(name: str) -> dict[str, Any]:
    return load_fixture(f"vonage/event_{name}.json")


def caller_events(order: tuple[str, ...] = STEPS) -> list[dict[str, Any]]:
    return [event(f"inbound_{step}") for step in order]


def agent_events(order: tuple[str, ...] = STEPS) -> list[dict[str, Any]]:
    return [event(f"outbound_{step}") for step in order]


@pytest.fixture
def agent_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every agent call the app places, instead of placing it; the agent leg gets the fixtures' uuid."""
    placed: list[dict[str, Any]] = []

    def place_call(**kwargs: Any) -> PlacedCall:
        placed.append(kwargs)
        return PlacedCall(uuid=AGENT_UUID, conversation_uuid=AGENT_ANSWER["conversation_uuid"], sent=True)

    monkeypatch.setattr(vonage_adapter, "place_call", place_call)
    return placed


def answer_caller() -> Call:
    """The caller's answer webhook, as the recorded fixture, with the call started at CALL_START."""
    services.call_answer_inbound(
        uuid=CALLER_UUID,
        to=ANSWER["to"],
        from_=ANSWER["from"],
        conversation_uuid=ANSWER["conversation_uuid"],
        region_url=ANSWER["region_url"],
    )
    call = Call.objects.get(legs__uuid=CALLER_UUID)
    Call.objects.filter(pk=call.pk).update(started_at=CALL_START)
    return call


def deliver(payloads: list[dict[str, Any]]) -> None:
    for payload in payloads:
        events.event_record(payload=payload)


def leg_facts(uuid: str) -> dict[str, Any]:
    leg = CallLeg.objects.get(uuid=uuid)
    return {field: getattr(leg, field) for field in LEG_FIELDS}


def call_facts(call: Call) -> dict[str, Any]:
    call.refresh_from_db()
    return {field: getattr(call, field) for field in CALL_FIELDS}


# --- order-proofing ---------------------------------------------------------------------


@pytest.mark.parametrize("order", list(itertools.permutations(STEPS)), ids="-".join)
def test_any_order_of_the_callers_events_gives_the_same_call(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]], order: tuple[str, ...]
) -> None:
    call = answer_caller()

    deliver(agent_events() + caller_events(order))

    assert leg_facts(CALLER_UUID) == EXPECTED_CALLER_LEG
    assert leg_facts(AGENT_UUID) == EXPECTED_AGENT_LEG
    assert call_facts(call) == EXPECTED_CALL


@pytest.mark.parametrize("order", list(itertools.permutations(STEPS)), ids="-".join)
def test_any_order_of_the_agents_events_gives_the_same_call(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]], order: tuple[str, ...]
) -> None:
    call = answer_caller()

    deliver(caller_events()[:3] + agent_events(order) + caller_events()[3:])

    assert leg_facts(CALLER_UUID) == EXPECTED_CALLER_LEG
    assert leg_facts(AGENT_UUID) == EXPECTED_AGENT_LEG
    assert call_facts(call) == EXPECTED_CALL


def interleavings(count: int, seed: int = 20240612) -> list[list[dict[str, Any]]]:
    """``count`` random interleavings of a random order of each leg's events."""
    rng = random.Random(seed)
    runs = []
    for _ in range(count):
        caller = caller_events(tuple(rng.sample(STEPS, len(STEPS))))
        agent = agent_events(tuple(rng.sample(STEPS, len(STEPS))))
        slots = set(rng.sample(range(8), 4))
        run = [caller.pop(0) if slot in slots else agent.pop(0) for slot in range(8)]
        runs.append(run)
    return runs


def test_interleaved_events_of_both_legs_in_any_order_give_the_same_call(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    for run in interleavings(60):
        Call.objects.all().delete()
        call = answer_caller()

        deliver(run)

        order = [f"{p['direction']}:{p['status']}" for p in run]
        assert leg_facts(CALLER_UUID) == EXPECTED_CALLER_LEG, order
        assert leg_facts(AGENT_UUID) == EXPECTED_AGENT_LEG, order
        assert call_facts(call) == EXPECTED_CALL, order


def test_every_event_delivered_twice_in_reverse_gives_the_same_call(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    call = answer_caller()
    run = caller_events() + agent_events()

    deliver(run + run[::-1])

    assert CallEvent.objects.count() == len(run)
    assert leg_facts(AGENT_UUID) == EXPECTED_AGENT_LEG
    assert call_facts(call) == EXPECTED_CALL


def test_completed_leg_stays_completed_when_ringing_arrives_late(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    call = answer_caller()
    deliver(caller_events() + agent_events())
    before = call_facts(call)

    deliver([event("outbound_ringing"), event("inbound_ringing")])

    assert CallLeg.objects.get(uuid=AGENT_UUID).status == LegStatus.COMPLETED
    assert CallLeg.objects.get(uuid=CALLER_UUID).status == LegStatus.COMPLETED
    assert call_facts(call) == before


@pytest.mark.parametrize("busy_first", [True, False], ids=["busy-then-completed", "completed-then-busy"])
def test_busy_wins_over_completed_in_either_order(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]], busy_first: bool
) -> None:
    call = answer_caller()
    agent = [event("outbound_busy"), event("outbound_completed_unanswered")]

    deliver(
        caller_events()[:3]
        + agent_events(("started", "ringing"))
        + (agent if busy_first else agent[::-1])
        + [event("inbound_completed")]
    )

    leg = CallLeg.objects.get(uuid=AGENT_UUID)
    assert leg.status == LegStatus.BUSY
    assert leg.ended_at == at("2024-06-12T09:16:01")
    assert call_facts(call)["outcome"] == Outcome.BUSY


# --- outcomes from real event sequences -------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "outcome"),
    [
        ("busy", Outcome.BUSY),
        ("unanswered", Outcome.MISSED),
        ("timeout", Outcome.MISSED),
        ("rejected", Outcome.FAILED),
        ("failed", Outcome.FAILED),
    ],
)
def test_agent_leg_ending_unanswered_gives_the_calls_outcome(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]], failure: str, outcome: str
) -> None:
    call = answer_caller()

    agent = [event(f"outbound_{s}") for s in ("started", "ringing", failure, "completed_unanswered")]
    deliver([*caller_events()[:3], *agent, event("inbound_completed")])

    facts = call_facts(call)
    assert facts["outcome"] == outcome
    assert facts["state"] == CallState.ENDED
    assert facts["agent_answered_at"] is None
    assert facts["talk_seconds"] is None
    # The caller's wait for an agent ended when they were moved to the fallback.
    call.refresh_from_db()
    assert call.fallback_at is not None
    assert facts["wait_seconds"] == round((call.fallback_at - CALL_START).total_seconds())


def test_call_is_in_progress_while_the_agent_rings(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    call = answer_caller()

    deliver(caller_events()[:3] + agent_events(("started", "ringing")))

    assert call_facts(call)["outcome"] == Outcome.IN_PROGRESS
    assert call_facts(call)["state"] == CallState.WAITING


def test_caller_hanging_up_while_the_agent_rings_is_abandoned(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    call = answer_caller()

    deliver(caller_events() + agent_events(("started", "ringing")))

    facts = call_facts(call)
    assert facts["outcome"] == Outcome.ABANDONED
    assert facts["state"] == CallState.ENDED
    assert facts["ended_at"] == at("2024-06-12T09:17:05")


def test_agent_answering_connects_the_call_until_someone_hangs_up(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    call = answer_caller()

    deliver(caller_events()[:3] + agent_events()[:3])

    facts = call_facts(call)
    assert facts["outcome"] == Outcome.ANSWERED
    assert facts["state"] == CallState.CONNECTED
    assert facts["agent_answered_at"] == at("2024-06-12T09:15:09.640")
    assert facts["wait_seconds"] == 10
    assert facts["ended_at"] is None


def test_voicemail_answering_the_agents_phone_is_missed(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    call = answer_caller()

    deliver(caller_events() + agent_events() + [event("machine")])

    assert CallLeg.objects.get(uuid=AGENT_UUID).machine_detected == "machine"
    assert call_facts(call)["outcome"] == Outcome.MISSED


# --- events that arrive before their leg is recorded -----------------------------------


def test_agent_leg_events_that_beat_the_create_call_response_are_applied(
    summer_number: TrackingNumber, monkeypatch: pytest.MonkeyPatch
) -> None:
    def place_call(**kwargs: Any) -> PlacedCall:
        # Vonage posts the new leg's first events while create_call is still answering us.
        deliver([event("outbound_started"), event("outbound_failed")])
        return PlacedCall(uuid=AGENT_UUID, conversation_uuid=AGENT_ANSWER["conversation_uuid"], sent=True)

    monkeypatch.setattr(vonage_adapter, "place_call", place_call)
    call = answer_caller()

    leg = CallLeg.objects.get(uuid=AGENT_UUID)
    assert leg.status == LegStatus.FAILED
    assert leg.detail == "cannot_route"
    assert leg.started_at == at("2024-06-12T09:15:01.020")
    assert set(CallEvent.objects.values_list("call", "leg")) == {(call.pk, leg.pk)}

    deliver([event("outbound_completed_unanswered"), event("inbound_completed")])
    assert call_facts(call)["outcome"] == Outcome.FAILED


def test_caller_leg_event_that_beats_the_answer_webhook_is_applied(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    deliver([event("inbound_started")])
    assert CallEvent.objects.get().call is None

    call = answer_caller()

    assert CallLeg.objects.get(uuid=CALLER_UUID).started_at == at("2024-06-12T09:15:00.120")
    assert CallEvent.objects.get().call == call


# --- the answer webhooks, as services ---------------------------------------------------


def test_retried_answer_gets_the_stored_ncco_and_rings_the_agent_once(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    first = services.call_answer_inbound(uuid=CALLER_UUID, to=ANSWER["to"], from_=ANSWER["from"])
    again = services.call_answer_inbound(uuid=CALLER_UUID, to=ANSWER["to"], from_=ANSWER["from"])

    assert again == first
    assert len(agent_calls) == 1
    assert Call.objects.count() == 1


def test_agent_is_rung_from_the_campaign_number_with_our_webhooks(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    call = answer_caller()

    (placed,) = agent_calls
    assert placed["to"] == "447700900999"
    assert placed["from_"] == "447700900001"
    assert placed["answer_url"] == callback("answer_outbound", call=call.pk)
    assert placed["event_url"] == "https://whisper.example.com/event"
    assert placed["deadline_seconds"] < 5


def test_concurrent_delivery_of_the_same_answer_is_answered_like_the_first(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = services.call_answer_inbound(uuid=CALLER_UUID, to=ANSWER["to"], from_=ANSWER["from"])
    # The second process looked before the first one's insert was visible.
    monkeypatch.setattr(services, "caller_leg", _first_time_none(services.caller_leg))

    again = services.call_answer_inbound(uuid=CALLER_UUID, to=ANSWER["to"], from_=ANSWER["from"])

    assert again == first
    assert len(agent_calls) == 1
    assert Call.objects.count() == 1


def test_concurrent_delivery_that_never_sees_an_ncco_connects_the_caller_directly(
    summer_number: TrackingNumber,
    agent_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
) -> None:
    settings.AGENT_CALL_DEADLINE_SECONDS = 0.05
    settings.CALL_CENTER_NUMBER = "447700900111"
    services.call_answer_inbound(uuid=CALLER_UUID, to=ANSWER["to"], from_=ANSWER["from"])
    Call.objects.update(caller_ncco=[])  # the first process is still placing the agent call
    monkeypatch.setattr(services, "caller_leg", _first_time_none(services.caller_leg))

    ncco = services.call_answer_inbound(uuid=CALLER_UUID, to=ANSWER["to"], from_=ANSWER["from"])

    assert ncco[-1]["action"] == "connect"
    assert ncco[-1]["endpoint"] == [{"type": "phone", "number": "447700900111"}]
    assert len(agent_calls) == 1


def _first_time_none(real: Any) -> Any:
    seen: list[str] = []

    def caller_leg(uuid: str) -> CallLeg | None:
        if uuid not in seen:
            seen.append(uuid)
            return None
        return real(uuid)

    return caller_leg


def test_agent_call_that_cannot_be_placed_connects_the_caller_directly(
    summer_number: TrackingNumber, monkeypatch: pytest.MonkeyPatch
) -> None:
    def place_call(**kwargs: Any) -> PlacedCall:
        raise vonage_adapter.VonageUnavailable("Vonage answered 503 to create_call.", status_code=503)

    monkeypatch.setattr(vonage_adapter, "place_call", place_call)

    ncco = services.call_answer_inbound(uuid=CALLER_UUID, to=ANSWER["to"], from_=ANSWER["from"])

    call = Call.objects.get()
    # The answer did not wait for Vonage: greeting, checkpoint, hold.
    assert [action["action"] for action in ncco] == ["talk", "notify", "conversation"]
    assert call.caller_ncco == ncco
    assert call.state == CallState.DIRECT
    assert call.agent_call_error == "Vonage answered 503 to create_call."
    assert not call.legs.filter(role=LegRole.AGENT).exists()
    # The checkpoint after the greeting connects the caller straight through.
    direct = agent_dispatch.checkpoint_answer(call_id=call.pk, body=notify_body({"checkpoint": "agent"}))
    assert direct is not None
    assert direct[-1]["endpoint"] == [{"type": "phone", "number": "447700900999"}]
    assert direct[-1]["from"] == "447700900001"


def test_whisper_is_rendered_from_the_campaign_as_it_is_now(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    call = answer_caller()
    # Saved as the admin saves it: the routes kept in memory learn of it (campaigns/routing.py).
    campaign = Campaign.objects.get(pk=summer_number.campaign_id)
    campaign.whisper_template = "{topic}, from the {source}, {campaign}, dialled {number}"
    campaign.save()

    ncco = services.call_answer_agent(call_id=call.pk, uuid=AGENT_UUID)

    call.refresh_from_db()
    assert call.whisper_text == (
        "the summer offer, from the M4 billboard, Summer offer, dialled 4 4 7 7 0 0 9 0 0 0 0 1"
    )
    assert ncco[0]["text"] == call.whisper_text


def test_unknown_agent_call_is_not_found(db: None) -> None:
    with pytest.raises(services.CallNotFound):
        services.call_answer_agent(call_id=999999, uuid=AGENT_UUID)


def test_agent_answering_before_create_call_returns_is_whispered_and_recorded_once(
    summer_number: TrackingNumber, monkeypatch: pytest.MonkeyPatch
) -> None:
    whispers: list[Any] = []

    def place_call(**kwargs: Any) -> PlacedCall:
        # The agent picks up so fast that Vonage asks /answer_outbound before our
        # create_call request has had its answer.
        call_id = int(parse_qs(urlsplit(kwargs["answer_url"]).query)["call"][0])
        whispers.append(
            services.call_answer_agent(
                call_id=call_id,
                uuid=AGENT_UUID,
                conversation_uuid=AGENT_ANSWER["conversation_uuid"],
                region_url=AGENT_ANSWER["region_url"],
            )
        )
        return PlacedCall(uuid=AGENT_UUID, conversation_uuid=AGENT_ANSWER["conversation_uuid"], sent=True)

    monkeypatch.setattr(vonage_adapter, "place_call", place_call)
    call = answer_caller()

    (leg,) = call.legs.filter(role=LegRole.AGENT)
    assert leg.uuid == AGENT_UUID
    assert leg.conversation_uuid == AGENT_ANSWER["conversation_uuid"]
    assert leg.region_url == AGENT_ANSWER["region_url"]
    assert whispers[0][0]["text"] == "Incoming call regarding the summer offer"


def test_a_second_agent_call_we_never_placed_is_not_joined_to_the_caller(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    call = answer_caller()

    ncco = services.call_answer_agent(call_id=call.pk, uuid="duplicate-agent-leg")

    assert all(action["action"] != "conversation" for action in ncco)
    assert not CallLeg.objects.filter(uuid="duplicate-agent-leg").exists()


# --- the fallback answer URL ------------------------------------------------------------


def test_fallback_for_a_call_we_never_saw_connects_directly_and_records_why(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    ncco = services.call_answer_fallback(
        uuid=CALLER_UUID, to=ANSWER["to"], from_=ANSWER["from"], reason="Connection timed out"
    )

    call = Call.objects.get()
    assert ncco[-1]["action"] == "connect"
    assert ncco[-1]["endpoint"] == [{"type": "phone", "number": "447700900999"}]
    assert call.state == CallState.DIRECT
    assert call.caller_ncco == ncco
    assert "Connection timed out" in call.agent_call_error
    assert agent_calls == []


def test_fallback_after_our_answer_replays_it(summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]) -> None:
    first = services.call_answer_inbound(uuid=CALLER_UUID, to=ANSWER["to"], from_=ANSWER["from"])

    assert services.call_answer_fallback(uuid=CALLER_UUID, to=ANSWER["to"], from_="") == first
    assert Call.objects.count() == 1


# --- routing and whispers for numbers that are not live campaigns -----------------------


def test_unknown_number_rings_the_call_centre_and_whispers_the_number(
    db: None, agent_calls: list[dict[str, Any]], settings: Settings
) -> None:
    settings.CALL_CENTER_NUMBER = "447700900111"
    services.call_answer_inbound(uuid=CALLER_UUID, to="447700900042", from_=ANSWER["from"])

    call = Call.objects.get()
    assert call.number_status == NumberStatus.UNKNOWN
    assert call.destination == "447700900111"
    assert agent_calls[0]["to"] == "447700900111"
    assert services.whisper_for(call) == "Incoming call to an unrecognised number, 4 4 7 7 0 0 9 0 0 0 4 2."


@pytest.mark.parametrize("what", ["number", "campaign"])
def test_inactive_number_or_campaign_is_whispered_as_inactive(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]], settings: Settings, what: str
) -> None:
    settings.CALL_CENTER_NUMBER = "447700900111"
    target = summer_number if what == "number" else summer_number.campaign
    type(target).objects.filter(pk=target.pk).update(is_active=False)

    services.call_answer_inbound(uuid=CALLER_UUID, to=ANSWER["to"], from_=ANSWER["from"])

    call = Call.objects.get()
    assert call.number_status == NumberStatus.INACTIVE
    assert call.destination == "447700900111"
    assert services.whisper_for(call) == (
        "Incoming call to the inactive number 4 4 7 7 0 0 9 0 0 0 0 1, last used for Summer offer."
    )


# --- what is stored for each event ------------------------------------------------------


def test_status_events_are_deduplicated_per_leg_and_status() -> None:
    first = event("outbound_ringing")
    retried = {**first, "timestamp": "2024-06-12T09:15:01.999Z"}

    assert events.dedupe_key(first, kind="status", leg_uuid=AGENT_UUID, status="ringing") == (
        events.dedupe_key(retried, kind="status", leg_uuid=AGENT_UUID, status="ringing")
    )


def test_other_events_are_duplicates_only_when_the_whole_body_is_the_same() -> None:
    digits = event("input")
    other = {**digits, "dtmf": {"digits": "2", "timed_out": False}}

    key = events.dedupe_key(digits, kind="input", leg_uuid=AGENT_UUID, status="")
    assert key == events.dedupe_key(dict(reversed(digits.items())), kind="input", leg_uuid=AGENT_UUID, status="")
    assert key != events.dedupe_key(other, kind="input", leg_uuid=AGENT_UUID, status="")
    assert len(key) <= CallEvent._meta.get_field("dedupe_key").max_length


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("outbound_ringing", "status"),
        ("human", "detection"),
        ("machine", "detection"),
        ("transfer", "transfer"),
        ("record", "record"),
        ("input", "input"),
        ("error", "error"),
    ],
)
def test_event_kind_is_read_from_the_payloads_shape(name: str, kind: str) -> None:
    assert events.event_kind(event(name)) == kind


def test_an_event_with_a_long_uuid_still_fits_its_columns(db: None) -> None:
    payload = {**event("outbound_ringing"), "uuid": "u" * 64, "status": "s" * 32}

    events.event_record(payload=payload)

    stored = CallEvent.objects.get()
    assert stored.leg_uuid == "u" * 64


def test_duplicate_delivery_is_reported_as_not_stored(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    answer_caller()

    first = events.event_record(payload=event("outbound_ringing"))
    again = events.event_record(payload=event("outbound_ringing"))

    assert (first.stored, again.stored) == (True, False)
    assert first.call_id == again.call_id is not None


def test_leg_uuid_is_unique_so_a_race_cannot_record_two_legs(
    summer_number: TrackingNumber, agent_calls: list[dict[str, Any]]
) -> None:
    call = answer_caller()

    with pytest.raises(IntegrityError):
        CallLeg.objects.create(uuid=AGENT_UUID, call=call, role=LegRole.AGENT)
