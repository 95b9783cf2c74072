"""The fake itself: as strict as Vonage where it matters, and its faults do what they say.

Spoken to with plain ``requests`` (over TLS, trusting the fake's CA) where the SDK would
hide what is sent, and with the SDK where its parsing is what is being checked.
"""

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from calls import vonage_adapter
from devtools.fake_vonage_api import FakeVonageAPI
from tests.e2e.conftest import APPLICATION_ID, KeyPair

pytestmark = pytest.mark.e2e

CREATE: dict[str, Any] = {
    "to": [{"type": "phone", "number": "447700900999"}],
    "from": {"type": "phone", "number": "447700900001"},
    "answer_url": ["https://whisper.example.com/answer_outbound?call=1"],
    "event_url": ["https://whisper.example.com/event"],
}


class Api:
    """A minimal client of the fake: signed requests, the CA trusted, no retries."""

    def __init__(self, fake: FakeVonageAPI, keys: KeyPair) -> None:
        self.fake = fake
        self.keys = keys
        self.session = requests.Session()
        self.session.verify = fake.ca_bundle_path
        # requests lets REQUESTS_CA_BUNDLE win over session.verify unless told not to.
        self.session.trust_env = False
        # Parsed once: PyJWT given PEM text parses and validates the RSA key on every
        # token, about 35 ms (the SDK does just that, hence the adapter's token reuse).
        signing_key = serialization.load_pem_private_key(keys.private_pem.encode(), password=None)
        assert isinstance(signing_key, rsa.RSAPrivateKey)
        self.signing_key = signing_key

    def token(self, application_id: str = APPLICATION_ID, **claims: Any) -> str:
        now = int(time.time())
        payload = {"application_id": application_id, "iat": now, "exp": now + 900, "jti": str(uuid.uuid4())}
        return jwt.encode({**payload, **claims}, self.signing_key, algorithm="RS256")

    def send(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token if token is not None else self.token()}"}
        return self.session.request(method, self.fake.url + path, json=body, headers=headers, timeout=5)

    def create(self, **changes: Any) -> dict[str, Any]:
        response = self.send("POST", "/v1/calls", {**CREATE, **changes})
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
def api(fake_vonage: FakeVonageAPI, application_keys: KeyPair) -> Iterator[Api]:
    client = Api(fake_vonage, application_keys)
    yield client
    client.session.close()


def test_create_answers_like_vonage(api: Api) -> None:
    created = api.create()

    assert created.keys() == {"uuid", "status", "direction", "conversation_uuid"}
    assert (created["status"], created["direction"]) == ("started", "outbound")
    assert created["conversation_uuid"].startswith("CON-")
    assert api.create()["uuid"] != created["uuid"]
    (call, _) = api.fake.created_calls()
    assert call.answer_url == CREATE["answer_url"]
    assert call.event_url == CREATE["event_url"]


@pytest.mark.parametrize(
    "changes",
    [
        {"to": []},
        {"to": [{"type": "sip", "uri": "sip:agent@example.com"}]},
        {"to": [{"type": "phone", "number": "+447700900999"}]},  # Vonage wants no "+"
        {"from": {"type": "phone"}},
        {"answer_url": "https://whisper.example.com/answer"},  # a list, not a string
        {"ncco": [{"action": "talk", "text": "Hello"}]},  # answer_url and ncco together
        {"event_url": None},
    ],
)
def test_create_refuses_what_vonage_refuses(changes: dict[str, Any], api: Api) -> None:
    body = {key: value for key, value in {**CREATE, **changes}.items() if value is not None}

    response = api.send("POST", "/v1/calls", body)

    assert response.status_code == 400
    assert response.json()["title"] == "Bad Request"
    assert api.fake.created_calls() == []


def test_create_accepts_an_ncco_instead_of_an_answer_url(api: Api) -> None:
    body = {key: value for key, value in CREATE.items() if key != "answer_url"}
    body["ncco"] = [{"action": "talk", "text": "Hello"}]

    assert api.send("POST", "/v1/calls", body).status_code == 201


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("", "no token"),
        ("not-a-jwt", "not a JWT"),
        (None, "another application"),
        (None, "expired"),
        (None, "another key"),
    ],
)
def test_credentials_are_checked(token: str | None, why: str, api: Api) -> None:
    if why == "another application":
        token = api.token(application_id="someone-else")
    elif why == "expired":
        token = api.token(iat=int(time.time()) - 3600, exp=int(time.time()) - 60)
    elif why == "another key":
        from tests.e2e.conftest import make_key_pair

        token = Api(api.fake, make_key_pair()).token()

    response = api.send("POST", "/v1/calls", CREATE, token=token)

    assert response.status_code == 401
    assert response.json()["title"] == "Unauthorized"
    assert api.fake.created_calls() == []


