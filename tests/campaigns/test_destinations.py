"""Least privilege for destinations: campaigns ring only numbers the operator allows.

Before: a Marketing login (or whoever took it over) could point a campaign, or its
further destinations, at any E.164 number: a premium-rate or foreign number turns every
call to an advert into revenue for a fraudster (toll fraud). Now every way of setting a
destination refuses numbers outside ``ALLOWED_DESTINATION_PREFIXES`` (default: the
country calling code of ``CALL_CENTER_NUMBER``), and a number that slipped through
(the setting was narrowed after the campaign was saved) is not rung at call time.
"""

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings

from calls import call_flow, vonage_adapter
from calls.models import Call
from calls.vonage_adapter import PlacedCall
from campaigns.destinations import allowed_prefixes, destination_allowed, ringable
from campaigns.models import Campaign, TrackingNumber
from campaigns.serializers import CampaignFileSerializer
from tests.conftest import post_json
from tests.factories import CampaignFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db

CENTRE = "447700900999"  # CALL_CENTER_NUMBER in the test settings
ADD = reverse("admin:campaigns_campaign_add")
UK_DEFAULT = "+{} may not be rung: calls may only go to numbers starting +44, and the call centre's number " + (
    "(ALLOWED_DESTINATION_PREFIXES, set by the operator)."
)
# Numbers a fraudster would like calls sent to (all outside the UK's +44).
FOREIGN = {
    "international premium (+882)": "+882 1234 5678",
    "foreign, high cost (+53)": "+53 5 123 4567",
    "foreign (+33)": "+33 1 23 45 67 89",
}


def digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def marketing() -> Client:
    user = User.objects.create_user(username="marketing", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Marketing"))
    client = Client()
    client.force_login(user)
    return client


def posted_form(client: Client, url: str, **changes: Any) -> dict[str, Any]:
    """The body the page's form posts when nothing else is touched."""
    from tests.campaigns.test_admin import form_data

    return form_data(client.get(url), **changes)


def campaign_row(campaign: Campaign) -> tuple[Any, ...]:
    return Campaign.objects.filter(pk=campaign.pk).values_list().get()


@pytest.fixture
def campaign() -> Campaign:
    campaign = CampaignFactory.create(name="Summer offer", destination="447700900998", hunt_numbers="447700900997")
    TrackingNumberFactory.create(number="447700900001", campaign=campaign)
    return campaign


# --- the admin change form, as Marketing uses it ----------------------------------------------


@pytest.mark.parametrize("field", ["destination", "hunt_numbers"])
@pytest.mark.parametrize("number", FOREIGN.values(), ids=FOREIGN.keys())
def test_marketing_cannot_point_a_campaign_at_a_foreign_number(campaign: Campaign, field: str, number: str) -> None:
    client = marketing()
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    before, history = campaign_row(campaign), campaign.history.count()  # type: ignore[attr-defined]

    response = client.post(url, posted_form(client, url, **{field: number}))

    assert response.status_code == 200  # the form again, not a redirect
    errors = response.context["adminform"].form.errors
    assert errors[field] == [UK_DEFAULT.format(digits(number))]
    assert UK_DEFAULT.format(digits(number)) in response.content.decode().replace("&#x27;", "'")
    assert campaign_row(campaign) == before
    assert campaign.history.count() == history  # type: ignore[attr-defined]


def test_a_premium_rate_number_is_refused_where_the_operator_allows_only_geographic_and_mobile(
    campaign: Campaign, settings: Settings
) -> None:
    settings.ALLOWED_DESTINATION_PREFIXES = ["441", "442", "447"]
    client = marketing()
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    before = campaign_row(campaign)

    response = client.post(url, posted_form(client, url, hunt_numbers="447700900996\n+44 909 879 0000"))

    assert response.context["adminform"].form.errors["hunt_numbers"] == [
        "+449098790000 may not be rung: calls may only go to numbers starting +441, +442 or +447, and the "
        "call centre's number (ALLOWED_DESTINATION_PREFIXES, set by the operator)."
    ]
    assert campaign_row(campaign) == before


def test_numbers_inside_the_allow_list_and_the_call_centre_are_saved(campaign: Campaign, settings: Settings) -> None:
    settings.ALLOWED_DESTINATION_PREFIXES = ["353"]
    client = marketing()
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])

    data = posted_form(client, url, destination=f"+{CENTRE}", hunt_numbers="+353 1 234 5678")
    response = client.post(url, data)

    assert response.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.destination, campaign.hunt_numbers) == (CENTRE, "35312345678")


def test_the_unknown_numbers_quick_create_cannot_set_a_foreign_destination(db: None) -> None:
    """The "create a campaign" link opens the add form filled in from its query string,
    where any field, the destination too, can be set."""
    client = marketing()
    url = f"{ADD}?name=Campaign+for+%2B447700900555&number=%2B447700900555&destination=%2B88212345678"
    data = posted_form(client, url, topic="the radio advert")
    assert data["destination"] == "+88212345678"
    data.update({"numbers-0-number": "+447700900555", "numbers-0-is_active": "on", "numbers-TOTAL_FORMS": 1})

    response = client.post(ADD, data)

    assert response.context["adminform"].form.errors["destination"] == [UK_DEFAULT.format("88212345678")]
    assert not Campaign.objects.exists() and not TrackingNumber.objects.exists()


