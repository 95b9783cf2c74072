"""Nothing unrecorded: what the webhooks received while the database was unreachable is
spooled to local disk and recorded once it is back, once; early events are adopted
whichever route records their leg."""

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings

from calls import agent_dispatch, database_outage, reconcile, services, vonage_adapter
from calls.models import Call, CallEvent, CallLeg, CallState, LegRole, LegStatus, Outcome
from calls.webhooks import spool
from campaigns.models import TrackingNumber
from tests.calls import test_call_flow as flow
from tests.calls.test_call_flow import CALLER_UUID, CONVERSATION, agent_answers, dial, status
from tests.conftest import VonageRecorder, post_json

campaign, number = flow.campaign, flow.number

CALLER = {"to": "447700900001", "from": "447946000123", "uuid": CALLER_UUID, "conversation_uuid": CONVERSATION}


@pytest.fixture
def spool_dir(settings: Settings, tmp_path: Path) -> Path:
    settings.WEBHOOK_SPOOL_DIR = str(tmp_path / "spool")
    return tmp_path / "spool"


@pytest.fixture
def database_away(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The process leaves the database alone, as after a failed connect (database_outage)."""

    def skipped() -> None:
        raise database_outage.DatabaseSkipped("a connection to the database failed moments ago")

    monkeypatch.setattr(database_outage, "check", skipped)
    return lambda: monkeypatch.setattr(database_outage, "check", lambda: None)


def spooled(directory: Path) -> list[dict[str, Any]]:
    files = sorted(directory.glob(f"*{spool.SUFFIX}*"))  # not overload's markers of shed conversations
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


def connect_leg_event(name: str, **extra: Any) -> dict[str, Any]:
    """Vonage's connect leg to the call centre, in the caller's conversation."""
    return {
        "uuid": "direct-1",
        "status": name,
        "direction": "outbound",
        "conversation_uuid": CONVERSATION,
        "from": "447700900001",
        "to": "447700900999",
        "timestamp": timezone.now().isoformat(),
        **extra,
    }


def test_a_call_answered_while_the_database_is_away_is_recorded_late_once(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path, database_away: Any
) -> None:
    answer = client.get("/answer_inbound", CALLER)
    assert answer.status_code == 200
    assert answer.json()[-1]["action"] == "connect"
    # Its events: the caller's, and the connect leg's to the call centre (503, retry later).
    assert post_json(client, "/event", connect_leg_event("answered")).status_code == 503
    assert Call.objects.count() == 0
    records = spooled(spool_dir)
    assert [record["route"] for record in records] == ["answer_inbound", "event"]
    assert records[0]["answered"] == answer.json()

    database_away()  # the database is back
    assert spool.replay() == 2

    call = Call.objects.get()
    assert call.recorded_late is True
    assert call.agent_call_error == services.LATE_REASON
    assert call.caller_ncco == answer.json()
    assert call.started_at.isoformat() == records[0]["received_at"]
    leg = CallLeg.objects.get(uuid="direct-1")
    assert (leg.call_id, leg.role, leg.status) == (call.pk, LegRole.AGENT, LegStatus.ANSWERED)
    # Put straight through, and the call centre answered.
    assert (call.state, call.outcome) == (CallState.CONNECTED, Outcome.ANSWERED)
    assert list(spool_dir.iterdir()) == []
    # Nothing twice: a second run has nothing left, and a late retry by Vonage replays.
    assert spool.replay() == 0
    assert client.get("/answer_inbound", CALLER).json() == answer.json()
    assert Call.objects.count() == 1 and CallLeg.objects.count() == 2


def test_a_spool_replayed_twice_records_each_request_once(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path, database_away: Any
) -> None:
    client.get("/answer_inbound", CALLER)
    post_json(client, "/event", connect_leg_event("answered"))
    copy = [path.read_bytes() for path in spool_dir.iterdir()]
    database_away()

    spool.replay()
    # A replay that died before deleting its file: the same requests are taken again.
    (spool_dir / f"again{spool.SUFFIX}{spool.TAKEN}").write_bytes(b"".join(copy))
    assert spool.replay() == 0

    assert Call.objects.count() == 1
    assert CallEvent.objects.filter(leg_uuid="direct-1").count() == 1


def test_a_call_vonage_retried_once_the_database_was_back_is_not_recorded_again(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path, database_away: Any
) -> None:
    client.get("/answer_inbound", CALLER)
    database_away()
    client.get("/answer_inbound", CALLER)  # Vonage asked again: recorded as usual

    assert spool.replay() == 0

    assert Call.objects.get().recorded_late is False


def test_an_agent_answer_while_the_database_is_away_is_recorded_as_its_leg(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dial(client)
    call = Call.objects.get()
    monkeypatch.setattr(
        database_outage, "check", lambda: (_ for _ in ()).throw(database_outage.DatabaseSkipped("away"))
    )
    heard = agent_answers(client, call, "late-agent")
    assert heard == [{"action": "talk", "text": "Sorry, this call could not be connected."}]
    monkeypatch.setattr(database_outage, "check", lambda: None)

    assert spool.replay() == 1

    leg = CallLeg.objects.get(uuid="late-agent")
    assert (leg.call_id, leg.role) == (call.pk, LegRole.AGENT)


def test_nothing_is_spooled_without_a_spool_directory(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, settings: Settings, database_away: Any
) -> None:
    settings.WEBHOOK_SPOOL_DIR = ""
    assert client.get("/answer_inbound", CALLER).status_code == 200
    database_away()
    assert spool.replay() == 0
    assert Call.objects.count() == 0


def test_a_bug_is_not_spooled(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay would only repeat it: only a database that could not be reached counts."""

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("calls.services.call_answer_inbound", broken)
    assert client.get("/answer_inbound", CALLER).json()[-1]["action"] == "connect"
    assert not spool_dir.exists() or list(spool_dir.iterdir()) == []


def test_a_write_after_the_file_was_taken_goes_to_a_new_file(spool_dir: Path, db: None) -> None:
    assert spool.write(route=spool.EVENT, payload={"uuid": "a"}, query={})
    (path,) = spool_dir.iterdir()
    path.rename(path.with_name(path.name + spool.TAKEN))  # a replay took it

    assert spool.write(route=spool.EVENT, payload={"uuid": "b"}, query={})

    assert sorted(p.name.endswith(spool.TAKEN) for p in spool_dir.iterdir()) == [False, True]
    assert {record["payload"]["uuid"] for record in spooled(spool_dir)} == {"a", "b"}


def test_a_line_cut_short_by_a_crash_is_skipped(spool_dir: Path, db: None) -> None:
    spool.write(
        route=spool.EVENT, payload={"uuid": "x", "status": "started", "timestamp": "2026-01-01T00:00:00Z"}, query={}
    )
    (path,) = spool_dir.iterdir()
    with path.open("ab") as file:
        file.write(b'{"route": "event", "payl')

    assert spool.replay() == 1
    assert CallEvent.objects.filter(leg_uuid="x").count() == 1


# --- early events, whichever route records the leg ---------------------------------------------


def test_an_agent_leg_first_recorded_by_its_answer_adopts_its_earlier_events(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker placing the agent call died after Vonage created it, before recording it.
    monkeypatch.setattr(agent_dispatch, "ring_first_agent_soon", lambda call_id, **_: None)
    dial(client)
    call = Call.objects.get()
    # A late agent call (or one whose placing worker died): its events came first.
    for name in ("started", "ringing", "answered"):
        status(client, "late-agent", name, conversation_uuid="CON-late-agent")
    assert CallEvent.objects.filter(leg_uuid="late-agent", leg__isnull=True).count() == 3

    agent_answers(client, call, "late-agent")

    leg = CallLeg.objects.get(uuid="late-agent")
    assert leg.status == LegStatus.ANSWERED
    assert CallEvent.objects.filter(leg_uuid="late-agent", leg__isnull=True).count() == 0


def test_reconcile_adopts_early_events_for_finished_legs_too(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vonage_adapter, "credentials_configured", lambda: True)
    dial(client)
    call = Call.objects.get()
    caller = CallLeg.objects.get(uuid=CALLER_UUID)
    CallLeg.objects.filter(pk=caller.pk).update(status=LegStatus.COMPLETED)
    CallEvent.objects.create(
        dedupe_key=f"status:{CALLER_UUID}:answered",
        leg_uuid=CALLER_UUID,
        kind="status",
        status="answered",
        payload={"uuid": CALLER_UUID, "status": "answered", "timestamp": "2026-03-02T11:55:01Z"},
    )

    report = reconcile.reconcile(older_than=reconcile.timedelta(seconds=0))

    assert report.adopted == 1
    event = CallEvent.objects.get(dedupe_key=f"status:{CALLER_UUID}:answered")
    assert (event.leg_id, event.call_id) == (caller.pk, call.pk)
    assert CallLeg.objects.get(pk=caller.pk).answered_at is not None
