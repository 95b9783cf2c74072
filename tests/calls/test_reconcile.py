"""Reconciliation's decisions, with the Vonage adapter replaced at its seam.

The e2e suite (tests/e2e/test_reconcile_e2e.py) runs the same paths through the real
SDK against the TLS fake of the API.
"""

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from calls import call_flow, events, reconcile, vonage_adapter
from calls.models import Call, CallEvent, CallLeg, CallState, LegRole, LegStatus, Outcome
from calls.vonage_adapter import PlacedCall, VonageUnavailable
from campaigns.models import Campaign, Strategy
from tests.factories import CallFactory, CallLegFactory, CampaignFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
OLD = NOW - timedelta(minutes=5)  # past the default 120 s threshold
THRESHOLD = timedelta(seconds=120)


def rest_time(moment: datetime) -> str:
    """``GET /v1/calls/{uuid}`` reports times as ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class VonageStub:
    """Stands in for the adapter: Vonage's records of the calls, and what was asked."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    get_errors: dict[str, list[Exception]] = field(default_factory=dict)
    hangup_errors: list[VonageUnavailable] = field(default_factory=list)
    transfer_errors: list[VonageUnavailable] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)
    hangups: list[str] = field(default_factory=list)
    transfers: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    placed: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, leg: CallLeg, status: str, **fields: Any) -> None:
        self.records[leg.uuid] = {
            "uuid": leg.uuid,
            "conversation_uuid": leg.conversation_uuid,
            "status": status,
            "direction": leg.direction,
            "from": {"type": "phone", "number": leg.from_number or "447946000123"},
            "to": {"type": "phone", "number": leg.to_number or "447700900001"},
            **fields,
        }

    def get_call_info(self, *, uuid: str, region_url: str = "") -> dict[str, Any]:
        with self.lock:
            self.gets.append(uuid)
        if self.get_errors.get(uuid):
            raise self.get_errors[uuid].pop(0)
        if uuid not in self.records:
            raise VonageUnavailable("Vonage answered 404 to get_call.", status_code=404)
        return dict(self.records[uuid])

    def hang_up(self, *, uuid: str, region_url: str = "") -> None:
        if self.hangup_errors:
            raise self.hangup_errors.pop(0)
        with self.lock:
            self.hangups.append(uuid)
        record = self.records.get(uuid)
        if record is None:
            raise VonageUnavailable("Vonage answered 404 to hangup.", status_code=404)
        # As Vonage: hung up before it was answered is cancelled, after, completed.
        record["status"] = "completed" if record["status"] == "answered" else "cancelled"
        record["end_time"] = rest_time(NOW)

    def transfer_to_ncco(self, *, uuid: str, ncco: list[dict[str, Any]], region_url: str = "") -> None:
        if self.transfer_errors:
            raise self.transfer_errors.pop(0)
        with self.lock:
            self.transfers.append((uuid, ncco))

    def place_call(self, **kwargs: Any) -> PlacedCall:
        with self.lock:
            self.placed.append(kwargs)
            n = len(self.placed)
        return PlacedCall(uuid=f"agent-{n}", conversation_uuid=f"CON-agent-{n}", sent=True)


@pytest.fixture
def vonage(monkeypatch: pytest.MonkeyPatch) -> VonageStub:
    stub = VonageStub()
    for name in ("get_call_info", "hang_up", "transfer_to_ncco", "place_call"):
        monkeypatch.setattr(vonage_adapter, name, getattr(stub, name))
    monkeypatch.setattr(vonage_adapter, "credentials_configured", lambda: True)
    monkeypatch.setattr(call_flow, "UPDATE_RETRY_INTERVAL", 0.01)
    return stub


@pytest.fixture
def campaign(db: None) -> Campaign:
    # A long wait, so that only the tests about it meet the longest-wait rule.
    return CampaignFactory.create(
        name="Summer offer", topic="the summer offer", destination="447700900999", max_wait_seconds=900
    )


def waiting_call(campaign: Campaign, *, started: datetime = OLD, **fields: Any) -> tuple[Call, CallLeg, CallLeg]:
    """A conference call: the caller on hold (answered), the agent ringing, both recorded at ``started``."""
    number = TrackingNumberFactory.create(campaign=campaign)
    call = CallFactory.create(tracking_number=number, started_at=started, destination="447700900999", **fields)
    caller = CallLegFactory.create(
        call=call,
        role=LegRole.CALLER,
        status=LegStatus.ANSWERED,
        answered_at=started,
        from_number=call.caller_number,
        to_number=call.called_number,
        region_url="https://api-eu-1.vonage.com",
        created_at=started,
    )
    agent = CallLegFactory.create(
        call=call,
        role=LegRole.AGENT,
        status=LegStatus.RINGING,
        attempt=0,
        direction="outbound",
        from_number=call.called_number,
        to_number="447700900999",
        created_at=started,
    )
    return call, caller, agent


