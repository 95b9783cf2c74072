"""Pacing new outbound calls under the account's limit (calls/pacing.py) and what a
queued caller gets: the hold, a place in line, a ring at its time, a back-off after a
429 (never a direct connect), and the fallback when the line is longer than the wait."""

import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from pytest_django.fixtures import Settings

from calls import agent_dispatch, call_flow, pacing, reconcile, services, vonage_adapter
from calls.models import Call, CallLeg, CallPacer, CallState, LegRole
from calls.vonage_adapter import PlacedCall
from campaigns.models import Strategy, TrackingNumber
from tests.conftest import load_fixture, notify_body

ANSWER = load_fixture("vonage/answer_inbound.json")
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
THIRD = timedelta(microseconds=333_333)


@pytest.fixture
def paced(settings: Settings) -> None:
    settings.VONAGE_CALLS_PER_SECOND = 3


@pytest.fixture
def scheduled(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, datetime]]:
    """The rings left to the timer, instead of a timer thread (it could not see the test's transaction)."""
    jobs: list[tuple[int, int, datetime]] = []
    monkeypatch.setattr(
        agent_dispatch,
        "schedule",
        lambda *, call_id, attempt, ring_at: jobs.append((call_id, attempt, ring_at)),
    )
    return jobs


@pytest.fixture
def agent_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    placed: list[dict[str, Any]] = []

    def place_call(**kwargs: Any) -> PlacedCall:
        placed.append(kwargs)
        return PlacedCall(uuid=f"agent-{len(placed)}", conversation_uuid=f"CON-agent-{len(placed)}", sent=True)

    monkeypatch.setattr(vonage_adapter, "place_call", place_call)
    return placed


def line_ahead(seconds: float) -> None:
    """Callers ahead: the account's next free send time is ``seconds`` from now."""
    at = timezone.now() + timedelta(seconds=seconds)
    CallPacer.objects.update_or_create(pk=pacing.PACER_ID, defaults={"next_free_us": pacing._epoch_us(at)})


def answer(uuid: str = ANSWER["uuid"]) -> tuple[list[dict[str, Any]], Call]:
    ncco = services.call_answer_inbound(uuid=uuid, to=ANSWER["to"], from_=ANSWER["from"])
    return ncco, Call.objects.get(legs__uuid=uuid)


# --- the pacer ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_claims_are_spaced_by_the_limit_and_the_first_goes_at_once(paced: None) -> None:
    slots = [pacing.slot_claim(now=T0) for _ in range(4)]
    assert [slot.at - T0 for slot in slots] == [timedelta(0), THIRD, 2 * THIRD, 3 * THIRD]
    assert [slot.due for slot in slots] == [True, False, False, False]
    assert [slot.position for slot in slots] == [1, 2, 3, 4]
    # After a quiet spell the next call goes at once again.
    later = T0 + timedelta(seconds=5)
    assert pacing.slot_claim(now=later).at == later


@pytest.mark.django_db
def test_a_back_off_pushes_the_slot_and_every_later_one(paced: None) -> None:
    backed_off = pacing.slot_claim(now=T0, not_before=T0 + timedelta(seconds=2))
    after = pacing.slot_claim(now=T0)
    assert backed_off.at == T0 + timedelta(seconds=2)
    assert after.at == T0 + timedelta(seconds=2) + THIRD


@pytest.mark.django_db
def test_without_a_limit_nothing_is_claimed(settings: Settings, django_assert_num_queries: Any) -> None:
    settings.VONAGE_CALLS_PER_SECOND = 0
    with django_assert_num_queries(0):
        slot = pacing.slot_claim(now=T0)
    assert slot.at == T0 and slot.due


@pytest.mark.django_db
def test_a_claim_is_one_statement(paced: None, django_assert_num_queries: Any) -> None:
    pacing.slot_claim(now=T0)
    with django_assert_num_queries(1):
        pacing.slot_claim(now=T0)


@pytest.mark.django_db
def test_a_lost_pacer_row_is_made_again(paced: None) -> None:
    CallPacer.objects.all().delete()
    assert pacing.slot_claim(now=T0).at == T0
    assert pacing.slot_claim(now=T0).at == T0 + THIRD


