"""A supervisor in a real browser watches the live board while the test plays Vonage's
part through the webhooks: a call appears on hold, moves to talking, and leaves the board
when both legs complete, with no reload. Then the report's "When calls come" heatmaps.

Screenshots for the README: ``live-board.png`` and ``heatmap.png``.
"""

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from calls.models import Call, CallState, LegRole, LegStatus, Outcome
from tests.browser.test_admin_journey import log_in, staff
from tests.conftest import VonageRecorder, callback_path, post_json, with_fields
from tests.factories import CallFactory, CallLegFactory, CampaignFactory, TrackingNumberFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CALLER_UUID = "31111111-1111-4111-8111-111111111111"
CONVERSATION = "CON-31111111-1111-4111-8111-111111111111"


def event(webhooks: Client, uuid: str, status: str, *, direction: str, at: datetime | None = None) -> None:
    payload = {
        "uuid": uuid,
        "status": status,
        "direction": direction,
        "conversation_uuid": CONVERSATION,
        "timestamp": (at or timezone.now()).isoformat().replace("+00:00", "Z"),
    }
    assert post_json(webhooks, "/event", payload).status_code == 200


def test_a_supervisor_watches_a_call_arrive_connect_and_leave_without_a_reload(
    live_server: Any, page: Any, screenshots: Path, vonage: VonageRecorder
) -> None:
    summer = CampaignFactory.create(name="Summer offer", greeting="Hello.", max_wait_seconds=60)
    billboard = TrackingNumberFactory.create(number="447700900001", campaign=summer, source="M4 billboard")
    winter = CampaignFactory.create(name="Winter offer", max_wait_seconds=300)
    radio = TrackingNumberFactory.create(number="447700900002", campaign=winter, source="Radio advert")
    # Two callers already there, for the picture: one waiting past Summer's 60 s, one
    # whose agent is ringing on the second number of the hunt list.
    now = timezone.now()
    CallFactory.create(tracking_number=billboard, started_at=now - timedelta(seconds=75), caller_number="447946000555")
    ringing = CallFactory.create(tracking_number=radio, started_at=now - timedelta(seconds=25), attempt=1)
    CallLegFactory.create(
        call=ringing, role=LegRole.AGENT, status=LegStatus.RINGING, attempt=1, to_number="447700900888"
    )
    CallFactory.create(tracking_number=radio, state=CallState.ENDED, outcome=Outcome.ANSWERED)
    staff("sam", "Supervisors")
    base = live_server.url

    log_in(page, base, "sam")
    page.goto(f"{base}/admin/calls/call/")
    page.click("text=Live board")
    page.wait_for_selector("#live-calls")
    page.evaluate("window.__stillTheSamePage = true")
    assert page.locator("#live-calls tr[data-call]").count() == 2

    # A caller rings the billboard number.
    webhooks = Client()
    inbound = {"to": billboard.number, "from": "447946000123", "uuid": CALLER_UUID, "conversation_uuid": CONVERSATION}
    assert post_json(webhooks, "/answer_inbound", inbound).status_code == 200
    event(webhooks, CALLER_UUID, "answered", direction="inbound")
    call = Call.objects.get(legs__uuid=CALLER_UUID)
    row = f'#live-calls tr[data-call="{call.pk}"]'
    page.wait_for_selector(f'{row}[data-phase="on-hold"]')
    assert "+44 7946 000123" in page.inner_text(row)  # Supervisors see callers' numbers

    # The agent answers (the whisper was spoken long ago): caller and agent talk.
    assert len(vonage.placed) == 1  # the agent is rung (inline in the tests)
    agent = "agent-1"
    path = with_fields(callback_path("answer_outbound", call=call.pk), {"uuid": agent, "to": "447700900999"})
    assert webhooks.get(path).status_code == 200
    event(webhooks, agent, "answered", direction="outbound", at=timezone.now() - timedelta(seconds=40))
    page.wait_for_selector(f'{row}[data-phase="talking"]')
    # The clock ticks in the browser between refreshes.
    first = page.inner_text(f"{row} .clock")
    page.wait_for_function(
        "([sel, first]) => document.querySelector(sel).innerText !== first", arg=[f"{row} .clock", first]
    )
    assert page.locator('#live-queues tr.over th:text("Summer offer")').count() == 1
    page.screenshot(path=str(screenshots / "live-board.png"), full_page=True)

    # Both legs complete: the call leaves the board, and today's totals count it.
    event(webhooks, CALLER_UUID, "completed", direction="inbound")
    event(webhooks, agent, "completed", direction="outbound")
    page.wait_for_selector(row, state="detached")
    page.wait_for_function("document.querySelector('[data-total=answered]').innerText === '2'")
    assert page.locator("#live-calls tr[data-call]").count() == 2

    # No reload: the marker set on the first load survived, and the board refreshed itself.
    assert page.evaluate("window.__stillTheSamePage") is True
    assert page.evaluate("window.liveBoard.refreshes") >= 3
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1


def test_a_supervisor_reads_when_calls_come_and_opens_a_cell(live_server: Any, page: Any, screenshots: Path) -> None:
    tokyo = CampaignFactory.create(name="Tokyo offer", timezone="Asia/Tokyo")
    poster = TrackingNumberFactory.create(campaign=tokyo, source="Shibuya poster")
    # Four weeks of calls, busiest on weekday mornings and lunchtimes in Tokyo.
    rng = random.Random(13)
    monday = datetime(2026, 11, 2, tzinfo=UTC) - timedelta(hours=9)  # 00:00 Monday in Tokyo
    for day in range(28):
        for _ in range(rng.randint(3, 12) if day % 7 < 5 else rng.randint(0, 4)):
            hour = rng.choice([8, 9, 9, 10, 10, 11, 12, 12, 13, 14, 15, 16, 17, 18, 20])
            outcome = Outcome.ANSWERED if rng.random() < 0.75 else rng.choice([Outcome.MISSED, Outcome.VOICEMAIL])
            at = monday + timedelta(days=day, hours=hour, minutes=rng.randint(0, 59))
            CallFactory.create(tracking_number=poster, started_at=at, outcome=outcome, state=CallState.ENDED)
    # 23:30 UTC on Monday 2 November: 08:30 on Tuesday in Tokyo.
    late = CallFactory.create(
        tracking_number=poster,
        started_at=datetime(2026, 11, 2, 23, 30, tzinfo=UTC),
        outcome=Outcome.MISSED,
        state=CallState.ENDED,
    )
    staff("sam", "Supervisors")
    base = live_server.url

    log_in(page, base, "sam")
    page.goto(f"{base}/admin/calls/call/report/?start=2026-11-01&end=2026-11-30&campaign={tokyo.pk}")
    section = page.locator("#when-calls-come")
    section.wait_for()
    assert "Asia/Tokyo" in section.inner_text()
    section.screenshot(path=str(screenshots / "heatmap.png"))

    # Tuesday 08:00 in the missed map opens the missed calls of that hour, the late one among them.
    tuesday = page.locator("#heatmap-missed tbody tr").nth(1)
    assert tuesday.locator("th").inner_text() == "Tuesday"
    cell = tuesday.locator("td").nth(8)
    count = int(cell.inner_text())
    cell.locator("a").click()
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == count
    assert page.locator(f'#result_list a[href*="/{late.pk}/change/"]').count() == 1
