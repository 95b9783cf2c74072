"""Vonage's REST API failing on a share of requests while calls keep coming, on gunicorn.

The agent call is placed on a worker thread after the caller was answered, so a failed
create-call must be caught at the caller's checkpoint after the greeting. Here a share of
create-call requests answer 500 or 429, hang past the client's timeout, or are dropped
after the call was created (never sent again: a second agent call would ring for
nothing), while 24 calls run at once against one gunicorn (background dispatch, real
threads, PostgreSQL). For every call:

- the caller's answer is valid and does not wait for Vonage;
- at the checkpoint the caller either goes on to the hold (204, an agent leg recorded)
  or is connected straight to the call centre (an NCCO), never left on hold with nobody
  rung; a caller queued again after a 429 whose second agent call fails too is moved to
  the campaign's fallback (a REST transfer), as when every destination failed;
- the call ends answered, through the agent or through the direct connect, or at the
  fallback, with each event stored once;
- a call whose agent call failed is named in a log line.
"""

import random
import time
import uuid as uuid_lib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from benchmarks import load
from benchmarks.load import _completed, _leg_event
from tests.conftest import notify_body
from tests.e2e.live_server import (
    ANSWER_BUDGET_SECONDS,
    LiveServer,
    connects_to,
    live_server,
    postgres_or_skip,
    request,
)

pytestmark = pytest.mark.e2e

CALLS = 24


@pytest.fixture(scope="module")
def postgres() -> None:
    postgres_or_skip()


def test_a_share_of_failing_create_calls_never_leaves_a_caller_on_hold(postgres: None) -> None:
    with live_server(
        "api_faults",
        workers=2,
        threads=4,
        LOG_LEVEL="INFO",
        VONAGE_TIMEOUT_SECONDS="1",
        AGENT_CALL_DEADLINE_SECONDS="1.5",
    ) as live:
        live.fake.set_latency(200)
        # Each kind of fault at least once, whatever order the calls' requests arrive in (the
        # seeded shares below hit different requests when a busy machine reorders them, and
        # may miss a kind): the first four create-calls hang, fail 500, fail 429, drop.
        live.fake.hang(route="create", times=1)
        live.fake.fail(500, route="create", times=1)
        live.fake.fail(429, route="create", times=1)
        live.fake.drop_after_accept(route="create", times=1)
        live.fake.fail(500, route="create", times=None, share=0.15)
        live.fake.fail(429, route="create", times=None, share=0.15)
        live.fake.hang(route="create", times=None, share=0.1)
        live.fake.drop_after_accept(route="create", times=None, share=0.1)

        with ThreadPoolExecutor(max_workers=CALLS) as pool:
            outcomes = list(pool.map(lambda n: one_call(live, n), range(CALLS)))

        live.fake.clear_faults()
        faults = [r.fault if r.fault in ("hang", "drop") else r.status for r in live.fake.create_requests()]
        # The faults did happen, of every kind, next to successful requests.
        assert {500, 429, "hang", "drop", 201} <= set(faults), faults
        reached = {outcome for outcome, _ in outcomes}
        assert {"agent", "direct"} <= reached <= {"agent", "direct", "fallback"}, outcomes
        fallback = {call_id for outcome, call_id in outcomes if outcome == "fallback"}

        rows = live.rows("SELECT id, outcome, state, agent_call_error FROM calls_call ORDER BY id")
        assert len(rows) == CALLS
        for call_id, outcome, state, error in rows:
            if call_id in fallback:
                assert state == "ended", (call_id, outcome, state, error)
            else:
                assert (outcome, state) == ("answered", "ended"), (call_id, outcome, state, error)
        moved_on = live.rows("SELECT id FROM calls_call WHERE fallback_at IS NOT NULL ORDER BY id")
        assert {call_id for (call_id,) in moved_on} == fallback
        direct = {call_id for call_id, _, _, error in rows if error} - fallback
        assert direct == {call_id for outcome, call_id in outcomes if outcome == "direct"}
        for call_id in direct:
            assert live.log_lines("dispatch.agent_call_failed", f"call={call_id} "), call_id

        # Every event stored once: four per leg, two legs a call (one at the fallback), and
        # each checkpoint.
        (events,) = live.rows("SELECT count(*) FROM calls_callevent")[0]
        assert events == (CALLS - len(fallback)) * 9 + len(fallback) * 5
        unmatched = live.rows("SELECT id, kind, status FROM calls_callevent WHERE call_id IS NULL")
        assert unmatched == []


