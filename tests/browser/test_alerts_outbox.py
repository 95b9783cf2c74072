"""A marketer adds an alert recipient on the campaign's page in a real browser; missed
calls are alerted; the outbox shows what was sent, what failed and why. Takes the README's
screenshot of the outbox."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from alerts import services
from alerts.models import AlertRecipient, Channel
from calls.models import Outcome
from tests.alerts.conftest import ended_call, recipient, summer_campaign
from tests.browser.test_admin_journey import log_in, staff

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_marketer_adds_a_recipient_and_sees_the_outbox(live_server: Any, page: Any, screenshots: Path) -> None:
    campaign = summer_campaign()
    staff("marion", "Marketing")
    base = live_server.url

    log_in(page, base, "marion")
    page.goto(f"{base}/admin/campaigns/campaign/{campaign.pk}/change/")
    page.click("text=Add another alert recipient")
    page.fill("#id_alert_recipients-0-address", "sales@example.com")
    page.select_option("#id_alert_recipients-0-frequency", "each_call")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    (added,) = AlertRecipient.objects.all()
    assert (added.channel, added.address, added.on_missed, added.on_voicemail) == (
        Channel.EMAIL,
        "sales@example.com",
        True,
        True,
    )
    # A number to text, whose SMS cannot go out: no Vonage account key is configured here.
    recipient(campaign, "447700900555", channel=Channel.SMS, created_at=added.created_at)

    ended_call(campaign, Outcome.MISSED, ended_ago=timedelta(0))
    ended_call(campaign, Outcome.VOICEMAIL, ended_ago=timedelta(0), caller_number="447946000999")
    report = services.alerts_run(now=timezone.now() + services.SETTLE + timedelta(seconds=1))
    assert (report.sent, report.retrying) == (2, 2)
    assert len(mail.outbox) == 2

    page.goto(f"{base}/admin/alerts/alertdelivery/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 4
    table = page.inner_text("#result_list")
    assert table.count("sales@example.com (Email)") == 2
    assert table.count("VonageUnavailable: VONAGE_API_KEY and VONAGE_API_SECRET are needed to send an SMS.") == 2
    page.screenshot(path=str(screenshots / "alerts_outbox.png"), full_page=True)

    page.click("#changelist-filter a:text('Any failure')")
    page.wait_for_url("**why=any**")
    assert page.locator("#result_list tbody tr").count() == 2
    assert "sales@example.com" not in page.inner_text("#result_list")
