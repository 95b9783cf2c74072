"""The call page's voicemail player says why a recording cannot be played, instead of
sitting silently at 0:00."""

from typing import Any

import pytest
from django.contrib.auth.models import User

from calls import vonage_adapter
from calls.models import Outcome
from tests.factories import CallFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-test-password-42"


def test_the_player_says_why_the_voicemail_cannot_be_played(
    live_server: Any, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*, url: str) -> bytes:
        raise vonage_adapter.VonageUnavailable("Vonage did not answer within 2 seconds.")

    monkeypatch.setattr(vonage_adapter, "recording_download", unreachable)
    call = CallFactory.create(
        outcome=Outcome.VOICEMAIL,
        recording_url="https://api.nexmo.com/v1/files/aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        recording_seconds=42,
    )
    User.objects.create_superuser("admin", password=PASSWORD)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/calls/call/{call.pk}/change/")

    page.evaluate("document.querySelector('.voicemail-player audio').play().catch(() => {})")
    page.wait_for_selector(".voicemail-error:not([hidden])")

    text = page.inner_text(".voicemail-error")
    assert "could not be fetched from Vonage" in text
    assert "Vonage did not answer within 2 seconds." in text
