"""Blocking a caller tagged spam: who may, what is refused, and the attack itself: the
blocked caller calls again and is told so and hung up, with nobody rung."""

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calls import annotations, live_board, reports
from calls.annotations import BLOCKED_MESSAGE
from calls.models import BlockedCaller, BuiltinTag, Call, CallNote, CallState, CallTag, Outcome, Tag
from campaigns.models import TrackingNumber
from tests.calls.conftest import member
from tests.calls.test_call_flow import CALLER_UUID, dial, status
from tests.conftest import VonageRecorder
from tests.factories import CallFactory

pytestmark = pytest.mark.django_db

SPAMMER = "447946000123"  # the number tests/calls/test_call_flow.py's dial() calls from


def url(call: Call, action: str) -> str:
    return reverse(f"admin:calls_call_{action}", args=[call.pk])


def spam_call(*, caller: str = SPAMMER, **fields: Any) -> Call:
    call = CallFactory.create(caller_number=caller, **fields)
    annotations.call_tag_add(call=call, tag=Tag.objects.get(builtin=BuiltinTag.SPAM), user=AnonymousUser())
    return call


def database() -> tuple[list[Any], list[Any]]:
    return list(BlockedCaller.objects.values_list("number", "call_id")), list(CallNote.objects.values_list("text"))


# --- blocking and unblocking ----------------------------------------------------------------


def test_a_supervisor_blocks_a_caller_tagged_spam_and_the_call_keeps_it_in_its_history(supervisor: Client) -> None:
    call = spam_call()

    response = supervisor.post(url(call, "block"), {"reason": "Robocalls every hour"})

    assert response.status_code == 302
    blocked = BlockedCaller.objects.get()
    assert (blocked.number, blocked.call, blocked.reason) == (SPAMMER, call, "Robocalls every hour")
    assert blocked.blocked_by == User.objects.get(username="supervisors")
    page = supervisor.get(reverse("admin:calls_call_change", args=[call.pk])).content.decode()
    assert "number is blocked since" in page
    assert "Unblock this caller" in page
    assert [e.detail for e in annotations.call_history(call)][
        -1
    ] == "Blocked this caller's number: Robocalls every hour"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: CallFactory.create(caller_number=SPAMMER), "Only a caller whose call is tagged spam can be blocked"),
        (lambda: spam_call(caller=""), "withheld"),
    ],
    ids=["not tagged spam", "withheld number"],
)
def test_blocking_is_refused_with_a_reason_and_changes_nothing(supervisor: Client, make: Any, reason: str) -> None:
    call = make()
    before = database()

    response = supervisor.post(url(call, "block"), {"reason": "spam"})

    assert response.status_code == 400
    assert reason in response.content.decode()
    assert database() == before


def test_a_withheld_spam_call_says_it_cannot_be_blocked_and_offers_no_button(supervisor: Client) -> None:
    call = spam_call(caller="")

    page = supervisor.get(reverse("admin:calls_call_change", args=[call.pk])).content.decode()

    assert "it cannot be blocked" in page
    assert "Block this caller" not in page


def test_a_number_blocked_twice_is_refused_the_second_time(supervisor: Client) -> None:
    first, second = spam_call(), spam_call()
    supervisor.post(url(first, "block"))
    before = database()

    response = supervisor.post(url(second, "block"))

    assert response.status_code == 400
    assert "blocked already" in response.content.decode()
    assert database() == before


def test_marketing_and_agents_may_not_block_and_nothing_changes(marketing: Client) -> None:
    call = spam_call()

    assert marketing.post(url(call, "block")).status_code == 403
    assert member("Agents").post(url(call, "block")).status_code == 403
    assert not BlockedCaller.objects.exists()