def connected_call(campaign: Campaign) -> tuple[Call, CallLeg, CallLeg]:
    call, caller, agent = waiting_call(campaign)
    CallLeg.objects.filter(pk=agent.pk).update(status=LegStatus.ANSWERED, answered_at=OLD + timedelta(seconds=8))
    Call.objects.filter(pk=call.pk).update(state=CallState.CONNECTED, outcome=Outcome.ANSWERED)
    call.refresh_from_db()
    agent.refresh_from_db()
    return call, caller, agent


def run(**kwargs: Any) -> reconcile.ReconcileReport:
    return reconcile.reconcile(older_than=THRESHOLD, now=NOW, **kwargs)


def snapshot() -> list[tuple[Any, ...]]:
    calls = list(
        Call.objects.order_by("pk").values_list("pk", "state", "outcome", "attempt", "fallback_at", "ended_at")
    )
    legs = list(CallLeg.objects.order_by("pk").values_list("pk", "status", "ended_at", "duration", "price"))
    return [*calls, *legs, ("events", CallEvent.objects.count())]


# --- which legs are asked about ---------------------------------------------------------------


def test_stuck_legs_are_old_without_a_final_status_and_askable(campaign: Campaign) -> None:
    call, caller, agent = waiting_call(campaign)
    CallLegFactory.create(
        call=call, role=LegRole.AGENT, status=LegStatus.RINGING, created_at=NOW - timedelta(seconds=30)
    )
    CallLegFactory.create(call=call, role=LegRole.AGENT, status=LegStatus.BUSY, created_at=OLD)
    CallLegFactory.create(call=call, role=LegRole.AGENT, status=LegStatus.COMPLETED, created_at=OLD)
    CallLegFactory.create(call=call, role=LegRole.AGENT, uuid="dryrun-1234", status=LegStatus.NEW, created_at=OLD)

    stuck = reconcile.stuck_legs(older_than=THRESHOLD, now=NOW)

    assert list(stuck) == [caller, agent]


def test_a_dry_run_leg_is_never_asked_about(campaign: Campaign, vonage: VonageStub) -> None:
    leg = CallLegFactory.create(uuid="dryrun-abc", role=LegRole.AGENT, status=LegStatus.RINGING, created_at=OLD)

    result = reconcile.leg_reconcile(leg, now=NOW)

    assert result == reconcile.LegResult(uuid="dryrun-abc")
    assert vonage.gets == []
    leg.refresh_from_db()
    assert leg.status == LegStatus.RINGING


# --- Vonage's record, applied as the webhook would have been -------------------------------------


def test_the_rest_record_becomes_a_status_event_in_webhook_shape(campaign: Campaign) -> None:
    _, caller, _ = waiting_call(campaign)
    info = {
        "uuid": caller.uuid,
        "conversation_uuid": caller.conversation_uuid,
        "status": "completed",
        "direction": "inbound",
        "from": {"type": "phone", "number": "447946000123"},
        "to": {"type": "phone", "number": "447700900001"},
        "start_time": "2026-03-02 11:55:00",
        "end_time": "2026-03-02 11:57:30",
        "duration": "150",
        "price": "0.06750000",
        "rate": "0.02700000",
        "network": "23410",
        "link": "/v1/calls/x",
    }

    event = reconcile.status_event(caller, info, now=NOW)

    assert event == {
        "uuid": caller.uuid,
        "conversation_uuid": caller.conversation_uuid,
        "status": "completed",
        "direction": "inbound",
        "timestamp": "2026-03-02T11:57:30.000Z",  # when it ended, not when we asked
        "from": "447946000123",
        "to": "447700900001",
        "start_time": "2026-03-02 11:55:00",
        "end_time": "2026-03-02 11:57:30",
        "duration": "150",
        "price": "0.06750000",
        "rate": "0.02700000",
        "network": "23410",
        "reconciled": "GET /v1/calls/{uuid}",
    }


