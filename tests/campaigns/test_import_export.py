"""``import_campaigns`` and ``export_campaigns``: the campaigns file in and out."""

import io
import json
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from campaigns.models import (
    DEFAULT_ACCEPT_PROMPT,
    DEFAULT_CALLBACK_WHISPER,
    DEFAULT_CLOSED_MESSAGE,
    DEFAULT_FALLBACK_MESSAGE,
    DEFAULT_GREETING,
    DEFAULT_VOICEMAIL_PROMPT,
    DEFAULT_WHISPER,
    Campaign,
    ClosedAction,
    Fallback,
    OpeningHours,
    Strategy,
    TrackingNumber,
    Weekday,
)
from campaigns.services import campaigns_export, campaigns_import
from tests.factories import CampaignFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db

DEMO_FILE = Path(__file__).resolve().parents[2] / "campaigns" / "demo_campaigns.json"


def summer(**overrides: Any) -> dict[str, Any]:
    campaign: dict[str, Any] = {
        "name": "Summer offer",
        "topic": "the summer offer",
        "destination": "447700900999",
        "numbers": [{"number": "447700900001", "source": "M4 billboard"}],
    }
    campaign.update(overrides)
    return campaign


def winter(**overrides: Any) -> dict[str, Any]:
    campaign: dict[str, Any] = {
        "name": "Winter offer",
        "topic": "the winter offer",
        "destination": "447700900999",
        "numbers": [{"number": "447700900003", "source": "Newspaper advert"}],
    }
    campaign.update(overrides)
    return campaign


def import_file(tmp_path: Path, campaigns: Any) -> str:
    path = tmp_path / "campaigns.json"
    path.write_text(campaigns if isinstance(campaigns, str) else json.dumps(campaigns))
    out = io.StringIO()
    call_command("import_campaigns", str(path), stdout=out)
    return out.getvalue()


def export_text(**options: Any) -> str:
    out = io.StringIO()
    call_command("export_campaigns", stdout=out, **options)
    return out.getvalue()


def database_state() -> list[tuple[Any, ...]]:
    campaigns = list(Campaign.objects.order_by("pk").values_list())
    numbers = list(TrackingNumber.objects.order_by("pk").values_list())
    hours = list(OpeningHours.objects.order_by("pk").values_list())
    return [*campaigns, *numbers, *hours]


def week(campaign: Campaign) -> list[tuple[int, time, time]]:
    return [(h.weekday, h.opens, h.closes) for h in campaign.opening_hours.all()]


# Every optional key a campaign has for how its calls are handled, none at its default.
FLOW: dict[str, Any] = {
    "strategy": "connect",
    "further_destinations": ["447700900998", "447700900997"],
    "ring_seconds": 25,
    "require_accept": True,
    "accept_prompt": "Press 1 to take the summer offer call.",
    "max_wait_seconds": 90,
    "fallback": "message",
    "fallback_message": "Nobody is free. Goodbye.",
    "voicemail_prompt": "Leave a message after the tone.",
    "language": "de-DE",
    "style": 2,
    "timezone": "Europe/Berlin",
    "starts_on": "2025-06-01",
    "ends_on": "2025-08-31",
    "closed_action": "voicemail",
    "closed_message": "We are closed.",
    "opening_hours": [
        {"day": "monday", "opens": "09:00", "closes": "17:30"},
        {"day": "saturday", "opens": "10:00", "closes": "13:00"},
    ],
}


# --- importing -------------------------------------------------------------------------


def test_the_demo_file_creates_both_campaigns_and_their_numbers() -> None:
    out = io.StringIO()
    call_command("import_campaigns", str(DEMO_FILE), stdout=out)

    summer_offer = Campaign.objects.get(name="Summer offer")
    winter_offer = Campaign.objects.get(name="Winter offer")
    assert summer_offer.topic == "the summer offer"
    assert winter_offer.topic == "the winter offer"
    assert summer_offer.destination == winter_offer.destination == "447700900999"
    assert {(n.number, n.source) for n in summer_offer.numbers.all()} == {
        ("447700900001", "M4 billboard"),
        ("447700900002", "Radio advert"),
    }
    assert [(n.number, n.source) for n in winter_offer.numbers.all()] == [("447700900003", "Newspaper advert")]
    assert summer_offer.whisper_template == DEFAULT_WHISPER
    assert summer_offer.greeting == DEFAULT_GREETING
    assert summer_offer.is_active
    assert "Campaigns: 2 created, 0 updated, 0 unchanged." in out.getvalue()
    assert "Numbers: 3 created, 0 updated, 0 moved, 0 unchanged." in out.getvalue()


