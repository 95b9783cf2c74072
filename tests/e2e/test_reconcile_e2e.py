"""Reconciliation through the real SDK against the TLS fake: lost events, orphaned
agents and callers left on hold, put right from what Vonage reports."""

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from calls import call_flow
from calls.models import Call, CallEvent, CallLeg, CallState, LegRole, LegStatus, Outcome
from calls.reconcile import ReconcileReport, reconcile
from campaigns.models import Campaign, Fallback, TrackingNumber
from devtools.fake_vonage_api import FakeCall, FakeVonageAPI
from tests.conftest import callback_path, with_fields
from tests.e2e.conftest import CALLER_NUMBER, Leg, post_event
from tests.factories import CampaignFactory, TrackingNumberFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

CAMPAIGN_NUMBER = "447700900001"
DESTINATION = "447700900999"
EVERY_LEG = timedelta(0)  # ask about every leg without a final status, however recent


def inbound_call_at_vonage(vonage: FakeVonageAPI, caller: Leg) -> FakeCall:
    """Vonage's record of the caller's inbound call. The fake creates records only for
    the calls it is asked to place, so this one is added as Vonage would hold it."""
    record = FakeCall(
        uuid=caller.uuid,
        conversation_uuid=caller.conversation_uuid,
        to={"type": "phone", "number": caller.to},
        from_={"type": "phone", "number": caller.from_},
        answer_url=None,
        ncco=None,
        event_url=None,
        status="answered",
        direction="inbound",
        start_time=datetime.now(UTC),
    )
    with vonage._lock:
        vonage._calls[record.uuid] = record
    return record


def caller_dials(client: Client, vonage: FakeVonageAPI, *, known_to_vonage: bool = True) -> tuple[Call, Leg, Leg]:
    """A caller rings the campaign number and waits; the agent's phone rings."""
    caller = Leg(from_=CALLER_NUMBER, to=CAMPAIGN_NUMBER, direction="inbound")
    if known_to_vonage:
        inbound_call_at_vonage(vonage, caller)
    response = client.get("/answer_inbound", caller.answer_params(region_url=vonage.url))
    assert response.status_code == 200
    call = Call.objects.get(legs__uuid=caller.uuid)
    placed = vonage.call(call.legs.get(role=LegRole.AGENT).uuid)
    vonage.set_call_status(placed.uuid, "ringing")
    agent = Leg(
        from_=CAMPAIGN_NUMBER,
        to=DESTINATION,
        direction="outbound",
        uuid=placed.uuid,
        conversation_uuid=placed.conversation_uuid,
    )
    return call, caller, agent


def agent_takes_the_call(client: Client, vonage: FakeVonageAPI, call: Call, agent: Leg) -> datetime:
    """The agent answers, hears the whisper and joins the caller; returns when it answered."""
    response = client.get(
        with_fields(callback_path("answer_outbound", call=call.pk), agent.answer_params(region_url=vonage.url))
    )
    assert response.status_code == 200
    answered = timezone.now()
    vonage.set_call_status(agent.uuid, "answered")
    post_event(client, agent.answered(answered))
    call.refresh_from_db()
    assert call.state == CallState.CONNECTED
    return answered


def state_of_everything(vonage: FakeVonageAPI) -> list[Any]:
    calls = list(Call.objects.order_by("pk").values_list("state", "outcome", "attempt", "fallback_at", "ended_at"))
    legs = list(CallLeg.objects.order_by("pk").values_list("uuid", "status", "ended_at", "duration", "price"))
    return [calls, legs, CallEvent.objects.count(), [(r.call_uuid, r.action) for r in vonage.updates()]]