def test_a_lost_completed_ends_the_call_with_the_right_outcome(campaign: Campaign, vonage: VonageStub) -> None:
    call, caller, agent = connected_call(campaign)
    end = OLD + timedelta(seconds=98)
    vonage.record(caller, "completed", start_time=rest_time(OLD), end_time=rest_time(end), duration="98",
                  price="0.04410000", rate="0.02700000", network="23410")  # fmt: skip
    vonage.record(agent, "completed", start_time=rest_time(OLD + timedelta(seconds=8)), end_time=rest_time(end),
                  duration="90", price="0.04050000", rate="0.02700000", network="23410")  # fmt: skip

    report = run()

    call.refresh_from_db()
    caller.refresh_from_db()
    assert (call.state, call.outcome, call.ended_at) == (CallState.ENDED, Outcome.ANSWERED, end)
    assert call.talk_seconds == 90
    assert (caller.status, caller.ended_at, caller.duration, caller.price) == (
        LegStatus.COMPLETED,
        end,
        98,
        Decimal("0.04410000"),
    )
    # Through the webhooks' own path: stored under the status event's dedupe key.
    event = CallEvent.objects.get(dedupe_key=f"status:{caller.uuid}:completed")
    assert event.payload["reconciled"] == "GET /v1/calls/{uuid}"
    assert (report.checked, report.fixed, report.ended, report.hung_up, report.errors) == (2, 2, 0, 0, 0)
    assert vonage.hangups == [] and vonage.transfers == []


def test_a_leg_vonage_agrees_with_is_left_as_it_is(campaign: Campaign, vonage: VonageStub) -> None:
    _, caller, agent = connected_call(campaign)
    vonage.record(caller, "answered", start_time=rest_time(OLD))
    vonage.record(agent, "answered", start_time=rest_time(OLD))
    before = snapshot()

    report = run()

    assert snapshot() == before
    assert (report.checked, report.fixed, report.hung_up) == (2, 0, 0)


def test_an_older_status_from_vonage_never_moves_a_leg_back(campaign: Campaign, vonage: VonageStub) -> None:
    _, caller, agent = connected_call(campaign)
    vonage.record(caller, "ringing")
    vonage.record(agent, "started")
    before = snapshot()

    run()

    assert snapshot() == before


def test_a_caller_who_left_unnoticed_is_abandoned_and_the_agent_stops_ringing(
    campaign: Campaign, vonage: VonageStub
) -> None:
    call, caller, agent = waiting_call(campaign)
    vonage.record(caller, "completed", start_time=rest_time(OLD), end_time=rest_time(OLD + timedelta(seconds=40)))
    vonage.record(agent, "ringing")

    report = run()

    # The caller's end runs the webhooks' follow-up (stop ringing the agent), then the
    # agent's own record is asked for and applied.
    assert vonage.hangups == [agent.uuid]
    call.refresh_from_db()
    agent.refresh_from_db()
    assert (call.state, call.outcome) == (CallState.ENDED, Outcome.ABANDONED)
    assert agent.status == LegStatus.CANCELLED
    assert (report.fixed, report.hung_up) == (2, 0)  # the flow hung up, not reconciliation


def test_early_events_are_applied_before_vonage_is_asked(campaign: Campaign, vonage: VonageStub) -> None:
    # Vonage posted the agent's "failed" before create_call answered us: it was stored
    # unmatched and holds the leg's dedupe key for "failed".
    call, caller, agent = waiting_call(campaign)
    CallEvent.objects.create(
        dedupe_key=f"status:{agent.uuid}:failed",
        leg_uuid=agent.uuid,
        kind="status",
        status="failed",
        payload={"uuid": agent.uuid, "status": "failed", "timestamp": "2026-03-02T11:55:01Z", "detail": "cannot_route"},
    )
    vonage.record(caller, "answered")
    vonage.record(agent, "failed")

    report = run()

    agent.refresh_from_db()
    assert (agent.status, agent.detail) == (LegStatus.FAILED, "cannot_route")
    assert CallEvent.objects.filter(leg_uuid=agent.uuid).count() == 1
    # The only destination gave up: the hunt is over and the caller goes to the fallback.
    call.refresh_from_db()
    assert call.state == CallState.FALLBACK
    assert [uuid for uuid, _ in vonage.transfers] == [caller.uuid]
    assert (report.fixed, report.moved_to_fallback) == (1, 1)


# --- Vonage does not know the leg, or cannot answer -------------------------------------------------


