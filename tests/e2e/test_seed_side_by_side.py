"""The side-by-side benchmark against the seed's Node app runs end to end (``--quick``).

It starts both apps and the third peer (bare Django views under the same gunicorn),
drives both routes at both concurrencies through wrk, prints the figures and verifies
our calls in PostgreSQL and at the fake. No timing is asserted: the
figures belong to the machine. Skipped without node, npm or wrk, without PostgreSQL, or
without the seed's checkout and its npm dependencies at ``SEED_APP_DIR`` (or the script's
default): the test fetches nothing; ``.ci/run`` prepares it with ``--setup-only``.
"""

import os
import re
import shutil
import subprocess

import pytest

from benchmarks import load, seed_side_by_side
from tests.e2e.live_server import postgres_or_skip

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in ("node", "npm", "wrk")), reason="needs node, npm and wrk"
    ),
]

SCRIPT = load.ROOT / "benchmarks" / "seed_side_by_side.py"


def test_both_apps_are_measured_on_both_routes_and_our_calls_verified() -> None:
    postgres_or_skip()
    seed_dir = seed_side_by_side.seed_dir_default()
    if not seed_side_by_side.seed_ready(seed_dir):
        pytest.skip(f"the seed app is not ready at {seed_dir}: run benchmarks/seed_side_by_side.py --setup-only")
    database = f"callwhisper_seedbench_{os.getpid()}"
    try:
        run = subprocess.run(  # noqa: S603 - our own interpreter and script
            [str(load.PYTHON), str(SCRIPT), "--quick", "--seed-dir", str(seed_dir), "--database", database],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        load.database_drop(database)
    output = run.stdout
    skipped = re.search(r"^skipped: .*$", output, re.MULTILINE)
    if skipped:
        pytest.skip(skipped.group(0))
    assert run.returncode == 0, output + run.stderr

    for route in ("answer_inbound", "answer_outbound"):
        for connections in (16, 1):
            for app in ("seed", "ours", "bare"):
                row = re.search(
                    rf"^{route}\s+{connections}\s+{app}\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)"
                    r"\s+([\d.]+|-)\s+([\d.]+)\s+([\d.]+)\s",
                    output,
                    re.MULTILINE,
                )
                assert row, f"no {app} {route} c={connections} row in:\n{output}"
                answered, _, rate, _, _, cpu, database, fake, wrk = row.groups()
                assert int(answered) > 0 and float(rate) > 0 and float(cpu) > 0, row.group(0)
                assert (database == "-") == (app != "ours"), row.group(0)  # only ours has a database
                assert float(wrk) > 0, row.group(0)
                if route == "answer_inbound" and app != "bare":
                    # Every caller's answer places an agent call at the shared fake: its cost is seen.
                    assert float(fake) > 0, row.group(0)
            assert re.search(rf"^{route} c={connections}: req/s x[\d.]+ ", output, re.MULTILINE), output
            # The third peer, bare Django views under the same gunicorn, beside the seed.
            assert re.search(rf"^{route} c={connections}: bare req/s x[\d.]+ of the seed's ", output, re.M), output
    assert re.search(r"^ours: \d+ calls in PostgreSQL .*every answered call recorded: yes$", output, re.M), output
    assert re.search(r"^ours: agent calls placed at the fake: .*each placed once: yes$", output, re.M), output
    whispers = r"^ours: calls with the agent's whisper in PostgreSQL: .*every answered agent recorded: yes$"
    assert re.search(whispers, output, re.M), output
    assert re.search(r"^seed: agent calls placed at the fake: .*every answered call placed: yes", output, re.M)
    assert "verification: OK" in output
