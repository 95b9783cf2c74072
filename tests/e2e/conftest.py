"""End-to-end fixtures: the real ``vonage`` SDK against the local TLS fake of the API.

The app is configured as it would be in production (application id, a PKCS#8 private
key, an API host), except that the host is the fake on 127.0.0.1 and ``requests``
trusts the fake's throwaway CA through ``REQUESTS_CA_BUNDLE``. Vonage's webhooks are
played with Django's test client, in the shape Vonage sends them.
"""

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client
from pytest_django.fixtures import Settings

from calls import vonage_adapter
from devtools.fake_vonage_api import FakeVonageAPI

APPLICATION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
CALLER_NUMBER = "447946000123"


@dataclass(frozen=True)
class KeyPair:
    private_pem: str  # PKCS#8: the SDK refuses PKCS#1 ("BEGIN RSA PRIVATE KEY")
    public_pem: bytes


def make_key_pair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(private_pem=private_pem, public_pem=public_pem)


@pytest.fixture(scope="session")
def application_keys() -> KeyPair:
    """The application's key pair: Vonage keeps the public half, we sign with the private."""
    return make_key_pair()


@pytest.fixture
def fake_vonage(application_keys: KeyPair) -> Iterator[FakeVonageAPI]:
    with FakeVonageAPI(public_key=application_keys.public_pem, application_id=APPLICATION_ID) as fake:
        yield fake


class TrackedExecutor(ThreadPoolExecutor):
    """The adapter's worker pool, one per test, that can wait for everything it was given."""

    def __init__(self) -> None:
        super().__init__(max_workers=16, thread_name_prefix="vonage-test")
        self.futures: list[Future[Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.futures.append(future)
        return future

    def drain(self, timeout: float = 10.0) -> None:
        # A finished create can submit its late hang-up: wait until nothing new appears.
        while not_done := [future for future in self.futures if not future.done()]:
            if wait(not_done, timeout=timeout).not_done:
                raise AssertionError("The Vonage adapter's workers did not finish.")
        self.shutdown(wait=True)


@pytest.fixture
def vonage(
    fake_vonage: FakeVonageAPI,
    application_keys: KeyPair,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[FakeVonageAPI]:
    """The app configured with real credentials, talking to the fake."""
    settings.VONAGE_APPLICATION_ID = APPLICATION_ID
    settings.VONAGE_PRIVATE_KEY = application_keys.private_pem
    settings.VONAGE_API_HOST = fake_vonage.host
    settings.VONAGE_TIMEOUT_SECONDS = 1
    # The tests of our deadline set their own. For the others, a loaded machine taking past
    # the 3 s default to reach the fake (the first request also imports the SDK) must not
    # turn the outcome they test into "Vonage did not create the call within 3 s".
    settings.AGENT_CALL_DEADLINE_SECONDS = 30
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake_vonage.ca_bundle_path)
    # A proxy in the environment must not be asked for 127.0.0.1.
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    executor = TrackedExecutor()
    monkeypatch.setattr(vonage_adapter, "_executor", lambda: executor)

    yield fake_vonage

    # Work the adapter left running (a request still hung, a late hang-up) ends here,
    # while the settings still point at the fake: closing it fails that work fast.
    fake_vonage.close()
    executor.drain()


# --- Vonage's webhooks, as Vonage sends them ----------------------------------------------


def vonage_time(moment: datetime) -> str:
    """Event timestamps: ISO 8601 in UTC with milliseconds and a ``Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Leg:
    """One Vonage call leg as its webhooks describe it."""

    from_: str
    to: str
    direction: str
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    conversation_uuid: str = field(default_factory=lambda: f"CON-{uuid.uuid4()}")

    def answer_params(self, region_url: str) -> dict[str, str]:
        """The answer webhook's query string (Vonage's default method is GET)."""
        return {
            "to": self.to,
            "from": self.from_,
            "uuid": self.uuid,
            "conversation_uuid": self.conversation_uuid,
            "region_url": region_url,
        }

    def event(self, status: str, at: datetime, **extra: Any) -> dict[str, Any]:
        return {
            "from": self.from_,
            "to": self.to,
            "uuid": self.uuid,
            "conversation_uuid": self.conversation_uuid,
            "status": status,
            "direction": self.direction,
            "timestamp": vonage_time(at),
            **extra,
        }

    def answered(self, at: datetime) -> dict[str, Any]:
        # Vonage sends these three empty on "answered"; "completed" carries the facts.
        return self.event("answered", at, start_time=None, rate=None, network=None)

    def completed(self, *, start: datetime, end: datetime, rate: str, price: str) -> dict[str, Any]:
        return self.event(
            "completed",
            end,
            start_time=vonage_time(start),
            end_time=vonage_time(end),
            duration=str(round((end - start).total_seconds())),
            rate=rate,
            price=price,
            network="23410",
        )


def post_event(client: Client, payload: dict[str, Any]) -> Any:
    response = client.post("/event", json.dumps(payload), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()