def test_a_leg_vonage_no_longer_knows_is_marked_ended_now(campaign: Campaign, vonage: VonageStub) -> None:
    call, caller, agent = connected_call(campaign)
    vonage.record(agent, "completed", end_time=rest_time(OLD + timedelta(seconds=60)))

    report = run()

    caller.refresh_from_db()
    assert (caller.status, caller.ended_at) == (LegStatus.COMPLETED, NOW)
    event = CallEvent.objects.get(dedupe_key=f"status:{caller.uuid}:completed")
    assert event.payload["reconciled"] == "GET /v1/calls/{uuid}: 404"
    call.refresh_from_db()
    assert (call.state, call.outcome) == (CallState.ENDED, Outcome.ANSWERED)
    assert (report.ended, report.fixed, report.errors) == (1, 1, 0)


def test_a_vonage_error_changes_nothing_and_the_run_goes_on(campaign: Campaign, vonage: VonageStub) -> None:
    first, first_caller, _ = connected_call(campaign)
    second, second_caller, _ = connected_call(campaign)
    CallLeg.objects.filter(role=LegRole.AGENT).update(status=LegStatus.COMPLETED)
    vonage.get_errors[first_caller.uuid] = [VonageUnavailable("Vonage answered 500 to get_call.", status_code=500)]
    vonage.record(first_caller, "completed", end_time=rest_time(OLD + timedelta(seconds=60)))
    vonage.record(second_caller, "completed", end_time=rest_time(OLD + timedelta(seconds=60)))

    report = run()

    first_caller.refresh_from_db()
    assert first_caller.status == LegStatus.ANSWERED
    assert Call.objects.get(pk=second.pk).state == CallState.ENDED
    assert (report.checked, report.fixed, report.errors) == (2, 1, 1)

    # The next run asks again and puts the first call right.
    assert run().fixed == 1
    assert Call.objects.get(pk=first.pk).state == CallState.ENDED


def test_an_unexpected_failure_in_one_call_does_not_stop_the_run(
    campaign: Campaign, vonage: VonageStub, caplog: pytest.LogCaptureFixture
) -> None:
    first, first_caller, _ = connected_call(campaign)
    second, second_caller, _ = connected_call(campaign)
    vonage.get_errors[first_caller.uuid] = [RuntimeError("boom")]
    vonage.record(second_caller, "completed", end_time=rest_time(OLD + timedelta(seconds=60)))

    report = run()

    assert report.errors == 1
    assert f"reconcile.call_failed call={first.pk}" in caplog.text
    assert Call.objects.get(pk=second.pk).state == CallState.ENDED


# --- orphaned agent legs -------------------------------------------------------------------------------


def test_an_agent_still_up_after_the_caller_left_is_hung_up(campaign: Campaign, vonage: VonageStub) -> None:
    call, caller, agent = waiting_call(campaign)
    # The caller's completed arrived, but hanging up the agent then failed.
    CallLeg.objects.filter(pk=caller.pk).update(status=LegStatus.COMPLETED, ended_at=OLD + timedelta(seconds=30))
    Call.objects.filter(pk=call.pk).update(state=CallState.ENDED, outcome=Outcome.ABANDONED)
    CallLeg.objects.filter(pk=agent.pk).update(status=LegStatus.NEW)
    vonage.record(agent, "ringing")

    report = run()

    assert vonage.hangups == [agent.uuid]
    agent.refresh_from_db()
    assert agent.status == LegStatus.CANCELLED  # recorded at once from Vonage's record
    assert (report.checked, report.hung_up, report.fixed, report.errors) == (1, 1, 1, 0)
    # Nothing is left for the next run.
    assert run().checked == 0


@pytest.mark.parametrize("status_code", [404, 400])
def test_an_orphan_already_gone_is_not_an_error(campaign: Campaign, vonage: VonageStub, status_code: int) -> None:
    call, caller, agent = waiting_call(campaign)
    CallLeg.objects.filter(pk=caller.pk).update(status=LegStatus.COMPLETED, ended_at=OLD)
    Call.objects.filter(pk=call.pk).update(state=CallState.ENDED)
    vonage.record(agent, "ringing")
    vonage.hangup_errors.append(VonageUnavailable("gone", status_code=status_code))

    report = run()

    assert (report.hung_up, report.errors) == (0, 0)


