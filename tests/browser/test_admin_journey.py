"""A marketer and a supervisor in a real browser: edit a topic, see the preview change,
take a call, find it in the history with the new whisper, read the report, download CSV.

The README's screenshots are taken by ``test_laptop_layout.py``, at a laptop's size.
"""

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command

from calls.models import Call, Outcome
from calls.roles import ROLE_PERMISSIONS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DEMO = Path(__file__).resolve().parents[2] / "campaigns" / "demo_campaigns.json"
PASSWORD = "a-long-test-password-42"


def staff(username: str, group: str) -> User:
    """A user in one of the roles (transactional tests flush the groups the migration made)."""
    role, _ = Group.objects.get_or_create(name=group)
    role.permissions.set(
        Permission.objects.get(content_type__app_label=app, codename=codename)
        for app, codename in ROLE_PERMISSIONS[group]
    )
    user = User.objects.create_user(username=username, password=PASSWORD, is_staff=True)
    user.groups.add(role)
    return user


def log_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def test_marketing_edit_reaches_the_next_call_the_history_the_report_and_the_csv(live_server: Any, page: Any) -> None:
    call_command("import_campaigns", str(DEMO), verbosity=0)
    staff("marion", "Marketing")
    staff("sam", "Supervisors")
    base = live_server.url

    # Marion edits the summer offer's topic and watches the preview follow.
    log_in(page, base, "marion")
    page.goto(f"{base}/admin/campaigns/campaign/")
    # The demo campaigns are demo data: hidden until she shows them, with one click.
    assert page.locator("#result_list a:text('Summer offer')").count() == 0
    page.click("#changelist-filter a:text('Shown')")
    page.click("#result_list a:text('Summer offer')")
    page.wait_for_selector("#whisper-preview[data-state=ready]")
    assert "the summer offer" in page.inner_text("#whisper-preview-text")
    page.fill("#id_topic", "the autumn sale")
    page.wait_for_function("document.querySelector('#whisper-preview-text').innerText.includes('the autumn sale')")
    assert float(page.inner_text("#whisper-preview-seconds")) > 0
    assert page.is_visible("#whisper-preview-listen")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")

    # A caller rings the billboard number (the simulator plays Vonage's part).
    call_command("simulate_call", to="447700900001", from_="447946000123", verbosity=0)
    call = Call.objects.get()
    assert call.outcome == Outcome.ANSWERED

    # The call is in the history, with the whisper the agent actually heard.
    page.goto(f"{base}/admin/calls/call/?demo=show")
    row = page.locator("#result_list tbody tr").first
    assert "Summer offer" in row.inner_text()
    assert "Answered" in row.inner_text()
    row.locator("a").first.click()
    page.wait_for_selector("text=Incoming call regarding the autumn sale")

    # The report counts it, and its figure opens exactly that call.
    page.goto(f"{base}/admin/")
    page.click("#reports-module a.section")
    page.wait_for_selector("#by-campaign")
    page.check("#id_demo")
    page.click("text=Show the report")
    page.wait_for_selector("#by-campaign")
    summer = page.locator("#by-campaign tbody tr", has_text="Summer offer")
    assert summer.locator("td").first.inner_text().strip() == "1"
    assert page.locator(".report-chart svg").count() == 1
    summer.locator("td a").first.click()
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 1

    # Marketing may not export; a supervisor downloads both CSVs.
    page.context.clear_cookies()
    log_in(page, base, "sam")
    page.goto(f"{base}/admin/calls/call/report/?demo=show")
    with page.expect_download() as report_download:
        page.click("text=Download CSV")
    report_lines = list(csv.reader(io.StringIO(Path(report_download.value.path()).read_text())))
    assert report_lines[0][:3] == ["table", "row", "calls"]
    assert ["campaign", "Summer offer", "1"] in [line[:3] for line in report_lines]

    page.goto(f"{base}/admin/calls/call/?demo=show")
    with page.expect_download() as list_download:
        page.click("a.calls-csv")
    calls_csv = Path(list_download.value.path()).read_text()
    assert "Incoming call regarding the autumn sale" in calls_csv
    assert "Summer offer" in calls_csv


def test_marketing_sees_no_csv_link_and_is_refused_the_export(live_server: Any, page: Any) -> None:
    call_command("import_campaigns", str(DEMO), verbosity=0)
    staff("marion", "Marketing")
    log_in(page, live_server.url, "marion")
    page.goto(f"{live_server.url}/admin/calls/call/report/")
    page.wait_for_selector("#by-campaign")
    assert page.locator("text=Download CSV").count() == 0
    response = page.goto(f"{live_server.url}/admin/calls/call/csv/")
    assert response is not None and response.status == 403
