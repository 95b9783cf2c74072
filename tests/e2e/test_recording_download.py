"""``recording_download``: a voicemail fetched with the application's JWT, from Vonage only.

The recording's URL arrives in a webhook, so the adapter must not send the token to
any other host: those URLs are refused before a request is made.
"""

import socket
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import requests
import responses
from pytest_django.fixtures import Settings

from calls import vonage_adapter
from calls.vonage_adapter import VonageUnavailable
from devtools.fake_vonage_api import FakeVonageAPI
from tests.e2e.conftest import APPLICATION_ID

pytestmark = pytest.mark.e2e

FILE_ID = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb" * 512


@pytest.fixture
def no_requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every request ``requests`` would send, refused and listed."""
    sent: list[str] = []

    def refuse(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(url)
        raise AssertionError(f"A request was sent to {url}.")

    monkeypatch.setattr(requests.Session, "request", refuse)
    yield sent


@pytest.fixture
def vonage_hosts(vonage: FakeVonageAPI) -> Iterator[responses.RequestsMock]:
    """Vonage's real hosts, mocked; the app is configured with credentials."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"https://evil.example.com/v1/files/{FILE_ID}", id="another-host"),
        pytest.param(f"http://api.nexmo.com/v1/files/{FILE_ID}", id="plain-http"),
        pytest.param(f"https://api.nexmo.com.evil.example/v1/files/{FILE_ID}", id="vonage-name-as-a-prefix"),
        pytest.param(f"https://evil.example/v1/files/{FILE_ID}?from=api.nexmo.com", id="vonage-name-in-the-query"),
        pytest.param(f"https://evil.example/v1/files/{FILE_ID}#.vonage.com", id="vonage-name-in-the-fragment"),
        pytest.param(f"https://me@api.nexmo.com/v1/files/{FILE_ID}", id="user-info"),
        pytest.param(f"https://api.nexmo.com:8443/v1/files/{FILE_ID}", id="another-port"),
        pytest.param(f"https://nexmo.com.evil.example@api.nexmo.com/v1/files/{FILE_ID}", id="user-info-trick"),
        pytest.param(f"https://[::1/v1/files/{FILE_ID}", id="malformed"),
        pytest.param(f"api.nexmo.com/v1/files/{FILE_ID}", id="no-scheme"),
        pytest.param("", id="empty"),
        # Vonage's own hosts, but not the shape of a recording (issue 10's attack: the
        # account's call list fetched with our JWT and served as audio).
        pytest.param("https://api.nexmo.com/v1/calls?page_size=100", id="the-call-list"),
        pytest.param(f"https://api.nexmo.com/v1/files/{FILE_ID}?page_size=100", id="files-path-with-a-query"),
        pytest.param(f"https://api.nexmo.com/v1/files/{FILE_ID}/../../calls", id="files-path-climbing-out"),
        pytest.param("https://api.nexmo.com/v1/files/not-a-uuid", id="files-path-without-an-id"),
        pytest.param(f"https://developer.vonage.com/v1/files/{FILE_ID}", id="a-vonage-host-that-is-not-the-api"),
        pytest.param(f"https://rest.nexmo.com/v1/files/{FILE_ID}", id="the-rest-host"),
    ],
)
def test_urls_off_vonage_are_refused_without_a_request(vonage: FakeVonageAPI, no_requests: list[str], url: str) -> None:
    with pytest.raises(VonageUnavailable, match="not one Vonage gives"):
        vonage_adapter.recording_download(url=url)

    assert no_requests == []
    assert vonage.requests == []


def test_without_credentials_nothing_is_sent(no_requests: list[str]) -> None:
    with pytest.raises(VonageUnavailable, match="VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY"):
        vonage_adapter.recording_download(url=f"https://api.nexmo.com/v1/files/{FILE_ID}")

    assert no_requests == []


