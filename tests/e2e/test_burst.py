"""A TV spot: 24 callers in one second, on an account that allows 3 new calls a second.

gunicorn (two workers, background dispatch, PostgreSQL) against the TLS fake of Vonage's
REST API enforcing the limit as Vonage does (``calls_per_second=3``: a create-call above
it is answered 429 and creates nothing). Before pacing, 21 of 24 agent calls were refused
and the checkpoint connected those callers straight to the call centre, a ``connect`` the
same limit refuses. Now every caller is held and rung in turn (calls/pacing.py):

- every caller reaches a whispered agent (the agent's answer joins the caller's room),
  and every call ends answered;
- no caller is connected directly: no checkpoint answers with an NCCO, no call records an
  agent call error or the direct state;
- exactly one agent call per caller, and Vonage's 429s are rare (the pacer keeps under
  the limit; a refusal would be retried after a back-off, not turned into a connect).

No wall-clock figure is asserted: ``benchmarks/calls.py --burst`` reports the waits.
"""

import itertools
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest

from benchmarks import load
from tests.e2e.live_server import live_server, postgres_or_skip, request

pytestmark = pytest.mark.e2e

CALLS = 24
LIMIT = 3  # new calls a second, the account's and the fake's
# How long a caller may wait for its turn here: far more than 24 calls at 3 a second.
AGENT_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def postgres() -> None:
    postgres_or_skip()


def test_a_burst_of_callers_beyond_the_account_limit_all_reach_a_whispered_agent(postgres: None) -> None:
    with live_server(
        "burst",
        workers=2,
        threads=8,
        LOG_LEVEL="INFO",
        VONAGE_CALLS_PER_SECOND=str(LIMIT),
        CALL_QUEUE_ANNOUNCE_POSITION="true",
    ) as live:
        live.fake.set_calls_per_second(LIMIT)
        call_ids = load.CallIds(live.url)
        webhooks = load.Webhooks(timeout=15.0)
        start = time.monotonic() + 0.2

        def caller(n: int) -> load.CallResult:
            # Arrivals spread over one second.
            time.sleep(max(0.0, start + n / CALLS - time.monotonic()))
            return load.call_drive(
                webhooks=webhooks,
                ports=[live.port],
                fake=live.fake,
                call_ids=call_ids,
                caller_number=f"4479462{n:05d}",
                rng=random.Random(n),
                duplicate_share=0.0,
                agent_timeout=AGENT_TIMEOUT,
                checkpoint_first=True,
            )

        try:
            with ThreadPoolExecutor(max_workers=CALLS) as pool:
                results = list(pool.map(caller, range(CALLS)))
        finally:
            call_ids.close()

        problems = [(result.call_id, result.errors) for result in results if result.errors or not result.completed]
        assert problems == [], problems  # whispered: each agent joined its caller's room; no checkpoint NCCO

        rows = live.rows("SELECT id, outcome, state, agent_call_error, rate_limited FROM calls_call ORDER BY id")
        assert len(rows) == CALLS
        for call_id, outcome, state, error, _refusals in rows:
            assert (outcome, state, error) == ("answered", "ended", ""), (call_id, outcome, state, error)
        agent_legs = live.rows("SELECT call_id, count(*) FROM calls_callleg WHERE role = 'agent' GROUP BY call_id")
        assert sorted(count for _, count in agent_legs) == [1] * CALLS

        # The pacer kept under the limit: the fake refused (almost) nothing, and created one call a caller.
        creates = live.fake.create_requests()
        gaps = [(round(b.time - a.time, 3), b.status) for a, b in itertools.pairwise(creates)]
        assert live.fake.rate_limited <= 2, (live.fake.rate_limited, gaps)
        assert sum(refusals for *_, refusals in rows) == live.fake.rate_limited
        assert len(live.fake.created_calls()) == CALLS
        # Callers beyond the limit were queued, and told their place in line.
        assert live.log_lines("pacing.queued")
        assert not live.log_lines("dispatch.agent_call_failed")
        assert not live.log_lines("checkpoint.direct")


def test_without_pacing_the_same_burst_is_refused(postgres: None) -> None:
    """The limit the test above passes is real: unpaced, most of the burst's agent calls
    are refused (and each refused caller is queued again after a back-off)."""
    with live_server("burst_unpaced", workers=2, threads=8, VONAGE_CALLS_PER_SECOND="0") as live:
        live.fake.set_calls_per_second(LIMIT)
        gate = threading.Barrier(CALLS)

        def caller(n: int) -> int:
            query = urlencode(
                {"to": load.CAMPAIGN_NUMBER, "from": f"4479463{n:05d}", "uuid": f"burst-{n}", "conversation_uuid": ""}
            )
            gate.wait()
            return request(live.port, "GET", f"/answer_inbound?{query}").status

        with ThreadPoolExecutor(max_workers=CALLS) as pool:
            assert set(pool.map(caller, range(CALLS))) == {200}
        deadline = time.monotonic() + 10
        while len(live.fake.create_requests()) < CALLS and time.monotonic() < deadline:
            time.sleep(0.1)
        assert live.fake.rate_limited >= CALLS // 2, live.fake.rate_limited
