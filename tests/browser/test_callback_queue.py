"""A supervisor works the call-back queue in a real browser: adds their own phone to their
staff profile, presses Call back on one caller (the Vonage adapter is the recorder) and
marks another handled with a note.

Screenshot for the README: ``callback_queue.png``.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from calls.models import Call, CallbackHandled, CallDirection, CallState, Outcome, StaffProfile
from tests.browser.test_admin_journey import log_in, staff
from tests.conftest import VonageRecorder
from tests.factories import CallFactory, CampaignFactory, TrackingNumberFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_supervisor_calls_one_caller_back_and_marks_another_handled(
    live_server: Any, page: Any, screenshots: Path, vonage: VonageRecorder
) -> None:
    summer = CampaignFactory.create(name="Summer offer", topic="the summer offer")
    billboard = TrackingNumberFactory.create(number="447700900001", campaign=summer, source="M4 billboard")
    winter = CampaignFactory.create(name="Winter offer", topic="the winter offer")
    radio = TrackingNumberFactory.create(number="447700900002", campaign=winter, source="Radio advert")
    now = timezone.now()

    def missed(number: Any, caller: str, minutes_ago: int, outcome: str, **fields: Any) -> Call:
        return CallFactory.create(
            tracking_number=number,
            caller_number=caller,
            outcome=outcome,
            state=CallState.ENDED,
            started_at=now - timedelta(minutes=minutes_ago),
            **fields,
        )

    voicemail = missed(
        billboard,
        "447946000123",
        95,
        Outcome.VOICEMAIL,
        recording_url="https://api.nexmo.com/v1/files/aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        recording_seconds=23,
    )
    missed(billboard, "447946000123", 40, Outcome.MISSED)
    missed(billboard, "447946000456", 70, Outcome.ABANDONED)
    closed = missed(radio, "447946000789", 180, Outcome.CLOSED)
    user = staff("sam", "Supervisors")
    base = live_server.url

    log_in(page, base, "sam")
    page.click("text=Call-back queue: callers nobody has spoken to yet")
    page.wait_for_selector("h1:has-text('Call-back queue')")
    # Oldest first, one entry per caller per campaign, with their tries.
    assert page.locator("tr[data-call]").count() == 3
    assert page.inner_text(f"tr[data-call='{voicemail.pk}'] td.number") == "2"
    assert page.locator(f"tr[data-call='{voicemail.pk}'] .voicemail-player audio").count() == 1

    # No phone on the profile yet: Call back says so and places nothing.
    page.click(f"tr[data-call='{voicemail.pk}'] .call-back-form input[type=submit]")
    page.wait_for_selector(".messagelist .error")
    assert "Your staff profile has no phone number" in page.inner_text(".messagelist")
    assert vonage.placed == []

    page.click("#staff-phone a")
    page.fill("#id_phone", "+44 7700 900555")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    assert StaffProfile.objects.get(user=user).phone == "447700900555"

    page.goto(f"{base}/admin/calls/call/callbacks/")
    page.click(f"tr[data-call='{voicemail.pk}'] .call-back-form input[type=submit]")
    page.wait_for_selector(".messagelist .success")
    assert "Your phone is ringing" in page.inner_text(".messagelist")
    [placed] = vonage.placed
    assert (placed["to"], placed["from_"]) == ("447700900555", "447700900001")
    callback = Call.objects.get(direction=CallDirection.CALLBACK)
    assert (callback.callback_of_id, callback.placed_by_id) == (voicemail.pk, user.pk)
    row = page.locator(f"tr[data-call='{voicemail.pk}']")
    assert row.locator(".callback-status").inner_text() == "Call-back under way"
    assert row.locator(".call-back-form input[type=submit]").is_disabled()
    page.screenshot(path=str(screenshots / "callback_queue.png"), full_page=True)

    page.fill(f"#note-{closed.pk}", "Rang from my mobile: booked a visit for Tuesday.")
    page.click(f"tr[data-call='{closed.pk}'] .handled-form input[type=submit]")
    page.wait_for_selector(".messagelist .success")
    assert page.locator(f"tr[data-call='{closed.pk}']").count() == 0
    handled = CallbackHandled.objects.get()
    assert (handled.call_id, handled.handled_by_id) == (closed.pk, user.pk)
    assert handled.note == "Rang from my mobile: booked a visit for Tuesday."

    # The note is kept on the call's page.
    page.goto(f"{base}/admin/calls/call/{closed.pk}/change/")
    assert "booked a visit for Tuesday" in page.inner_text(".field-callback_record")