def test_importing_the_same_file_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    import_file(tmp_path, [summer(), winter()])
    before = database_state()

    out = import_file(tmp_path, [summer(), winter()])

    assert database_state() == before  # updated_at included: nothing was saved
    assert out.strip() == (
        "Campaigns: 0 created, 0 updated, 2 unchanged. Numbers: 0 created, 0 updated, 0 moved, 2 unchanged."
    )


def test_numbers_are_stored_as_e164_digits(tmp_path: Path) -> None:
    import_file(
        tmp_path,
        [summer(destination="+44 7700 900999", numbers=[{"number": "+44 7700 900001", "source": "M4"}])],
    )

    assert TrackingNumber.objects.get().number == "447700900001"
    assert Campaign.objects.get().destination == "447700900999"

    again = import_file(tmp_path, [summer(numbers=[{"number": "0044 7700-900001", "source": "M4"}])])
    assert "0 created, 0 updated, 0 moved, 1 unchanged" in again


def test_a_changed_campaign_is_updated_and_what_the_file_leaves_out_is_kept(tmp_path: Path) -> None:
    campaign = Campaign.objects.create(
        name="Summer offer", topic="the old offer", greeting="Hold on.", destination="447700900999"
    )
    Campaign.objects.filter(pk=campaign.pk).update(updated_at=timezone.now() - timedelta(days=1))
    campaign.refresh_from_db()

    out = import_file(tmp_path, [summer(numbers=[])])

    updated = Campaign.objects.get(pk=campaign.pk)
    assert updated.topic == "the summer offer"
    assert updated.greeting == "Hold on."  # not in the file: left as it was
    assert updated.updated_at > campaign.updated_at
    assert "Updated campaign “Summer offer”: topic." in out
    assert "Campaigns: 0 created, 1 updated, 0 unchanged." in out


def test_optional_keys_are_imported(tmp_path: Path) -> None:
    import_file(
        tmp_path,
        [
            summer(
                whisper_template="Call about {topic} from {source}",
                callback_template="Calling back about {topic}, missed at {time}",
                greeting="Thanks for calling.",
                hold_music_url="https://example.com/hold.mp3",
                active=False,
                numbers=[{"number": "447700900001", "source": "M4", "active": False}],
            )
        ],
    )

    campaign = Campaign.objects.get()
    assert campaign.whisper_template == "Call about {topic} from {source}"
    assert campaign.callback_template == "Calling back about {topic}, missed at {time}"
    assert campaign.greeting == "Thanks for calling."
    assert campaign.hold_music_url == "https://example.com/hold.mp3"
    assert campaign.is_active is False
    assert campaign.numbers.get().is_active is False


def test_the_flow_keys_are_imported(tmp_path: Path) -> None:
    flow = {
        **FLOW,
        "further_destinations": ["+44 7700 900998", "0044 7700 900997", "447700900998"],
        "opening_hours": [
            {"day": "Saturday", "opens": "10:00", "closes": "13:00"},
            {"day": "monday", "opens": "9:00", "closes": "17:30"},
        ],
    }
    import_file(tmp_path, [summer(**flow)])

    campaign = Campaign.objects.get()
    assert campaign.strategy == Strategy.CONNECT
    assert campaign.hunt_numbers == "447700900998\n447700900997"  # normalised, in order, each once
    assert (campaign.ring_seconds, campaign.max_wait_seconds) == (25, 90)
    assert (campaign.require_accept, campaign.accept_prompt) == (True, "Press 1 to take the summer offer call.")
    assert (campaign.fallback, campaign.fallback_message) == (Fallback.MESSAGE, "Nobody is free. Goodbye.")
    assert campaign.voicemail_prompt == "Leave a message after the tone."
    assert (campaign.language, campaign.style, campaign.timezone) == ("de-DE", 2, "Europe/Berlin")
    assert (campaign.starts_on, campaign.ends_on) == (date(2025, 6, 1), date(2025, 8, 31))
    assert (campaign.closed_action, campaign.closed_message) == (ClosedAction.VOICEMAIL, "We are closed.")
    assert week(campaign) == [(Weekday.MONDAY, time(9), time(17, 30)), (Weekday.SATURDAY, time(10), time(13))]


