"""A supervisor in a real browser tags a call, writes a note, finds the call through the
list's tag filter and reads both in the call's history; then takes the tag off and
sees that kept too. Saves the README's screenshot ``tags_and_notes.png``."""

from pathlib import Path
from typing import Any

import pytest

from calls.models import BuiltinTag, CallNote, CallTag, Outcome, Tag
from tests.browser.test_admin_journey import log_in, staff
from tests.factories import CallFactory, TrackingNumberFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def builtin_tags() -> None:
    """The migration's tags (transactional tests flush the tables before each test)."""
    for builtin in BuiltinTag:
        Tag.objects.get_or_create(builtin=builtin.value, defaults={"name": builtin.label})


def test_a_supervisor_tags_a_call_writes_a_note_and_finds_it_by_tag(
    live_server: Any, page: Any, screenshots: Path
) -> None:
    builtin_tags()
    staff("sam", "Supervisors")
    number = TrackingNumberFactory.create(number="447700900001", source="M4 billboard", campaign__name="Summer offer")
    call = CallFactory.create(
        tracking_number=number, outcome=Outcome.ANSWERED, caller_number="447946000123", wait_seconds=9, talk_seconds=95
    )
    CallFactory.create(tracking_number=number, outcome=Outcome.MISSED, caller_number="447946000555")
    base = live_server.url
    log_in(page, base, "sam")

    # The call's page: tag it a lead, then write a note.
    page.goto(f"{base}/admin/calls/call/{call.pk}/change/")
    assert page.inner_text("#call-tags").strip() == "No tags."
    page.select_option("#call-tag-choice", label="lead")
    page.click("#call-annotations button:text('Tag')")
    page.wait_for_selector(".messagelist .success")
    assert "lead" in page.inner_text("#call-tags")
    page.fill("#call-note-text", "Wants a quote for 40 windows; call back Monday.")
    page.click("#call-annotations button:text('Add note')")
    page.wait_for_selector("#call-history")
    history = page.inner_text("#call-history")
    assert "Tagged" in history and "lead" in history and "sam" in history
    assert "Wants a quote for 40 windows; call back Monday." in history

    # The list shows the tag, and its filter finds the call (and only it).
    page.goto(f"{base}/admin/calls/call/")
    page.click("#changelist-filter a:text-is('lead')")
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "lead" in rows.first.locator("td.field-tags_shown").inner_text()
    page.click("#changelist-filter a:text-is('No tag')")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 1
    assert "+44 7946 000555" in page.inner_text("#result_list tbody")

    # Tagged a sale too, the call's page is what the README shows.
    page.goto(f"{base}/admin/calls/call/{call.pk}/change/")
    page.select_option("#call-tag-choice", label="sale")
    page.click("#call-annotations button:text('Tag')")
    page.wait_for_selector(".messagelist .success")
    page.locator("#call-annotations").scroll_into_view_if_needed()
    page.locator("#call-annotations").screenshot(path=str(screenshots / "tags_and_notes.png"))

    # Taking the lead tag off keeps it in the history.
    page.click("#call-tags button[aria-label='Remove the tag lead']")
    page.wait_for_selector(".messagelist .success")
    assert "lead" not in page.inner_text("#call-tags")
    assert "Tag removed" in page.inner_text("#call-history")
    assert CallTag.objects.filter(call=call, removed_at__isnull=False).count() == 1
    assert CallNote.objects.filter(call=call).count() == 1
