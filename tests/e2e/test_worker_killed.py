"""A gunicorn worker killed (SIGKILL) in the middle of a call's work, then Vonage going on.

A process can die at any instant (out of memory, a deploy, a crash). Vonage retries an
answer webhook whose connection was reset, with the same ``uuid`` (VONAGE.md); the
retry must get a valid NCCO within Vonage's 5 s, and nothing may happen twice: one Call
and one caller leg for the uuid, at most one agent call, every event stored once, and
the call must end answered, not with a caller left on hold for an agent nobody rang.

The worker is killed at an exact point, not after a guessed delay: its database
connection goes through :class:`tests.e2e.tcp_proxy.PostgresProxy`, which freezes that
connection at a chosen message; the test finds the worker that owns the connection and
kills it. The points (``KILL_POINTS``):

- ``answer-before-commit``: at the one statement that writes the answer (the call, the
  caller's leg, the NCCO: calls/statements.call_with_caller_leg_insert, its own
  transaction), before PostgreSQL sees it. Nothing is written; Vonage's retry starts afresh.
- ``answer-after-commit``: PostgreSQL runs and commits it, the reply is held back, the worker dies
  before it learns so and before it rings the agent. Vonage's retry finds the call,
  replays its NCCO and rings the agent (``answer_inbound.retry``).
- ``agent-claimed-then-checkpoint``: the answer reached Vonage; the worker's background
  thread claimed the agent call (``Call.agent_requested_at``) and died before placing it.
  Nothing is retried. After the greeting (longer than the claim's deadline here), Vonage
  reaches the caller's checkpoint, which gives up on the stale claim and puts the caller
  straight through to the call centre;
  the call is recorded ``direct`` and ``reconcile_calls`` leaves it so.
- ``agent-claimed-then-reconcile``: the same, but ``reconcile_calls`` runs before the
  checkpoint is reached: it rings the agent of a conference call still waiting with no
  agent leg after ``AGENT_CALL_DEADLINE_SECONDS`` and a margin (the contract of the
  lead's change to ``calls/reconcile.py``); the checkpoint then lets the caller wait.

In every case the worker storing the caller's ``answered`` event is killed too, right
after PostgreSQL committed it; Vonage's retry is then a duplicate, stored once.
"""

import http.client
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from benchmarks import load
from tests.conftest import notify_body
from tests.e2e.conftest import Leg
from tests.e2e.live_server import (
    ANSWER_BUDGET_SECONDS,
    LiveServer,
    Reply,
    connects_to,
    conversation_name,
    live_server,
    postgres_or_skip,
    process_stop,
    request,
)
from tests.e2e.tcp_proxy import Hold, process_with_connection, wait_for

pytestmark = pytest.mark.e2e

WORKERS, THREADS = 2, 2
# The production default: the first agent call of a freshly booted worker (the SDK's
# first import and TLS handshake) must not miss it.
AGENT_CALL_DEADLINE_SECONDS = 3.0
# How long reconcile_calls may take to ring the agent of a call left waiting with none:
# the deadline plus AGENT_CALL_GRACE_SECONDS (10 s, calls/reconcile.py) after the claim,
# and a run or two.
RECONCILE_LIMIT_SECONDS = 20.0
# The COMMIT psycopg sends (a simple query message), and nothing else.
COMMIT = re.compile(rb"\AQ....COMMIT\x00\Z", re.DOTALL)
# The claim on the first agent call (agent_dispatch.ring_first_agent), in autocommit.
CLAIM = re.compile(rb'\AQ....UPDATE "calls_call" SET "agent_requested_at"', re.DOTALL)
RESET = (ConnectionError, http.client.RemoteDisconnected, http.client.IncompleteRead)


@dataclass(frozen=True)
class KillPoint:
    # Where the answer's worker dies: "commit" (the answer's transaction) or "claim".
    at: str
    # The frozen message reaches PostgreSQL (its reply is held back).
    committed: bool
    # For "claim": reconcile_calls runs before the caller reaches the checkpoint.
    reconcile_first: bool = False