@pytest.mark.parametrize("host", ["api.nexmo.com", "api-us.nexmo.com", "api-eu-1.vonage.com", "API.Nexmo.com"])
def test_a_vonage_host_gets_the_application_jwt_and_the_audio_comes_back(
    vonage_hosts: responses.RequestsMock, host: str
) -> None:
    url = f"https://{host}/v1/files/{FILE_ID}"
    vonage_hosts.get(url, body=MP3, content_type="audio/mpeg")

    audio = vonage_adapter.recording_download(url=url)

    assert audio == MP3
    (call,) = vonage_hosts.calls
    # The SDK signs the header as bytes, as it sends it itself.
    assert cast(bytes, call.request.headers["Authorization"]).startswith(b"Bearer ")


def test_a_redirect_off_vonage_does_not_carry_the_jwt(vonage_hosts: responses.RequestsMock) -> None:
    url = f"https://api.nexmo.com/v1/files/{FILE_ID}"
    elsewhere = "https://storage.example.com/recordings/voicemail.mp3"
    vonage_hosts.get(url, status=302, headers={"Location": elsewhere})
    vonage_hosts.get(elsewhere, body=MP3, content_type="audio/mpeg")

    assert vonage_adapter.recording_download(url=url) == MP3

    first, second = vonage_hosts.calls
    assert "Authorization" in first.request.headers
    assert "Authorization" not in second.request.headers


@pytest.mark.parametrize("status", [401, 404, 500])
def test_an_error_status_is_vonage_unavailable(vonage_hosts: responses.RequestsMock, status: int) -> None:
    url = f"https://api.nexmo.com/v1/files/{FILE_ID}"
    vonage_hosts.get(url, status=status, json={"title": "Error"})

    with pytest.raises(VonageUnavailable, match=f"Vonage answered {status} for the recording.") as error:
        vonage_adapter.recording_download(url=url)

    assert error.value.status_code == status


def test_a_recording_too_large_for_a_voicemail_is_refused(
    vonage_hosts: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vonage_adapter, "_RECORDING_MAX_BYTES", 100)
    url = f"https://api.nexmo.com/v1/files/{FILE_ID}"
    vonage_hosts.get(url, body=MP3, content_type="audio/mpeg")

    with pytest.raises(VonageUnavailable, match="larger than any voicemail"):
        vonage_adapter.recording_download(url=url)


# --- against the local fake: the configured API host ------------------------------------------


def test_the_configured_api_host_receives_a_valid_application_jwt(vonage: FakeVonageAPI) -> None:
    # The fake serves no recordings: its 404 comes after it verified the token.
    with pytest.raises(VonageUnavailable, match=r"Vonage answered 404 for the recording\.") as error:
        vonage_adapter.recording_download(url=f"{vonage.url}/v1/files/{FILE_ID}")

    assert error.value.status_code == 404
    (request,) = vonage.requests
    assert (request.method, request.path) == ("GET", f"/v1/files/{FILE_ID}")
    assert request.jwt_claims is not None
    assert request.jwt_claims["application_id"] == APPLICATION_ID


def test_a_hung_download_times_out(vonage: FakeVonageAPI) -> None:
    vonage.hang()
    started = time.monotonic()

    with pytest.raises(VonageUnavailable, match="ReadTimeout"):
        vonage_adapter.recording_download(url=f"{vonage.url}/v1/files/{FILE_ID}")

    # VONAGE_TIMEOUT_SECONDS (1 s here) ended it, not the fake releasing the request
    # (30 s): half that is a bound no loaded machine comes near.
    assert time.monotonic() - started < vonage.hang_seconds / 2


def test_an_unreachable_host_is_vonage_unavailable(vonage: FakeVonageAPI, settings: Settings) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.VONAGE_API_HOST = f"127.0.0.1:{port}"

    with pytest.raises(VonageUnavailable, match="could not be fetched: ConnectionError"):
        vonage_adapter.recording_download(url=f"https://127.0.0.1:{port}/v1/files/{FILE_ID}")
