"""``manage.py vonage_setup`` against Vonage's Application and Numbers APIs, mocked
with ``responses`` at the URLs the SDK really calls (vonage_application, vonage_numbers)."""

import base64
import io
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django.fixtures import Settings

from campaigns.models import Campaign, TrackingNumber
from tests.factories import CampaignFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db

APPLICATIONS_URL = "https://api.nexmo.com/v2/applications"
OWNED_NUMBERS_URL = "https://rest.nexmo.com/account/numbers"
UPDATE_NUMBER_URL = "https://rest.nexmo.com/number/update"
APPLICATION_ID = "78d335fa-323d-0114-9c3d-d6f0d48968cf"
NEW_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"

EXPECTED_VOICE = {
    "webhooks": {
        "answer_url": {"address": "https://whisper.example.com/answer_inbound", "http_method": "POST"},
        "fallback_answer_url": {"address": "https://whisper.example.com/fallback", "http_method": "POST"},
        "event_url": {"address": "https://whisper.example.com/event", "http_method": "POST"},
    },
    "signed_callbacks": True,
}


@pytest.fixture(autouse=True)
def vonage_account(settings: Settings) -> None:
    settings.VONAGE_API_KEY = "abcd1234"
    settings.VONAGE_API_SECRET = "s3cr3t"
    settings.VONAGE_API_HOST = "api.nexmo.com"
    settings.VONAGE_APPLICATION_ID = ""
    settings.PUBLIC_URL = "https://whisper.example.com"


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def numbers() -> list[TrackingNumber]:
    summer = Campaign.objects.create(name="Summer offer", topic="the summer offer")
    winter = Campaign.objects.create(name="Winter offer", topic="the winter offer")
    return [
        TrackingNumber.objects.create(number="447700900001", campaign=summer, source="M4 billboard"),
        TrackingNumber.objects.create(number="447700900003", campaign=winter, source="Newspaper advert"),
    ]


def application_response(**overrides: Any) -> dict[str, Any]:
    body = {
        "id": APPLICATION_ID,
        "name": "Call Whisper",
        "capabilities": {"voice": EXPECTED_VOICE},
        "keys": {"public_key": "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"},
        "_links": {"self": {"href": f"/v2/applications/{APPLICATION_ID}"}},
    }
    body.update(overrides)
    return body


def owned(*msisdns: str, app_id: str = "") -> dict[str, Any]:
    numbers = [
        {"country": "GB", "msisdn": msisdn, "type": "mobile-lvn", "features": ["VOICE", "SMS"]}
        | ({"app_id": app_id} if app_id else {})
        for msisdn in msisdns
    ]
    return {"count": len(numbers), "numbers": numbers}


def number_updated() -> dict[str, str]:
    return {"error-code": "200", "error-code-label": "success"}


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("vonage_setup", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def form(call: Any) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(call.request.body).items()}


def calls_to(api: responses.RequestsMock, url: str, method: str) -> list[Any]:
    return [call for call in api.calls if call.request.method == method and str(call.request.url).split("?")[0] == url]


# --- a new application -------------------------------------------------------------------


def test_creates_the_application_saves_its_key_and_links_the_numbers(
    api: responses.RequestsMock, numbers: list[TrackingNumber], tmp_path: Path
) -> None:
    api.post(APPLICATIONS_URL, status=201, json=application_response(keys={"private_key": NEW_KEY}))
    api.get(OWNED_NUMBERS_URL, json=owned("447700900001", "447700900003"))
    api.post(UPDATE_NUMBER_URL, json=number_updated())
    key_file = tmp_path / "private.key"

    out, err = run("--private-key-file", str(key_file))

    (create,) = calls_to(api, APPLICATIONS_URL, "POST")
    assert json.loads(create.request.body) == {
        "name": "Call Whisper",
        "capabilities": {"voice": EXPECTED_VOICE},
    }
    expected_auth = "Basic " + base64.b64encode(b"abcd1234:s3cr3t").decode()
    assert create.request.headers["Authorization"] == expected_auth

    assert key_file.read_text() == NEW_KEY
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    updates = [form(call) for call in calls_to(api, UPDATE_NUMBER_URL, "POST")]
    assert updates == [
        {"country": "GB", "msisdn": "447700900001", "app_id": APPLICATION_ID},
        {"country": "GB", "msisdn": "447700900003", "app_id": APPLICATION_ID},
    ]
    assert f"Created application {APPLICATION_ID} (“Call Whisper”)" in out
    assert f"VONAGE_APPLICATION_ID={APPLICATION_ID}" in out
    assert f"VONAGE_PRIVATE_KEY={key_file}" in out
    assert "VONAGE_SIGNATURE_SECRET" in out
    assert "Linked 447700900001 (M4 billboard, Summer offer)." in out
    assert f"All 2 numbers are linked to application {APPLICATION_ID}." in out
    assert err == ""