def test_a_callers_lost_completed_is_fetched_and_the_call_ends_answered(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber
) -> None:
    call, caller, agent = caller_dials(client, vonage)
    answered = agent_takes_the_call(client, vonage, call, agent)
    # They talk, both hang up; Vonage's "completed" for the caller never reaches us.
    vonage.set_call_status(agent.uuid, "completed")
    talk_end = answered + timedelta(seconds=60)
    post_event(client, agent.completed(start=answered, end=talk_end, rate="0.02700000", price="0.02700000"))
    end = talk_end.replace(microsecond=0) + timedelta(seconds=2)  # the caller hangs up last
    vonage.set_call_status(caller.uuid, "completed", end_time=end, duration="95", price="0.00617500", rate="0.00390000")

    report = reconcile(older_than=EVERY_LEG)

    call.refresh_from_db()
    assert (call.state, call.outcome, call.ended_at) == (CallState.ENDED, Outcome.ANSWERED, end)
    leg = call.legs.get(role=LegRole.CALLER)
    assert (leg.status, leg.ended_at, leg.duration, str(leg.price)) == (LegStatus.COMPLETED, end, 95, "0.00617500")
    # Vonage was asked through the SDK, signed as the application, at the caller's host.
    (get,) = vonage.requests_for("get")
    assert (get.call_uuid, get.status) == (caller.uuid, 200)
    assert get.jwt_claims is not None
    assert (report.checked, report.fixed, report.errors) == (1, 1, 0)
    assert vonage.updates() == []


def test_an_orphaned_agent_leg_is_hung_up_at_vonage(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber
) -> None:
    call, caller, agent = caller_dials(client, vonage)
    # The caller hangs up; stopping the agent's phone fails (Vonage answers 500).
    vonage.fail(500, route="update")
    vonage.set_call_status(caller.uuid, "completed")
    post_event(client, caller.event("completed", timezone.now()))
    call.refresh_from_db()
    assert (call.state, call.outcome) == (CallState.ENDED, Outcome.ABANDONED)
    assert vonage.call(agent.uuid).status == "ringing"

    report = reconcile(older_than=EVERY_LEG)

    assert [(r.call_uuid, r.status) for r in vonage.hangups()] == [(agent.uuid, 500), (agent.uuid, 204)]
    assert vonage.call(agent.uuid).status == "cancelled"
    leg = call.legs.get(role=LegRole.AGENT)
    assert leg.status == LegStatus.CANCELLED
    assert (report.hung_up, report.fixed, report.errors) == (1, 1, 0)


def test_a_caller_waiting_too_long_is_moved_to_the_fallback_and_the_agent_stops_ringing(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber, summer_campaign: Campaign
) -> None:
    summer_campaign.fallback = Fallback.MESSAGE
    summer_campaign.fallback_message = "Sorry, everyone is busy. We will call you back."
    summer_campaign.max_wait_seconds = 60
    summer_campaign.save()
    call, caller, agent = caller_dials(client, vonage)
    # No event arrives for a minute and more: the agent's phone just rings.
    Call.objects.filter(pk=call.pk).update(started_at=timezone.now() - timedelta(seconds=61))

    report = reconcile(older_than=timedelta(seconds=120))

    call.refresh_from_db()
    assert call.state == CallState.FALLBACK
    assert call.fallback_at is not None
    (transfer,) = vonage.transfers()
    assert (transfer.call_uuid, transfer.status) == (caller.uuid, 204)
    assert transfer.json == {
        "action": "transfer",
        "destination": {"type": "ncco", "ncco": call_flow.fallback_ncco(call)},
    }
    assert transfer.json["destination"]["ncco"][0]["text"] == "Sorry, everyone is busy. We will call you back."
    assert [(r.call_uuid, r.status) for r in vonage.hangups()] == [(agent.uuid, 204)]
    assert vonage.call(agent.uuid).status == "cancelled"
    # Before moving the caller, the agent's leg was asked about (it might have answered).
    assert [r.call_uuid for r in vonage.requests_for("get")] == [agent.uuid]
    assert (report.moved_to_fallback, report.errors) == (1, 0)


def test_a_leg_vonage_does_not_know_is_marked_ended(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber
) -> None:
    call, _, agent = caller_dials(client, vonage, known_to_vonage=False)
    before = timezone.now() - timedelta(milliseconds=1)  # event timestamps carry milliseconds

    report = reconcile(older_than=EVERY_LEG)

    leg = call.legs.get(role=LegRole.CALLER)
    assert leg.status == LegStatus.COMPLETED
    assert leg.ended_at is not None and leg.ended_at >= before
    # The caller's end ran the webhooks' follow-up: the agent's phone stopped ringing,
    # and its record was then fetched and applied.
    assert [(r.call_uuid, r.status) for r in vonage.hangups()] == [(agent.uuid, 204)]
    call.refresh_from_db()
    assert (call.state, call.outcome) == (CallState.ENDED, Outcome.ABANDONED)
    assert call.legs.get(role=LegRole.AGENT).status == LegStatus.CANCELLED
    assert (report.checked, report.ended, report.fixed, report.errors) == (2, 1, 1, 0)