KILL_POINTS = {
    "answer-before-commit": KillPoint(at="commit", committed=False),
    "answer-after-commit": KillPoint(at="commit", committed=True),
    "agent-claimed-then-checkpoint": KillPoint(at="claim", committed=True),
    "agent-claimed-then-reconcile": KillPoint(at="claim", committed=True, reconcile_first=True),
}


@pytest.fixture(scope="module")
def postgres() -> None:
    postgres_or_skip()


def kill_holder(live: LiveServer, hold: Hold) -> int:
    """SIGKILL the worker whose database connection ``hold`` froze; return its pid once
    the master has replaced it."""
    client_port = hold.wait(10)
    pid = process_with_connection(live.workers, local_port=client_port, remote_port=live.proxy.port)
    assert pid is not None and pid != live.server.process.pid, f"no worker owns the frozen connection {client_port}"
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: pid not in live.workers and len(live.workers) == WORKERS,
        timeout=15,
        what=f"gunicorn to replace worker {pid}",
    )
    return pid


def kill_mid_request(live: LiveServer, hold: Hold, method: str, path: str, payload: Any = None) -> int:
    """Send the request, kill its worker at ``hold``, and check the client saw its
    connection fail rather than an answer. Returns the killed pid."""
    outcome: dict[str, Any] = {}

    def send() -> None:
        try:
            outcome["reply"] = request(live.port, method, path, payload, timeout=30)
        except Exception as exc:  # the point: recorded and checked below
            outcome["error"] = exc

    client = threading.Thread(target=send, name="doomed-request", daemon=True)
    client.start()
    pid = kill_holder(live, hold)
    client.join(15)
    assert not client.is_alive(), "the request neither failed nor was answered after its worker was killed"
    assert "reply" not in outcome, f"the request was answered although its worker was killed: {outcome['reply']}"
    assert isinstance(outcome["error"], RESET), repr(outcome["error"])
    return pid


def post_event(live: LiveServer, payload: dict[str, Any]) -> Reply:
    reply = request(live.port, "POST", "/event", payload)
    assert reply.status == 200, f"{payload['status']} of {payload['uuid']}: {reply}\n{live.server.log_tail()}"
    return reply


def checkpoint_reach(live: LiveServer, ncco: list[dict[str, Any]]) -> Reply:
    """Vonage, after the greeting, runs the caller's ``notify``: it posts the payload to
    the eventUrl and runs our answer (an empty one: go on to the hold)."""
    (notify,) = [action for action in ncco if action.get("action") == "notify"]
    url = urlsplit(notify["eventUrl"][0])
    reply = request(live.port, "POST", f"{url.path}?{url.query}", notify_body(notify["payload"]))
    assert reply.status in (200, 204), f"{reply}\n{live.server.log_tail()}"
    assert reply.seconds < ANSWER_BUDGET_SECONDS, f"the checkpoint took {reply.seconds:.2f} s"
    return reply


def agent_call_by_reconcile(live: LiveServer, call_id: int) -> list[Any]:
    """Run ``reconcile_calls`` every half second (the README's sidecar runs every 15 s)
    until it has rung an agent for ``call_id`` and recorded the leg, or the limit passes.
    Not stopped before the leg is recorded: a run killed between placing the call and
    recording it is a process dying mid-call, another case."""
    loop = live.manage("reconcile_calls", "--loop", "0.5")
    try:
        deadline = time.monotonic() + RECONCILE_LIMIT_SECONDS
        while time.monotonic() < deadline and loop.poll() is None:
            legs = live.rows("SELECT count(*) FROM calls_callleg WHERE call_id = %s AND role = 'agent'", (call_id,))
            if legs != [(0,)]:
                break
            time.sleep(0.1)
        return live.fake.agent_calls(call_id)
    finally:
        process_stop(loop)


def reconcile_once(live: LiveServer) -> None:
    run = live.manage("reconcile_calls")
    try:
        assert run.wait(timeout=30) == 0, (live.work / "manage-reconcile_calls.log").read_text()
    finally:
        process_stop(run)