def test_the_name_option_names_the_application(api: responses.RequestsMock, tmp_path: Path, settings: Settings) -> None:
    api.post(APPLICATIONS_URL, status=201, json=application_response(keys={"private_key": NEW_KEY}))

    out, _ = run("--name", "Call Whisper (staging)", "--private-key-file", str(tmp_path / "k.key"))

    (create,) = calls_to(api, APPLICATIONS_URL, "POST")
    assert json.loads(create.request.body)["name"] == "Call Whisper (staging)"
    assert "There are no active tracking numbers to link." in out


def test_an_existing_key_file_is_not_overwritten_and_nothing_is_sent(
    api: responses.RequestsMock, numbers: list[TrackingNumber], tmp_path: Path
) -> None:
    key_file = tmp_path / "private.key"
    key_file.write_text("the old key")

    with pytest.raises(CommandError, match="already exists"):
        run("--private-key-file", str(key_file))

    assert key_file.read_text() == "the old key"
    assert len(api.calls) == 0


def test_force_overwrites_the_key_file_and_makes_it_private(api: responses.RequestsMock, tmp_path: Path) -> None:
    api.post(APPLICATIONS_URL, status=201, json=application_response(keys={"private_key": NEW_KEY}))
    key_file = tmp_path / "private.key"
    key_file.write_text("the old key")
    key_file.chmod(0o644)

    run("--private-key-file", str(key_file), "--force")

    assert key_file.read_text() == NEW_KEY
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_vonage_refusing_the_credentials_is_a_clear_error(api: responses.RequestsMock, tmp_path: Path) -> None:
    api.post(
        APPLICATIONS_URL,
        status=401,
        json={"type": "https://developer.nexmo.com/api-errors#unauthorized", "title": "Unauthorized"},
    )
    key_file = tmp_path / "private.key"

    with pytest.raises(CommandError) as error:
        run("--private-key-file", str(key_file))

    assert str(error.value) == (
        "The application was not created. Vonage answered 401 when creating the application: "
        "Unauthorized. Check VONAGE_API_KEY and VONAGE_API_SECRET."
    )
    assert not key_file.exists()


# --- an existing application -------------------------------------------------------------


def test_updates_the_application_named_by_vonage_application_id(
    api: responses.RequestsMock, numbers: list[TrackingNumber], tmp_path: Path, settings: Settings
) -> None:
    settings.VONAGE_APPLICATION_ID = APPLICATION_ID
    api.put(f"{APPLICATIONS_URL}/{APPLICATION_ID}", json=application_response())
    api.get(OWNED_NUMBERS_URL, json=owned("447700900001", "447700900003"))
    api.post(UPDATE_NUMBER_URL, json=number_updated())
    key_file = tmp_path / "private.key"

    out, _ = run("--private-key-file", str(key_file))

    (update,) = calls_to(api, f"{APPLICATIONS_URL}/{APPLICATION_ID}", "PUT")
    # The update replaces the whole configuration, so all of it is sent.
    assert json.loads(update.request.body) == {
        "name": "Call Whisper",
        "capabilities": {"voice": EXPECTED_VOICE},
    }
    assert calls_to(api, APPLICATIONS_URL, "POST") == []
    assert not key_file.exists()
    assert [form(call)["app_id"] for call in calls_to(api, UPDATE_NUMBER_URL, "POST")] == [APPLICATION_ID] * 2
    assert f"Updated application {APPLICATION_ID} (“Call Whisper”)" in out


def test_an_unknown_application_id_says_what_to_do(api: responses.RequestsMock, settings: Settings) -> None:
    settings.VONAGE_APPLICATION_ID = APPLICATION_ID
    api.put(f"{APPLICATIONS_URL}/{APPLICATION_ID}", status=404, json={"title": "Not Found"})

    with pytest.raises(CommandError, match="check VONAGE_APPLICATION_ID, or unset it"):
        run()


