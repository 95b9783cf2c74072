"""The campaign admin, as marketing staff use it."""

import html
import re
from datetime import date, time, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django import forms
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calls.models import Call, LegRole, Outcome
from calls.reports import ReportPeriod, campaign_rows
from campaigns.models import Campaign, ClosedAction, Fallback, OpeningHours, Strategy, TrackingNumber, Weekday
from campaigns.whisper import WHISPER_VARIABLES, speaking_seconds
from tests.conftest import callback_path, with_fields
from tests.factories import CallFactory, CampaignFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:campaigns_campaign_changelist")
ADD = reverse("admin:campaigns_campaign_add")


def change_url(campaign: Campaign) -> str:
    return reverse("admin:campaigns_campaign_change", args=[campaign.pk])


def _add_form(data: dict[str, Any], form: forms.BaseForm) -> None:
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field, forms.BooleanField):
            if value:
                data[form.add_prefix(name)] = "on"
        elif value is not None:
            data[form.add_prefix(name)] = value


def form_data(response: Any, **changes: Any) -> dict[str, Any]:
    """The body the page's form posts when nothing is touched, then ``changes``.

    Built from the rendered form, so a field added to the model later is posted with
    its default without these tests changing. Inline formsets keep only their saved
    rows; add rows with :func:`add_number`.
    """
    data: dict[str, Any] = {}
    _add_form(data, response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        data[management.add_prefix("TOTAL_FORMS")] = len(formset.initial_forms)
        for form in formset.initial_forms:
            _add_form(data, form)
    data.update(changes)
    data["_save"] = "Save"
    return data


def add_number(data: dict[str, Any], number: str, source: str = "", active: bool = True) -> None:
    """Fill in one more row of the tracking-number inline."""
    index = int(data["numbers-TOTAL_FORMS"])
    data[f"numbers-{index}-number"] = number
    data[f"numbers-{index}-source"] = source
    if active:
        data[f"numbers-{index}-is_active"] = "on"
    data["numbers-TOTAL_FORMS"] = index + 1


def add_hours(data: dict[str, Any], weekday: Weekday, opens: str, closes: str) -> None:
    """Fill in one more row of the opening-hours inline."""
    index = int(data["opening_hours-TOTAL_FORMS"])
    data[f"opening_hours-{index}-weekday"] = str(weekday.value)
    data[f"opening_hours-{index}-opens"] = opens
    data[f"opening_hours-{index}-closes"] = closes
    data["opening_hours-TOTAL_FORMS"] = index + 1


def new_campaign_data(admin_client: Client, **changes: Any) -> dict[str, Any]:
    fields = {"name": "Spring sale", "topic": "the spring sale", **changes}
    return form_data(admin_client.get(ADD), **fields)


def member(group: str, username: str | None = None) -> User:
    """A staff user in one of the roles calls.roles defines ("Marketing", "Supervisors")."""
    user = User.objects.create_user(username=username or group.lower(), password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


class _ElementText(HTMLParser):
    """The text inside the element with one id, and whether it carries ``hidden``."""

    def __init__(self, element_id: str) -> None:
        super().__init__()
        self.element_id = element_id
        self.depth = 0
        self.found = False
        self.hidden = False
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.depth += 1
        elif dict(attrs).get("id") == self.element_id:
            self.depth, self.found, self.hidden = 1, True, "hidden" in dict(attrs)

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)


def element(body: str, element_id: str) -> tuple[str, bool]:
    """``(text, hidden)`` of the element with ``element_id`` in a page; fails if there is none."""
    parser = _ElementText(element_id)
    parser.feed(body)
    assert parser.found, f"no element #{element_id}"
    return "".join(parser.parts).strip(), parser.hidden


def element_text(body: str, element_id: str) -> str:
    return element(body, element_id)[0]


def errors_of(response: Any) -> str:
    """Every error the admin page shows, main form and inlines, as one string."""
    parts = [str(response.context["adminform"].form.errors)]
    for inline in response.context["inline_admin_formsets"]:
        parts += [str(e) for e in inline.formset.errors]
        parts.append(str(inline.formset.non_form_errors()))
    return " ".join(parts)


# --- list ---------------------------------------------------------------------------------


def test_changelist_shows_campaigns_with_their_number_count(admin_client: Client) -> None:
    campaign = CampaignFactory.create(name="Summer offer", topic="the summer offer", destination="447700900123")
    TrackingNumberFactory.create_batch(3, campaign=campaign)
    CampaignFactory.create(name="Winter offer")

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    counts = {c.name: c.number_count for c in response.context["cl"].result_list}
    assert counts == {"Summer offer": 3, "Winter offer": 0}
    body = response.content.decode()
    assert "the summer offer" in body
    assert "+44 7700 900123" in body
    assert "Call centre (+44 7700 900999)" in body  # no destination: the configured default


@pytest.mark.parametrize("campaigns", [1, 20])
def test_changelist_query_count_does_not_grow_with_campaigns(
    admin_client: Client, django_assert_num_queries: Any, campaigns: int
) -> None:
    for campaign in CampaignFactory.create_batch(campaigns):
        numbers = TrackingNumberFactory.create_batch(2, campaign=campaign)
        OpeningHours.objects.create(campaign=campaign, weekday=Weekday.MONDAY, opens=time(9), closes=time(17))
        for outcome in (Outcome.ANSWERED, Outcome.MISSED, Outcome.CLOSED):
            CallFactory.create(tracking_number=numbers[0], outcome=outcome)
        CallFactory.create(tracking_number=numbers[1], started_at=timezone.now() - timedelta(days=30))
    admin_client.get(CHANGELIST)  # the session is warmed up

    # session, user, count, total count, page of campaigns with their number and call counts
    with django_assert_num_queries(5):
        response = admin_client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == campaigns
    assert {c.recent_call_count for c in response.context["cl"].result_list} == {3}


def _calls(campaign: Campaign, *outcomes: str, days_ago: int = 0) -> None:
    number = campaign.numbers.first() or TrackingNumberFactory.create(campaign=campaign)
    for outcome in outcomes:
        CallFactory.create(
            tracking_number=number, outcome=outcome, started_at=timezone.now() - timedelta(days=days_ago)
        )


def test_changelist_shows_calls_and_answer_rate_of_the_last_7_days(admin_client: Client) -> None:
    busy = CampaignFactory.create(name="Busy")
    _calls(busy, Outcome.ANSWERED, Outcome.ANSWERED, Outcome.ANSWERED, Outcome.MISSED)
    _calls(busy, Outcome.CLOSED, Outcome.IN_PROGRESS)  # not counted in the rate: nobody was rung (yet)
    _calls(busy, Outcome.MISSED, Outcome.MISSED, days_ago=10)  # before the period
    closed_only = CampaignFactory.create(name="Closed only")
    _calls(closed_only, Outcome.CLOSED)
    CampaignFactory.create(name="Quiet")

    response = admin_client.get(CHANGELIST)

    rows = {c.name: c for c in response.context["cl"].result_list}
    assert rows["Busy"].recent_call_count == 6
    assert rows["Quiet"].recent_call_count == 0
    admin = response.context["cl"].model_admin
    assert admin.recent_answer_rate(rows["Busy"]) == "75%"
    assert admin.recent_answer_rate(rows["Closed only"]) == "–"
    assert admin.recent_answer_rate(rows["Quiet"]) == "–"
    body = response.content.decode()
    assert "calls (7 days)" in body.lower()
    assert "answer rate (7 days)" in body.lower()
    assert "75%" in body


def test_changelist_answer_rate_is_the_reports_answer_rate(admin_client: Client) -> None:
    for name, outcomes in {
        "A": [Outcome.ANSWERED, Outcome.BUSY, Outcome.DECLINED, Outcome.VOICEMAIL, Outcome.CLOSED],
        "B": [Outcome.ANSWERED, Outcome.ANSWERED, Outcome.ABANDONED, Outcome.IN_PROGRESS, Outcome.FAILED],
        "C": [Outcome.MISSED],
    }.items():
        _calls(CampaignFactory.create(name=name), *outcomes)

    response = admin_client.get(CHANGELIST)

    admin = response.context["cl"].model_admin
    report = {row.label: row for row in campaign_rows(ReportPeriod.last_days(7))}
    for campaign in response.context["cl"].result_list:
        row = report[campaign.name]
        assert campaign.recent_call_count == row.calls
        assert row.answer_rate is not None
        assert admin.recent_answer_rate(campaign) == f"{row.answer_rate:.0%}"


def test_changelist_sorts_by_answer_rate(admin_client: Client) -> None:
    _calls(CampaignFactory.create(name="Half"), Outcome.ANSWERED, Outcome.MISSED)
    _calls(CampaignFactory.create(name="All"), Outcome.ANSWERED)
    _calls(CampaignFactory.create(name="None"), Outcome.MISSED, Outcome.MISSED, Outcome.MISSED)

    columns = list(admin_client.get(CHANGELIST).context["cl"].list_display)
    rate = columns.index("recent_answer_rate")
    response = admin_client.get(CHANGELIST, {"o": f"-{rate}"})

    assert [c.name for c in response.context["cl"].result_list] == ["All", "Half", "None"]


def test_changelist_links_the_call_count_to_the_campaigns_calls(admin_client: Client) -> None:
    campaign = CampaignFactory.create(name="Linked")
    _calls(campaign, Outcome.ANSWERED, Outcome.MISSED)
    _calls(campaign, Outcome.MISSED, days_ago=10)

    body = admin_client.get(CHANGELIST).content.decode()

    link = re.search(rf'href="([^"]*campaign__id__exact={campaign.pk}&[^"]*)">2<', body)
    assert link is not None
    calls = admin_client.get(html.unescape(link.group(1)))
    assert calls.status_code == 200
    assert calls.context["cl"].result_count == 2


@pytest.mark.parametrize("term", ["+44 7700 900001", "447700900001", "M4 billboard", "summer", "Summer offer"])
def test_search_finds_a_campaign_by_name_topic_number_or_source(
    admin_client: Client, summer_number: TrackingNumber, term: str
) -> None:
    TrackingNumberFactory.create(number="447700900002", source="Radio", campaign=CampaignFactory.create(topic="winter"))

    response = admin_client.get(CHANGELIST, {"q": term})

    assert [c.name for c in response.context["cl"].result_list] == ["Summer offer"]
    assert response.context["cl"].result_list[0].number_count == 1


def test_changelist_shows_and_filters_by_strategy(admin_client: Client) -> None:
    CampaignFactory.create(name="Rung by the app", strategy=Strategy.CONFERENCE)
    CampaignFactory.create(name="Rung by Vonage", strategy=Strategy.CONNECT)

    listed = admin_client.get(CHANGELIST)
    connect = admin_client.get(CHANGELIST, {"strategy__exact": Strategy.CONNECT})

    # In a few words, so the list keeps one line a campaign.
    assert "waiting" in listed.context["cl"].list_display
    assert ">Ringing</td>" in listed.content.decode() and ">Hold music</td>" in listed.content.decode()
    assert [c.name for c in connect.context["cl"].result_list] == ["Rung by Vonage"]


def test_filter_by_active(admin_client: Client) -> None:
    CampaignFactory.create(name="On", is_active=True)
    CampaignFactory.create(name="Off", is_active=False)

    response = admin_client.get(CHANGELIST, {"is_active__exact": "0"})

    assert [c.name for c in response.context["cl"].result_list] == ["Off"]


def test_active_is_toggled_from_the_list(admin_client: Client) -> None:
    on = CampaignFactory.create(name="A on", is_active=True)
    off = CampaignFactory.create(name="B off", is_active=False)

    response = admin_client.post(
        CHANGELIST,
        {
            "form-TOTAL_FORMS": "2",
            "form-INITIAL_FORMS": "2",
            "form-0-id": str(on.pk),
            # an unticked checkbox is simply absent
            "form-1-id": str(off.pk),
            "form-1-is_active": "on",
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    on.refresh_from_db()
    off.refresh_from_db()
    assert on.is_active is False
    assert off.is_active is True


@pytest.mark.parametrize(("action", "active"), [("activate", True), ("deactivate", False)])
def test_activate_and_deactivate_actions(admin_client: Client, action: str, active: bool) -> None:
    chosen = CampaignFactory.create_batch(2, is_active=not active)
    other = CampaignFactory.create(is_active=not active)

    response = admin_client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [c.pk for c in chosen]},
        follow=True,
    )

    assert response.status_code == 200
    assert f"2 campaigns are now {'active' if active else 'inactive'}." in response.content.decode()
    assert set(Campaign.objects.filter(is_active=active)) == set(chosen)
    other.refresh_from_db()
    assert other.is_active is not active


# --- change form --------------------------------------------------------------------------


def test_change_form_renders_with_numbers_and_whisper_preview(
    admin_client: Client, summer_number: TrackingNumber
) -> None:
    campaign = summer_number.campaign
    campaign.whisper_template = "Call about {topic} for {campaign}, from {source}, on {number}"
    campaign.save()

    response = admin_client.get(change_url(campaign))

    assert response.status_code == 200
    body = response.content.decode()
    assert 'value="+44 7700 900001"' in body  # the inline row, shown as everywhere else
    assert "Whisper preview" in body
    assert "Call about the summer offer for Summer offer, from M4 billboard, on 4 4 7 7 0 0 9 0 0 0 0 1" in body


def test_change_form_is_organised_in_sections(admin_client: Client, summer_number: TrackingNumber) -> None:
    response = admin_client.get(change_url(summer_number.campaign))

    sections = [(name, list(options["fields"])) for name, options in response.context["adminform"].fieldsets]
    assert sections == [
        ("Campaign", ["name", "topic", "is_active", "is_demo"]),
        (
            "What people hear",
            [
                "greeting",
                "hold_music_url",
                "whisper_template",
                "whisper_preview",
                "callback_template",
                "language",
                "style",
            ],
        ),
        (
            "Ringing the agent",
            ["strategy", "destination", "hunt_numbers", "ring_seconds", "require_accept", "accept_prompt"],
        ),
        ("When nobody answers", ["max_wait_seconds", "fallback", "fallback_message", "voicemail_prompt"]),
        ("Opening hours", ["timezone", "starts_on", "ends_on", "closed_action", "closed_message"]),
    ]
    body = response.content.decode()
    assert "further destinations" in body.lower()
    assert "press 1 to accept" in body.lower()
    numbers, hours, alerts = response.context["inline_admin_formsets"]
    assert numbers.formset.prefix == "numbers"
    assert hours.formset.prefix == "opening_hours"
    assert alerts.formset.prefix == "alert_recipients"
    assert [f["name"] for f in hours.fields()] == ["weekday", "opens", "closes"]


def test_every_editable_campaign_field_is_on_the_form(admin_client: Client) -> None:
    response = admin_client.get(ADD)

    form = response.context["adminform"].form
    expected = {f.name for f in Campaign._meta.concrete_fields if f.editable and not f.primary_key}
    assert expected <= set(form.fields)


def test_whisper_preview_reads_sample_caller_values_and_the_speaking_time(
    admin_client: Client, summer_number: TrackingNumber
) -> None:
    campaign = summer_number.campaign
    campaign.whisper_template = "{topic}. Caller {caller}, {calls_before}"
    campaign.save()

    body = admin_client.get(change_url(campaign)).content.decode()

    text = "the summer offer. Caller 4 4 7 9 4 6 0 0 0 1 2 3, 2 earlier calls"
    assert element_text(body, "whisper-preview-text") == text
    assert element_text(body, "whisper-preview-seconds") == f"{speaking_seconds(text):g}"
    assert "As heard for a call to +44 7700 900001." in element_text(body, "whisper-preview-note")
    assert element(body, "whisper-preview-accept")[1]  # hidden: no accept prompt
    assert not element(body, "whisper-preview-warning")[1]  # twelve digits take a while to say
    assert element(body, "whisper-preview-error") == ("", True)


def test_whisper_preview_times_the_accept_prompt_too(admin_client: Client) -> None:
    campaign = CampaignFactory.create(topic="the autumn offer", require_accept=True, accept_prompt="Press 1 now.")

    body = admin_client.get(change_url(campaign)).content.decode()

    with_prompt = speaking_seconds("Incoming call regarding the autumn offer Press 1 now.")
    text, hidden = element(body, "whisper-preview-accept")
    assert not hidden
    assert text == f"({with_prompt:g} seconds with the accept prompt)"
    assert element(body, "whisper-preview-warning")[1]  # hidden: the whisper alone is short


def test_whisper_preview_warns_when_the_whisper_runs_long(admin_client: Client) -> None:
    campaign = CampaignFactory.create(
        topic="the extended summer weekend offer for new customers in the south west", name="Summer weekend"
    )
    campaign.whisper_template = "Incoming call regarding {topic}, campaign {campaign}, from {source} on {number}"
    campaign.save()

    body = admin_client.get(change_url(campaign)).content.decode()

    text, hidden = element(body, "whisper-preview-warning")
    assert float(element_text(body, "whisper-preview-seconds")) > 5
    assert not hidden
    assert text == "Agents lose the caller's first words when whispers run long."


def test_whisper_preview_without_numbers_uses_a_sample_number(admin_client: Client) -> None:
    campaign = CampaignFactory.create(topic="the autumn offer", whisper_template="{topic} from {source} on {number}")

    body = admin_client.get(change_url(campaign)).content.decode()

    assert element_text(body, "whisper-preview-text") == "the autumn offer from M4 billboard on 4 4 7 7 0 0 9 0 0 1 2 3"
    assert "no number yet" in element_text(body, "whisper-preview-note")


def test_whisper_preview_of_a_number_without_a_source_reads_no_source(admin_client: Client) -> None:
    campaign = CampaignFactory.create(topic="the autumn offer", whisper_template="{topic} from {source}.")
    TrackingNumberFactory.create(campaign=campaign, source="")

    body = admin_client.get(change_url(campaign)).content.decode()

    assert element_text(body, "whisper-preview-text") == "the autumn offer from ."  # as a real call would


def test_whisper_preview_is_live_on_the_form(admin_client: Client, summer_number: TrackingNumber) -> None:
    body = admin_client.get(change_url(summer_number.campaign)).content.decode()

    assert "campaigns/whisper_preview.js" in body
    assert "campaigns/whisper_preview.css" in body
    assert f'data-preview-url="{reverse("admin:campaigns_campaign_preview")}"' in body
    assert 'data-language="en-GB"' in body
    assert element(body, "whisper-preview-listen") == ("Listen", True)  # shown by the script where it can speak


def test_add_form_renders_the_preview(admin_client: Client) -> None:
    response = admin_client.get(ADD)

    assert response.status_code == 200
    body = response.content.decode()
    assert element_text(body, "whisper-preview-text") == "Incoming call regarding"
    assert "campaigns/whisper_preview.js" in body


def test_whisper_template_help_lists_every_variable(admin_client: Client) -> None:
    body = admin_client.get(ADD).content.decode()

    help_text = Campaign._meta.get_field("whisper_template").help_text
    for name in WHISPER_VARIABLES:
        assert f"{{{name}}}" in help_text
    assert help_text in body


def test_creating_a_campaign_with_a_number_stores_it_normalised(admin_client: Client) -> None:
    data = new_campaign_data(admin_client, destination="+44 20 7946 0000")
    add_number(data, "+44 7700 900001", source="Bus stop")

    response = admin_client.post(ADD, data)

    assert response.status_code == 302, errors_of(response)
    campaign = Campaign.objects.get(name="Spring sale")
    assert campaign.destination == "442079460000"
    assert [(n.number, n.source, n.is_active) for n in campaign.numbers.all()] == [("447700900001", "Bus stop", True)]


def test_creating_a_campaign_with_its_flow_and_opening_hours(admin_client: Client) -> None:
    data = new_campaign_data(
        admin_client,
        strategy=Strategy.CONNECT,
        hunt_numbers="+44 20 7946 0001\n\n0044 20 7946 0002, 442079460001",
        ring_seconds="30",
        require_accept="on",
        accept_prompt="Press 1 for the spring sale.",
        max_wait_seconds="90",
        fallback=Fallback.MESSAGE,
        language="de-DE",
        style="2",
        timezone="Europe/Berlin",
        starts_on="2025-03-01",
        ends_on="2025-05-31",
        closed_action=ClosedAction.VOICEMAIL,
    )
    add_hours(data, Weekday.MONDAY, "09:00", "17:30")
    add_hours(data, Weekday.SATURDAY, "10:00", "13:00")

    response = admin_client.post(ADD, data)

    assert response.status_code == 302, errors_of(response)
    campaign = Campaign.objects.get(name="Spring sale")
    assert campaign.strategy == Strategy.CONNECT
    assert campaign.hunt_numbers == "442079460001\n442079460002"  # normalised, each once
    assert (campaign.ring_seconds, campaign.max_wait_seconds, campaign.require_accept) == (30, 90, True)
    assert (campaign.fallback, campaign.closed_action) == (Fallback.MESSAGE, ClosedAction.VOICEMAIL)
    assert (campaign.language, campaign.style, campaign.timezone) == ("de-DE", 2, "Europe/Berlin")
    assert (campaign.starts_on, campaign.ends_on) == (date(2025, 3, 1), date(2025, 5, 31))
    assert [(h.weekday, h.opens, h.closes) for h in campaign.opening_hours.all()] == [
        (Weekday.MONDAY, time(9), time(17, 30)),
        (Weekday.SATURDAY, time(10), time(13)),
    ]


def test_opening_hours_are_edited_on_the_campaign(admin_client: Client, summer_campaign: Campaign) -> None:
    OpeningHours.objects.create(campaign=summer_campaign, weekday=Weekday.MONDAY, opens=time(9), closes=time(17))

    response = admin_client.get(change_url(summer_campaign))
    assert 'value="09:00"' in response.content.decode()  # hours and minutes, as people write them
    data = form_data(response, **{"opening_hours-0-closes": "18:00"})
    add_hours(data, Weekday.TUESDAY, "08:00", "12:00")
    saved = admin_client.post(change_url(summer_campaign), data)

    assert saved.status_code == 302, errors_of(saved)
    assert [(h.weekday, h.opens, h.closes) for h in summer_campaign.opening_hours.all()] == [
        (Weekday.MONDAY, time(9), time(18)),
        (Weekday.TUESDAY, time(8), time(12)),
    ]


def _refused(response: Any) -> str:
    assert response.status_code == 200
    assert not Campaign.objects.filter(name="Spring sale").exists()
    return errors_of(response)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        pytest.param(
            {"hunt_numbers": "+44 20 7946 0001\n0800 CALL NOW"},
            "hunt_numbers",
            "“0800 CALL NOW” is not a phone number in international format",
            id="bad-further-destination",
        ),
        pytest.param(
            {"greeting": "Hello from {campaing}"},
            "greeting",
            "Unknown variable {campaing}",
            id="unknown-greeting-variable",
        ),
        pytest.param({"ring_seconds": "3"}, "ring_seconds", "Ring each destination for 5 to 120 seconds", id="ring-3"),
        pytest.param({"ring_seconds": "121"}, "ring_seconds", "5 to 120 seconds", id="ring-121"),
        pytest.param({"max_wait_seconds": "5"}, "max_wait_seconds", "between 10 and 3,600 seconds", id="wait-5"),
        pytest.param(
            {"timezone": "Europe/Londres"}, "timezone", "“Europe/Londres” is not a time zone", id="bad-time-zone"
        ),
        pytest.param(
            {"starts_on": "2025-06-01", "ends_on": "2025-05-31"},
            "ends_on",
            "The campaign ends before it starts.",
            id="ends-before-it-starts",
        ),
        pytest.param(
            {"fallback_message": "x" * 1501}, "fallback_message", "at most 1500 characters", id="long-message"
        ),
    ],
)
def test_flow_settings_errors_name_the_problem(
    admin_client: Client, changes: dict[str, str], field: str, message: str
) -> None:
    response = admin_client.post(ADD, new_campaign_data(admin_client, **changes))

    _refused(response)
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field]
    assert message in str(errors[field])
    assert "Constraint" not in str(errors)  # the sentence, not the database's constraint name


