"""Any delivery order, any duplicates: the same records (VONAGE.md: order is not
guaranteed, duplicates happen).

Each example answers fresh calls through the real webhooks, then delivers the legs'
events once in the order they happen and once in an order hypothesis chooses, with
redeliveries mixed in; the legs and the call must come out the same. Hypothesis runs
the examples inside one test (and one transaction), so every example uses calls and
leg uuids of its own.
"""

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from calls import vonage_adapter
from calls.models import Call, CallEvent, CallLeg, LegRole, Outcome
from calls.vonage_adapter import PlacedCall
from campaigns.models import Fallback, TrackingNumber
from tests.conftest import callback_path, with_fields
from tests.factories import CampaignFactory, TrackingNumberFactory

CALLER_NUMBER = "447946000123"
LEG_FIELDS = (
    "role",
    "status",
    "detail",
    "started_at",
    "answered_at",
    "ended_at",
    "duration",
    "price",
    "rate",
    "network",
    "machine_detected",
    "attempt",
)
CALL_FIELDS = ("state", "outcome", "agent_answered_at", "ended_at", "wait_seconds", "talk_seconds", "fallback_at")
START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
# No shrinking: an example answers calls through the webhooks (a few hundred ms), and
# hypothesis may shrink for five minutes. A failure prints the delivery order that broke.
EXAMPLES = settings(max_examples=50, deadline=None, database=None, phases=[Phase.explicit, Phase.generate])


@dataclass
class Recorder:
    """The Vonage adapter's seam: agent calls placed, callers moved, legs hung up."""

    placed: list[str] = field(default_factory=list)
    transfers: list[str] = field(default_factory=list)
    hangups: list[str] = field(default_factory=list)

    def place_call(self, **kwargs: Any) -> PlacedCall:
        agent_uuid = f"agent-{uuid.uuid4()}"
        self.placed.append(agent_uuid)
        return PlacedCall(uuid=agent_uuid, conversation_uuid=f"CON-{agent_uuid}", sent=True)

    def transfer_to_ncco(self, *, uuid: str, ncco: list[dict[str, Any]], region_url: str = "") -> None:
        self.transfers.append(uuid)

    def hang_up(self, *, uuid: str, region_url: str = "") -> None:
        self.hangups.append(uuid)


