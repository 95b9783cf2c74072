"""How fast the events whose answer Vonage runs as an NCCO are answered, with a slow REST API.

Usage (PostgreSQL on 127.0.0.1:5432, trust auth for ``postgres``):

    .venv/bin/python benchmarks/ncco_events.py                  # 40 calls of each kind, API 2 s
    .venv/bin/python benchmarks/ncco_events.py --calls 100 --latency-ms 3000

Vonage asks for the NCCO-returning events (an ``input``, a ``notify``, a synchronous
``connect`` event) to be answered "as fast as possible" and falls back after two tries
(VONAGE.md); each of them used to wait on Vonage's REST API when it was slow. This
drops and recreates the database ``callwhisper_nccobench``, migrates it, imports the demo
campaigns and sets them up so that every such event happens (the summer offer: press 1
to accept, a second number to hunt; the winter offer: the connect strategy, the same
hunt), starts the TLS fake of Vonage's REST API in this process answering every request
after ``--latency-ms`` (default 2000), and one gunicorn server as the README deploys it
(``--workers 2 --threads 8``, background dispatch). Then ``--calls`` calls of each kind,
``--concurrency`` at a time, each driven to the point of its NCCO-returning event:

- ``checkpoint``: the caller's answer, then at once the caller's ``notify`` (a greeting
  shorter than the API's latency: the agent call is still being created);
- ``input``: the agent call created (and its leg recorded), the agent's answer (whisper and press 1), then the
  agent's key press: "2" (decline: the next number is rung and the first leg ended, by
  REST) for half the calls, "1" (accept) for the others;
- ``connect``: the connect strategy's synchronous ``busy`` event of the first number
  (the answer rings the next one).

Printed: p50/p99/max of each kind's answer as this client measured it, and of all of
them, and the target: p99 under 100 ms. Each answer's status and shape are checked too
(204 or an NCCO as expected); a wrong one counts as an error.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid as uuid_lib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import load  # noqa: E402

DATABASE = "callwhisper_nccobench"
ACCEPT_NUMBER = "447700900001"  # the summer offer: conference, press 1 to accept
CONNECT_NUMBER = "447700900003"  # the winter offer: the connect strategy
HUNT_NUMBER = "447700900998"
TARGET_P99_MS = 100.0
KINDS = ("checkpoint", "input", "connect")
WARMUP_FIRST = 90_000  # the warm-up's call numbers: apart from the measured ones


def main() -> int:
    args = _arguments()
    problem = load.postgres_reachable()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="nccobench-"))
    url = load.database_create(DATABASE)
    _campaigns_prepare(url)
    key_path, public_key = load.key_file_write(work)
    fake = load.fake_start(public_key=public_key, latency_ms=args.latency_ms)
    port = load.free_port()
    env = load.django_env(
        database=url,
        public_url=f"http://127.0.0.1:{port}",
        VONAGE_APPLICATION_ID=load.APPLICATION_ID,
        VONAGE_PRIVATE_KEY=str(key_path),
        VONAGE_API_HOST=fake.host,
        REQUESTS_CA_BUNDLE=fake.ca_bundle_path,
        # The SDK's timeout above the fake's latency: the REST requests succeed, slowly.
        VONAGE_TIMEOUT_SECONDS=str(int(args.latency_ms / 1000) + 3),
        AGENT_CALL_DEADLINE_SECONDS=str(args.latency_ms / 1000 + 3),
    )
    server = load.server_start(port=port, env=env, log_dir=work, workers=args.workers, threads=args.threads)
    call_ids = load.CallIds(url)
    timings: dict[str, list[float]] = {kind: [] for kind in KINDS}
    errors: list[str] = []
    try:
        with load.running([server]):
            webhooks = load.Webhooks(timeout=30)
            drivers = {"checkpoint": _checkpoint_call, "input": _input_call, "connect": _connect_call}
            jobs = [(kind, n) for n in range(args.calls) for kind in KINDS]
            random.Random(1).shuffle(jobs)  # noqa: S311 - an order, not a secret

            def one(job: tuple[str, int]) -> None:
                kind, n = job
                try:
                    timings[kind].append(drivers[kind](webhooks, port, fake, call_ids, n))
                except Exception as exc:  # counted, reported, the run goes on
                    errors.append(f"{kind} #{n}: {type(exc).__name__}: {exc}")

            # Warm-up, in no figure: each worker's first requests pay for imports, and each
            # of its threads opens its database connection on first use.
            warm = [(kind, WARMUP_FIRST + n) for n in range(args.warmup) for kind in KINDS]
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                list(pool.map(lambda job: drivers[job[0]](webhooks, port, fake, call_ids, job[1]), warm))
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                list(pool.map(one, jobs))
            elapsed = time.monotonic() - started
            log = server.log_tail(400)
    finally:
        fake.close()
        call_ids.close()
        load.database_drop(DATABASE)
    _report(args, timings, errors, elapsed)
    if "Traceback" in log:
        print("\nThe server logged a traceback:\n" + log[-3000:])
    every = [t for kind in KINDS for t in timings[kind]]
    return 0 if not errors and every and load.percentile(every, 0.99) * 1000 < TARGET_P99_MS else 1


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=40, help="calls of each kind (default 40)")
    parser.add_argument("--latency-ms", type=int, default=2000, help="the fake API's delay (default 2000)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up calls of each kind (default 10)")
    parser.add_argument("--concurrency", type=int, default=6, help="calls driven at once (default 6)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    return parser.parse_args()


def _campaigns_prepare(url: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as connection:
        connection.execute(
            "UPDATE campaigns_campaign SET require_accept = true, hunt_numbers = %s WHERE name = 'Summer offer'",
            (HUNT_NUMBER,),
        )
        connection.execute(
            "UPDATE campaigns_campaign SET strategy = 'connect', hunt_numbers = %s WHERE name = 'Winter offer'",
            (HUNT_NUMBER,),
        )


# --- the three kinds of call ------------------------------------------------------------------


def _caller(n: int, to: str) -> dict[str, str]:
    return {
        "from": f"4479462{n:05d}",
        "to": to,
        "uuid": str(uuid_lib.uuid4()),
        "conversation_uuid": f"CON-{uuid_lib.uuid4()}",
        "direction": "inbound",
    }


def _answer(webhooks: load.Webhooks, port: int, fake: Any, caller: dict[str, str]) -> list[dict[str, Any]]:
    # Vonage knows the caller's call: a later transfer of it finds it.
    fake.add_call(
        uuid=caller["uuid"],
        conversation_uuid=caller["conversation_uuid"],
        to=caller["to"],
        from_=caller["from"],
        direction="inbound",
        status="answered",
    )
    query = urlencode({k: caller[k] for k in ("to", "from", "uuid", "conversation_uuid")})
    status, body, _ = webhooks.request(port, "GET", f"/answer_inbound?{query}")
    _expect(status == 200 and isinstance(body, list), f"answer_inbound {status} {body}")
    return body


def _checkpoint_call(webhooks: load.Webhooks, port: int, fake: Any, call_ids: load.CallIds, n: int) -> float:
    caller = _caller(n, ACCEPT_NUMBER)
    ncco = _answer(webhooks, port, fake, caller)
    (notify,) = [action for action in ncco if action["action"] == "notify"]
    status, _, seconds = webhooks.request(port, "POST", _path(notify["eventUrl"][0]), _notify(caller, notify))
    _expect(status == 204, f"checkpoint {status}")
    return seconds


def _input_call(webhooks: load.Webhooks, port: int, fake: Any, call_ids: load.CallIds, n: int) -> float:
    caller = _caller(n, ACCEPT_NUMBER)
    ncco = _answer(webhooks, port, fake, caller)
    (notify,) = [action for action in ncco if action["action"] == "notify"]
    webhooks.request(port, "POST", _path(notify["eventUrl"][0]), _notify(caller, notify))
    call_id = call_ids.for_caller(caller["uuid"])
    if call_id is None:
        raise AssertionError("no call recorded")
    placed = fake.agent_calls(call_id, timeout=30.0)
    _expect(bool(placed), f"no agent call for call {call_id}")
    # The agent picks up once the app knows the call it placed (create_call answered).
    _agent_leg_wait(call_ids, call_id, timeout=30.0)
    agent_call = placed[0]
    agent = {
        "from": caller["to"],
        "to": load.CALL_CENTER_NUMBER,
        "uuid": agent_call.uuid,
        "conversation_uuid": agent_call.conversation_uuid,
        "direction": "outbound",
    }
    answer_url = urlsplit(agent_call.answer_url[0])
    query = urlencode({**dict(parse_qsl(answer_url.query)), **{k: agent[k] for k in ("to", "from", "uuid")}})
    status, whisper, _ = webhooks.request(port, "GET", f"{answer_url.path}?{query}")
    _expect(status == 200 and whisper[-1]["action"] == "input", f"answer_outbound {status} {whisper}")
    now = datetime.now(UTC)
    webhooks.request(port, "POST", "/event", load._leg_event(agent, "answered", now))
    digits = "2" if n % 2 else "1"
    press = {
        "uuid": agent["uuid"],
        "conversation_uuid": agent["conversation_uuid"],
        "dtmf": {"digits": digits, "timed_out": False},
        "speech": {"results": []},
        "timestamp": load.vonage_time(now),
    }
    status, body, seconds = webhooks.request(port, "POST", _path(whisper[-1]["eventUrl"][0]), press)
    expected = "talk" if digits == "2" else "conversation"
    _expect(status == 200 and body[0]["action"] == expected, f"input {digits}: {status} {body}")
    return seconds


def _connect_call(webhooks: load.Webhooks, port: int, fake: Any, call_ids: load.CallIds, n: int) -> float:
    caller = _caller(n, CONNECT_NUMBER)
    ncco = _answer(webhooks, port, fake, caller)
    connect = ncco[-1]
    _expect(connect["action"] == "connect", f"not a connect: {ncco}")
    busy = load._leg_event(
        {
            "from": caller["to"],
            "to": load.CALL_CENTER_NUMBER,
            "uuid": str(uuid_lib.uuid4()),
            "conversation_uuid": caller["conversation_uuid"],
            "direction": "outbound",
        },
        "busy",
        datetime.now(UTC),
    )
    status, body, seconds = webhooks.request(port, "POST", _path(connect["eventUrl"][0]), busy)
    _expect(status == 200 and body[-1]["endpoint"][0]["number"] == HUNT_NUMBER, f"connect busy: {status} {body}")
    return seconds


def _agent_leg_wait(call_ids: load.CallIds, call_id: int, *, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(call_ids.url, autocommit=True, connect_timeout=5) as connection:
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT 1 FROM calls_callleg WHERE call_id = %s AND role = 'agent'", (call_id,)
            ).fetchone()
            if row:
                return
            time.sleep(0.1)
    raise AssertionError(f"no agent leg recorded for call {call_id}")


def _notify(caller: dict[str, str], notify: dict[str, Any]) -> dict[str, Any]:
    """Vonage's notify request: our payload, wrapped."""
    return {
        "conversation_uuid": caller["conversation_uuid"],
        "payload": notify["payload"],
        "timestamp": load.vonage_time(datetime.now(UTC)),
    }


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


