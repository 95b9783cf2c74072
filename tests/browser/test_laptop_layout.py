"""Every admin page a marketer or a supervisor uses fits a 1366 × 768 laptop screen:
no horizontal scrolling of the page or of its main content.

Screenshots of each page at that size are written to ``tests/browser/screenshots/``
(the README shows them).
"""

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command

from calls.models import Call
from calls.roles import ROLE_PERMISSIONS
from campaigns.models import Campaign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DEMO = Path(__file__).resolve().parents[2] / "campaigns" / "demo_campaigns.json"
PASSWORD = "a-long-test-password-42"
LAPTOP = {"width": 1366, "height": 768}

# Whether the page, and its main content, is wider than the window.
OVERFLOW = """() => {
  const main = document.querySelector('#content-main') || document.querySelector('#content');
  return {
    page: document.documentElement.scrollWidth,
    window: window.innerWidth,
    main: main ? main.scrollWidth : 0,
    mainBox: main ? main.clientWidth : 0,
  };
}"""


def staff(username: str, group: str) -> User:
    role, _ = Group.objects.get_or_create(name=group)
    role.permissions.set(
        Permission.objects.get(content_type__app_label=app, codename=codename)
        for app, codename in ROLE_PERMISSIONS[group]
    )
    user = User.objects.create_user(username=username, password=PASSWORD, is_staff=True)
    user.groups.add(role)
    return user


@pytest.fixture
def laptop(chromium_browser: Any) -> Any:
    context = chromium_browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def log_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def assert_fits(page: Any, name: str, screenshots: Path | None) -> None:
    sizes = page.evaluate(OVERFLOW)
    if screenshots is not None:
        page.screenshot(path=str(screenshots / f"{name}.png"))
    assert sizes["page"] <= sizes["window"], f"{name}: the page is {sizes['page']} px wide in {sizes['window']} px"
    assert sizes["main"] <= sizes["mainBox"], f"{name}: the content is {sizes['main']} px in {sizes['mainBox']} px"


@pytest.fixture
def business(db: None) -> Call:
    """The demo campaigns as a business's own (not demo data), a year of calls, and one
    call taken from start to end by the simulator."""
    call_command("import_campaigns", str(DEMO), verbosity=0)
    Campaign.objects.update(is_demo=False)
    call_command("seed_calls", count=300, days=30, verbosity=0, allow_production=True)
    call_command("simulate_call", to="447700900001", from_="447946000123", verbosity=0)
    return Call.objects.filter(legs__isnull=False).distinct().get()


@pytest.mark.parametrize("user", ["sam", "marion"])
def test_every_page_fits_a_laptop_screen(
    live_server: Any, laptop: Any, screenshots: Path, business: Call, user: str
) -> None:
    staff("sam", "Supervisors")
    staff("marion", "Marketing")
    base = live_server.url
    log_in(laptop, base, user)
    campaign = Campaign.objects.get(name="Summer offer")
    pages = {
        "admin-home": "/admin/",
        "call-list": "/admin/calls/call/",
        "call-detail": f"/admin/calls/call/{business.pk}/change/",
        "report": "/admin/calls/call/report/",
        "campaign-list": "/admin/campaigns/campaign/",
        "campaign-form": f"/admin/campaigns/campaign/{campaign.pk}/change/",
        "number-list": "/admin/campaigns/trackingnumber/",
        "numbers-without-campaign": "/admin/campaigns/campaign/numbers-without-campaign/",
        "event-list": "/admin/calls/callevent/",
    }
    for name, path in pages.items():
        laptop.goto(f"{base}{path}")
        laptop.wait_for_selector("#content")
        # The README's screenshots: the supervisor's pages, and the marketer's campaign pages.
        keep = (user == "sam") != name.startswith("campaign-")
        assert_fits(laptop, name, screenshots if keep else None)
    # Opened, the call's records from Vonage scroll inside their fold, not the page.
    laptop.goto(f"{base}/admin/calls/call/{business.pk}/change/")
    laptop.click("#call-records > summary")
    assert_fits(laptop, "call-detail-records", screenshots if user == "sam" else None)


def test_the_call_list_shows_what_a_supervisor_reads(live_server: Any, laptop: Any, business: Call) -> None:
    staff("sam", "Supervisors")
    log_in(laptop, live_server.url, "sam")
    laptop.goto(f"{live_server.url}/admin/calls/call/")
    headers = [h.strip().lower() for h in laptop.locator("#result_list thead th").all_inner_texts() if h.strip()]
    assert headers == ["started at", "campaign", "source", "caller", "outcome", "wait", "talk", "tags"]
    # Every column is on screen, none behind a scroll.
    last = laptop.locator("#result_list thead th").last.bounding_box()
    assert last["x"] + last["width"] <= LAPTOP["width"]


def test_the_campaign_list_keeps_answer_rate_and_active_on_screen(
    live_server: Any, laptop: Any, business: Call
) -> None:
    staff("marion", "Marketing")
    log_in(laptop, live_server.url, "marion")
    laptop.goto(f"{live_server.url}/admin/campaigns/campaign/")
    for column in ("column-recent_answer_rate", "column-is_active"):
        box = laptop.locator(f"#result_list thead th.{column}").bounding_box()
        assert box is not None and box["x"] + box["width"] <= LAPTOP["width"], column
    row = laptop.locator("#result_list tbody tr").first.bounding_box()
    line = laptop.evaluate("parseFloat(getComputedStyle(document.querySelector('#result_list td')).lineHeight)")
    assert row["height"] < 3 * line  # one line a row, not six


def test_the_call_page_leads_with_the_outcome_and_the_timeline(live_server: Any, laptop: Any, business: Call) -> None:
    staff("sam", "Supervisors")
    log_in(laptop, live_server.url, "sam")
    laptop.goto(f"{live_server.url}/admin/calls/call/{business.pk}/change/")
    assert laptop.inner_text("#call-outcome") == "Answered"
    steps = laptop.locator("#call-timeline tbody th").all_inner_texts()
    for step in ("Greeting", "On hold", "Agent ringing", "Whisper", "Talking", "Ended"):
        assert step in steps
    # Above the fold, before the record's fields; Vonage's records folded away.
    assert laptop.locator("#call-timeline").bounding_box()["y"] < LAPTOP["height"]
    assert not laptop.is_visible("#call-records .inline-group")
