"""The events whose answer Vonage runs as an NCCO (an agent's key press, the caller's
checkpoint, a synchronous connect event) are answered from the database alone: the REST
work that follows (the next agent, transfers, hang-ups) runs after the answer, claimed
once, and a process that dies before it ran leaves work that ``reconcile_calls`` finds.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings

from calls import agent_dispatch, reconcile
from calls.models import Call, CallLeg, CallState
from calls.vonage_adapter import VonageUnavailable
from campaigns.models import TrackingNumber
from tests.calls import test_call_flow as flow
from tests.calls.test_call_flow import CALLER_UUID, CONVERSATION, agent_answers, dial, press, status
from tests.conftest import VonageRecorder, notify_body, post_json

campaign, number, accept_number = flow.campaign, flow.number, flow.accept_number


class HeldExecutor:
    """Stands in for the worker threads: keeps what is submitted until the test runs it."""

    def __init__(self) -> None:
        self.submitted: list[tuple[Callable[..., None], tuple[Any, ...], dict[str, Any]]] = []

    def submit(self, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        self.submitted.append((fn, args, kwargs))

    def run_all(self) -> None:
        work, self.submitted = self.submitted, []
        for fn, args, kwargs in work:
            fn(*args, **kwargs)


@pytest.fixture
def background(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> HeldExecutor:
    executor = HeldExecutor()
    settings.AGENT_CALL_DISPATCH = "background"
    monkeypatch.setattr(agent_dispatch, "_executor", lambda: executor)
    # A worker thread closes its own connection when done; run here, in the test's thread,
    # that would close the test's transaction (PostgreSQL).
    monkeypatch.setattr(agent_dispatch, "close_old_connections", lambda: None)
    return executor


def declined_call(client: Client, background: HeldExecutor) -> Call:
    dial(client)
    background.run_all()  # the first agent call
    call = Call.objects.get()
    agent_answers(client, call, "agent-1")
    status(client, "agent-1", "answered")
    return call


def test_a_decline_is_answered_before_any_rest_request(
    client: Client, accept_number: TrackingNumber, vonage: VonageRecorder, background: HeldExecutor
) -> None:
    call = declined_call(client, background)

    ncco = press(client, call, "agent-1", "2")

    # The agent has its answer; nothing was asked of Vonage yet.
    assert ncco == [{"action": "talk", "text": "The caller will be passed on. Goodbye."}]
    assert vonage.transfers == [] and vonage.hangups == []
    assert CallLeg.objects.get(uuid="agent-1").declined_at is not None
    assert len(background.submitted) == 1

    background.run_all()

    # Then the caller is moved to the campaign's voicemail (one destination), once.
    assert [uuid for uuid, _ in vonage.transfers] == [CALLER_UUID]
    assert Call.objects.get().state == CallState.FALLBACK


def test_a_redelivered_decline_moves_the_caller_once(
    client: Client, accept_number: TrackingNumber, vonage: VonageRecorder, background: HeldExecutor
) -> None:
    call = declined_call(client, background)
    press(client, call, "agent-1", "2")
    press(client, call, "agent-1", "2")  # Vonage retried: the same body, stored once

    background.run_all()

    assert [uuid for uuid, _ in vonage.transfers] == [CALLER_UUID]


def test_a_decline_whose_process_died_before_the_transfer_is_taken_on_by_reconcile(
    client: Client, accept_number: TrackingNumber, vonage: VonageRecorder, background: HeldExecutor
) -> None:
    call = declined_call(client, background)
    press(client, call, "agent-1", "2")
    background.submitted.clear()  # the process died: the work never ran

    call = Call.objects.with_related().get()
    done = reconcile.wait_enforce(call, now=timezone.now(), report=reconcile.ReconcileReport())

    assert done == "fallback"
    assert [uuid for uuid, _ in vonage.transfers] == [CALLER_UUID]


def test_an_accept_needs_no_rest_work(
    client: Client, accept_number: TrackingNumber, vonage: VonageRecorder, background: HeldExecutor
) -> None:
    call = declined_call(client, background)

    ncco = press(client, call, "agent-1", "1")

    assert ncco[0]["action"] == "conversation"
    assert background.submitted == []


# --- the checkpoint -----------------------------------------------------------------------


def checkpoint(client: Client, ncco: list[dict[str, Any]]) -> Any:
    url = ncco[1]["eventUrl"][0].removeprefix("https://whisper.example.com")
    return post_json(client, url, notify_body(ncco[1]["payload"], conversation_uuid=CONVERSATION))


def test_checkpoint_does_not_wait_for_an_agent_call_being_placed(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, background: HeldExecutor
) -> None:
    ncco = dial(client)
    # The placing thread has claimed the agent call and is waiting on Vonage.
    Call.objects.update(agent_requested_at=timezone.now())

    response = checkpoint(client, ncco)

    assert response.status_code == 204
    assert Call.objects.get().state == CallState.WAITING


def test_an_agent_call_refused_after_the_checkpoint_moves_the_caller_on(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, background: HeldExecutor
) -> None:
    ncco = dial(client)
    assert checkpoint(client, ncco).status_code == 204  # the caller is on hold now
    vonage.place_error = VonageUnavailable("Vonage answered 500 to create_call.", status_code=500)

    background.run_all()  # the placing thread learns that Vonage refused

    call = Call.objects.get()
    # Not "direct": nobody would answer that any more. The caller is moved by a transfer.
    assert call.state == CallState.FALLBACK
    assert "500" in call.agent_call_error
    assert [uuid for uuid, _ in vonage.transfers] == [CALLER_UUID]


def test_an_agent_call_refused_before_the_checkpoint_is_put_through_by_it(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, background: HeldExecutor
) -> None:
    ncco = dial(client)
    vonage.place_error = VonageUnavailable("Vonage answered 500 to create_call.", status_code=500)
    background.run_all()

    response = checkpoint(client, ncco)

    assert response.json()[-1]["endpoint"] == [{"type": "phone", "number": "447700900999"}]
    assert Call.objects.get().state == CallState.DIRECT
    assert vonage.transfers == []


def test_checkpoint_gives_up_at_once_on_a_claim_older_than_the_deadline(
    client: Client, number: TrackingNumber, vonage: VonageRecorder, background: HeldExecutor, settings: Settings
) -> None:
    ncco = dial(client)
    claimed = timezone.now() - timedelta(seconds=settings.AGENT_CALL_DEADLINE_SECONDS + 2)
    Call.objects.update(agent_requested_at=claimed)

    response = checkpoint(client, ncco)

    assert response.json()[-1]["action"] == "connect"
    assert Call.objects.get().state == CallState.DIRECT
