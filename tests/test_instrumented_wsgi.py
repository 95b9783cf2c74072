"""The benchmarks' instrumented application (benchmarks/instrumented_wsgi.py) reports, on
each response, the app's own time and, for a request stamped by a proxy, the time from the
stamp to the answer: the figure ``benchmarks/calls.py`` gives for Vonage's 5-s budget.

Run in a child process: importing the module instruments every database connection made
after it, which no other test should inherit."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.load import APP_MS_HEADER, STAMPED_MS_HEADER

ROOT = Path(__file__).resolve().parents[1]
SERVE = """
import json, sys
from django.test import RequestFactory
from benchmarks import instrumented_wsgi

headers = json.loads(sys.argv[1])
environ = RequestFactory().get("/no-such-page", headers=headers).environ
started = []
b"".join(instrumented_wsgi.application(environ, lambda status, headers, *args: started.append(headers)))
print(json.dumps(dict(started[0])))
"""


def served(**headers: str) -> dict[str, str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "whisper_project.test_settings", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", SERVE, json.dumps(headers)]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)  # noqa: S603
    response_headers: dict[str, str] = json.loads(run.stdout.strip().splitlines()[-1])
    return response_headers


def test_a_stamped_request_is_timed_from_its_stamp() -> None:
    headers = served(**{"X-Request-Start": f"t={time.time() - 1.5:.3f}"})

    app_ms, stamped_ms = float(headers[APP_MS_HEADER]), float(headers[STAMPED_MS_HEADER])
    assert stamped_ms - app_ms >= 1500 - 1  # the wait before the app (the stamp has milliseconds)
    assert stamped_ms < 1500 + 60_000


def test_a_request_without_a_stamp_has_only_the_apps_time() -> None:
    headers = served()

    assert float(headers[APP_MS_HEADER]) >= 0
    assert STAMPED_MS_HEADER not in headers