def test_a_minimal_file_keeps_the_flow_settings_staff_made(tmp_path: Path) -> None:
    import_file(tmp_path, [summer(**FLOW)])
    before = database_state()

    out = import_file(tmp_path, [summer()])

    assert database_state() == before
    assert "Campaigns: 0 created, 0 updated, 1 unchanged." in out


def test_the_files_opening_hours_replace_the_campaigns(tmp_path: Path) -> None:
    import_file(tmp_path, [summer(**FLOW)])
    campaign = Campaign.objects.get()
    Campaign.objects.filter(pk=campaign.pk).update(updated_at=timezone.now() - timedelta(days=1))

    out = import_file(tmp_path, [summer(opening_hours=[{"day": "sunday", "opens": "12:00", "closes": "14:00"}])])

    updated = Campaign.objects.get()
    assert week(updated) == [(Weekday.SUNDAY, time(12), time(14))]
    assert updated.updated_at > timezone.now() - timedelta(hours=1)
    assert "Updated campaign “Summer offer”: opening_hours." in out

    cleared = import_file(tmp_path, [summer(opening_hours=[], ring_seconds=30)])

    assert week(Campaign.objects.get()) == []  # open around the clock
    assert "Updated campaign “Summer offer”: ring_seconds, opening_hours." in cleared


def test_the_same_hours_in_another_order_change_nothing(tmp_path: Path) -> None:
    import_file(tmp_path, [summer(**FLOW)])
    before = database_state()

    out = import_file(tmp_path, [summer(**{**FLOW, "opening_hours": FLOW["opening_hours"][::-1]})])

    assert database_state() == before  # the hours were not rewritten
    assert "Campaigns: 0 created, 0 updated, 1 unchanged." in out


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"ends_on": "2025-06-30"}, "ends_on: The campaign would end (2025-06-30) before it starts (2025-07-01)."),
        ({"starts_on": "2025-09-01"}, "starts_on: The campaign would end (2025-08-31) before it starts (2025-09-01)."),
    ],
)
def test_one_date_must_fit_the_other_as_stored(tmp_path: Path, given: dict[str, str], message: str) -> None:
    CampaignFactory(
        name="Summer offer", topic="the summer offer", starts_on=date(2025, 7, 1), ends_on=date(2025, 8, 31)
    )
    before = database_state()

    with pytest.raises(CommandError) as error:
        import_file(tmp_path, [winter(), summer(topic="changed", **given)])

    assert f'campaign 2 ("Summer offer"), {message}' in str(error.value)
    assert database_state() == before


def test_a_number_on_another_campaign_moves_to_the_campaign_the_file_puts_it_on(tmp_path: Path) -> None:
    summer_offer = CampaignFactory(name="Summer offer", topic="the summer offer", destination="447700900999")
    TrackingNumberFactory(number="447700900003", campaign=summer_offer, source="Newspaper advert")

    out = import_file(tmp_path, [winter()])

    number = TrackingNumber.objects.get(number="447700900003")
    assert number.campaign.name == "Winter offer"
    assert Campaign.objects.filter(name="Summer offer").exists()  # nothing is deleted
    assert "Moved number 447700900003 from “Summer offer” to “Winter offer”." in out
    assert "Numbers: 0 created, 0 updated, 1 moved, 0 unchanged." in out


def test_a_changed_number_is_updated(tmp_path: Path) -> None:
    import_file(tmp_path, [summer()])

    out = import_file(tmp_path, [summer(numbers=[{"number": "447700900001", "source": "M5", "active": False}])])

    number = TrackingNumber.objects.get()
    assert (number.source, number.is_active) == ("M5", False)
    assert "Updated number 447700900001: source, active." in out


def test_the_file_can_come_from_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps([summer()])))

    call_command("import_campaigns", "-", stdout=io.StringIO())

    assert Campaign.objects.get().numbers.get().number == "447700900001"


def test_the_service_takes_the_parsed_file() -> None:
    summary = campaigns_import(data=[summer(), winter()])

    assert (summary.campaigns_created, summary.numbers_created) == (2, 2)


# --- refusing a bad file -----------------------------------------------------------------


