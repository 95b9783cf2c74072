"""Fixtures shared by the whole suite."""

import json
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from calls import call_flow, vonage_adapter
from calls.vonage_adapter import PlacedCall, VonageUnavailable
from campaigns.models import Campaign, TrackingNumber
from tests.factories import CampaignFactory, TrackingNumberFactory

FIXTURES = Path(__file__).parent / "fixtures"

# What Vonage's events set on a leg: compared field by field by the order-proofing tests.
LEG_FIELDS = (
    "status",
    "detail",
    "machine_detected",
    "started_at",
    "answered_at",
    "ended_at",
    "duration",
    "price",
    "rate",
    "network",
)


def load_fixture(name: str) -> Any:
    """A recorded payload from ``tests/fixtures/``."""
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(autouse=True)
def _routes_forgotten() -> Iterator[None]:
    """Each test starts with no route kept in memory (calls/route_cache.py): its version
    row is rolled back with the test's transaction, so versions repeat across tests."""
    from calls import route_cache

    route_cache.forget()
    yield
    route_cache.forget()


@pytest.fixture(autouse=True)
def _database_reachable() -> Iterator[None]:
    """Each test starts with the database trusted (calls/database_outage.py keeps a
    process-wide back-off that one test's simulated outage would otherwise leave on)."""
    from calls import database_outage

    database_outage.reset()
    yield
    database_outage.reset()


def running_children() -> dict[int, str]:
    """This process's running children (Linux ``/proc``; elsewhere none): pid → command.
    Zombies are left out: they have exited, only their status is still to be read."""
    found: dict[int, str] = {}
    me = os.getpid()
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            # "pid (command) state ppid …": the command may hold spaces and parentheses.
            state, parent = stat[stat.rindex(")") + 2 :].split()[:2]
            if int(parent) != me or state == "Z":
                continue
            command = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        found[int(entry.name)] = command.strip()
    return found


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test() -> Iterator[None]:
    """A test that starts a process (a server, a command, a fake) stops and waits for it
    before it ends: a leftover keeps ports, database connections and CPU for the rest of
    the run. Processes of wider-scoped fixtures were already running before, so they pass."""
    before = running_children()
    yield
    leftover = {pid: command for pid, command in running_children().items() if pid not in before}
    if not leftover:
        return
    for pid in leftover:
        try:
            os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    pytest.fail(f"The test left processes running (now killed): {leftover}")


@pytest.fixture
def client() -> Client:
    return Client()


@pytest.fixture
def summer_campaign(db: None) -> Campaign:
    return CampaignFactory(name="Summer offer", topic="the summer offer", destination="447700900999")


@pytest.fixture
def summer_number(summer_campaign: Campaign) -> TrackingNumber:
    return TrackingNumberFactory(number="447700900001", campaign=summer_campaign, source="M4 billboard")


def notify_body(payload: dict[str, Any], *, conversation_uuid: str = "CON-f972836a-550f-45fa-956c-12a2ab5b7d22") -> Any:
    """What Vonage posts to a ``notify`` action's eventUrl: the NCCO's payload, wrapped."""
    return {
        "conversation_uuid": conversation_uuid,
        "payload": payload,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }


def post_json(client: Client, path: str, payload: Any, **extra: Any) -> Any:
    return client.post(path, json.dumps(payload), content_type="application/json", **extra)


def callback(route: str, **params: object) -> str:
    """A callback URL exactly as the app hands it to Vonage (its parameters signed)."""
    from calls.webhooks.callback_urls import callback_url

    return callback_url(f"calls:{route}", **params)


def callback_path(route: str, **params: object) -> str:
    """The same URL as a path with its query, for the test client."""
    from urllib.parse import urlsplit

    parts = urlsplit(callback(route, **params))
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def with_fields(path: str, fields: dict[str, Any]) -> str:
    """``path`` (which may already carry our signed parameters) with Vonage's GET fields
    added: the test client would drop the path's own query if given ``data``."""
    from urllib.parse import urlencode

    return path + ("&" if "?" in path else "?") + urlencode(fields)


# --- Vonage, as the app's adapter sees it ---------------------------------------------------


@dataclass
class VonageRecorder:
    """Stands in for the adapter (calls/vonage_adapter.py): records what the app asks Vonage to do."""

    placed: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    hangups: list[str] = field(default_factory=list)
    transfer_errors: list[VonageUnavailable] = field(default_factory=list)
    hangup_errors: list[VonageUnavailable] = field(default_factory=list)
    place_error: VonageUnavailable | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def place_call(self, **kwargs: Any) -> PlacedCall:
        if self.place_error is not None:
            raise self.place_error
        with self.lock:
            self.placed.append(kwargs)
            n = len(self.placed)
        return PlacedCall(uuid=f"agent-{n}", conversation_uuid=f"CON-agent-{n}", sent=True)

    def transfer_to_ncco(self, *, uuid: str, ncco: list[dict[str, Any]], region_url: str = "") -> None:
        if self.transfer_errors:
            raise self.transfer_errors.pop(0)
        with self.lock:
            self.transfers.append((uuid, ncco))

    def hang_up(self, *, uuid: str, region_url: str = "") -> None:
        if self.hangup_errors:
            raise self.hangup_errors.pop(0)
        with self.lock:
            self.hangups.append(uuid)


@pytest.fixture
def vonage(monkeypatch: pytest.MonkeyPatch) -> VonageRecorder:
    recorder = VonageRecorder()
    for name in ("place_call", "transfer_to_ncco", "hang_up"):
        monkeypatch.setattr(vonage_adapter, name, getattr(recorder, name))
    monkeypatch.setattr(call_flow, "UPDATE_RETRY_INTERVAL", 0.01)
    return recorder
