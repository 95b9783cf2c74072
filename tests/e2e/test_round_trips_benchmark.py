"""``benchmarks/webhook_cpu.py --round-trips`` counts what a call sends PostgreSQL, webhook
by webhook, as the README quotes it: the counts pinned in tests/calls/test_webhooks.py,
here for a whole call played in Vonage's order with production settings; then the same
statements by kind, with their times. Skipped without PostgreSQL."""

import re
import subprocess

import pytest

from benchmarks import load
from tests.e2e.live_server import postgres_or_skip

pytestmark = [pytest.mark.e2e]

SCRIPT = load.ROOT / "benchmarks" / "webhook_cpu.py"


def test_a_calls_round_trips_are_counted_webhook_by_webhook() -> None:
    postgres_or_skip()
    run = subprocess.run(  # noqa: S603 - our own interpreter and script
        [str(load.PYTHON), str(SCRIPT), "--round-trips", "--calls", "3", "--database", "callwhisper_trips_test"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    found = {
        name: (int(trips), int(statements), int(transactions))
        for name, trips, statements, transactions in re.findall(
            r"^  (.+?)(?: per request)?\s+(\d+)  \((\d+) statements, (\d+) transactions\)$", run.stdout, re.M
        )
    }
    assert found == {
        # The call's first statement and its insert; the agent call's claim, leg and read back.
        "answer_inbound (with the agent call)": (5, 5, 0),
        "checkpoint": (4, 2, 1),
        # The call locked and read; the leg's region and the whisper in one statement.
        "answer_outbound": (4, 2, 1),
        "event": (4, 2, 1),
        "complete call": (45, 25, 10),
    }, run.stdout

    kinds = {
        kind: (float(per_call), int(median_us), float(share))
        for per_call, median_us, share, kind in re.findall(
            r"^  +(\d+\.\d\d) +(\d+) us +(\d+\.\d) %  (.+)$", run.stdout, re.M
        )
    }
    # Every statement of a call, by kind: the 25 above.
    assert sum(per_call for per_call, _, _ in kinds.values()) == pytest.approx(25), run.stdout
    assert sum(share for _, _, share in kinds.values()) == pytest.approx(100, abs=0.6), run.stdout
    assert all(median_us > 0 for _, median_us, _ in kinds.values()), run.stdout
    # The first statement of each transaction (the checkpoint's, the agent's answer's and
    # the eight events'): the signature remembered, the call locked and read with its legs.
    assert kinds["insert calls_signedwebhook, read calls_call calls_callleg (locked)"][0] == 10, run.stdout
    # The caller's answer: the call and its leg inserted in one statement.
    assert kinds["insert calls_call calls_callleg, read calls_call calls_callevent"][0] == 1, run.stdout