@pytest.fixture
def vonage(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    for name in ("place_call", "transfer_to_ncco", "hang_up"):
        monkeypatch.setattr(vonage_adapter, name, getattr(recorder, name))
    return recorder


@pytest.fixture
def number(db: None) -> TrackingNumber:
    campaign = CampaignFactory.create(
        name="Summer offer", topic="the summer offer", destination="447700900999", fallback=Fallback.VOICEMAIL
    )
    return TrackingNumberFactory.create(number="447700900001", campaign=campaign, source="M4 billboard")


# --- Vonage's side -----------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """Seconds after the call started at which things happen."""

    agent_rings: float
    agent_answers: float
    caller_hangs_up: float
    agent_hangs_up: float


# A few timelines, so that each one's canonical records are worked out once per test;
# the examples spend their time on delivery orders.
TIMELINES = [
    Timeline(agent_rings=0.5, agent_answers=6.2, caller_hangs_up=60.0, agent_hangs_up=44.9),  # the agent hangs up
    Timeline(agent_rings=1.3, agent_answers=12.75, caller_hangs_up=30.4, agent_hangs_up=95.0),  # the caller does
    Timeline(agent_rings=0.2, agent_answers=3.0, caller_hangs_up=50.0, agent_hangs_up=50.0),  # both at once
    Timeline(agent_rings=2.0, agent_answers=29.96, caller_hangs_up=599.5, agent_hangs_up=600.0),
]


def vonage_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Answered:
    """One call as Vonage reports it: both legs' events, in the order they happen."""

    call: Call
    caller_uuid: str
    agent_uuid: str
    events: list[dict[str, Any]]


def answer(client: Client, vonage: Recorder, timeline: Timeline) -> Answered:
    caller_uuid = str(uuid.uuid4())
    conversation = f"CON-{caller_uuid}"
    response = client.get(
        "/answer_inbound",
        {"to": "447700900001", "from": CALLER_NUMBER, "uuid": caller_uuid, "conversation_uuid": conversation},
    )
    assert response.status_code == 200
    call = CallLeg.objects.select_related("call").get(uuid=caller_uuid).call
    agent_uuid = vonage.placed[-1]
    response = client.get(
        with_fields(callback_path("answer_outbound", call=call.pk), {"uuid": agent_uuid, "to": "447700900999"})
    )
    assert response.status_code == 200
    # Every call of a test starts at the same moment, so their records compare as they are.
    Call.objects.filter(pk=call.pk).update(started_at=START)
    start = START

    def at(seconds: float) -> datetime:
        return start + timedelta(seconds=seconds)

    def event(leg_uuid: str, status: str, seconds: float, **extra: Any) -> dict[str, Any]:
        inbound = leg_uuid == caller_uuid
        return {
            "uuid": leg_uuid,
            "conversation_uuid": conversation if inbound else f"CON-{leg_uuid}",
            "from": CALLER_NUMBER if inbound else "447700900001",
            "to": "447700900001" if inbound else "447700900999",
            "direction": "inbound" if inbound else "outbound",
            "status": status,
            "timestamp": vonage_time(at(seconds)),
            **extra,
        }

    def completed(leg_uuid: str, answered: float, ended: float, price: str) -> dict[str, Any]:
        return event(
            leg_uuid,
            "completed",
            ended,
            start_time=vonage_time(at(answered)),
            end_time=vonage_time(at(ended)),
            duration=str(round(ended - answered)),
            rate="0.01000000",
            price=price,
            network="23410",
        )

    t = timeline
    # Vonage bills from start_time; its "answered" event is stamped a moment later and
    # carries start_time, rate and network empty.
    events = [
        event(caller_uuid, "started", 0.0),
        event(caller_uuid, "ringing", 0.0),
        event(caller_uuid, "answered", 0.1, start_time=None, rate=None, network=None),
        event(agent_uuid, "started", t.agent_rings),
        event(agent_uuid, "ringing", t.agent_rings),
        event(agent_uuid, "answered", t.agent_answers + 0.05, start_time=None, rate=None, network=None),
        completed(agent_uuid, t.agent_answers, t.agent_answers + t.agent_hangs_up, "0.00450000"),
        completed(caller_uuid, 0.0, t.agent_answers + t.caller_hangs_up, "0.01200000"),
    ]
    events.sort(key=lambda payload: payload["timestamp"])
    return Answered(call=call, caller_uuid=caller_uuid, agent_uuid=agent_uuid, events=events)


def deliver(client: Client, events: list[dict[str, Any]]) -> None:
    for payload in events:
        response = client.post("/event", json.dumps(payload), content_type="application/json")
        assert response.status_code == 200, response.content


def records(answered: Answered) -> dict[str, Any]:
    call = Call.objects.get(pk=answered.call.pk)
    legs = {
        "caller": CallLeg.objects.get(uuid=answered.caller_uuid),
        "agent": CallLeg.objects.get(uuid=answered.agent_uuid),
    }
    return {
        "call": {name: getattr(call, name) for name in CALL_FIELDS},
        "legs": {role: {name: getattr(leg, name) for name in LEG_FIELDS} for role, leg in legs.items()},
    }


@st.composite
def deliveries(draw: st.DrawFn, count: int) -> list[int]:
    """The indexes of ``count`` events in any order, some delivered more than once."""
    repeats = draw(st.lists(st.integers(0, count - 1), max_size=count))
    return draw(st.permutations(list(range(count)) + repeats))


# --- the tests --------------------------------------------------------------------------


def test_an_answered_call_comes_out_the_same_whatever_the_order_and_duplicates(
    client: Client, number: TrackingNumber, vonage: Recorder
) -> None:
    canonical: dict[Timeline, dict[str, Any]] = {}

    @EXAMPLES
    @given(timeline=st.sampled_from(TIMELINES), data=st.data())
    def check(timeline: Timeline, data: st.DataObject) -> None:
        if timeline not in canonical:
            in_order = answer(client, vonage, timeline)
            deliver(client, in_order.events)
            canonical[timeline] = records(in_order)
        expected = canonical[timeline]
        assert expected["call"]["outcome"] == Outcome.ANSWERED

        shuffled = answer(client, vonage, timeline)
        order = data.draw(deliveries(len(shuffled.events)), label="delivery order")
        deliver(client, [shuffled.events[i] for i in order])

        assert records(shuffled) == expected
        distinct = {(payload["uuid"], payload["status"]) for payload in shuffled.events}
        assert CallEvent.objects.filter(call=shuffled.call).count() == len(distinct)

    check()


AGENT_FAILURES = ["busy", "timeout", "unanswered", "rejected", "failed"]


def test_an_agent_who_does_not_answer_moves_the_caller_on_exactly_once(
    client: Client, number: TrackingNumber, vonage: Recorder
) -> None:
    @EXAMPLES
    @given(failure=st.sampled_from(AGENT_FAILURES), data=st.data())
    def check(failure: str, data: st.DataObject) -> None:
        caller_uuid = str(uuid.uuid4())
        response = client.get("/answer_inbound", {"to": "447700900001", "from": CALLER_NUMBER, "uuid": caller_uuid})
        assert response.status_code == 200
        call = CallLeg.objects.get(uuid=caller_uuid).call
        agent_uuid = vonage.placed[-1]
        placed_before, transfers_before, hangups_before = len(vonage.placed), len(vonage.transfers), len(vonage.hangups)
        start = call.started_at

        def event(status: str, seconds: float, **extra: Any) -> dict[str, Any]:
            return {
                "uuid": agent_uuid,
                "conversation_uuid": f"CON-{agent_uuid}",
                "direction": "outbound",
                "status": status,
                "timestamp": vonage_time(start + timedelta(seconds=seconds)),
                **extra,
            }

        events = [
            event("started", 0.5),
            event("ringing", 0.5),
            event(failure, 15.0, detail="timeout" if failure == "unanswered" else ""),
            event("completed", 15.0, duration="0", price="0.00000000"),
        ]
        order = data.draw(deliveries(len(events)), label="delivery order")
        deliver(client, [events[i] for i in order])

        # One step: the caller moved to the voicemail fallback once; no second agent
        # rung (one destination), and nobody hung up (the agent's leg had ended).
        assert vonage.transfers[transfers_before:] == [caller_uuid]
        assert len(vonage.placed) == placed_before
        assert vonage.hangups[hangups_before:] == []
        call.refresh_from_db()
        assert call.fallback_at is not None
        agent = CallLeg.objects.get(uuid=agent_uuid)
        assert agent.role == LegRole.AGENT
        assert agent.status == failure
        assert CallEvent.objects.filter(call=call).count() == len(events)

    check()
