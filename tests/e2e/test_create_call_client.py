"""The agent call's own HTTPS client (``vonage_adapter._create_call``), against the TLS fake.

It replaces the SDK for ``create_call`` only, so it must send what the SDK sent, keep its
connection alive, never send a POST twice once it may have reached Vonage, and fail the
way the SDK path failed (VonageUnavailable). These run in the test's own thread: each
thread keeps its own connection.
"""

from collections.abc import Iterator
from typing import Any

import certifi
import pytest
from pytest_django.fixtures import Settings
from vonage_voice import CreateCallRequest, Phone, ToPhone

from calls import vonage_adapter
from calls.vonage_adapter import VonageUnavailable
from devtools.fake_vonage_api import FakeVonageAPI

pytestmark = pytest.mark.e2e

AGENT = "447700900999"
CAMPAIGN_NUMBER = "447700900001"
ANSWER_URL = "https://whisper.example.com/answer_outbound?call=1"
EVENT_URL = "https://whisper.example.com/event"


def create_call(ringing_timer: int | None = 25, machine_detection: str | None = "hangup") -> vonage_adapter.PlacedCall:
    return vonage_adapter._create_call(body(ringing_timer, machine_detection))


def body(ringing_timer: int | None = None, machine_detection: str | None = None) -> dict[str, Any]:
    return vonage_adapter._create_call_body(
        to=AGENT,
        from_=CAMPAIGN_NUMBER,
        answer_url=ANSWER_URL,
        event_url=EVENT_URL,
        ringing_timer=ringing_timer,
        machine_detection=machine_detection,
    )