@pytest.mark.parametrize("point", KILL_POINTS.values(), ids=KILL_POINTS.keys())
def test_a_worker_killed_mid_call_loses_nothing_and_does_nothing_twice(postgres: None, point: KillPoint) -> None:
    with live_server(
        "worker_killed",
        workers=WORKERS,
        threads=THREADS,
        AGENT_CALL_DEADLINE_SECONDS=str(AGENT_CALL_DEADLINE_SECONDS),
        LOG_LEVEL="INFO",
    ) as live:
        fake = live.fake
        caller = Leg(from_="447946000777", to=load.CAMPAIGN_NUMBER, direction="inbound")
        # Vonage knows the caller's call (reconcile_calls may ask about it).
        fake.add_call(
            uuid=caller.uuid,
            conversation_uuid=caller.conversation_uuid,
            to=caller.to,
            from_=caller.from_,
            direction="inbound",
            status="answered",
        )
        answer_path = f"/answer_inbound?{urlencode(caller.answer_params(fake.url))}"
        uuid = re.escape(caller.uuid.encode())

        # --- the caller's answer, and a worker killed on the way --------------------------
        if point.at == "commit":
            hold = live.proxy.hold(
                at=re.compile(
                    rb'\AQ....WITH c AS \(INSERT INTO "calls_call".*INSERT INTO "calls_callleg".*' + uuid, re.DOTALL
                ),
                forward=point.committed,
            )
            killed = [kill_mid_request(live, hold, "GET", answer_path)]
            # Vonage asks again, with the same uuid.
            answer = request(live.port, "GET", answer_path)
        else:
            hold = live.proxy.hold(at=CLAIM, forward=True)
            answer = request(live.port, "GET", answer_path)
            killed = [kill_holder(live, hold)]  # after the answer was sent
        assert answer.status == 200, f"{answer}\n{live.server.log_tail()}"
        assert answer.seconds < ANSWER_BUDGET_SECONDS, f"answered in {answer.seconds:.2f} s"
        room = conversation_name(answer.body)
        assert room is not None, f"the caller does not wait in a conversation: {answer.body}"

        # One call, one caller leg.
        assert live.rows("SELECT count(*) FROM calls_call") == [(1,)]
        ((call_id,),) = live.rows(
            "SELECT call_id FROM calls_callleg WHERE uuid = %s AND role = 'caller'", (caller.uuid,)
        )
        agent_legs = "SELECT count(*) FROM calls_callleg WHERE call_id = %s AND role = 'agent'"
        if point.at == "commit":
            # The worker that answered (the retry) rings the agent on a thread of its own;
            # it is done before the next kill, which may hit the same worker.
            wait_for(
                lambda: live.rows(agent_legs, (call_id,)) == [(1,)],
                timeout=AGENT_CALL_DEADLINE_SECONDS + 5,
                what=f"the agent leg of call {call_id}",
            )
        else:
            # The claim was made, the call never placed.
            assert live.rows(agent_legs, (call_id,)) == [(0,)]
            assert fake.create_requests() == []

        # --- the caller's events; the worker storing "answered" dies after the commit ----
        t0 = datetime.now(UTC)
        post_event(live, caller.event("started", t0))
        post_event(live, caller.event("ringing", t0))
        answered = caller.answered(t0)
        hold = live.proxy.hold(after=rb"status:" + caller.uuid.encode() + rb":answered", at=COMMIT, forward=True)
        killed.append(kill_mid_request(live, hold, "POST", "/event", answered))
        again = post_event(live, answered)
        assert again.body == {"stored": False, "kind": "status"}, "the first delivery was committed: a duplicate"

        # --- the agent is rung once, or the caller is put straight through ----------------
        if point.reconcile_first:
            placed = agent_call_by_reconcile(live, call_id)
            assert placed, (
                f"reconcile_calls did not ring the agent of call {call_id}, left waiting with a stale claim and "
                "no agent leg (the lead's change to calls/reconcile.py)\n"
                + (live.work / "manage-reconcile_calls.log").read_text()[-3000:]
            )
        if point.at == "claim" and not point.reconcile_first:
            # The greeting outlasts the claim's deadline. The checkpoint answers at once
            # from what the database says (it never waits for an agent call being
            # placed): by now the claim is stale, so it gives up on it.
            ((claimed,),) = live.rows("SELECT agent_requested_at FROM calls_call WHERE id = %s", (call_id,))
            stale_at = claimed + timedelta(seconds=AGENT_CALL_DEADLINE_SECONDS + 1.2)
            time.sleep(max(0.0, (stale_at - datetime.now(UTC)).total_seconds()))
        checkpoint = checkpoint_reach(live, answer.body)
        t1 = t0 + timedelta(seconds=1)
        if checkpoint.status == 204:
            # The caller goes on to the hold: exactly one agent call, already recorded.
            placed = fake.agent_calls(call_id)
            assert len(placed) == 1, f"{len(placed)} agent calls for call {call_id}\n{live.server.log_tail()}"
            agent_call = placed[0]
            agent = Leg(
                from_=load.CAMPAIGN_NUMBER,
                to=load.CALL_CENTER_NUMBER,
                direction="outbound",
                uuid=agent_call.uuid,
                conversation_uuid=agent_call.conversation_uuid,
            )
            for status in ("started", "ringing"):
                post_event(live, agent.event(status, t1))
            answer_url = urlsplit(agent_call.answer_url[0])
            query = urlencode({**dict(parse_qsl(answer_url.query)), **agent.answer_params(fake.url)})
            whisper = request(live.port, "GET", f"{answer_url.path}?{query}")
            assert whisper.status == 200, whisper
            assert conversation_name(whisper.body) == room, whisper.body
        else:
            # No agent is being rung: the caller is put straight through, and the call
            # says so, so that nothing rings an agent for it later.
            assert point.at == "claim", f"the checkpoint moved the caller on: {checkpoint}\n{live.server.log_tail(80)}"
            assert connects_to(checkpoint.body, load.CALL_CENTER_NUMBER), checkpoint.body
            ((state, error),) = live.rows("SELECT state, agent_call_error FROM calls_call WHERE id = %s", (call_id,))
            assert state == "direct" and error, (state, error)
            reconcile_once(live)
            assert fake.agent_calls(call_id) == [], "an agent was rung for a caller already put through"
            # Vonage's connect leg to the call centre, in the caller's conversation.
            agent = Leg(
                from_=load.CAMPAIGN_NUMBER,
                to=load.CALL_CENTER_NUMBER,
                direction="outbound",
                conversation_uuid=caller.conversation_uuid,
            )
            for status in ("started", "ringing"):
                post_event(live, agent.event(status, t1))
        t2 = t1 + timedelta(seconds=5)
        post_event(live, agent.answered(t2))
        t3 = t2 + timedelta(seconds=60)
        post_event(live, agent.completed(start=t2, end=t3, rate="0.02700000", price="0.02700000"))
        post_event(live, caller.completed(start=t0, end=t3, rate="0.00390000", price="0.00448500"))

        # --- the end: one call, answered and ended, two legs, each event once -----------
        ((outcome, state),) = live.rows("SELECT outcome, state FROM calls_call WHERE id = %s", (call_id,))
        assert (outcome, state) == ("answered", "ended"), live.server.log_tail()
        assert live.rows("SELECT count(*) FROM calls_call") == [(1,)]
        legs = live.rows("SELECT role, uuid FROM calls_callleg WHERE call_id = %s ORDER BY role", (call_id,))
        assert legs == [("agent", agent.uuid), ("caller", caller.uuid)]
        keys = sorted(key for (key,) in live.rows("SELECT dedupe_key FROM calls_callevent"))
        statuses = ("started", "ringing", "answered", "completed")
        expected = [f"notify:{call_id}:agent"] + [f"status:{leg.uuid}:{s}" for leg in (caller, agent) for s in statuses]
        assert keys == sorted(expected)
        assert live.rows("SELECT count(*) FROM calls_callevent WHERE call_id IS DISTINCT FROM %s", (call_id,)) == [(0,)]
        assert len(fake.agent_calls(call_id)) <= 1
        assert len(fake.create_requests()) == len(fake.agent_calls(call_id))

        # --- the log tells the story: the kills, and the call by its id and uuid ---------
        for pid in killed:
            assert live.log_lines(f"Worker (pid:{pid}) was sent SIGKILL"), f"the master did not log killing {pid}"
        assert live.log_lines(f"call={call_id}", caller.uuid), f"no log line names call {call_id} and its uuid"