def test_a_token_without_exp_is_refused_unless_the_fake_is_told_vonage_accepts_it(api: Api) -> None:
    now = int(time.time())
    payload = {"application_id": APPLICATION_ID, "iat": now, "jti": str(uuid.uuid4())}
    no_exp = jwt.encode(payload, api.signing_key, algorithm="RS256")

    assert api.send("POST", "/v1/calls", CREATE, token=no_exp).status_code == 401
    api.fake.require_exp = False  # as for the seed's SDK (benchmarks/seed_side_by_side.py)
    assert api.send("POST", "/v1/calls", CREATE, token=no_exp).status_code == 201
    assert api.send("POST", "/v1/calls", CREATE, token=api.token(application_id="someone-else")).status_code == 401


def test_a_create_without_event_url_takes_the_applications_when_one_is_set(api: Api) -> None:
    body = {key: value for key, value in CREATE.items() if key != "event_url"}

    assert api.send("POST", "/v1/calls", body).status_code == 400
    api.fake.application_event_url = "http://127.0.0.1:5000/event"
    assert api.send("POST", "/v1/calls", body).status_code == 201
    (call,) = api.fake.created_calls()
    assert call.event_url == ["http://127.0.0.1:5000/event"]


def test_updates(api: Api) -> None:
    uuid_ = api.create()["uuid"]
    path = f"/v1/calls/{uuid_}"

    for action in ("mute", "unmute", "earmuff", "unearmuff"):
        assert api.send("PUT", path, {"action": action}).status_code == 204
    assert api.send("PUT", path, {"action": "explode"}).status_code == 400
    by_url = {"action": "transfer", "destination": {"type": "ncco", "url": ["https://example.com/ncco"]}}
    assert api.send("PUT", path, by_url).status_code == 204
    # What transfer_call_ncco sends when given dicts; Vonage refuses it.
    empty = {"action": "transfer", "destination": {"type": "ncco", "ncco": [{}]}}
    assert api.send("PUT", path, empty).status_code == 400
    no_action = {"action": "transfer", "destination": {"type": "ncco", "ncco": [{"text": "Hi"}]}}
    assert api.send("PUT", path, no_action).status_code == 400
    assert api.send("PUT", path, {"action": "transfer", "destination": {"type": "ncco", "ncco": []}}).status_code == 400
    assert api.send("PUT", path, {"action": "hangup"}).status_code == 204
    assert api.send("PUT", path, {"action": "hangup"}).status_code == 400  # already ended

    assert api.send("PUT", "/v1/calls/unknown", {"action": "hangup"}).status_code == 404
    assert api.send("GET", "/v1/calls/unknown").status_code == 404
    assert api.send("DELETE", path).status_code == 405
    assert api.send("GET", "/v2/whatever").status_code == 404
    assert [r.action for r in api.fake.transfers()] == ["transfer"] * 4
    assert len(api.fake.hangups()) == 3


def test_list_filters_by_conversation_through_the_sdk(vonage: FakeVonageAPI, api: Api) -> None:
    from vonage_voice import ListCallsFilter

    first, second = api.create(), api.create()
    vonage.set_call_status(second["uuid"], "answered")
    client = vonage_adapter._voice_client(vonage.host)

    calls, next_page = client.voice.list_calls(ListCallsFilter(conversation_uuid=first["conversation_uuid"]))
    assert [call.uuid for call in calls] == [first["uuid"]]
    assert next_page is None

    calls, next_page = client.voice.list_calls(ListCallsFilter(page_size=1))
    assert [call.uuid for call in calls] == [first["uuid"]]
    assert next_page == 1

    calls, _ = client.voice.list_calls(ListCallsFilter(status="answered"))
    assert [(call.uuid, call.status) for call in calls] == [(second["uuid"], "answered")]


def test_a_failure_for_the_next_n_requests(api: Api) -> None:
    api.fake.fail(500, route="create", times=2)

    statuses = [api.send("POST", "/v1/calls", CREATE).status_code for _ in range(3)]

    assert statuses == [500, 500, 201]
    assert [r.fault for r in api.fake.create_requests()] == ["status", "status", ""]