@pytest.fixture
def opened(vonage: FakeVonageAPI, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The hosts of the connections the client opened, in order."""
    hosts: list[str] = []
    open_connection = vonage_adapter._connection_open

    def counted(host: str) -> Any:
        hosts.append(host)
        return open_connection(host)

    monkeypatch.setattr(vonage_adapter, "_connection_open", counted)
    yield hosts


@pytest.mark.parametrize(
    ("ringing_timer", "machine_detection"), [(25, "hangup"), (None, None)], ids=["with timers", "without"]
)
def test_the_request_is_the_one_the_sdk_sends(
    ringing_timer: int | None, machine_detection: str | None, vonage: FakeVonageAPI
) -> None:
    placed = create_call(ringing_timer, machine_detection)
    # The SDK's own request, built from its own types (not from our body).
    sdk_placed = vonage_adapter._call_sdk(
        "",
        "create_call",
        CreateCallRequest(
            to=[ToPhone(number=AGENT)],
            from_=Phone(number=CAMPAIGN_NUMBER),
            answer_url=[ANSWER_URL],
            answer_method="GET",
            event_url=[EVENT_URL],
            event_method="POST",
            ringing_timer=ringing_timer,
            machine_detection=machine_detection,
        ),
    )

    ours, sdks = vonage.create_requests()
    assert (ours.status, sdks.status) == (201, 201)
    assert set(ours.json) == set(sdks.json)
    for field in sdks.json:
        assert ours.json[field] == sdks.json[field], field
    assert ("ringing_timer" in ours.json, "machine_detection" in ours.json) == (
        ringing_timer is not None,
        machine_detection is not None,
    )
    # The same reused application JWT as the SDK's requests, verified by the fake.
    assert ours.headers["Authorization"] == sdks.headers["Authorization"]
    assert ours.jwt_claims is not None and ours.jwt_claims["application_id"] == vonage.application_id
    assert ours.headers["Content-Type"] == ours.headers["Accept"] == "application/json"
    assert ours.headers["User-Agent"].startswith("call-whisper ")
    # The answer gives the placed call, as the SDK's did.
    created = vonage.created_calls()[0]
    assert (placed.uuid, placed.conversation_uuid, placed.sent) == (created.uuid, created.conversation_uuid, True)
    assert sdk_placed.uuid == vonage.created_calls()[1].uuid


def test_the_connection_is_kept_alive_between_agent_calls(vonage: FakeVonageAPI, opened: list[str]) -> None:
    first, second = create_call(), create_call()

    assert first.uuid != second.uuid
    assert [request.status for request in vonage.create_requests()] == [201, 201]
    assert opened == [vonage.host]


def test_settings_changed_opens_a_new_connection(vonage: FakeVonageAPI, opened: list[str], settings: Settings) -> None:
    create_call()
    settings.VONAGE_TIMEOUT_SECONDS = 2

    create_call()

    assert opened == [vonage.host, vonage.host]


@pytest.mark.parametrize("status", [401, 429, 500, 503])
def test_an_error_status_is_vonage_unavailable_with_that_status(
    status: int, vonage: FakeVonageAPI, opened: list[str]
) -> None:
    vonage.fail(status, route="create", times=1)

    with pytest.raises(VonageUnavailable, match=f"^Vonage answered {status} to create_call.$") as unavailable:
        create_call()

    assert unavailable.value.status_code == status
    assert [request.status for request in vonage.create_requests()] == [status]
    assert vonage.created_calls() == []
    # An error answer leaves the connection usable: the next call goes out on it.
    create_call()
    assert opened == [vonage.host]


def test_an_answer_without_a_call_is_vonage_unavailable(vonage: FakeVonageAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vonage, "_route_create", lambda path, query, body: (201, ["not", "a", "call"]))

    with pytest.raises(VonageUnavailable, match="create_call failed: TypeError") as unavailable:
        create_call()

    assert unavailable.value.status_code is None


def test_a_dropped_connection_is_not_sent_again_even_when_it_was_reused(
    vonage: FakeVonageAPI, opened: list[str]
) -> None:
    # The case the SDK re-sent: the request went out on a kept-alive connection, Vonage
    # created the call, and the connection closed before the answer. Vonage may have acted
    # on it, so it is not sent again.
    create_call()
    vonage.drop_after_accept(route="create", times=1)

    with pytest.raises(VonageUnavailable, match="RemoteDisconnected") as unavailable:
        create_call()

    assert unavailable.value.status_code is None
    assert [request.fault or request.status for request in vonage.create_requests()] == [201, "drop"]
    assert len(vonage.created_calls()) == 2  # one rings an agent whose uuid we never learn
    # The dropped connection is not used again.
    create_call()
    assert opened == [vonage.host, vonage.host]


def test_a_connection_the_server_closed_while_idle_is_reopened(vonage: FakeVonageAPI, opened: list[str]) -> None:
    create_call()
    closed = vonage_adapter._thread_connections.kept[vonage.host].connection
    written: list[str] = []
    closed.send = lambda data: written.append("written")  # type: ignore[method-assign]
    # As a server (or a load balancer) ends a keep-alive connection it finds idle.
    vonage._server.close_connections()  # type: ignore[union-attr]

    create_call()

    # Seen before anything was written to it: a request written there could be lost after
    # Vonage read it, and would then not be sent again.
    assert written == []
    assert [request.status for request in vonage.create_requests()] == [201, 201]
    assert len(vonage.created_calls()) == 2
    assert opened == [vonage.host, vonage.host]


def test_a_connection_idle_for_long_is_reopened_before_use(
    vonage: FakeVonageAPI, opened: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Servers close idle connections, and one closing as the request goes out would fail
    # the call: a connection idle for longer than a few seconds is not used.
    monkeypatch.setattr(vonage_adapter, "_CONNECTION_IDLE_SECONDS", 0.0)

    create_call()
    create_call()

    assert [request.status for request in vonage.create_requests()] == [201, 201]
    assert opened == [vonage.host, vonage.host]


def test_a_request_that_could_not_be_written_on_a_reused_connection_is_written_once_more(
    vonage: FakeVonageAPI, opened: list[str]
) -> None:
    # Writing failed, so the server did not receive the whole request and cannot have acted
    # on it: the one case where the request is sent again, on a new connection.
    create_call()
    kept = vonage_adapter._thread_connections.kept[vonage.host].connection

    def broken_pipe(*args: Any, **kwargs: Any) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    kept.request = broken_pipe  # type: ignore[method-assign]

    create_call()

    assert [request.status for request in vonage.create_requests()] == [201, 201]
    assert len(vonage.created_calls()) == 2
    assert opened == [vonage.host, vonage.host]


def test_a_refused_connection_is_vonage_unavailable(vonage: FakeVonageAPI, settings: Settings) -> None:
    settings.VONAGE_API_HOST = "127.0.0.1:1"  # nothing listens there

    with pytest.raises(VonageUnavailable, match="create_call failed: ConnectionRefusedError") as unavailable:
        create_call()

    assert unavailable.value.status_code is None


def test_tls_is_verified_with_requests_ca_bundle(vonage: FakeVonageAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    # Trusting only the public CAs, as in production: the fake's certificate is refused.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())

    with pytest.raises(VonageUnavailable, match="SSLCertVerificationError") as unavailable:
        create_call()

    assert unavailable.value.status_code is None
    assert vonage.requests == []


def test_through_a_proxy_the_agent_call_goes_through_the_sdk(
    vonage: FakeVonageAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # http.client does not honour HTTPS_PROXY as requests does: the SDK sends it, through
    # the proxy (here none listens, so it fails there; it never reaches the API directly).
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")

    with pytest.raises(VonageUnavailable, match="ProxyError"):
        create_call()

    assert vonage.requests == []