# --- the campaigns file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("destination", "+88212345678", "88212345678"),
        ("further_destinations", ["447700900996", "5351234567"], "5351234567"),
    ],
)
def test_import_refuses_the_whole_file_for_one_foreign_destination(
    tmp_path: Path, campaign: Campaign, key: str, value: Any, shown: str
) -> None:
    before = list(Campaign.objects.values_list()), list(TrackingNumber.objects.values_list())
    campaigns = [
        {"name": "Winter offer", "topic": "the winter offer", "numbers": [{"number": "447700900003"}]},
        {"name": "Summer offer", "topic": "the summer offer", key: value},
    ]
    path = tmp_path / "campaigns.json"
    path.write_text(json.dumps(campaigns))

    with pytest.raises(CommandError) as error:
        call_command("import_campaigns", str(path), stdout=io.StringIO())

    assert f'campaign 2 ("Summer offer"), {key}: {UK_DEFAULT.format(shown)}' in str(error.value)
    assert "was not imported" in str(error.value)
    assert (list(Campaign.objects.values_list()), list(TrackingNumber.objects.values_list())) == before


def test_the_campaign_file_serializer_refuses_a_foreign_destination(db: None) -> None:
    serializer = CampaignFileSerializer(data={"name": "X", "topic": "x", "destination": "+88212345678"})
    assert not serializer.is_valid()
    assert serializer.errors["destination"] == [UK_DEFAULT.format("88212345678")]


# --- at call time: what the setting no longer allows is not rung -------------------------------


@pytest.fixture
def placed(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def place_call(**kwargs: Any) -> PlacedCall:
        calls.append(kwargs)
        return PlacedCall(uuid=f"agent-{len(calls)}", conversation_uuid=f"CON-agent-{len(calls)}", sent=True)

    monkeypatch.setattr(vonage_adapter, "place_call", place_call)
    return calls


def test_a_destination_saved_before_the_list_was_narrowed_is_not_rung(
    client: Client,
    campaign: Campaign,
    settings: Settings,
    placed: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.ALLOWED_DESTINATION_PREFIXES = ["4420"]  # London only, from now on
    answer = {"to": "447700900001", "from": "447946000123", "uuid": "caller-leg", "conversation_uuid": "CON-1"}

    assert post_json(client, "/answer_inbound", answer).status_code == 200

    call = Call.objects.get()
    assert call.destination == CENTRE
    assert [p["to"] for p in placed] == [CENTRE]
    warning = next(r for r in caplog.records if r.getMessage().startswith("call.destination_refused"))
    assert warning.levelno == logging.WARNING
    assert f"call={call.pk} number=447700900998" in warning.getMessage()


def test_a_further_destination_outside_the_list_is_replaced_by_the_call_centre(
    client: Client,
    campaign: Campaign,
    settings: Settings,
    placed: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(hunt_numbers="5351234567\n447700900997")
    answer = {"to": "447700900001", "from": "447946000123", "uuid": "caller-leg", "conversation_uuid": "CON-1"}
    assert post_json(client, "/answer_inbound", answer).status_code == 200
    call = Call.objects.get()

    assert call_flow.destinations_for(call) == ["447700900998", CENTRE, "447700900997"]
    call_flow.advance(call_id=call.pk, from_attempt=0, reason="agent busy")

    assert [p["to"] for p in placed] == ["447700900998", CENTRE]
    assert f"call.destination_refused call={call.pk} number=5351234567" in caplog.text


# --- the rule and the setting -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("centre", "prefixes"),
    [("447700900999", ("44",)), ("12125550100", ("1",)), ("35312345678", ("353",)), ("4930123456", ("49",))],
)
def test_by_default_the_call_centres_country_is_allowed(settings: Settings, centre: str, prefixes: tuple[str]) -> None:
    settings.CALL_CENTER_NUMBER = centre
    settings.ALLOWED_DESTINATION_PREFIXES = []
    assert allowed_prefixes() == prefixes
    assert destination_allowed(centre)
    assert not destination_allowed("88212345678")


def test_a_malformed_setting_allows_only_the_call_centre_and_fails_the_checks(settings: Settings) -> None:
    settings.ALLOWED_DESTINATION_PREFIXES = ["44x", "0044"]
    assert allowed_prefixes() == ()
    assert ringable(["447700900998", CENTRE]) == ([CENTRE], ["447700900998"])
    errors = [m for m in run_checks() if m.id == "calls.E006"]
    assert len(errors) == 1
    assert "“44x”, “0044”" in errors[0].msg


def test_a_well_formed_setting_passes_the_checks(settings: Settings) -> None:
    settings.ALLOWED_DESTINATION_PREFIXES = ["44", "+353", " 1"]
    assert allowed_prefixes() == ("44", "353", "1")
    assert not [m for m in run_checks() if m.id == "calls.E006"]
