"""Campaigns and tracking numbers: what marketing staff can save, and what the database refuses."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from campaigns.models import DEFAULT_GREETING, DEFAULT_WHISPER, Campaign, TrackingNumber
from tests.factories import CampaignFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db


def test_new_campaign_whispers_its_topic_and_greets_the_caller_by_default() -> None:
    campaign = Campaign(name="Winter", topic="the winter sale")

    assert campaign.whisper_template == DEFAULT_WHISPER == "Incoming call regarding {topic}"
    assert campaign.greeting == DEFAULT_GREETING
    campaign.full_clean()


def test_unknown_template_variable_is_a_form_error_naming_it() -> None:
    campaign = Campaign(name="Winter", topic="the winter sale", whisper_template="About {topik}")

    with pytest.raises(ValidationError) as excinfo:
        campaign.full_clean()

    assert set(excinfo.value.message_dict) == {"whisper_template"}
    assert "{topik}" in excinfo.value.message_dict["whisper_template"][0]


def test_greeting_is_validated_like_the_whisper() -> None:
    campaign = Campaign(name="Winter", topic="the winter sale", greeting="Hello {agent_name}")

    with pytest.raises(ValidationError) as excinfo:
        campaign.full_clean()

    assert "{agent_name}" in excinfo.value.message_dict["greeting"][0]


def test_template_longer_than_vonage_speaks_is_a_form_error() -> None:
    campaign = Campaign(name="Winter", topic="the winter sale", whisper_template="a" * 1501)

    with pytest.raises(ValidationError) as excinfo:
        campaign.full_clean()

    assert "1500" in excinfo.value.message_dict["whisper_template"][0]


def test_campaign_destination_is_normalised_on_full_clean() -> None:
    campaign = Campaign(name="Winter", topic="the winter sale", destination="+44 7700 900999")

    campaign.full_clean()

    assert campaign.destination == "447700900999"


def test_campaign_destination_that_is_not_a_number_is_a_form_error() -> None:
    campaign = Campaign(name="Winter", topic="the winter sale", destination="call centre")

    with pytest.raises(ValidationError) as excinfo:
        campaign.full_clean()

    assert "destination" in excinfo.value.message_dict


def test_tracking_number_is_normalised_on_full_clean() -> None:
    number = TrackingNumber(number="+44 7700 900001", campaign=CampaignFactory(), source="M4 billboard")

    number.full_clean()
    number.save()

    assert TrackingNumber.objects.get().number == "447700900001"


def test_tracking_number_that_is_not_a_number_is_a_form_error() -> None:
    number = TrackingNumber(number="07700 900001", campaign=CampaignFactory())

    with pytest.raises(ValidationError) as excinfo:
        number.full_clean()

    assert "international format" in excinfo.value.message_dict["number"][0]


def test_the_same_number_cannot_belong_to_two_campaigns() -> None:
    TrackingNumberFactory(number="447700900001")
    duplicate = TrackingNumber(number="+44 7700 900001", campaign=CampaignFactory())

    with pytest.raises(ValidationError) as excinfo:
        duplicate.full_clean()

    assert "number" in excinfo.value.message_dict


@pytest.mark.parametrize("raw", ["+447700900001", "07700900001", "44 7700 900001", "", "12345"])
def test_database_refuses_a_tracking_number_that_is_not_e164_digits(raw: str) -> None:
    campaign = CampaignFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        TrackingNumber.objects.create(number=raw, campaign=campaign)


def test_database_refuses_a_campaign_destination_that_is_not_e164_digits() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Campaign.objects.create(name="Winter", topic="the winter sale", destination="+447700900999")


def test_database_refuses_a_campaign_without_a_topic() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Campaign.objects.create(name="Winter", topic="")


def test_database_accepts_an_empty_destination_meaning_the_call_centre() -> None:
    Campaign.objects.create(name="Winter", topic="the winter sale", destination="")


def test_only_active_numbers_of_active_campaigns_are_routable() -> None:
    live = TrackingNumberFactory()
    TrackingNumberFactory(is_active=False, campaign=live.campaign)
    paused = CampaignFactory(is_active=False)
    TrackingNumberFactory(campaign=paused)

    assert list(TrackingNumber.objects.routable()) == [live]
    assert paused not in Campaign.objects.active()
    assert live.campaign in Campaign.objects.active()


def test_numbers_read_in_international_format_with_their_source() -> None:
    assert str(TrackingNumber(number="447700900001", source="M4 billboard")) == "+44 7700 900001 (M4 billboard)"
    assert str(TrackingNumber(number="447700900001")) == "+44 7700 900001"
    assert str(Campaign(name="Summer offer")) == "Summer offer"