def test_back_off_doubles_up_to_a_ceiling() -> None:
    assert [pacing.backoff_seconds(n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_from_many_connections_never_share_or_crowd_a_slot(paced: None) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("concurrent connections need PostgreSQL; SQLite serialises writers")
    CallPacer.objects.get_or_create(pk=pacing.PACER_ID)
    claims: list[datetime] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def claim() -> None:
        try:
            start.wait()
            for _ in range(5):
                slot = pacing.slot_claim(now=T0)
                with lock:
                    claims.append(slot.at)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(claims)
    assert ordered[0] == T0
    assert all(later - earlier == THIRD for earlier, later in itertools.pairwise(ordered))
    assert len(set(claims)) == 60


# --- a queued caller, conference strategy --------------------------------------------------------


@pytest.mark.django_db
def test_a_caller_beyond_the_limit_holds_and_is_rung_at_its_time(
    summer_number: TrackingNumber, paced: None, scheduled: list[Any], agent_calls: list[Any]
) -> None:
    line_ahead(10)

    ncco, call = answer()

    assert [action["action"] for action in ncco] == ["talk", "notify", "conversation"]
    assert "in line" not in ncco[0]["text"]  # the announcement is off by default
    assert agent_calls == []  # not rung yet: Vonage would refuse it
    assert call.ring_at is not None
    assert call.ring_at - timezone.now() > timedelta(seconds=9)
    assert scheduled == [(call.pk, 0, call.ring_at)]
    # The checkpoint after the greeting lets the queued caller go on to the hold at once.
    assert agent_dispatch.checkpoint_answer(call_id=call.pk, body=notify_body({"checkpoint": "agent"})) is None
    assert Call.objects.get(pk=call.pk).state == CallState.WAITING

    agent_dispatch.ring_when_due(call_id=call.pk, attempt=0, ring_at=call.ring_at)
    agent_dispatch.ring_when_due(call_id=call.pk, attempt=0, ring_at=call.ring_at)  # a second timer: a no-op

    assert len(agent_calls) == 1
    assert list(CallLeg.objects.filter(call=call, role=LegRole.AGENT).values_list("uuid", flat=True)) == ["agent-1"]
    call.refresh_from_db()
    assert call.ring_at is None and call.agent_requested_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize("start_known", [True, False], ids=["start given", "start read"])
def test_an_agent_call_placed_long_after_its_send_time_is_queued_again_not_sent(
    summer_number: TrackingNumber,
    paced: None,
    scheduled: list[Any],
    agent_calls: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    start_known: bool,
) -> None:
    """The worker stalled for two seconds after the caller's answer: sending now would
    crowd the calls paced after this one, so the caller takes a new send time."""
    monkeypatch.setattr(agent_dispatch, "ring_first_agent_soon", lambda call_id, **_: None)
    _ncco, call = answer()
    stalled = timezone.now() - timedelta(seconds=2)
    Call.objects.filter(pk=call.pk).update(started_at=stalled)
    line_ahead(5)

    placed = agent_dispatch.ring_first_agent(call.pk, started_at=stalled if start_known else None)

    assert placed is None and agent_calls == []
    call.refresh_from_db()
    assert call.ring_at is not None and call.ring_at - timezone.now() > timedelta(seconds=4)
    assert call.agent_requested_at is None and call.state == CallState.WAITING
    assert scheduled == [(call.pk, 0, call.ring_at)]


@pytest.mark.django_db
def test_an_agent_call_on_time_is_sent_whatever_the_call_row_says_of_its_start(
    summer_number: TrackingNumber, paced: None, agent_calls: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given the start the caller's answer wrote, the worker does not read it again."""
    monkeypatch.setattr(agent_dispatch, "ring_first_agent_soon", lambda call_id, **_: None)
    _ncco, call = answer()
    Call.objects.filter(pk=call.pk).update(started_at=timezone.now() - timedelta(seconds=2))
    line_ahead(5)  # were the worker late, it would be queued behind these

    assert agent_dispatch.ring_first_agent(call.pk, started_at=timezone.now()) is not None
    assert len(agent_calls) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("dispatch", ["started_at", "call id only"])
def test_paced_answer_and_first_agent_call_statements(
    summer_number: TrackingNumber,
    paced: None,
    scheduled: list[Any],
    agent_calls: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    django_assert_num_queries: Any,
    dispatch: str,
) -> None:
    """Production's pacing on: the answer claims the agent call's send time; the worker
    that places it takes the call's start from the answer, not from the database."""
    rings: list[tuple[int, Any]] = []
    monkeypatch.setattr(
        agent_dispatch, "ring_first_agent_soon", lambda call_id, started_at=None: rings.append((call_id, started_at))
    )
    answer("an-earlier-caller")  # the route, now in memory
    line_ahead(-1)  # a quiet spell since: this caller's send time is now
    postgresql = connection.vendor == "postgresql"
    # PostgreSQL: the call's id, routes' version and blocked caller; the send time; the
    # call with its caller's leg. SQLite: the ORM's inserts in a transaction.
    with django_assert_num_queries(3 if postgresql else 9):
        services.call_answer_inbound(uuid=ANSWER["uuid"], to=ANSWER["to"], from_=ANSWER["from"])
    assert len(rings) == 2 and scheduled == []  # rung at once, not queued
    call_id, started_at = rings[-1]
    assert call_id == Call.objects.get(legs__uuid=ANSWER["uuid"]).pk
    assert started_at == Call.objects.get(pk=call_id).started_at
    # The claim, which returns the call; the agent's leg; the call and its legs read back
    # with whether events for the leg came first. Without the start, it is read first.
    with django_assert_num_queries(3 if dispatch == "started_at" else 4):
        agent_dispatch.ring_first_agent(call_id, started_at=started_at if dispatch == "started_at" else None)
    assert len(agent_calls) == 1


@pytest.mark.django_db
def test_the_place_in_line_is_announced_when_asked(
    summer_number: TrackingNumber, paced: None, scheduled: list[Any], settings: Settings
) -> None:
    settings.CALL_QUEUE_ANNOUNCE_POSITION = True
    line_ahead(1.0)  # three calls ahead at 3 a second

    ncco, _call = answer()

    assert ncco[0]["text"].endswith("You are number 4 in line.")


@pytest.mark.django_db
def test_a_caller_due_now_is_rung_at_once_without_an_announcement(
    summer_number: TrackingNumber, paced: None, scheduled: list[Any], agent_calls: list[Any], settings: Settings
) -> None:
    settings.CALL_QUEUE_ANNOUNCE_POSITION = True
    ncco, call = answer()
    assert "in line" not in ncco[0]["text"]
    assert len(agent_calls) == 1 and scheduled == []
    assert call.ring_at is None


@pytest.mark.django_db
def test_a_429_queues_the_caller_again_after_a_back_off_never_a_direct_connect(
    summer_number: TrackingNumber, paced: None, scheduled: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def place_call(**kwargs: Any) -> PlacedCall:
        raise vonage_adapter.VonageUnavailable("Vonage answered 429 to create_call.", status_code=429)

    monkeypatch.setattr(vonage_adapter, "place_call", place_call)

    before = timezone.now()
    _ncco, call = answer()

    call.refresh_from_db()
    assert call.state == CallState.WAITING
    assert call.agent_call_error == ""
    assert call.rate_limited == 1
    assert call.ring_at is not None and call.ring_at >= before + timedelta(seconds=1)
    assert scheduled == [(call.pk, 0, call.ring_at)]
    # The checkpoint does not connect the caller directly: the same limit would refuse it.
    assert agent_dispatch.checkpoint_answer(call_id=call.pk, body=notify_body({"checkpoint": "agent"})) is None

    # Refused again at its time: the back-off doubles.
    before = timezone.now()
    agent_dispatch.ring_when_due(call_id=call.pk, attempt=0, ring_at=call.ring_at)
    second = Call.objects.get(pk=call.pk)
    assert second.rate_limited == 2
    assert second.ring_at is not None and second.ring_at >= before + timedelta(seconds=2)
    assert second.state == CallState.WAITING


@pytest.mark.django_db
def test_a_caller_whose_turn_comes_after_the_longest_wait_hears_the_fallback(
    summer_number: TrackingNumber, paced: None, scheduled: list[Any], agent_calls: list[Any]
) -> None:
    summer_number.campaign.max_wait_seconds = 30
    summer_number.campaign.save()
    line_ahead(45)

    ncco, call = answer()

    # The greeting, then the campaign's fallback (a voicemail here), at once.
    assert ncco[0]["action"] == "talk"
    assert ncco[1:] == call_flow.fallback_ncco(call)
    assert ncco[1:][-2]["action"] == "record"
    assert call.state == CallState.FALLBACK and call.fallback_at is not None
    assert agent_calls == [] and scheduled == []


@pytest.mark.django_db
def test_a_429_that_would_outlast_the_longest_wait_moves_the_caller_to_the_fallback(
    summer_number: TrackingNumber, paced: None, scheduled: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    moved: list[int] = []
    monkeypatch.setattr(
        agent_dispatch.call_flow, "caller_to_fallback", lambda *, call_id, reason: moved.append(call_id) or True
    )
    _ncco, call = answer()
    Call.objects.filter(pk=call.pk).update(started_at=timezone.now() - timedelta(seconds=119), rate_limited=3)

    agent_dispatch.requeue(call_id=call.pk, attempt=0)

    assert moved == [call.pk]
    assert scheduled == []


@pytest.mark.django_db
def test_reconcile_leaves_a_queued_caller_alone_until_its_time_is_long_past(
    summer_number: TrackingNumber, paced: None, scheduled: list[Any]
) -> None:
    line_ahead(30)
    _ncco, call = answer()
    call = Call.objects.with_related().get(pk=call.pk)
    Call.objects.filter(pk=call.pk).update(started_at=timezone.now() - timedelta(seconds=60))
    call.refresh_from_db()
    assert not reconcile._agent_never_rung(call, timezone.now())
    assert call.ring_at is not None
    assert reconcile._agent_never_rung(call, call.ring_at + timedelta(seconds=60))


# --- the connect strategy ------------------------------------------------------------------------


@pytest.mark.django_db
def test_connect_strategy_caller_beyond_the_limit_holds_then_is_moved_to_the_connect(
    summer_number: TrackingNumber, paced: None, scheduled: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    summer_number.campaign.strategy = Strategy.CONNECT
    summer_number.campaign.save()
    transfers: list[tuple[str, list[dict[str, Any]]]] = []
    monkeypatch.setattr(vonage_adapter, "credentials_configured", lambda: True)
    monkeypatch.setattr(
        vonage_adapter,
        "transfer_to_ncco",
        lambda *, uuid, ncco, region_url="": transfers.append((uuid, ncco)),
    )
    line_ahead(5)

    ncco, call = answer()

    # No connect now: Vonage would count it over the limit. Greeting, then the hold.
    assert [action["action"] for action in ncco] == ["talk", "conversation"]
    assert ncco[1]["startOnEnter"] is False and ncco[1]["musicOnHoldUrl"]
    assert scheduled == [(call.pk, 0, call.ring_at)]

    agent_dispatch.ring_when_due(call_id=call.pk, attempt=0, ring_at=call.ring_at)

    ((uuid, moved_to),) = transfers
    assert uuid == ANSWER["uuid"]
    assert moved_to[-1]["action"] == "connect"
    assert moved_to[-1]["endpoint"][0]["number"] == "447700900999"


@pytest.mark.django_db
def test_connect_strategy_caller_due_now_is_connected_at_once(
    summer_number: TrackingNumber, paced: None, scheduled: list[Any]
) -> None:
    summer_number.campaign.strategy = Strategy.CONNECT
    summer_number.campaign.save()
    ncco, call = answer()
    assert ncco[-1]["action"] == "connect"
    assert call.ring_at is None and scheduled == []


@pytest.fixture
def transfers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[dict[str, Any]]]]:
    moved: list[tuple[str, list[dict[str, Any]]]] = []
    monkeypatch.setattr(vonage_adapter, "credentials_configured", lambda: True)
    monkeypatch.setattr(vonage_adapter, "warm_up", lambda: None)
    monkeypatch.setattr(
        vonage_adapter, "transfer_to_ncco", lambda *, uuid, ncco, region_url="": moved.append((uuid, ncco))
    )
    return moved


@pytest.mark.django_db
def test_reconcile_connects_a_held_caller_whose_timer_died(
    summer_number: TrackingNumber, paced: None, scheduled: list[Any], transfers: list[Any]
) -> None:
    summer_number.campaign.strategy = Strategy.CONNECT
    summer_number.campaign.save()
    line_ahead(5)
    _ncco, call = answer()
    now = call.ring_at + timedelta(seconds=30)  # the process holding the timer died; nobody moved the caller

    report = reconcile.ReconcileReport()
    reconcile._queued_connects_enforce(now=now, report=report, dry_run=False)

    assert report.rung == 1
    ((uuid, ncco),) = transfers
    assert uuid == ANSWER["uuid"] and ncco[-1]["action"] == "connect"
    assert Call.objects.get(pk=call.pk).ring_at is None
    # Once: the next run finds nothing to do.
    reconcile._queued_connects_enforce(now=now, report=report, dry_run=False)
    assert len(transfers) == 1


@pytest.mark.django_db
def test_reconcile_moves_a_caller_held_past_the_longest_wait_to_the_fallback(
    summer_number: TrackingNumber, paced: None, scheduled: list[Any], transfers: list[Any]
) -> None:
    summer_number.campaign.strategy = Strategy.CONNECT
    summer_number.campaign.save()
    line_ahead(5)
    _ncco, call = answer()
    now = call.started_at + timedelta(seconds=summer_number.campaign.max_wait_seconds + 1)

    report = reconcile.ReconcileReport()
    reconcile._queued_connects_enforce(now=now, report=report, dry_run=False)

    assert report.moved_to_fallback == 1
    ((_uuid, ncco),) = transfers
    assert ncco == call_flow.fallback_ncco(call)
    call.refresh_from_db()
    assert call.state == CallState.FALLBACK and call.fallback_at is not None