def test_a_hang_up_vonage_refuses_is_an_error(campaign: Campaign, vonage: VonageStub) -> None:
    call, caller, agent = waiting_call(campaign)
    CallLeg.objects.filter(pk=caller.pk).update(status=LegStatus.COMPLETED, ended_at=OLD)
    Call.objects.filter(pk=call.pk).update(state=CallState.ENDED)
    vonage.record(agent, "ringing")
    vonage.hangup_errors.append(VonageUnavailable("Vonage answered 500 to hangup.", status_code=500))

    report = run()

    assert (report.hung_up, report.errors) == (0, 1)


def test_an_agent_talking_to_the_caller_is_not_an_orphan(campaign: Campaign, vonage: VonageStub) -> None:
    _, caller, agent = connected_call(campaign)
    vonage.record(caller, "answered")
    vonage.record(agent, "answered")

    assert run().hung_up == 0
    assert vonage.hangups == []


def test_an_agent_rung_for_an_earlier_attempt_is_hung_up(campaign: Campaign, vonage: VonageStub) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(hunt_numbers="447700900888")
    call, caller, agent = waiting_call(campaign)
    Call.objects.filter(pk=call.pk).update(attempt=1)
    CallLegFactory.create(call=call, role=LegRole.AGENT, status=LegStatus.RINGING, attempt=1, created_at=NOW)
    vonage.record(caller, "answered")
    vonage.record(agent, "ringing")

    report = run()

    assert vonage.hangups == [agent.uuid]
    assert report.hung_up == 1


def test_an_agent_ringing_after_the_caller_went_to_the_fallback_is_hung_up(
    campaign: Campaign, vonage: VonageStub
) -> None:
    call, caller, agent = waiting_call(campaign)
    Call.objects.filter(pk=call.pk).update(state=CallState.FALLBACK, fallback_at=OLD + timedelta(seconds=60))
    vonage.record(caller, "answered")
    vonage.record(agent, "ringing")

    assert run().hung_up == 1
    assert vonage.hangups == [agent.uuid]


