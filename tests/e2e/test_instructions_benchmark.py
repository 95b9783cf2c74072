"""The instruction-count benchmark runs end to end (one call after one to warm up) and
counts every webhook of the call. No count is asserted beyond being there: the figures
belong to the code of the day. Skipped without valgrind, gcc or callgrind's header, or
without PostgreSQL."""

import re
import shutil
import subprocess

import pytest

from benchmarks import instructions, load
from tests.e2e.live_server import postgres_or_skip

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("valgrind") is None or shutil.which("gcc") is None or not instructions.HEADER.exists(),
        reason="needs valgrind (with valgrind/callgrind.h) and gcc",
    ),
]

SCRIPT = load.ROOT / "benchmarks" / "instructions.py"


def test_every_webhook_of_a_call_is_counted() -> None:
    postgres_or_skip()
    run = subprocess.run(  # noqa: S603 - our own interpreter and script
        [str(load.PYTHON), str(SCRIPT), "--calls", "1", "--warm-up", "1", "--database", "callwhisper_instr_test"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    expected = {"answer_inbound (with the agent call)": 1, "checkpoint": 1, "answer_outbound": 1, "event": 8}
    for webhook, requests in expected.items():
        row = re.search(rf"^  {re.escape(webhook)} per request\s+([\d.]+)\s+\((\d+) requests\)$", run.stdout, re.M)
        assert row, run.stdout
        assert float(row.group(1)) > 0 and int(row.group(2)) == requests, row.group(0)
    call = re.search(r"^  complete call \(11 requests\)\s+([\d.]+)\s+\(1 calls\)$", run.stdout, re.M)
    assert call and float(call.group(1)) > 0, run.stdout
