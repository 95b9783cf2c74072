"""Two gunicorn servers sharing one PostgreSQL database, with calls split between them.

Production runs several processes behind a load balancer (README), so a call's
webhooks reach different servers: the agent call must still be placed once, the
events stored once and the call end up answered and ended. Real gunicorn processes
cannot see pytest-django's test transaction, so this test makes (and drops) its own
database, ``callwhisper_two_instances_<pid>``; it does not touch pytest-django's.
"""

import http.client
import json
import os
import random
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from benchmarks import load
from calls.webhooks.signatures import sign_webhook

pytestmark = pytest.mark.e2e

CALLS = 40
AGENT_CALL_DEADLINE_SECONDS = 30


@pytest.fixture(scope="module")
def postgres() -> None:
    problem = load.postgres_reachable()
    if problem:
        pytest.skip(f"needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth): {problem}")


def _post(port: int, body: bytes, authorization: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json", "Authorization": authorization, "Connection": "close"}
        connection.request("POST", "/event", body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


class _Recording(load.Webhooks):
    """The driver's requests, with the port each was sent to."""

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.sent: list[tuple[int, str]] = []

    def exchange(self, port: int, method: str, path: str, payload: Any = None) -> load.Answer:
        self.sent.append((port, path))
        return super().exchange(port, method, path, payload)


def _waited_on(path: str) -> bool:
    """An answer or the caller's checkpoint: what deploy/nginx.conf sends to the answers' processes."""
    return path.startswith("/answer_") or "checkpoint=" in path


@pytest.mark.parametrize("split", ["alternating", "answers apart"])
def test_calls_split_between_two_instances_are_each_recorded_once(postgres: None, split: str) -> None:
    """``alternating``: each call's requests alternate between the servers, as a load
    balancer spreads them. ``answers apart``: one server takes the answers, the other the
    events and the checkpoint, as the README's nginx splits them (a bulkhead)."""
    name = f"callwhisper_two_instances_{os.getpid()}"
    servers: list[load.Server] = []
    fake = None
    with tempfile.TemporaryDirectory(prefix="callwhisper-two-instances-") as work:
        try:
            url = load.database_create(name)
            key_path, public_key = load.key_file_write(Path(work))
            fake = load.fake_start(public_key=public_key, latency_ms=50)
            for _ in range(2):
                port = load.free_port()
                env = load.django_env(
                    database=url,
                    public_url=f"http://127.0.0.1:{port}",
                    VONAGE_APPLICATION_ID=load.APPLICATION_ID,
                    VONAGE_PRIVATE_KEY=str(key_path),
                    VONAGE_API_HOST=fake.host,
                    REQUESTS_CA_BUNDLE=fake.ca_bundle_path,
                    # What is tested is one agent call and each event stored once across two
                    # servers, not how fast the agent is rung: on a loaded machine placing the
                    # agent call can take past the 3 s default, and the checkpoint would then
                    # (rightly) connect the caller directly. It waits for it instead.
                    AGENT_CALL_DEADLINE_SECONDS=str(AGENT_CALL_DEADLINE_SECONDS),
                )
                servers.append(load.server_start(port=port, env=env, log_dir=Path(work), workers=1, threads=4))
            ports = [server.port for server in servers]
            webhooks = _Recording(timeout=2 * AGENT_CALL_DEADLINE_SECONDS)
            event_ports, answer_ports = (ports, None) if split == "alternating" else (ports[:1], ports[1:])
            call_ids = load.CallIds(url)

            def one_call(n: int) -> load.CallResult:
                return load.call_drive(
                    webhooks=webhooks,
                    ports=event_ports,
                    answer_ports=answer_ports,
                    fake=fake,
                    call_ids=call_ids,
                    caller_number=f"4479460{n:05d}",
                    rng=random.Random(n),
                    duplicate_share=0.1,
                    first_port=n % 2,
                    agent_timeout=AGENT_CALL_DEADLINE_SECONDS,
                )

            # The timeout only keeps a hung server from hanging the suite: no stopwatch.
            with ThreadPoolExecutor(max_workers=CALLS) as pool:
                results = list(pool.map(one_call, range(CALLS), timeout=300))

            errors = [error for result in results for error in result.errors]
            logs = "\n".join(server.log_tail() for server in servers)
            assert not errors, f"{errors[:5]}\n{logs}"
            assert all(result.completed for result in results)
            if answer_ports is None:
                assert {port for port, _ in webhooks.sent} == set(ports)
            else:  # the answers and the checkpoint on one server, every other event on the other
                apart = {port for port, path in webhooks.sent if _waited_on(path)}
                assert apart == set(answer_ports)
                assert {port for port, path in webhooks.sent if not _waited_on(path)} == set(event_ports)
                assert sum("checkpoint=" in path for _, path in webhooks.sent) == CALLS
            # Some events were delivered twice (and deduplicated: see the verdict).
            assert sum(result.duplicates for result in results) > 0
            verdict = load.verdict(url, fake=fake, results=results)
            assert verdict.problems == [], f"{verdict}\n{logs}"
            assert verdict.calls == CALLS
            assert verdict.answered_and_ended == CALLS
            # Four status events per leg, and the caller's checkpoint after the greeting.
            assert verdict.events_stored == verdict.events_expected == 9 * CALLS
            # Nothing else was asked of Vonage: no transfer, no hang-up.
            assert {request.route for request in fake.requests} == {"create"}
            # A signature is remembered by every instance: a token accepted by one server
            # is refused by the other for any other request, and accepted again for the
            # very same request (Vonage retrying it), which is stored once.
            event = {"uuid": "replayed-leg", "status": "started", "direction": "outbound", "conversation_uuid": "C"}
            body = json.dumps(event).encode()
            token = "Bearer " + sign_webhook(body=body, secret=load.SIGNATURE_SECRET)
            forged = json.dumps({**event, "status": "completed", "duration": "1740"}).encode()
            assert _post(ports[0], body, token) == 200
            assert _post(ports[1], forged, token) == 401
            assert _post(ports[1], body, token) == 200
            with psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=5) as connection:
                sql = "SELECT status FROM calls_callevent WHERE leg_uuid = %s"
                rows = connection.execute(sql, ("replayed-leg",)).fetchall()
            assert [tuple(row) for row in rows] == [("started",)]
        finally:
            for server in servers:
                load.server_stop(server)
            if fake is not None:
                fake.close()
            try:
                load.database_drop(name)
            except Exception:  # noqa: S110 - the database may never have been made
                pass