BAD_FILES = [
    pytest.param('[{"name": "Summer offer",', "is not valid JSON", id="malformed-json"),
    pytest.param(json.dumps(summer()), "must hold a list of campaigns", id="not-a-list"),
    pytest.param(
        [summer(), {"name": "Winter offer", "destination": "447700900999"}],
        'campaign 2 ("Winter offer"), topic: This field is required.',
        id="missing-topic",
    ),
    pytest.param(
        [summer(), winter(numbers=[{"number": "12ab"}])],
        'campaign 2 ("Winter offer"), number 1: “12ab” is not a phone number in international format',
        id="bad-number",
    ),
    pytest.param(
        [summer(destination="call centre")],
        'campaign 1 ("Summer offer"), destination: “call centre” is not a phone number',
        id="bad-destination",
    ),
    pytest.param(
        [summer(whisper_template="Call about {topik}")],
        'campaign 1 ("Summer offer"), whisper_template: Unknown variable {topik}.',
        id="unknown-template-variable",
    ),
    pytest.param(
        [summer(greeting="Hello {")],
        'campaign 1 ("Summer offer"), greeting: The template is malformed',
        id="malformed-greeting",
    ),
    pytest.param(
        [{"name": "Summer offer", "topik": "the summer offer"}],
        'campaign 1 ("Summer offer"): A campaign has no key “topik”. Its keys are: accept_prompt, active,',
        id="unknown-campaign-key",
    ),
    pytest.param(
        [summer(further_destinations=["447700900998", "12ab"])],
        'campaign 1 ("Summer offer"), further destination 2: “12ab” is not a phone number in international format',
        id="bad-further-destination",
    ),
    pytest.param(
        [summer(further_destinations="447700900998")],
        'campaign 1 ("Summer offer"), further_destinations: Expected a list of items',
        id="further-destinations-not-a-list",
    ),
    pytest.param(
        [summer(ring_seconds=3)],
        'campaign 1 ("Summer offer"), ring_seconds: Ring each destination for 5 to 120 seconds',
        id="ring-seconds-out-of-range",
    ),
    pytest.param(
        [summer(ring_seconds="20")],
        'campaign 1 ("Summer offer"), ring_seconds: Must be a whole number.',
        id="ring-seconds-a-string",
    ),
    pytest.param(
        [summer(max_wait_seconds=5000)],
        'campaign 1 ("Summer offer"), max_wait_seconds: The longest wait must be between 10 and 3,600 seconds.',
        id="max-wait-out-of-range",
    ),
    pytest.param(
        [summer(style=-1)],
        'campaign 1 ("Summer offer"), style: Ensure this value is greater than or equal to 0.',
        id="negative-style",
    ),
    pytest.param(
        [summer(strategy="ring")],
        'campaign 1 ("Summer offer"), strategy: “ring” is not one of “conference”, “connect”.',
        id="unknown-strategy",
    ),
    pytest.param(
        [summer(fallback="email")],
        'campaign 1 ("Summer offer"), fallback: “email” is not one of “voicemail”, “message”, “hangup”.',
        id="unknown-fallback",
    ),
    pytest.param(
        [summer(require_accept="yes")],
        'campaign 1 ("Summer offer"), require_accept: Must be true or false.',
        id="require-accept-not-a-boolean",
    ),
    pytest.param(
        [summer(timezone="Europe/Londres")],
        'campaign 1 ("Summer offer"), timezone: “Europe/Londres” is not a time zone',
        id="bad-time-zone",
    ),
    pytest.param(
        [summer(starts_on="2025-09-01", ends_on="2025-08-31")],
        'campaign 1 ("Summer offer"), ends_on: The campaign ends before it starts.',
        id="ends-before-it-starts",
    ),
    pytest.param(
        [summer(starts_on="01/06/2025")],
        'campaign 1 ("Summer offer"), starts_on: Date has wrong format. Use one of these formats instead: YYYY-MM-DD.',
        id="date-not-iso",
    ),
    pytest.param(
        [summer(accept_prompt="x" * 1501)],
        'campaign 1 ("Summer offer"), accept_prompt: Vonage speaks at most 1500 characters.',
        id="accept-prompt-too-long",
    ),
    pytest.param(
        [summer(opening_hours=[{"day": "monday", "opens": "09:00", "closes": "17:00"}, {"day": "mon"}])],
        'campaign 1 ("Summer offer"), opening hours 2, day: Must be the name of a day: monday, tuesday,',
        id="bad-day",
    ),
    pytest.param(
        [summer(opening_hours=[{"day": "monday", "opens": "9am", "closes": "17:00"}])],
        'campaign 1 ("Summer offer"), opening hours 1, opens: Must be a time of day as HH:MM',
        id="bad-time",
    ),
    pytest.param(
        [summer(opening_hours=[{"day": "friday", "opens": "17:00", "closes": "09:00"}])],
        'campaign 1 ("Summer offer"), opening hours 1, closes: 09:00 is not after opens (17:00).',
        id="closes-before-it-opens",
    ),
    pytest.param(
        [summer(opening_hours=[{"day": "friday", "open": "09:00", "closes": "17:00"}])],
        'campaign 1 ("Summer offer"), opening hours 1: An opening period has no key “open”.',
        id="unknown-opening-hours-key",
    ),
    pytest.param(
        [summer(opening_hours={"monday": ["09:00", "17:00"]})],
        'campaign 1 ("Summer offer"), opening_hours: Expected a list of items',
        id="opening-hours-not-a-list",
    ),
    pytest.param(
        [summer(numbers=[{"number": "447700900001", "sauce": "M4"}])],
        'campaign 1 ("Summer offer"), number 1: A number has no key “sauce”.',
        id="unknown-number-key",
    ),
    pytest.param(
        [summer(), winter(numbers=[{"number": "+44 7700 900001"}])],
        'campaign 2 ("Winter offer"), number 1: 447700900001 is already in the file as '
        'campaign 1 ("Summer offer"), number 1',
        id="duplicate-number",
    ),
    pytest.param(
        [summer(), winter(), summer(numbers=[])],
        "Campaigns 1 and 3 are both named “Summer offer”",
        id="duplicate-name",
    ),
    pytest.param(
        [summer(active="no")],
        'campaign 1 ("Summer offer"), active: Must be true or false.',
        id="active-not-a-boolean",
    ),
    pytest.param(
        [summer(hold_music_url="not a url")],
        'campaign 1 ("Summer offer"), hold_music_url: Enter a valid URL.',
        id="bad-hold-music-url",
    ),
    pytest.param(
        [summer(numbers="447700900001")],
        'campaign 1 ("Summer offer"), numbers: Expected a list of items',
        id="numbers-not-a-list",
    ),
    pytest.param([summer(), "Winter offer"], "campaign 2: Invalid data.", id="campaign-not-an-object"),
    pytest.param(
        [summer(topic="x" * 201)],
        'campaign 1 ("Summer offer"), topic: Ensure this value has at most 200 characters',
        id="topic-too-long",
    ),
    pytest.param(
        '[{"name": "Summer offer", "name": "Winter offer", "topic": "t"}]',
        "the key “name” appears twice in one object",
        id="repeated-key",
    ),
]


