"""Instructions per webhook and per call, counted by valgrind: the hot path's cost as a
figure that a busy machine does not move.

Usage (PostgreSQL on 127.0.0.1:5432, trust auth for ``postgres``; valgrind and gcc):

    .venv/bin/python benchmarks/instructions.py               # 20 calls after 5 to warm up
    .venv/bin/python benchmarks/instructions.py --calls 40
    .venv/bin/python benchmarks/instructions.py --log-level INFO   # production's log level
    .venv/bin/python benchmarks/instructions.py --shed        # and as many calls shed under overload

CPU time per request (``benchmarks/webhook_cpu.py``) moves with whatever else the two
cores run: on these shared machines the same code measured 16.45 ms of Python a call on
one day and 37–46 ms on the next. An instruction count does not: valgrind's callgrind
executes the program on a simulated CPU and counts every instruction it runs, the same
count for the same program and inputs however busy the machine is (it is about fifty
times slower, so the runs are short). It is not time: a cache miss costs no more than a
hit here. Use it to compare two versions of the hot path, or a figure over months.

The script drops and recreates the database ``callwhisper_instructions``, migrates it and
imports the demo campaigns, compiles a small library that sends callgrind's client
requests (``valgrind/callgrind.h``, with gcc), and runs itself under
``valgrind --tool=callgrind``. Inside, it plays whole calls as ``benchmarks/webhook_cpu.py``
does (production settings, the agent call recorded inline, not sent: the answer's figure
includes placing it) and, around the application's work on each request only (not the
signing or the building of the request), zeroes callgrind's counters and dumps them under
the webhook's name. Printed: the median instructions per request of each webhook, and
of a call's 11 requests summed (the median call). Python's instructions only: the
PostgreSQL server's work is in ``webhook_cpu.py``'s figures. Without valgrind or gcc
(or ``valgrind/callgrind.h``) it prints ``skipped: …`` and exits 0.

The app logs at WARNING unless ``--log-level`` says otherwise (until 2026-12-08 always):
at production's INFO a call writes 13 lines more, to a file as a server's log would go.
``--shed`` follows each counted call with one shed under overload (its answer stamped as
having waited 2 s in the queue: ``calls/webhooks/overload.py``), the caller put through
directly and its 8 events kept in the spool (``WEBHOOK_SPOOL_DIR``, set for every run
since 2026-12-08): past capacity most calls are such calls, so what they cost decides how
many callers the rest of the machine serves in full.
"""

from __future__ import annotations

import argparse
import ctypes
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import load  # noqa: E402

HEADER = Path("/usr/include/valgrind/callgrind.h")
# Client requests as functions Python can call (ctypes): each macro expands to a marker
# instruction sequence that callgrind recognises and a real CPU runs as a no-op.
MARKERS_C = """
#include <valgrind/callgrind.h>
void counters_zero(void) { CALLGRIND_ZERO_STATS; }
void counters_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
"""
WEBHOOKS = ("answer_inbound (with the agent call)", "checkpoint", "answer_outbound", "event")
SHED = ("shed answer", "shed event")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20, help="calls counted, after --warm-up calls")
    parser.add_argument("--warm-up", type=int, default=5)
    parser.add_argument("--database", default="callwhisper_instructions")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="the app's LOG_LEVEL (production's default is INFO: a line per stored event; the log goes to a file)",
    )
    parser.add_argument(
        "--shed",
        action="store_true",
        help="also count shed calls (calls/webhooks/overload.py: an answer that waited 2 s in the queue, and its "
        "8 events, all kept in the spool), as many as --calls, each after a served call",
    )
    parser.add_argument("--inner", metavar="LIBRARY", help=argparse.SUPPRESS)  # run under valgrind
    args = parser.parse_args()
    if args.inner:
        return _inner(args, Path(args.inner))

    missing = [tool for tool in ("valgrind", "gcc") if shutil.which(tool) is None]
    if missing or not HEADER.exists():
        print(f"skipped: {missing[0] if missing else HEADER} not found")
        return 0
    problem = load.postgres_reachable()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    load.database_create(args.database)
    try:
        with tempfile.TemporaryDirectory(prefix="instructions-") as work:
            counts = _counted_run(args, Path(work))
    finally:
        load.database_drop(args.database)
    _report(counts, args)
    return 0