def test_numbers_already_linked_are_not_updated_again(
    api: responses.RequestsMock, numbers: list[TrackingNumber], settings: Settings
) -> None:
    settings.VONAGE_APPLICATION_ID = APPLICATION_ID
    api.put(f"{APPLICATIONS_URL}/{APPLICATION_ID}", json=application_response())
    api.get(OWNED_NUMBERS_URL, json=owned("447700900001", "447700900003", app_id=APPLICATION_ID))

    out, _ = run()

    assert calls_to(api, UPDATE_NUMBER_URL, "POST") == []
    assert "447700900001 (M4 billboard, Summer offer) is already linked." in out


# --- numbers -----------------------------------------------------------------------------


def test_a_number_the_account_does_not_own_is_reported_and_the_command_fails(
    api: responses.RequestsMock, numbers: list[TrackingNumber], settings: Settings
) -> None:
    settings.VONAGE_APPLICATION_ID = APPLICATION_ID
    api.put(f"{APPLICATIONS_URL}/{APPLICATION_ID}", json=application_response())
    api.get(OWNED_NUMBERS_URL, json=owned("447700900001"))
    api.post(UPDATE_NUMBER_URL, json=number_updated())
    err = io.StringIO()

    with pytest.raises(CommandError) as error:
        call_command("vonage_setup", stdout=io.StringIO(), stderr=err)

    assert [form(call)["msisdn"] for call in calls_to(api, UPDATE_NUMBER_URL, "POST")] == ["447700900001"]
    assert (
        "447700900003 (Newspaper advert, Winter offer) was not linked: this Vonage account does not own it."
        in err.getvalue()
    )
    assert str(error.value) == (f"1 of 2 numbers could not be linked to application {APPLICATION_ID}: 447700900003.")


def test_a_refused_number_update_is_reported_and_the_others_still_linked(
    api: responses.RequestsMock, numbers: list[TrackingNumber], settings: Settings
) -> None:
    settings.VONAGE_APPLICATION_ID = APPLICATION_ID
    api.put(f"{APPLICATIONS_URL}/{APPLICATION_ID}", json=application_response())
    api.get(OWNED_NUMBERS_URL, json=owned("447700900001", "447700900003"))
    # The Numbers API answers some failures with HTTP 200 and an error code in the body.
    api.post(UPDATE_NUMBER_URL, json={"error-code": "420", "error-code-label": "Invalid app_id"})
    api.post(UPDATE_NUMBER_URL, json=number_updated())
    err = io.StringIO()
    out = io.StringIO()

    with pytest.raises(CommandError, match="1 of 2 numbers could not be linked"):
        call_command("vonage_setup", stdout=out, stderr=err)

    assert "447700900001 (M4 billboard, Summer offer) was not linked. Vonage refused linking" in err.getvalue()
    assert "420 Invalid app_id" in err.getvalue()
    assert "Linked 447700900003 (Newspaper advert, Winter offer)." in out.getvalue()


def test_only_active_numbers_of_active_campaigns_are_linked(api: responses.RequestsMock, settings: Settings) -> None:
    settings.VONAGE_APPLICATION_ID = APPLICATION_ID
    live = CampaignFactory(name="Summer offer")
    paused = CampaignFactory(name="Winter offer", is_active=False)
    TrackingNumberFactory(number="447700900001", campaign=live)
    TrackingNumberFactory(number="447700900002", campaign=live, is_active=False)
    TrackingNumberFactory(number="447700900003", campaign=paused)
    api.put(f"{APPLICATIONS_URL}/{APPLICATION_ID}", json=application_response())
    api.get(OWNED_NUMBERS_URL, json=owned("447700900001", "447700900002", "447700900003"))
    api.post(UPDATE_NUMBER_URL, json=number_updated())

    run()

    assert [form(call)["msisdn"] for call in calls_to(api, UPDATE_NUMBER_URL, "POST")] == ["447700900001"]


