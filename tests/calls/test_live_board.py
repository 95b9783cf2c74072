"""The live board: who may watch it, what each call in progress shows, the queues, today's
totals in the business's time zone, one query per refresh, and a call followed through
the webhooks from on hold to talking to gone."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from calls import live_board
from calls.live_board import AgentLeg, Phase, call_phase
from calls.models import Call, CallState, LegRole, LegStatus, Outcome
from campaigns.models import TrackingNumber
from tests.conftest import VonageRecorder, callback_path, post_json, with_fields
from tests.factories import CallFactory, CallLegFactory, CampaignFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db

BOARD = reverse("admin:calls_call_live")
FRAGMENT = reverse("admin:calls_call_live_fragment")
CALLER_UUID = "21111111-1111-4111-8111-111111111111"
CONVERSATION = "CON-21111111-1111-4111-8111-111111111111"


@pytest.fixture
def summer(db: None) -> TrackingNumber:
    campaign = CampaignFactory.create(name="Summer offer", greeting="Hello.", max_wait_seconds=60)
    return TrackingNumberFactory.create(number="447700900001", campaign=campaign, source="M4 billboard")


def rows(html: str) -> dict[int, str]:
    """The board's call rows by call id, as text."""
    found = re.findall(r'<tr data-call="(\d+)" data-phase="([a-z-]+)"[^>]*>(.*?)</tr>', html, re.S)
    return {int(pk): phase + " " + re.sub(r"<[^>]+>|\s+", " ", body) for pk, phase, body in found}


def live(number: TrackingNumber, *, ago: int, state: str = CallState.WAITING, **fields: Any) -> Call:
    return CallFactory.create(
        tracking_number=number, started_at=timezone.now() - timedelta(seconds=ago), state=state, **fields
    )


def agent_leg(call: Call, status: str, *, attempt: int = 0, number: str = "447700900999", **fields: Any) -> None:
    CallLegFactory.create(
        call=call, role=LegRole.AGENT, status=status, attempt=attempt, to_number=number, direction="outbound", **fields
    )


# --- who may watch --------------------------------------------------------------------------


def test_supervisors_watch_the_board_and_marketing_is_refused(supervisor: Client, marketing: Client) -> None:
    assert supervisor.get(BOARD).status_code == 200
    assert supervisor.get(FRAGMENT).status_code == 200
    assert marketing.get(BOARD).status_code == 403
    assert marketing.get(FRAGMENT).status_code == 403


def test_the_board_needs_a_staff_login(client: Client) -> None:
    response = client.get(FRAGMENT)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_call_list_and_the_home_link_to_the_board_for_those_who_may_watch(
    supervisor: Client, marketing: Client
) -> None:
    for page in (reverse("admin:calls_call_changelist"), reverse("admin:index")):
        assert BOARD in supervisor.get(page).content.decode()
        assert BOARD not in marketing.get(page).content.decode()


# --- what each call shows -------------------------------------------------------------------


def test_each_call_in_progress_shows_what_is_happening(admin_client: Client, summer: TrackingNumber) -> None:
    greeting = live(summer, ago=0)
    on_hold = live(summer, ago=30)
    ringing = live(summer, ago=40, attempt=1)
    agent_leg(ringing, LegStatus.FAILED, attempt=0)
    agent_leg(ringing, LegStatus.RINGING, attempt=1, number="447700900888")
    whisper = live(
        summer,
        ago=20,
        state=CallState.CONNECTED,
        whisper_text="Incoming call regarding the summer offer from the M4 billboard, please wait.",
        agent_answered_at=timezone.now() - timedelta(seconds=1),
    )
    talking = live(
        summer,
        ago=100,
        state=CallState.CONNECTED,
        whisper_text="Summer offer.",
        agent_answered_at=timezone.now() - timedelta(seconds=70),
    )
    fallback = live(summer, ago=200, state=CallState.FALLBACK, fallback_at=timezone.now() - timedelta(seconds=80))
    ended = live(summer, ago=300, state=CallState.ENDED, outcome=Outcome.ANSWERED)

    board = rows(admin_client.get(FRAGMENT).content.decode())

    assert set(board) == {greeting.pk, on_hold.pk, ringing.pk, whisper.pk, talking.pk, fallback.pk}
    assert ended.pk not in board
    assert board[greeting.pk].startswith("greeting ")
    assert board[on_hold.pk].startswith("on-hold ")
    assert board[ringing.pk].startswith("agent-ringing ")
    assert "Attempt 2, +44 7700 900888" in board[ringing.pk]
    assert board[whisper.pk].startswith("whisper ")
    assert board[talking.pk].startswith("talking ")
    assert "talking for" in board[talking.pk]
    assert board[fallback.pk].startswith("fallback ")
    # In order of arrival, and every row names its campaign and source.
    assert list(board) == [fallback.pk, talking.pk, ringing.pk, on_hold.pk, whisper.pk, greeting.pk]
    assert all("Summer offer" in text and "M4 billboard" in text for text in board.values())