def one_call(live: LiveServer, n: int) -> tuple[str, int]:
    """Play Vonage for one call; return how the caller reached the call centre and the call's id."""
    rng = random.Random(n)
    caller = {
        "from": f"4479461{n:05d}",
        "to": load.CAMPAIGN_NUMBER,
        "uuid": str(uuid_lib.uuid4()),
        "conversation_uuid": f"CON-{uuid_lib.uuid4()}",
        "direction": "inbound",
    }
    query = urlencode({**{k: caller[k] for k in ("to", "from", "uuid", "conversation_uuid")}, "region_url": ""})
    answer = request(live.port, "GET", f"/answer_inbound?{query}")
    assert answer.status == 200
    assert [action["action"] for action in answer.body] == ["talk", "notify", "conversation"]
    # The answer never waited for Vonage's create-call: it is the same hold whether the
    # create-call succeeds, fails or hangs (the checkpoint below tells them apart; waiting
    # for it would have answered a failure with a direct connect), and it stays inside
    # Vonage's 5 s budget, which is the behaviour (no finer stopwatch on a shared machine).
    assert answer.seconds < ANSWER_BUDGET_SECONDS, answer.seconds

    t0 = datetime.now(UTC)
    for status in rng.sample(["started", "ringing"], 2):
        event(live, _leg_event(caller, status, t0))
    event(live, _leg_event(caller, "answered", t0, start_time=None, rate=None, network=None))

    notify = answer.body[1]
    checkpoint = urlsplit(notify["eventUrl"][0])
    call_id = int(dict(parse_qsl(checkpoint.query))["call"])
    # Vonage reaches the checkpoint after the greeting (about 3 s of speech), by which
    # time the agent call, with a 1.5 s deadline, has been placed or given up: the
    # checkpoint answers from what the database says and never waits for it.
    greeting_over = time.monotonic() + 3.0
    while time.monotonic() < greeting_over and not live.rows(
        "SELECT 1 FROM calls_call WHERE id = %s AND (state = 'direct' OR EXISTS "
        "(SELECT 1 FROM calls_callleg WHERE call_id = %s AND role = 'agent'))",
        (call_id, call_id),
    ):
        time.sleep(0.1)
    reply = request(live.port, "POST", f"{checkpoint.path}?{checkpoint.query}", notify_body(notify["payload"]))
    t1 = t0 + timedelta(seconds=3)
    if reply.status == 200:
        # The agent call failed: Vonage runs the connect our answer gave, a leg of the
        # caller's conversation.
        assert connects_to(reply.body, load.CALL_CENTER_NUMBER), reply.body
        connected = {
            "from": load.CAMPAIGN_NUMBER,
            "to": load.CALL_CENTER_NUMBER,
            "uuid": str(uuid_lib.uuid4()),
            "conversation_uuid": caller["conversation_uuid"],
            "direction": "outbound",
        }
        talk(live, caller, connected, t0, t1)
        return "direct", call_id

    assert reply.status == 204, reply
    # The agent call is placed, or (a 429, then a failed second try) the caller moved on.
    moved_by = time.monotonic() + 10.0
    while not live.fake.agent_calls(call_id, timeout=0.2) and time.monotonic() < moved_by:
        if any(request.path.endswith(caller["uuid"]) for request in live.fake.transfers()):
            event(live, _completed(caller, t0, t1 + timedelta(seconds=30), price="0.00448500"))
            return "fallback", call_id
    (placed, *extra) = live.fake.agent_calls(call_id, timeout=5.0)
    # The fake answers the create-call before the app records the leg it returned (and a
    # 429 is rung again after a back-off): wait for the record, as Vonage's events would.
    recorded: list[tuple[Any, ...]] = []
    recorded_by = time.monotonic() + 10.0
    while not recorded and time.monotonic() < recorded_by:
        recorded = live.rows("SELECT uuid FROM calls_callleg WHERE call_id = %s AND role = 'agent'", (call_id,))
        if not recorded:
            time.sleep(0.1)
    (placed, *extra) = live.fake.agent_calls(call_id, timeout=0.1) or [placed]
    assert recorded == [(placed.uuid,)] or (extra and len(recorded) == 1), (recorded, placed, extra)
    agent_uuid = recorded[0][0]
    agent_call = next(each for each in [placed, *extra] if each.uuid == agent_uuid)
    agent = {
        "from": load.CAMPAIGN_NUMBER,
        "to": load.CALL_CENTER_NUMBER,
        "uuid": agent_uuid,
        "conversation_uuid": agent_call.conversation_uuid,
        "direction": "outbound",
    }
    answer_url = urlsplit(agent_call.answer_url[0])
    agent_query = urlencode(
        {**dict(parse_qsl(answer_url.query)), **{k: agent[k] for k in ("to", "from", "uuid", "conversation_uuid")}}
    )
    whisper = request(live.port, "GET", f"{answer_url.path}?{agent_query}")
    assert whisper.status == 200
    assert whisper.body[-1]["action"] == "conversation"
    talk(live, caller, agent, t0, t1)
    return "agent", call_id


def talk(live: LiveServer, caller: dict[str, str], agent: dict[str, str], t0: datetime, t1: datetime) -> None:
    for status in ("started", "ringing"):
        event(live, _leg_event(agent, status, t1))
    event(live, _leg_event(agent, "answered", t1, start_time=None, rate=None, network=None))
    end = t1 + timedelta(seconds=40)
    event(live, _completed(agent, t1, end, price="0.02700000"))
    event(live, _completed(caller, t0, end, price="0.00448500"))


def event(live: LiveServer, payload: dict[str, Any]) -> None:
    reply = request(live.port, "POST", "/event", payload)
    assert reply.status == 200, (reply, payload)