@pytest.mark.parametrize(("campaigns", "message"), BAD_FILES)
def test_a_bad_file_is_refused_whole_and_changes_nothing(tmp_path: Path, campaigns: Any, message: str) -> None:
    existing = CampaignFactory(name="Summer offer", topic="the summer offer", destination="447700900999")
    TrackingNumberFactory(number="447700900003", campaign=existing, source="Newspaper advert")
    before = database_state()

    with pytest.raises(CommandError) as error:
        import_file(tmp_path, campaigns)

    assert message in str(error.value)
    assert "was not imported" in str(error.value)
    assert database_state() == before


def test_every_problem_in_the_file_is_reported_at_once(tmp_path: Path) -> None:
    campaigns = [
        {"name": "Summer offer", "numbers": [{"number": "447700900001"}, {"number": "12ab"}]},
        winter(whisper_template="{agent}"),
    ]

    with pytest.raises(CommandError) as error:
        import_file(tmp_path, campaigns)

    message = str(error.value)
    assert "It has 3 problems" in message
    assert 'campaign 1 ("Summer offer"), topic: This field is required.' in message
    assert 'campaign 1 ("Summer offer"), number 2: “12ab” is not a phone number' in message
    assert 'campaign 2 ("Winter offer"), whisper_template: Unknown variable {agent}.' in message
    assert not Campaign.objects.exists()


def test_a_missing_file_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match=r"Cannot read /nonexistent/campaigns\.json"):
        call_command("import_campaigns", "/nonexistent/campaigns.json")


def test_a_failure_while_writing_rolls_everything_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(TrackingNumber.objects, "create", fail)

    with pytest.raises(RuntimeError):
        campaigns_import(data=[summer()])

    assert not Campaign.objects.exists()


# --- exporting ---------------------------------------------------------------------------