def test_the_clock_counts_the_wait_then_the_talk() -> None:
    now = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    started = now - timedelta(seconds=90)
    answered = now - timedelta(seconds=60)
    phase, _, label, since = call_phase(
        state=CallState.CONNECTED,
        started_at=started,
        now=now,
        greeting="",
        whisper_text="One two three four five.",  # two and a half seconds
        accept_required=False,
        agent_answered_at=answered,
        fallback_at=None,
        agent=None,
    )
    assert (phase, label, since) == (Phase.TALKING, "talking for", answered + timedelta(seconds=2.5))

    # With press 1 to accept, the caller waits until the agent pressed it.
    agent = AgentLeg(
        status=LegStatus.ANSWERED,
        attempt=0,
        number="447700900999",
        answered_at=answered,
        accepted_at=None,
        declined_at=None,
    )
    phase, detail, label, since = call_phase(
        state=CallState.CONNECTED,
        started_at=started,
        now=now,
        greeting="",
        whisper_text="Hi.",
        accept_required=True,
        agent_answered_at=answered,
        fallback_at=None,
        agent=agent,
    )
    assert (phase, label, since) == (Phase.WHISPER, "waiting for", started)
    assert "press 1" in detail


def test_callers_numbers_are_masked_without_the_permission(
    supervisor: Client, admin_client: Client, summer: TrackingNumber
) -> None:
    live(summer, ago=5, caller_number="447946000123")
    live(summer, ago=5, caller_number="")

    # Someone who may watch the board but not see callers' numbers (a custom group).
    watcher = User.objects.create_user(username="watcher", password="x", is_staff=True)
    watcher.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="calls", codename__in=("view_call", "view_live_board"))
    )
    client = Client()
    client.force_login(watcher)
    masked = client.get(FRAGMENT).content.decode()
    assert "447946000123" not in masked
    assert "7946 000123" not in masked
    assert "…0123" in masked
    assert "withheld" in masked
    # Supervisors have calls.see_caller_numbers; a superuser has every permission.
    assert "+44 7946 000123" in supervisor.get(FRAGMENT).content.decode()
    assert "+44 7946 000123" in admin_client.get(FRAGMENT).content.decode()


# --- the queues and today's totals ------------------------------------------------------------


def test_each_campaign_shows_who_waits_and_the_longest_wait_marked_past_its_limit(summer: TrackingNumber) -> None:
    winter = TrackingNumberFactory.create(campaign=CampaignFactory.create(name="Winter offer", max_wait_seconds=300))
    live(summer, ago=90)  # past Summer's 60 s
    live(summer, ago=10)
    talking = live(summer, ago=500, state=CallState.DIRECT)  # not waiting: not in the queue
    live(winter, ago=100)

    board = live_board.live_board()

    queues = {queue.name: queue for queue in board.queues}
    assert queues["Summer offer"].waiting == 2
    assert queues["Summer offer"].longest_seconds(board.now) in (90, 91)
    assert queues["Summer offer"].over(board.now)
    assert queues["Winter offer"].waiting == 1
    assert not queues["Winter offer"].over(board.now)
    assert next(call for call in board.calls if call.id == talking.pk).phase == Phase.TALKING


def test_the_page_marks_a_wait_past_the_campaigns_limit(admin_client: Client, summer: TrackingNumber) -> None:
    late = live(summer, ago=90)
    early = live(summer, ago=10)

    html = admin_client.get(BOARD).content.decode()

    assert re.search(rf'<tr data-call="{late.pk}" data-phase="on-hold" class="over">', html)
    assert re.search(rf'<tr data-call="{early.pk}" data-phase="on-hold">', html)
    assert 'data-limit="60"' in html
    assert "calls/live_board.js" in html
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert scripts and all(src.startswith("/") for src in scripts)  # served here, no CDN


@override_settings(TIME_ZONE="Asia/Tokyo")
def test_todays_totals_count_the_business_day_in_its_time_zone(summer: TrackingNumber) -> None:
    now = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)  # 12:00 on 2 November in Tokyo

    def call(at: datetime, outcome: str) -> None:
        CallFactory.create(tracking_number=summer, started_at=at, outcome=outcome, state=CallState.ENDED)

    call(datetime(2026, 11, 1, 15, 30, tzinfo=UTC), Outcome.ANSWERED)  # 00:30 on the 2nd in Tokyo
    call(datetime(2026, 11, 1, 23, 30, tzinfo=UTC), Outcome.MISSED)  # 08:30 on the 2nd
    call(datetime(2026, 11, 1, 23, 45, tzinfo=UTC), Outcome.BUSY)
    call(datetime(2026, 11, 2, 1, 0, tzinfo=UTC), Outcome.CLOSED)  # counted, not in the rate
    call(datetime(2026, 11, 1, 14, 30, tzinfo=UTC), Outcome.ANSWERED)  # 23:30 on the 1st: yesterday

    today = live_board.live_board(now=now).today

    assert str(today.day) == "2026-11-02"
    assert (today.calls, today.answered, today.missed) == (4, 1, 2)
    assert today.answer_rate == pytest.approx(1 / 3)


