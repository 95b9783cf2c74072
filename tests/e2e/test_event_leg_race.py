"""An agent leg's first event, delivered while the leg is being recorded, is not lost.

Vonage posts a new leg's first events as soon as it creates the call, often before
``create_call`` has answered us (VONAGE.md), so the event can reach ``/event`` while the
server's background thread is recording the agent leg. Each side writes, then looks for
the other: the leg's recorder adopts the early events it finds, the event looks for its
leg. If the event's look comes before the leg is committed and its commit after the
recorder looked, neither sees the other, and the event stays unmatched: a ``failed``
agent leg stays "new" and the caller waits on hold until ``reconcile_calls`` gets to the
leg (two minutes by default) instead of being moved on at once.

The interleaving is forced with :class:`tests.e2e.tcp_proxy.PostgresProxy`: the leg's
insert (one statement, its own transaction) is held before PostgreSQL sees it, the event
is stored up to its ``COMMIT`` and held there, the leg is let go (and its recorder finds
no early event), then the event.
"""

import re
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from benchmarks import load
from tests.e2e.conftest import Leg
from tests.e2e.live_server import live_server, postgres_or_skip, request
from tests.e2e.tcp_proxy import wait_for

pytestmark = pytest.mark.e2e

COMMIT = re.compile(rb"\AQ....COMMIT\x00\Z", re.DOTALL)


@pytest.fixture(scope="module")
def postgres() -> None:
    postgres_or_skip()


def test_an_agent_failure_posted_while_the_leg_is_recorded_moves_the_caller_on(postgres: None) -> None:
    with live_server("event_leg_race", workers=1, threads=4, LOG_LEVEL="INFO") as live:
        fake, proxy = live.fake, live.proxy
        leg_commit = proxy.hold(
            # The role as a quoted literal (a simple query) or a Bind's parameter (tcp_proxy).
            at=re.compile(rb"\AQ....INSERT INTO \"calls_callleg\".*['\x00]agent['\x00]", re.DOTALL),
            forward=False,
        )
        caller = Leg(from_="447946000888", to=load.CAMPAIGN_NUMBER, direction="inbound")
        answer = request(live.port, "GET", f"/answer_inbound?{urlencode(caller.answer_params(fake.url))}")
        assert answer.status == 200
        leg_commit.wait(10)
        ((call_id,),) = live.rows("SELECT id FROM calls_call")
        (agent_call,) = fake.agent_calls(call_id)

        # Vonage could not ring the agent's number, and says so at once.
        agent = Leg(
            from_=load.CAMPAIGN_NUMBER,
            to=load.CALL_CENTER_NUMBER,
            direction="outbound",
            uuid=agent_call.uuid,
            conversation_uuid=agent_call.conversation_uuid,
        )
        event_commit = proxy.hold(after=f"status:{agent.uuid}:failed".encode(), at=COMMIT, forward=False)
        replies: list[Any] = []
        failed = agent.event("failed", datetime.now(UTC), detail="cannot_route")
        poster = threading.Thread(target=lambda: replies.append(request(live.port, "POST", "/event", failed)))
        poster.start()
        event_commit.wait(10)

        leg_commit.release()
        wait_for(lambda: live.log_lines("flow.agent_rung", f"call={call_id}"), timeout=10, what="the agent leg")
        # The recorder has looked for early events (none committed yet) and is done.
        wait_for(
            lambda: live.rows("SELECT count(*) FROM calls_callleg WHERE role = 'agent'") == [(1,)],
            timeout=5,
            what="the agent leg's row",
        )
        event_commit.release()
        poster.join(10)
        assert replies and replies[0].status == 200

        # The failure counts: the agent leg failed, and the caller was moved on.
        wait_for(
            lambda: live.rows("SELECT status FROM calls_callleg WHERE uuid = %s", (agent.uuid,)) == [("failed",)],
            timeout=5,
            what="the agent leg to be marked failed",
        )
        assert live.rows("SELECT call_id FROM calls_callevent WHERE leg_uuid = %s", (agent.uuid,)) == [(call_id,)]
        ((attempt,),) = live.rows("SELECT attempt FROM calls_call WHERE id = %s", (call_id,))
        assert attempt == 1, "the caller was not moved on from the agent who could not be rung"