def test_unblocking_lets_the_caller_through_again_and_is_noted_on_the_call(
    supervisor: Client, client: Client, summer_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    call = spam_call()
    supervisor.post(url(call, "block"))

    response = supervisor.post(url(call, "unblock"))

    assert response.status_code == 302
    assert not BlockedCaller.objects.exists()
    assert [e.detail for e in annotations.call_history(call)][-1] == "Unblocked this caller's number."
    dial(client)
    assert len(vonage.placed) == 1


def test_deleting_a_block_in_the_admin_unblocks_with_a_note(admin_client: Client, supervisor: Client) -> None:
    call = spam_call()
    supervisor.post(url(call, "block"))
    blocked = BlockedCaller.objects.get()

    admin_client.post(reverse("admin:calls_blockedcaller_delete", args=[blocked.pk]), {"post": "yes"})

    assert not BlockedCaller.objects.exists()
    assert call.notes.last().text == "Unblocked this caller's number."


def test_supervisors_see_the_blocked_numbers_in_the_admin(supervisor: Client) -> None:
    call = spam_call()
    supervisor.post(url(call, "block"))

    listed = supervisor.get(reverse("admin:calls_blockedcaller_changelist")).content.decode()

    assert "+44 7946 000123" in listed


# --- the attack: the blocked caller calls again ----------------------------------------------


def test_a_blocked_caller_hears_a_short_message_and_nobody_is_rung(
    supervisor: Client, client: Client, summer_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    supervisor.post(url(spam_call(), "block"))

    ncco = dial(client)

    # Talk only, in the campaign's voice: the NCCO ends and Vonage hangs up.
    campaign = summer_number.campaign
    assert ncco == [{"action": "talk", "text": BLOCKED_MESSAGE, "language": campaign.language, "style": 0}]
    assert vonage.placed == []
    call = Call.objects.get(legs__uuid=CALLER_UUID)
    assert (call.outcome, call.state, call.resolution) == (Outcome.IN_PROGRESS, CallState.FALLBACK, Outcome.BLOCKED)
    assert call.agent_requested_at is None
    assert not CallTag.objects.filter(call=call).exists()

    status(client, CALLER_UUID, "completed")

    call.refresh_from_db()
    assert (call.outcome, call.state) == (Outcome.BLOCKED, CallState.ENDED)
    assert call.get_outcome_display() == "Blocked"
    page = supervisor.get(reverse("admin:calls_call_change", args=[call.pk])).content.decode()
    assert "The caller&#x27;s number is blocked: they hear that we cannot take the call" in page
    assert vonage.placed == [] and vonage.transfers == []


def test_a_retried_answer_for_a_blocked_caller_gets_the_same_answer_and_rings_nobody(
    supervisor: Client, client: Client, summer_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    supervisor.post(url(spam_call(), "block"))

    first, retry = dial(client), dial(client)

    assert retry == first
    assert Call.objects.filter(legs__uuid=CALLER_UUID).count() == 1
    assert vonage.placed == []


def test_a_withheld_caller_is_never_taken_for_a_blocked_one(
    client: Client, summer_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    # A block on an empty number cannot be made (the database refuses it too)...
    with pytest.raises(IntegrityError), transaction.atomic():
        BlockedCaller.objects.create(number="")
    # ...and a withheld caller is put through.
    response = client.get("/answer_inbound", {"to": "447700900001", "from": "", "uuid": CALLER_UUID})

    assert response.status_code == 200
    assert len(vonage.placed) == 1


def test_other_callers_still_get_through_while_one_is_blocked(
    supervisor: Client, client: Client, summer_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    supervisor.post(url(spam_call(caller="447946000999"), "block"))

    ncco = dial(client)

    assert [action["action"] for action in ncco][-1] == "conversation"  # on hold for the agent
    assert len(vonage.placed) == 1


# --- a blocked call is not a missed one -------------------------------------------------------


def test_blocked_calls_are_counted_as_blocked_not_missed_nor_in_the_answer_rate() -> None:
    zone = ZoneInfo(settings.TIME_ZONE)
    started = datetime(2026, 11, 2, 10, tzinfo=zone)
    CallFactory.create(outcome=Outcome.ANSWERED, started_at=started, state=CallState.ENDED)
    CallFactory.create(outcome=Outcome.MISSED, started_at=started, state=CallState.ENDED)
    CallFactory.create(outcome=Outcome.BLOCKED, started_at=started, state=CallState.ENDED)
    period = reports.ReportPeriod(start=started.date(), end=started.date())

    row = reports.totals(reports.campaign_rows(period))

    assert row.calls == 3
    assert row.outcomes[Outcome.BLOCKED] == 1
    assert row.answer_rate == pytest.approx(1 / 2)  # the blocked call did not ring an agent
    board = live_board.live_board(now=started + timedelta(hours=1)).today
    assert (board.calls, board.answered, board.missed) == (3, 1, 1)
    assert Outcome.BLOCKED not in reports.UNANSWERED_OUTCOMES  # the heatmap's missed calls too


def test_the_report_has_a_blocked_column_that_opens_the_blocked_calls(admin_client: Client) -> None:
    today = timezone.localdate()
    blocked = CallFactory.create(outcome=Outcome.BLOCKED)
    CallFactory.create(outcome=Outcome.ANSWERED)

    response = admin_client.get(reverse("admin:calls_call_report"), {"start": today, "end": today})

    assert "Blocked" in response.context["columns"]
    index = 1 + reports.REPORT_OUTCOMES.index(Outcome.BLOCKED)
    cell = response.context["total"]["cells"][index]
    assert cell["text"] == 1
    assert list(admin_client.get(cell["url"]).context["cl"].result_list) == [blocked]