# --- the report ------------------------------------------------------------------------------


def _report(args: argparse.Namespace, timings: dict[str, list[float]], errors: list[str], elapsed: float) -> None:
    print(
        f"NCCO-returning events with the REST API answering after {args.latency_ms} ms: "
        f"{args.calls} calls of each kind, {args.concurrency} at a time, in {elapsed:.1f} s "
        f"(gunicorn --workers {args.workers} --threads {args.threads}, PostgreSQL)"
    )
    print(f"{'answer':<12}{'n':>5}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    rows = [(kind, timings[kind]) for kind in KINDS] + [("all", [t for kind in KINDS for t in timings[kind]])]
    for name, values in rows:
        if not values:
            print(f"{name:<12}{0:>5}")
            continue
        print(
            f"{name:<12}{len(values):>5}{load.percentile(values, 0.5) * 1000:>9.1f}"
            f"{load.percentile(values, 0.99) * 1000:>9.1f}{max(values) * 1000:>9.1f}"
        )
    every = rows[-1][1]
    p99 = load.percentile(every, 0.99) * 1000 if every else float("nan")
    verdict = "met" if every and p99 < TARGET_P99_MS and not errors else "NOT met"
    print(f"target p99 < {TARGET_P99_MS:.0f} ms: {verdict} (p99 {p99:.1f} ms)")
    print(f"errors: {len(errors)}")
    for error in errors[:10]:
        print(f"  {error}")


if __name__ == "__main__":
    sys.exit(main())