def test_an_agent_call_that_failed_before_create_call_answered_moves_the_hunt_on(
    campaign: Campaign, vonage: VonageStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found while writing reconciliation (call_flow.agent_ring): Vonage posts "failed" for
    # a number it cannot ring before create_call has answered, so the event is stored
    # unmatched. It must still count, at once, without waiting for reconcile_calls.
    Campaign.objects.filter(pk=campaign.pk).update(hunt_numbers="447700900888\n447700900777")
    call, _, agent = waiting_call(campaign)

    def place_call_failing_early(**kwargs: Any) -> PlacedCall:
        placed = vonage.place_call(**kwargs)
        if kwargs["to"] == "447700900888":
            events.event_record(
                payload={"uuid": placed.uuid, "status": "failed", "direction": "outbound", "detail": "cannot_route"}
            )
        return placed

    monkeypatch.setattr(vonage_adapter, "place_call", place_call_failing_early)

    events.event_record(payload={"uuid": agent.uuid, "status": "busy", "direction": "outbound"})

    assert [placed["to"] for placed in vonage.placed] == ["447700900888", "447700900777"]
    assert CallLeg.objects.get(uuid="agent-1").status == LegStatus.FAILED
    call.refresh_from_db()
    assert (call.attempt, call.state) == (2, CallState.WAITING)


def test_an_attempt_claimed_by_a_process_that_died_is_rung_again(campaign: Campaign, vonage: VonageStub) -> None:
    """The process that claimed the first agent call died before placing it (killed
    mid-request): no agent leg, a stale claim. Reconcile claims it again and rings."""
    call, caller, agent = waiting_call(campaign)
    agent.delete()
    vonage.record(caller, "answered")  # Vonage: the caller is still on the line
    stale = NOW - timedelta(seconds=settings.AGENT_CALL_DEADLINE_SECONDS + reconcile.AGENT_CALL_GRACE_SECONDS + 1)
    Call.objects.filter(pk=call.pk).update(agent_requested_at=stale)

    report = run()

    assert report.rung == 1
    assert "1 agent call placed again" in report.summary()
    assert [placed["to"] for placed in vonage.placed] == ["447700900999"]
    (leg,) = CallLeg.objects.filter(call=call, role=LegRole.AGENT)
    assert (leg.uuid, leg.attempt) == ("agent-1", 0)
    call.refresh_from_db()
    assert call.agent_requested_at == NOW
    # The next run finds the agent leg: nothing is placed twice.
    assert run().rung == 0
    assert len(vonage.placed) == 1


def test_an_attempt_claimed_recently_is_left_to_the_process_placing_it(campaign: Campaign, vonage: VonageStub) -> None:
    call, caller, agent = waiting_call(campaign)
    agent.delete()
    vonage.record(caller, "answered")
    Call.objects.filter(pk=call.pk).update(agent_requested_at=NOW - timedelta(seconds=2))

    report = run()

    assert report.rung == 0
    assert vonage.placed == []


# --- the longest wait, and callers nobody is coming for --------------------------------------------------


def test_overdue_waits_are_conference_callers_on_hold_past_their_campaigns_longest_wait(db: None) -> None:
    patient = CampaignFactory.create(name="Patient", max_wait_seconds=600)
    brisk = CampaignFactory.create(name="Brisk", max_wait_seconds=30)
    connect = CampaignFactory.create(name="Connect", max_wait_seconds=30, strategy=Strategy.CONNECT)

    def call(campaign: Campaign, waited: int, **fields: Any) -> Call:
        number = TrackingNumberFactory.create(campaign=campaign)
        return CallFactory.create(
            tracking_number=number, started_at=NOW - timedelta(seconds=waited), strategy=campaign.strategy, **fields
        )

    overdue = call(brisk, 31)
    call(brisk, 29)
    long_overdue = call(patient, 601)
    call(patient, 300)
    call(connect, 300)
    call(brisk, 300, state=CallState.CONNECTED, outcome=Outcome.ANSWERED)
    call(brisk, 300, state=CallState.FALLBACK, fallback_at=NOW - timedelta(seconds=200))
    call(brisk, 300, state=CallState.ENDED)
    # A call to an unknown number has no campaign: the default longest wait (120 s).
    unknown = CallFactory.create(
        tracking_number=None,
        campaign=None,
        called_number="447700900555",
        source="",
        started_at=NOW - timedelta(seconds=121),
    )
    CallFactory.create(
        tracking_number=None,
        campaign=None,
        called_number="447700900555",
        source="",
        started_at=NOW - timedelta(seconds=100),
    )

    assert reconcile.overdue_waits(NOW) == [long_overdue, unknown, overdue]  # longest wait first


def test_a_caller_waiting_too_long_goes_to_the_fallback_and_the_agent_stops_ringing(
    campaign: Campaign, vonage: VonageStub
) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(max_wait_seconds=60)
    # Recently recorded legs: not "stuck", the longest wait alone decides.
    call, caller, agent = waiting_call(campaign, started=NOW - timedelta(seconds=61))
    vonage.record(caller, "answered")
    vonage.record(agent, "ringing")

    report = run()

    call.refresh_from_db()
    assert (call.state, call.fallback_at) == (CallState.FALLBACK, call.fallback_at)
    assert call.fallback_at is not None
    ((uuid, ncco),) = vonage.transfers
    assert uuid == caller.uuid
    assert ncco == call_flow.fallback_ncco(call)
    assert vonage.hangups == [agent.uuid]
    # The agent's leg was asked first (a lost "answered" must not cut a conversation).
    assert agent.uuid in vonage.gets
    assert (report.moved_to_fallback, report.errors) == (1, 0)


def test_a_caller_whose_answered_agent_was_not_heard_of_stays_connected(campaign: Campaign, vonage: VonageStub) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(max_wait_seconds=60)
    call, caller, agent = waiting_call(campaign, started=NOW - timedelta(seconds=90))
    vonage.record(caller, "answered")
    vonage.record(agent, "answered", start_time=rest_time(NOW - timedelta(seconds=80)))
    assert run(dry_run=True).moved_to_fallback == 0

    report = run()

    call.refresh_from_db()
    assert (call.state, call.outcome) == (CallState.CONNECTED, Outcome.ANSWERED)
    assert vonage.transfers == [] and vonage.hangups == []
    assert (report.fixed, report.moved_to_fallback) == (1, 0)


def test_a_failed_fallback_transfer_is_tried_again(campaign: Campaign, vonage: VonageStub) -> None:
    call, caller, agent = waiting_call(campaign, started=NOW - timedelta(seconds=30))
    # Every destination was tried, and the transfer to the fallback failed then.
    CallLeg.objects.filter(pk=agent.pk).update(status=LegStatus.BUSY)
    Call.objects.filter(pk=call.pk).update(attempt=1)
    vonage.transfer_errors.append(VonageUnavailable("Vonage answered 500 to transfer.", status_code=500))

    report = run()

    call.refresh_from_db()
    assert (call.state, call.fallback_at, report.errors, report.moved_to_fallback) == (CallState.WAITING, None, 1, 0)

    report = run()

    call.refresh_from_db()
    assert call.state == CallState.FALLBACK
    assert [uuid for uuid, _ in vonage.transfers] == [caller.uuid]
    assert (report.errors, report.moved_to_fallback) == (0, 1)


def test_a_stalled_hunt_rings_the_next_destination(campaign: Campaign, vonage: VonageStub) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(hunt_numbers="447700900888")
    call, _, agent = waiting_call(campaign, started=NOW - timedelta(seconds=30))
    # The agent's busy was applied, but the process died before ringing the next one.
    CallLeg.objects.filter(pk=agent.pk).update(status=LegStatus.BUSY)

    report = run()

    call.refresh_from_db()
    assert call.attempt == 1
    assert [placed["to"] for placed in vonage.placed] == ["447700900888"]
    assert CallLeg.objects.get(uuid="agent-1").attempt == 1
    assert report.advanced == 1
    assert run().advanced == 0


def test_a_waiting_caller_with_a_ringing_agent_is_left_alone(campaign: Campaign, vonage: VonageStub) -> None:
    waiting_call(campaign, started=NOW - timedelta(seconds=30))
    before = snapshot()

    report = run()

    assert snapshot() == before
    assert (report.checked, report.moved_to_fallback, report.advanced) == (0, 0, 0)


# --- whole runs ------------------------------------------------------------------------------------------


def lost_events_everywhere(campaign: Campaign, vonage: VonageStub) -> None:
    """A lost completed, an orphaned agent, and a caller waiting too long."""
    _, caller, agent = connected_call(campaign)
    vonage.record(caller, "completed", end_time=rest_time(OLD + timedelta(seconds=60)))
    vonage.record(agent, "completed", end_time=rest_time(OLD + timedelta(seconds=60)))
    call, caller, agent = waiting_call(campaign)
    CallLeg.objects.filter(pk=caller.pk).update(status=LegStatus.COMPLETED, ended_at=OLD)
    Call.objects.filter(pk=call.pk).update(state=CallState.ENDED)
    vonage.record(agent, "ringing")
    brisk = CampaignFactory.create(name="Brisk", max_wait_seconds=60)
    call, caller, agent = waiting_call(brisk, started=NOW - timedelta(seconds=90))
    vonage.record(caller, "answered")
    vonage.record(agent, "ringing")


def test_a_second_run_changes_nothing(campaign: Campaign, vonage: VonageStub) -> None:
    lost_events_everywhere(campaign, vonage)
    first = run()
    assert (first.fixed, first.hung_up, first.moved_to_fallback, first.errors) == (3, 1, 1, 0)
    before, hangups, transfers = snapshot(), list(vonage.hangups), list(vonage.transfers)

    second = run()

    assert snapshot() == before
    assert (vonage.hangups, vonage.transfers) == (hangups, transfers)
    assert (second.fixed, second.ended, second.hung_up, second.moved_to_fallback, second.advanced) == (0, 0, 0, 0, 0)


def test_a_dry_run_asks_and_reports_but_changes_nothing(campaign: Campaign, vonage: VonageStub) -> None:
    lost_events_everywhere(campaign, vonage)
    before = snapshot()

    report = run(dry_run=True)

    assert snapshot() == before
    assert vonage.hangups == [] and vonage.transfers == [] and vonage.placed == []
    assert report.dry_run
    assert (report.fixed, report.hung_up, report.moved_to_fallback) == (2, 1, 1)
    assert report.summary().startswith("Dry run: Checked 4 legs with Vonage: 2 would be fixed")


def test_the_summary_is_one_sentence() -> None:
    report = reconcile.ReconcileReport(checked=1, fixed=1, hung_up=2, moved_to_fallback=1, errors=0)
    assert report.summary() == (
        "Checked 1 leg with Vonage: 1 fixed, 0 marked ended, 2 hung up; "
        "1 caller moved to the fallback, 0 hunts advanced; 0 errors."
    )
    skipped = reconcile.ReconcileReport(skipped="another reconcile_calls run is in progress.")
    assert skipped.summary() == "Skipped: another reconcile_calls run is in progress."


def test_without_credentials_nothing_is_asked_or_moved(
    campaign: Campaign, vonage: VonageStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Calls placed without credentials are dry runs (the simulator, ``make run``).
    monkeypatch.setattr(vonage_adapter, "credentials_configured", lambda: False)
    lost_events_everywhere(campaign, vonage)
    before = snapshot()
    out = StringIO()

    report = run()

    assert report.skipped
    assert snapshot() == before
    assert vonage.gets == [] and vonage.transfers == []
    call_command("reconcile_calls", stdout=out)
    assert out.getvalue() == (
        "Skipped: Vonage credentials (VONAGE_APPLICATION_ID, VONAGE_PRIVATE_KEY) are not configured, "
        "so Vonage cannot be asked.\n"
    )


# --- the command -----------------------------------------------------------------------------------------


def test_the_command_prints_one_line(campaign: Campaign, vonage: VonageStub) -> None:
    _, caller, agent = connected_call(campaign)
    CallLeg.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    vonage.record(caller, "answered")
    vonage.record(agent, "answered")
    out = StringIO()

    call_command("reconcile_calls", stdout=out)

    assert out.getvalue() == (
        "Checked 2 legs with Vonage: 0 fixed, 0 marked ended, 0 hung up; "
        "0 callers moved to the fallback, 0 hunts advanced; 0 errors.\n"
    )


def test_the_command_passes_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    def fake_reconcile(**kwargs: Any) -> reconcile.ReconcileReport:
        seen.append(kwargs)
        return reconcile.ReconcileReport(dry_run=kwargs["dry_run"])

    monkeypatch.setattr("calls.management.commands.reconcile_calls.reconcile", fake_reconcile)
    out = StringIO()

    call_command("reconcile_calls", "--older-than", "300", "--dry-run", stdout=out)

    assert seen == [{"older_than": timedelta(seconds=300), "dry_run": True}]
    assert out.getvalue().startswith("Dry run: ")


def test_the_command_loops_for_a_sidecar(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("calls.management.commands.reconcile_calls.time.sleep", sleeps.append)
    monkeypatch.setattr(
        "calls.management.commands.reconcile_calls.reconcile", lambda **kwargs: reconcile.ReconcileReport()
    )
    out = StringIO()

    call_command("reconcile_calls", "--loop", "15", "--max-runs", "3", stdout=out)

    assert len(out.getvalue().splitlines()) == 3
    assert sleeps == [15.0, 15.0]


def test_a_looping_command_survives_a_failed_run(monkeypatch: pytest.MonkeyPatch) -> None:
    results: list[Any] = [RuntimeError("database is down"), reconcile.ReconcileReport()]

    def flaky(**kwargs: Any) -> reconcile.ReconcileReport:
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr("calls.management.commands.reconcile_calls.time.sleep", lambda seconds: None)
    monkeypatch.setattr("calls.management.commands.reconcile_calls.reconcile", flaky)
    out, err = StringIO(), StringIO()

    call_command("reconcile_calls", "--loop", "1", "--max-runs", "2", stdout=out, stderr=err)

    assert "Reconciliation failed: RuntimeError: database is down" in err.getvalue()
    assert len(out.getvalue().splitlines()) == 1


def test_a_single_run_that_fails_exits_non_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**kwargs: Any) -> reconcile.ReconcileReport:
        raise RuntimeError("database is down")

    monkeypatch.setattr("calls.management.commands.reconcile_calls.reconcile", broken)

    with pytest.raises(CommandError, match="Reconciliation failed: RuntimeError: database is down"):
        call_command("reconcile_calls")


@pytest.mark.parametrize(
    "args",
    [["--older-than", "-1"], ["--loop", "0"], ["--max-runs", "2"], ["--loop", "5", "--max-runs", "0"]],
    ids=["negative threshold", "zero loop", "max-runs without loop", "zero max-runs"],
)
def test_the_command_refuses_bad_options(args: list[str]) -> None:
    with pytest.raises(CommandError):
        call_command("reconcile_calls", *args)


# --- one run at a time on PostgreSQL ------------------------------------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="advisory locks are PostgreSQL's")
def test_a_run_skips_while_another_holds_the_lock(campaign: Campaign, vonage: VonageStub) -> None:
    held, release = threading.Event(), threading.Event()

    def other_run() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [reconcile.ADVISORY_LOCK_KEY])
                held.set()
                release.wait(10)
                cursor.execute("SELECT pg_advisory_unlock(%s)", [reconcile.ADVISORY_LOCK_KEY])
        finally:
            connection.close()

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert held.wait(10)
        _, caller, _ = connected_call(campaign)
        vonage.record(caller, "completed")

        report = run()

        assert report.skipped
        assert vonage.gets == []
    finally:
        release.set()
        thread.join()
    # Once the other run has finished, this one proceeds (and released its own lock).
    assert not run().skipped
    assert not run().skipped