def test_owned_numbers_are_read_page_by_page(
    api: responses.RequestsMock, numbers: list[TrackingNumber], settings: Settings
) -> None:
    settings.VONAGE_APPLICATION_ID = APPLICATION_ID
    api.put(f"{APPLICATIONS_URL}/{APPLICATION_ID}", json=application_response())
    first_page = owned(*(f"4477009{n:05d}" for n in range(100, 200)))
    first_page["count"] = 101
    api.get(
        OWNED_NUMBERS_URL,
        json=first_page,
        match=[responses.matchers.query_param_matcher({"size": "100", "index": "1"})],
    )
    api.get(
        OWNED_NUMBERS_URL,
        json={"count": 101, "numbers": owned("447700900001", "447700900003")["numbers"]},
        match=[responses.matchers.query_param_matcher({"size": "100", "index": "2"})],
    )
    api.post(UPDATE_NUMBER_URL, json=number_updated())

    out, _ = run()

    assert len(calls_to(api, OWNED_NUMBERS_URL, "GET")) == 2
    assert "All 2 numbers are linked" in out


def test_a_failure_to_list_the_numbers_is_a_clear_error(
    api: responses.RequestsMock, numbers: list[TrackingNumber], settings: Settings
) -> None:
    settings.VONAGE_APPLICATION_ID = APPLICATION_ID
    api.put(f"{APPLICATIONS_URL}/{APPLICATION_ID}", json=application_response())
    api.get(OWNED_NUMBERS_URL, status=500, body="oops")

    with pytest.raises(CommandError) as error:
        run()

    assert str(error.value) == (
        "The account's numbers could not be listed, so none were linked. "
        "Vonage answered 500 when listing the account's numbers."
    )


# --- before anything is sent ---------------------------------------------------------------


def test_a_dry_run_sends_nothing(api: responses.RequestsMock, numbers: list[TrackingNumber], tmp_path: Path) -> None:
    key_file = tmp_path / "private.key"

    out, _ = run("--dry-run", "--private-key-file", str(key_file))

    assert len(api.calls) == 0
    assert not key_file.exists()
    assert "Dry run: nothing is sent to Vonage." in out
    assert "Would create application “Call Whisper”:" in out
    assert "answer URL:          POST https://whisper.example.com/answer_inbound" in out
    assert "event URL:           POST https://whisper.example.com/event" in out
    assert f"Would save its private key to {key_file}." in out
    assert "Would link 447700900001 (M4 billboard, Summer offer) to the application" in out
    assert "Would link 447700900003 (Newspaper advert, Winter offer) to the application" in out


def test_a_dry_run_with_an_application_id_would_update_it(api: responses.RequestsMock, settings: Settings) -> None:
    settings.VONAGE_APPLICATION_ID = APPLICATION_ID

    out, _ = run("--dry-run")

    assert len(api.calls) == 0
    assert f"Would update application {APPLICATION_ID} (“Call Whisper”):" in out


@pytest.mark.parametrize("missing", ["VONAGE_API_KEY", "VONAGE_API_SECRET"])
def test_missing_account_credentials_are_a_clear_error(
    api: responses.RequestsMock, settings: Settings, missing: str
) -> None:
    setattr(settings, missing, "")

    with pytest.raises(CommandError, match="VONAGE_API_KEY and VONAGE_API_SECRET must be set"):
        run("--dry-run")

    assert len(api.calls) == 0


@pytest.mark.parametrize(
    "public_url",
    ["http://127.0.0.1:8000", "http://localhost:8000", "https://10.0.0.5", "whisper.example.com"],
)
def test_a_public_url_vonage_cannot_reach_is_refused(
    api: responses.RequestsMock, settings: Settings, public_url: str
) -> None:
    settings.PUBLIC_URL = public_url

    with pytest.raises(CommandError, match="PUBLIC_URL"):
        run()

    assert len(api.calls) == 0


def test_a_local_fake_of_vonage_serves_both_apis(
    api: responses.RequestsMock, numbers: list[TrackingNumber], settings: Settings
) -> None:
    settings.VONAGE_API_HOST = "127.0.0.1:8443"
    settings.VONAGE_APPLICATION_ID = APPLICATION_ID
    api.put(f"https://127.0.0.1:8443/v2/applications/{APPLICATION_ID}", json=application_response())
    api.get("https://127.0.0.1:8443/account/numbers", json=owned("447700900001", "447700900003"))
    api.post("https://127.0.0.1:8443/number/update", json=number_updated())

    run()

    assert {urlsplit(call.request.url).netloc for call in api.calls} == {"127.0.0.1:8443"}