def test_the_export_has_every_key_in_a_stable_order() -> None:
    winter_offer = CampaignFactory.create(name="Winter offer", topic="the winter offer", destination="447700900999")
    summer_offer = CampaignFactory(name="Summer offer", topic="the summer offer", destination="447700900999")
    TrackingNumberFactory(number="447700900002", campaign=summer_offer, source="Radio advert")
    TrackingNumberFactory(number="447700900001", campaign=summer_offer, source="M4 billboard")
    TrackingNumberFactory(number="447700900003", campaign=winter_offer, source="Newspaper advert", is_active=False)

    OpeningHours.objects.create(campaign=winter_offer, weekday=Weekday.SUNDAY, opens=time(12), closes=time(14))
    OpeningHours.objects.create(campaign=winter_offer, weekday=Weekday.MONDAY, opens=time(9), closes=time(17, 30))
    Campaign.objects.filter(pk=winter_offer.pk).update(
        hunt_numbers="447700900998\n447700900997", starts_on=date(2025, 12, 1)
    )
    defaults = {
        "accept_prompt": DEFAULT_ACCEPT_PROMPT,
        "active": True,
        "callback_template": DEFAULT_CALLBACK_WHISPER,
        "closed_action": "message",
        "closed_message": DEFAULT_CLOSED_MESSAGE,
        "demo": False,
        "destination": "447700900999",
        "ends_on": None,
        "fallback": "voicemail",
        "fallback_message": DEFAULT_FALLBACK_MESSAGE,
        "further_destinations": [],
        "greeting": DEFAULT_GREETING,
        "hold_music_url": "",
        "language": "en-GB",
        "max_wait_seconds": 120,
        "opening_hours": [],
        "require_accept": False,
        "ring_seconds": 20,
        "starts_on": None,
        "strategy": "conference",
        "style": 0,
        "timezone": "Europe/London",
        "voicemail_prompt": DEFAULT_VOICEMAIL_PROMPT,
        "whisper_template": DEFAULT_WHISPER,
    }

    exported = json.loads(export_text())

    assert exported == [
        {
            **defaults,
            "name": "Summer offer",
            "numbers": [
                {"active": True, "number": "447700900001", "source": "M4 billboard"},
                {"active": True, "number": "447700900002", "source": "Radio advert"},
            ],
            "topic": "the summer offer",
        },
        {
            **defaults,
            "further_destinations": ["447700900998", "447700900997"],
            "name": "Winter offer",
            "numbers": [{"active": False, "number": "447700900003", "source": "Newspaper advert"}],
            "opening_hours": [
                {"closes": "17:30", "day": "monday", "opens": "09:00"},
                {"closes": "14:00", "day": "sunday", "opens": "12:00"},
            ],
            "starts_on": "2025-12-01",
            "topic": "the winter offer",
        },
    ]
    assert export_text() == json.dumps(exported, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_the_export_can_be_written_to_a_file(tmp_path: Path) -> None:
    CampaignFactory(name="Summer offer", topic="the summer offer")
    path = tmp_path / "out.json"

    out = io.StringIO()
    call_command("export_campaigns", "--output", str(path), stdout=out)

    assert json.loads(path.read_text())[0]["name"] == "Summer offer"
    assert f"Wrote the campaigns to {path}." in out.getvalue()


def test_an_empty_database_exports_an_empty_list() -> None:
    assert campaigns_export() == []
    assert export_text() == "[]\n"


def test_export_then_import_into_an_empty_database_then_export_gives_the_same_file(tmp_path: Path) -> None:
    summer_offer = CampaignFactory(
        name="Summer offer",
        topic="the summer offer",
        destination="447700900999",
        whisper_template="Caller from {source} about {topic}",
        greeting="Merci, un instant s’il vous plaît.",
        hold_music_url="https://example.com/hold.mp3",
    )
    TrackingNumberFactory(number="447700900001", campaign=summer_offer, source="M4 billboard")
    TrackingNumberFactory(number="447700900002", campaign=summer_offer, source="", is_active=False)
    CampaignFactory(name="Winter offer", topic="the winter offer", destination="", is_active=False)
    # Every flow setting away from its default, hours included, through the file itself.
    campaigns_import(data=[{"name": "Summer offer", "topic": "the summer offer", **FLOW}])
    first = export_text()
    assert json.loads(first)[0]["opening_hours"] == FLOW["opening_hours"]

    TrackingNumber.objects.all().delete()
    Campaign.objects.all().delete()
    import_file(tmp_path, first)

    assert export_text() == first
    assert import_file(tmp_path, first).strip().endswith("0 created, 0 updated, 0 moved, 2 unchanged.")