def test_a_vonage_error_changes_nothing_and_the_run_goes_on(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber
) -> None:
    first, first_caller, _ = caller_dials(client, vonage)
    second, second_caller, _ = caller_dials(client, vonage)
    vonage.set_call_status(first_caller.uuid, "completed")
    vonage.set_call_status(second_caller.uuid, "completed")
    first_legs = list(first.legs.values_list("status", "ended_at"))
    vonage.fail(500, route="get", times=1)

    report = reconcile(older_than=EVERY_LEG)

    assert list(first.legs.values_list("status", "ended_at")) == first_legs
    first.refresh_from_db()
    assert first.state == CallState.WAITING
    second.refresh_from_db()
    assert (second.state, second.outcome) == (CallState.ENDED, Outcome.ABANDONED)
    assert report.errors == 1
    assert [r.status for r in vonage.requests_for("get")][:2] == [500, 200]


def test_running_twice_changes_nothing_the_second_time(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber
) -> None:
    # A lost completed, a leg Vonage does not know, and an orphaned agent.
    call, caller, agent = caller_dials(client, vonage)
    agent_takes_the_call(client, vonage, call, agent)
    vonage.set_call_status(caller.uuid, "completed")
    vonage.set_call_status(agent.uuid, "completed")
    caller_dials(client, vonage, known_to_vonage=False)
    call, caller, agent = caller_dials(client, vonage)
    vonage.fail(500, route="update")
    vonage.set_call_status(caller.uuid, "completed")
    post_event(client, caller.event("completed", timezone.now()))
    first = reconcile(older_than=EVERY_LEG)
    assert first.errors == 0 and first.fixed and first.ended and first.hung_up
    before = state_of_everything(vonage)

    second = reconcile(older_than=EVERY_LEG)

    assert state_of_everything(vonage) == before
    assert (second.checked, second.fixed, second.ended, second.hung_up, second.moved_to_fallback) == (0, 0, 0, 0, 0)


# --- races on PostgreSQL: a webhook and reconciliation at the same moment -----------------------------------


def at_once(*actions: Callable[[], object]) -> list[BaseException]:
    barrier = threading.Barrier(len(actions))
    errors: list[BaseException] = []

    def run(action: Callable[[], object]) -> None:
        try:
            barrier.wait()
            action()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks need PostgreSQL; SQLite serialises writes"
)


@pytest.fixture
def race_number(db: None) -> TrackingNumber:
    campaign = CampaignFactory.create(name=f"Race {uuid.uuid4()}", topic="the race", destination=DESTINATION)
    return TrackingNumberFactory.create(number=CAMPAIGN_NUMBER, campaign=campaign)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_moves_to_the_fallback_at_once_transfer_the_caller_once(
    vonage: FakeVonageAPI, race_number: TrackingNumber
) -> None:
    call, caller, _ = caller_dials(Client(), vonage)
    moved: list[bool] = []

    def move() -> None:
        moved.append(call_flow.caller_to_fallback(call_id=call.pk, reason="race"))

    assert at_once(move, move) == []

    assert sorted(moved) == [False, True]
    assert [(r.call_uuid, r.status) for r in vonage.transfers()] == [(caller.uuid, 204)]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_webhook_and_reconciliation_at_once_transfer_the_caller_once(
    vonage: FakeVonageAPI, race_number: TrackingNumber
) -> None:
    call, caller, agent = caller_dials(Client(), vonage)
    # The caller has waited too long just as the only agent's "busy" arrives: both the
    # webhook (hunt over) and reconciliation (longest wait) move the caller.
    Call.objects.filter(pk=call.pk).update(started_at=timezone.now() - timedelta(minutes=10))
    vonage.set_call_status(agent.uuid, "busy")
    reports: list[ReconcileReport] = []

    errors = at_once(
        lambda: post_event(Client(), agent.event("busy", timezone.now())),
        lambda: reports.append(reconcile(older_than=timedelta(seconds=120))),
    )

    assert errors == []
    assert [(r.call_uuid, r.status) for r in vonage.transfers()] == [(caller.uuid, 204)]
    call.refresh_from_db()
    assert call.state == CallState.FALLBACK
    assert reports[0].errors == 0