@pytest.mark.parametrize(("opens", "closes"), [("17:00", "09:00"), ("09:00", "09:00")])
def test_opening_hours_must_open_before_they_close(admin_client: Client, opens: str, closes: str) -> None:
    data = new_campaign_data(admin_client)
    add_hours(data, Weekday.FRIDAY, opens, closes)

    errors = _refused(admin_client.post(ADD, data))

    assert f"It closes at {closes}, which is not after it opens at {opens}." in errors
    assert "Constraint" not in errors
    assert not OpeningHours.objects.exists()


def test_unknown_whisper_variable_is_a_form_error_naming_it(admin_client: Client) -> None:
    data = new_campaign_data(admin_client, whisper_template="Incoming call regarding {tpoic}")

    response = admin_client.post(ADD, data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "{tpoic}" in str(errors["whisper_template"])
    assert "Unknown variable {tpoic}" in response.content.decode()
    assert not Campaign.objects.filter(name="Spring sale").exists()


def test_bad_destination_is_a_form_error(admin_client: Client) -> None:
    data = new_campaign_data(admin_client, destination="call centre")

    response = admin_client.post(ADD, data)

    assert response.status_code == 200
    assert "not a phone number in international format" in str(response.context["adminform"].form.errors["destination"])
    assert not Campaign.objects.filter(name="Spring sale").exists()


def test_a_number_another_campaign_has_is_an_error(admin_client: Client, summer_number: TrackingNumber) -> None:
    data = new_campaign_data(admin_client)
    add_number(data, "+44 7700 900001")  # typed differently from the stored 447700900001

    response = admin_client.post(ADD, data)

    assert response.status_code == 200
    assert "already exists" in errors_of(response)
    assert not Campaign.objects.filter(name="Spring sale").exists()
    assert TrackingNumber.objects.get().campaign == summer_number.campaign


def test_the_same_number_twice_in_one_save_is_an_error(admin_client: Client) -> None:
    data = new_campaign_data(admin_client)
    add_number(data, "+44 7700 900001", source="Bus stop")
    add_number(data, "447700900001", source="Radio")

    response = admin_client.post(ADD, data)

    assert response.status_code == 200
    assert "Please correct the duplicate data for number" in errors_of(response)
    assert not TrackingNumber.objects.exists()
    assert not Campaign.objects.exists()


def test_an_invalid_number_is_an_error(admin_client: Client) -> None:
    data = new_campaign_data(admin_client)
    add_number(data, "0800 CALL NOW")

    response = admin_client.post(ADD, data)

    assert response.status_code == 200
    assert "not a phone number in international format" in errors_of(response)
    assert not Campaign.objects.exists()


def test_editing_the_topic_changes_the_very_next_calls_whisper(
    admin_client: Client, client: Client, summer_number: TrackingNumber
) -> None:
    campaign = summer_number.campaign
    assert "the summer offer" in _answered_call(client, "first")[0]

    data = form_data(admin_client.get(change_url(campaign)), topic="the new winter deals")
    response = admin_client.post(change_url(campaign), data)
    assert response.status_code == 302, errors_of(response)

    spoken, call = _answered_call(client, "second")
    assert spoken == "Incoming call regarding the new winter deals"
    assert call.whisper_text == "Incoming call regarding the new winter deals"
    # the number rows posted unchanged are still there, unchanged
    assert list(campaign.numbers.values_list("number", "source")) == [("447700900001", "M4 billboard")]


def _answered_call(client: Client, name: str) -> tuple[str, Call]:
    """A caller dials the summer number and the agent answers: what does the agent hear?"""
    caller_uuid = f"aaaaaaaa-0000-4000-8000-{name:0>12}"
    inbound = client.get(
        "/answer_inbound",
        {
            "to": "447700900001",
            "from": "447946000123",
            "uuid": caller_uuid,
            "conversation_uuid": f"CON-{caller_uuid}",
            "region_url": "https://api-eu-1.vonage.com",
        },
    )
    assert inbound.status_code == 200
    assert [action["action"] for action in inbound.json()] == ["talk", "notify", "conversation"]
    call = Call.objects.get(legs__uuid=caller_uuid)
    agent = call.legs.get(role=LegRole.AGENT)

    outbound = client.get(
        with_fields(
            callback_path("answer_outbound", call=call.pk),
            {
                "to": "447700900999",
                "from": "447700900001",
                "uuid": agent.uuid,
                "conversation_uuid": agent.conversation_uuid,
                "region_url": "https://api-eu-1.vonage.com",
            },
        )
    )
    assert outbound.status_code == 200
    talk = outbound.json()[0]
    assert talk["action"] == "talk"
    call.refresh_from_db()
    return talk["text"], call


# --- tracking numbers on their own -------------------------------------------------------

NUMBERS = reverse("admin:campaigns_trackingnumber_changelist")


def test_tracking_number_list_filters_and_searches(admin_client: Client, summer_number: TrackingNumber) -> None:
    other = TrackingNumberFactory.create(number="447700900002", source="Radio", is_active=False)

    listed = admin_client.get(NUMBERS)
    by_campaign = admin_client.get(NUMBERS, {"campaign__id__exact": other.campaign_id})
    inactive = admin_client.get(NUMBERS, {"is_active__exact": "0"})
    searched = admin_client.get(NUMBERS, {"q": "+44 7700 900001"})
    by_campaign_name = admin_client.get(NUMBERS, {"q": "summer"})

    assert listed.status_code == 200
    assert "M4 billboard" in listed.content.decode()
    assert list(by_campaign.context["cl"].result_list) == [other]
    assert list(inactive.context["cl"].result_list) == [other]
    assert list(searched.context["cl"].result_list) == [summer_number]
    assert list(by_campaign_name.context["cl"].result_list) == [summer_number]


@pytest.mark.parametrize("numbers", [1, 30])
def test_tracking_number_list_query_count_does_not_grow(
    admin_client: Client, django_assert_num_queries: Any, numbers: int
) -> None:
    TrackingNumberFactory.create_batch(numbers)
    admin_client.get(NUMBERS)

    # session, user, campaigns for the filter, count, total count, page of numbers with
    # their campaigns
    with django_assert_num_queries(6):
        response = admin_client.get(NUMBERS)
    assert len(response.context["cl"].result_list) == numbers


def test_a_number_added_on_its_own_is_normalised(admin_client: Client) -> None:
    campaign = CampaignFactory.create()

    response = admin_client.post(
        reverse("admin:campaigns_trackingnumber_add"),
        {"number": "0044 7700-900001", "campaign": campaign.pk, "source": "Flyer", "is_active": "on"},
    )

    assert response.status_code == 302
    assert TrackingNumber.objects.get().number == "447700900001"


def test_admin_index_is_titled_call_whisper(admin_client: Client) -> None:
    body = admin_client.get(reverse("admin:index")).content.decode()

    assert "Call Whisper" in body
    assert "Campaigns, numbers and call history" in body


def test_the_time_zone_is_chosen_from_a_list(admin_client: Client) -> None:
    form = admin_client.get(ADD).context["adminform"].form
    choices = dict(form.fields["timezone"].choices)
    assert "Europe/London" in choices and "America/New_York" in choices
    assert '<select name="timezone"' in admin_client.get(ADD).content.decode()


def test_the_campaign_form_speaks_the_marketers_language(admin_client: Client) -> None:
    body = admin_client.get(ADD).content.decode()
    for developer_words in ("CALL_CENTER_NUMBER", "BCP-47", "no REST call", "Hold music url", "Style:"):
        assert developer_words not in body
    for label in ("Hold music:", "Call centre number:", "Spoken language:", "Voice:", "Time zone:"):
        assert label in body


def test_numbers_typed_in_national_form_are_saved_as_international_digits(admin_client: Client, settings: Any) -> None:
    settings.PHONE_NUMBER_DISPLAY = "national"
    data = new_campaign_data(admin_client, destination="07700 900998")
    add_number(data, "07700 900123", source="Radio")
    response = admin_client.post(ADD, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.get(name="Spring sale")
    assert campaign.destination == "447700900998"
    assert list(campaign.numbers.values_list("number", flat=True)) == ["447700900123"]
    # ...and shown back the way they were typed.
    body = admin_client.get(change_url(campaign)).content.decode()
    assert 'value="07700 900998"' in body and 'value="07700 900123"' in body
