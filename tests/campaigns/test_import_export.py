"""``import_campaigns`` and ``export_campaigns``: the campaigns file in and out."""

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from campaigns.models import DEFAULT_GREETING, DEFAULT_WHISPER, Campaign, TrackingNumber
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
    return [*campaigns, *numbers]


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
                greeting="Thanks for calling.",
                hold_music_url="https://example.com/hold.mp3",
                active=False,
                numbers=[{"number": "447700900001", "source": "M4", "active": False}],
            )
        ],
    )

    campaign = Campaign.objects.get()
    assert campaign.whisper_template == "Call about {topic} from {source}"
    assert campaign.greeting == "Thanks for calling."
    assert campaign.hold_music_url == "https://example.com/hold.mp3"
    assert campaign.is_active is False
    assert campaign.numbers.get().is_active is False


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
        'campaign 1 ("Summer offer"): A campaign has no key “topik”. Its keys are: active, destination,',
        id="unknown-campaign-key",
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
    winter_offer = CampaignFactory(name="Winter offer", topic="the winter offer", destination="447700900999")
    summer_offer = CampaignFactory(name="Summer offer", topic="the summer offer", destination="447700900999")
    TrackingNumberFactory(number="447700900002", campaign=summer_offer, source="Radio advert")
    TrackingNumberFactory(number="447700900001", campaign=summer_offer, source="M4 billboard")
    TrackingNumberFactory(number="447700900003", campaign=winter_offer, source="Newspaper advert", is_active=False)

    exported = json.loads(export_text())

    assert exported == [
        {
            "active": True,
            "destination": "447700900999",
            "greeting": DEFAULT_GREETING,
            "hold_music_url": "",
            "name": "Summer offer",
            "numbers": [
                {"active": True, "number": "447700900001", "source": "M4 billboard"},
                {"active": True, "number": "447700900002", "source": "Radio advert"},
            ],
            "topic": "the summer offer",
            "whisper_template": DEFAULT_WHISPER,
        },
        {
            "active": True,
            "destination": "447700900999",
            "greeting": DEFAULT_GREETING,
            "hold_music_url": "",
            "name": "Winter offer",
            "numbers": [{"active": False, "number": "447700900003", "source": "Newspaper advert"}],
            "topic": "the winter offer",
            "whisper_template": DEFAULT_WHISPER,
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
    first = export_text()

    TrackingNumber.objects.all().delete()
    Campaign.objects.all().delete()
    import_file(tmp_path, first)

    assert export_text() == first
    assert import_file(tmp_path, first).strip().endswith("0 created, 0 updated, 0 moved, 2 unchanged.")
