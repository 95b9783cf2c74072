"""Measure the memory the call list's CSV export takes: the same for 1,000,000 calls as
for 100,000, or not?

    .venv/bin/python benchmarks/export_memory.py                    # 100,000 and 1,000,000 calls
    .venv/bin/python benchmarks/export_memory.py --rows 10000 200000
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/callwhisper_bench .venv/bin/python benchmarks/export_memory.py

Without ``DATABASE_URL`` the calls go in a temporary SQLite database, removed at the
end. With it, the database's calls are reused and ``manage.py seed_calls`` adds only
the missing ones (nothing is deleted afterwards): every call in the database is
exported, so a database with more calls than asked exports them all.

For each size, a fresh Python process logs in as a superuser with Django's test client,
GETs ``/admin/calls/call/csv/`` and reads the streamed body a piece at a time, throwing
each away, as a WSGI server writing to a socket would. It reports:

- rows and megabytes exported, and how long it took;
- RSS growth: the process's peak resident memory (``getrusage``) during the export
  less its resident memory just before it, after a warm-up export of no calls;
- Python's peak: the most memory Python objects held at once during a second export
  (``tracemalloc``, which slows it down, so the timing is from the first).

Constant memory shows as the same growth and peak at every size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = "whisper_project.test_settings"
EXPORT_URL = "/admin/calls/call/csv/"
MB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000], help="Sizes to measure.")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure()))
        return

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS}
    temporary = None
    if not env.get("DATABASE_URL"):
        temporary = tempfile.mkdtemp(prefix="export-memory-")
        env["DATABASE_URL"] = f"sqlite:///{temporary}/calls.sqlite3"
    database = env["DATABASE_URL"].split("@")[-1]
    try:
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        if count(env, "campaigns.TrackingNumber") == 0:
            manage(env, "import_campaigns", "campaigns/demo_campaigns.json", "--verbosity", "0")
        print(f"Database: {database}")
        print(f"{'rows':>10} {'MB out':>8} {'seconds':>8} {'rows/s':>9} {'RSS growth MB':>14} {'Python peak MB':>15}")
        for size in sorted(args.rows):
            have = count(env, "calls.Call")
            if have < size:
                started = time.perf_counter()
                # A different seed each time: the seeded calls' conference names are unique.
                manage(
                    env,
                    "seed_calls",
                    "--count",
                    str(size - have),
                    "--seed",
                    str(have + 1),
                    "--allow-production",
                    "--verbosity",
                    "0",
                )
                print(f"  (seeded {size - have} calls in {time.perf_counter() - started:.0f} s)", file=sys.stderr)
            result = json.loads(run(env, sys.executable, __file__, "--measure").splitlines()[-1])
            print(
                f"{result['rows']:>10} {result['bytes'] / MB:>8.1f} {result['seconds']:>8.1f} "
                f"{result['rows'] / result['seconds']:>9.0f} {result['rss_growth'] / MB:>14.1f} "
                f"{result['python_peak'] / MB:>15.2f}"
            )
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)


def measure() -> dict[str, Any]:
    """Runs in its own process: export every call twice and say what it took."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.test import Client

    user, _ = User.objects.get_or_create(username="export-benchmark", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)

    def export(query: str = "") -> tuple[int, int]:
        response = client.get(EXPORT_URL + query)
        assert response.status_code == 200, response.status_code
        lines = size = 0
        for piece in response.streaming_content:  # type: ignore[attr-defined]
            lines += piece.count(b"\r\n")
            size += len(piece)
        response.close()
        return lines - 1, size  # less the header

    export("?q=no-such-call")  # imports, URL resolving, the first queries: not the export's
    before = resident()
    started = time.perf_counter()
    rows, size = export()
    seconds = time.perf_counter() - started
    growth = max(0, peak_resident() - before)

    tracemalloc.start()
    export()
    _, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"rows": rows, "bytes": size, "seconds": seconds, "rss_growth": growth, "python_peak": python_peak}


def resident() -> int:
    """The process's resident memory now, in bytes (Linux), or its peak so far."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_resident()


def peak_resident() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def manage(env: dict[str, str], *arguments: str) -> None:
    run(env, sys.executable, str(ROOT / "manage.py"), *arguments)


def count(env: dict[str, str], model: str) -> int:
    code = (
        f"import django; django.setup(); from django.apps import apps; print(apps.get_model({model!r}).objects.count())"
    )
    return int(run(env, sys.executable, "-c", code).split()[-1])


def run(env: dict[str, str], *command: str) -> str:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{' '.join(command[1:3])} failed with exit code {done.returncode}.")
    return done.stdout


if __name__ == "__main__":
    main()