def test_a_failure_for_a_share_of_requests_is_repeatable(application_keys: KeyPair) -> None:
    def statuses(seed: int) -> list[int]:
        with FakeVonageAPI(public_key=application_keys.public_pem, seed=seed) as fake:
            fake.fail(429, route="get", times=None, share=0.5)
            client = Api(fake, application_keys)
            return [client.send("GET", "/v1/calls/unknown").status_code for _ in range(20)]

    first = statuses(seed=7)
    assert first == statuses(seed=7)
    assert set(first) == {404, 429}


def test_faults_are_per_route(api: Api) -> None:
    api.fake.fail(503, route="get", times=None)

    assert api.send("POST", "/v1/calls", CREATE).status_code == 201
    assert api.send("GET", "/v1/calls/unknown").status_code == 503
    api.fake.clear_faults()
    assert api.send("GET", "/v1/calls/unknown").status_code == 404


def test_latency(api: Api) -> None:
    api.fake.set_latency(3000, route="list")  # under the client's 5 s timeout

    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        listed = pool.submit(api.send, "GET", "/v1/calls")
        wait_until(lambda: api.fake.requests_for("list"))
        # Another route has no latency: it is answered while the list is still held
        # (an order of events, not a stopwatch: the machine may be slow).
        assert api.send("GET", "/v1/calls/unknown").status_code == 404
        assert api.fake.requests_for("list")[0].status is None
        assert listed.result(timeout=60).status_code == 200
    # The latency is a floor, whatever the machine's load.
    assert time.monotonic() - started >= 3.0


def wait_until(condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_account_call_limit_refuses_new_calls_beyond_it(api: Api) -> None:
    # One call every five seconds: the second of two back-to-back create-calls is over it.
    api.fake.set_calls_per_second(0.2)
    first = api.send("POST", "/v1/calls", CREATE)
    second = api.send("POST", "/v1/calls", CREATE)
    assert first.status_code == 201
    assert second.status_code == 429
    assert second.json()["type"].endswith("throttled")
    assert len(api.fake.created_calls()) == 1  # the refused request created nothing
    assert api.fake.rate_limited == 1
    assert api.fake.new_call_allowed() is False  # a simulated connect counts against the same limit
    assert api.fake.rate_limited == 2
    # Other requests are not new calls: a hang-up goes through.
    uuid_ = first.json()["uuid"]
    assert api.send("PUT", f"/v1/calls/{uuid_}", {"action": "hangup"}).status_code == 204
    api.fake.set_calls_per_second(None)
    assert api.send("POST", "/v1/calls", CREATE).status_code == 201


def test_a_hang_outlasts_the_client_timeout(api: Api) -> None:
    api.fake.hang(route="create")

    with pytest.raises(requests.exceptions.ReadTimeout):
        api.session.post(
            api.fake.url + "/v1/calls",
            json=CREATE,
            headers={"Authorization": f"Bearer {api.token()}"},
            timeout=0.3,
        )
    assert api.fake.create_requests()[0].fault == "hang"


def test_a_dropped_answer_is_remote_disconnected_after_the_call_was_created(api: Api) -> None:
    api.fake.drop_after_accept(route="create")

    with pytest.raises(requests.exceptions.ConnectionError, match="RemoteDisconnected"):
        api.send("POST", "/v1/calls", CREATE)
    assert len(api.fake.created_calls()) == 1
    assert api.fake.create_requests()[0].status is None


def test_the_command_line_serves_until_interrupted(application_keys: KeyPair, tmp_path: Path) -> None:
    (tmp_path / "public.pem").write_bytes(application_keys.public_pem)
    server = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [
            sys.executable,
            "-m",
            "devtools.fake_vonage_api",
            "--port",
            "0",
            "--latency-ms",
            "10",
            "--public-key",
            str(tmp_path / "public.pem"),
            "--ca-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        # Ctrl-C as in a terminal, however this suite was started: a runner started in the
        # background (`make test &`, CI) ignores SIGINT, and its children inherit that.
        preexec_fn=_sigint_interrupts,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        host = server.stdout.readline().strip().removeprefix("VONAGE_API_HOST=")
        ca_path = server.stdout.readline().strip().removeprefix("REQUESTS_CA_BUNDLE=")
        assert host.startswith("127.0.0.1:")
        response = requests.get(f"https://{host}/v1/calls/unknown", verify=ca_path, timeout=5)
        assert response.status_code == 401  # a public key was given: a token is required

        server.send_signal(signal.SIGINT)  # as Ctrl-C
        assert server.wait(timeout=30) == 0
    finally:
        # Whatever failed above, the server does not outlive the test.
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()


def _sigint_interrupts() -> None:
    """In the child, before Python starts: SIGINT raises KeyboardInterrupt (Python installs
    its handler only when the inherited disposition is not "ignore")."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