def _counted_run(args: argparse.Namespace, work: Path) -> dict[str, list[int]]:
    library = work / "markers.so"
    source = work / "markers.c"
    source.write_text(MARKERS_C)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(library), str(source)], check=True)  # noqa: S603, S607
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={work}/callgrind.out",
        sys.executable,
        str(Path(__file__).resolve()),
        "--inner",
        str(library),
        "--calls",
        str(args.calls),
        "--warm-up",
        str(args.warm_up),
        "--database",
        args.database,
        "--log-level",
        args.log_level,
        *(["--shed"] if args.shed else []),
    ]
    # Its stderr (valgrind's messages, and the app's log lines) to a file, as a server's log goes.
    errors = work / "stderr.txt"
    with errors.open("w") as stderr:
        run = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True, check=False)  # noqa: S603
    if run.returncode != 0:
        tail = errors.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the counted run failed ({run.returncode}):\n{run.stdout[-3000:]}\n{tail}")
    return _dumps_read(work)


def _dumps_read(work: Path) -> dict[str, list[int]]:
    """The instruction counts of each webhook's requests, and of each call (its requests
    summed: a ``call-end`` dump follows each counted call); warm-up dumps left out."""
    counts: dict[str, list[int]] = defaultdict(list)
    dumps = sorted(work.glob("callgrind.out.*"), key=lambda path: int(path.name.rsplit(".", 1)[1]))
    call = 0
    for dump in dumps:
        text = dump.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: Client Request: (.*)$", text, re.MULTILINE)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
        if not (trigger and total) or trigger.group(1).startswith("warm-up:"):
            continue
        if trigger.group(1) in ("call-end", "shed-call-end"):
            counts["call" if trigger.group(1) == "call-end" else "shed call"].append(call)
            call = 0
            continue
        counts[trigger.group(1)].append(int(total.group(1)))
        call += int(total.group(1))
    return counts


def _report(counts: dict[str, list[int]], args: argparse.Namespace) -> None:
    print(
        f"instructions (callgrind; Python's only, not PostgreSQL's), {args.calls} calls after {args.warm_up} "
        "to warm up: the median, in millions"
    )
    lines = [(f"{name} per request", name, "requests") for name in WEBHOOKS]
    lines.append(("complete call (11 requests)", "call", "calls"))
    if args.shed:
        lines += [(f"{name} per request", name, "requests") for name in SHED]
        lines.append(("shed call (9 requests)", "shed call", "calls"))
    for label, key, unit in lines:
        values = counts.get(key, [])
        median = statistics.median(values) / 1e6 if values else float("nan")
        print(f"  {label:48s} {median:8.2f}   ({len(values)} {unit})")


# --- under valgrind ----------------------------------------------------------------------


def _inner(args: argparse.Namespace, library: Path) -> int:
    from benchmarks.webhook_cpu import app_in_process

    markers = ctypes.CDLL(str(library))
    spool = tempfile.TemporaryDirectory(prefix="instructions-spool-")  # removed at the end, and at exit
    app = app_in_process(load.database_url(args.database), LOG_LEVEL=args.log_level, WEBHOOK_SPOOL_DIR=spool.name)

    def counted_as(prefix: str) -> Callable[[str], AbstractContextManager[None]]:
        @contextmanager
        def counted(name: str) -> Iterator[None]:
            markers.counters_zero()
            yield
            markers.counters_dump(f"{prefix}{name}".encode())

        return counted

    app.counted = counted_as("warm-up:")
    for _ in range(args.warm_up):
        app.call()
        if args.shed:
            app.shed_call()
    app.counted = counted_as("")
    for _ in range(args.calls):
        app.call()
        markers.counters_zero()
        markers.counters_dump(b"call-end")
        if args.shed:
            app.shed_call()
            markers.counters_zero()
            markers.counters_dump(b"shed-call-end")
    spool.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