def test_an_empty_board_still_has_todays_totals(admin_client: Client) -> None:
    html = admin_client.get(FRAGMENT).content.decode()
    assert "No call is in progress." in html
    assert "Nobody is waiting." in html
    assert 'data-total="calls">0<' in html


# --- one query per refresh -----------------------------------------------------------------


@pytest.mark.parametrize("calls", [1, 30])
def test_a_refresh_is_one_query_whatever_the_number_of_calls(
    supervisor: Client, django_assert_num_queries: Any, calls: int, summer: TrackingNumber
) -> None:
    for n in range(calls):
        call = live(summer, ago=n)
        agent_leg(call, LegStatus.RINGING)
        CallFactory.create(tracking_number=summer, state=CallState.ENDED, outcome=Outcome.ANSWERED)

    # session, user, the user's and their groups' permissions, then the board: one query
    with django_assert_num_queries(4 + 1):
        response = supervisor.get(FRAGMENT)
    assert len(rows(response.content.decode())) == calls


def test_a_superusers_refresh_is_one_query_after_the_session(
    admin_client: Client, django_assert_num_queries: Any, summer: TrackingNumber
) -> None:
    live(summer, ago=5)
    # session, user (a superuser's permissions are not read), then the board
    with django_assert_num_queries(2 + 1):
        admin_client.get(FRAGMENT)


def test_the_live_calls_are_read_through_the_partial_index(summer: TrackingNumber) -> None:
    for _ in range(20):
        live(summer, ago=5)
    for _ in range(200):
        live(summer, ago=600, state=CallState.ENDED, outcome=Outcome.ANSWERED)
    sql, params = live_board.board_statement(timezone.now())
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Statistics of these rows, not of whatever the table held when autovacuum last
            # looked (other tests' rows): the plan otherwise depends on the test order.
            cursor.execute("ANALYZE calls_call")
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        plan = "\n".join(str(row) for row in cursor.fetchall())
    assert "call_live" in plan


# --- a call followed through the webhooks ---------------------------------------------------


def event(client: Client, uuid: str, status: str, *, direction: str, at: datetime | None = None) -> None:
    payload = {
        "uuid": uuid,
        "status": status,
        "direction": direction,
        "conversation_uuid": CONVERSATION,
        "timestamp": (at or timezone.now()).isoformat().replace("+00:00", "Z"),
    }
    assert post_json(client, "/event", payload).status_code == 200


def test_a_call_through_the_webhooks_goes_from_on_hold_to_talking_to_gone(
    admin_client: Client, vonage: VonageRecorder, summer: TrackingNumber
) -> None:
    webhooks = Client()
    inbound = {"to": summer.number, "from": "447946000123", "uuid": CALLER_UUID, "conversation_uuid": CONVERSATION}
    assert post_json(webhooks, "/answer_inbound", inbound).status_code == 200
    event(webhooks, CALLER_UUID, "answered", direction="inbound", at=timezone.now() - timedelta(seconds=5))
    call = Call.objects.get()
    Call.objects.filter(pk=call.pk).update(started_at=timezone.now() - timedelta(seconds=5))  # greeting over

    assert rows(admin_client.get(FRAGMENT).content.decode())[call.pk].startswith("on-hold ")

    assert len(vonage.placed) == 1  # the agent is rung (inline in the tests)
    agent = "agent-1"
    path = with_fields(callback_path("answer_outbound", call=call.pk), {"uuid": agent, "to": "447700900999"})
    assert webhooks.get(path).status_code == 200
    event(webhooks, agent, "answered", direction="outbound", at=timezone.now() - timedelta(seconds=30))

    assert rows(admin_client.get(FRAGMENT).content.decode())[call.pk].startswith("talking ")

    event(webhooks, CALLER_UUID, "completed", direction="inbound")
    event(webhooks, agent, "completed", direction="outbound")

    assert call.pk not in rows(admin_client.get(FRAGMENT).content.decode())
    call.refresh_from_db()
    assert (call.state, call.outcome) == (CallState.ENDED, Outcome.ANSWERED)
    assert live_board.live_board().today.answered == 1


def test_supervisors_group_gets_the_permission_from_the_roles() -> None:
    from calls.roles import ROLE_PERMISSIONS

    assert ("calls", "view_live_board") in ROLE_PERMISSIONS["Supervisors"]
    assert ("calls", "view_live_board") not in ROLE_PERMISSIONS["Marketing"]
    assert Group.objects.get(name="Supervisors").permissions.filter(codename="view_live_board").exists()
