"""The fixed costs under every webhook, each on its own, in one process.

Usage (PostgreSQL on 127.0.0.1:5432, trust auth for ``postgres``):

    .venv/bin/python benchmarks/overheads.py                 # 5 rounds of 2,000 each
    .venv/bin/python benchmarks/overheads.py --count 5000 --rounds 7

It drops and recreates the database ``callwhisper_overheads`` and migrates it, then
measures, as the median over the rounds of the mean per operation:

- a one-row ``INSERT … ON CONFLICT DO NOTHING RETURNING`` (the signature's ``jti``, as
  ``calls/webhooks/replay.py`` writes it) through Django's cursor: in autocommit (its own
  commit, as a webhook's lone statement runs) and inside an open transaction (no commit
  of its own). This process's CPU (``time.process_time``) and its PostgreSQL backend's
  (from ``/proc``) per statement: the difference is what a commit costs;
- a request through DRF's ``APIView`` that parses a small JSON body and answers JSON,
  against a plain Django view doing the same (``RequestFactory`` requests, no URL
  resolution, no middleware): what DRF's own dispatch costs a webhook.

CPU time, not wall time; the figures still move by 10 % or so between runs on a shared
machine: compare within a run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid as uuid_lib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import load  # noqa: E402
from benchmarks.webhook_cpu import _backend_cpu, _backend_pid  # noqa: E402

BODY = json.dumps({"uuid": str(uuid_lib.uuid4()), "status": "answered", "direction": "outbound"}).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", default="callwhisper_overheads")
    args = parser.parse_args()

    problem = load.postgres_reachable()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    load.django_in_process(load.database_create(args.database))
    from django.db import transaction

    insert = _jti_insert()
    drf, plain = _views()
    operations: dict[str, Callable[[], Any]] = {
        "INSERT, autocommit": insert,
        "INSERT, in a transaction": insert,
        "DRF APIView request": drf,
        "plain Django view request": plain,
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in operations}
    for operation in operations.values():  # warm-up: imports, connection, prepared statements
        for _ in range(50):
            operation()
    for _ in range(args.rounds):
        for name, operation in operations.items():
            if name.endswith("in a transaction"):
                with transaction.atomic():
                    results[name].append(_measure(operation, args.count))
            else:
                results[name].append(_measure(operation, args.count))

    print(f"{args.rounds} rounds of {args.count}, median µs of CPU per operation: this process, its PostgreSQL backend")
    for name, values in results.items():
        ours = statistics.median(value for value, _ in values)
        pg = statistics.median(value for _, value in values)
        print(f"  {name:28s} {ours:8.1f} {pg:8.1f}")
    auto, inside = results["INSERT, autocommit"], results["INSERT, in a transaction"]
    drf_us = statistics.median(value for value, _ in results["DRF APIView request"])
    plain_us = statistics.median(value for value, _ in results["plain Django view request"])
    print(
        f"a commit of its own: {statistics.median(a[0] - b[0] for a, b in zip(auto, inside, strict=True)):.1f} µs "
        f"here, {statistics.median(a[1] - b[1] for a, b in zip(auto, inside, strict=True)):.1f} µs PostgreSQL's; "
        f"DRF's dispatch: {drf_us - plain_us:.1f} µs a request"
    )
    load.database_drop(args.database)
    return 0


def _measure(operation: Callable[[], Any], count: int) -> tuple[float, float]:
    """µs of this process's CPU and of its PostgreSQL backend's per operation."""
    backend = _backend_pid()
    pg_started, started = _backend_cpu(backend), time.process_time()
    for _ in range(count):
        operation()
    return (time.process_time() - started) / count * 1e6, (_backend_cpu(backend) - pg_started) / count * 1e6


def _jti_insert() -> Callable[[], None]:
    from calls.webhooks.replay import signed_request_admit

    def insert() -> None:
        signed_request_admit(jti=str(uuid_lib.uuid4()), digest="0" * 64)

    return insert


def _views() -> tuple[Callable[[], Any], Callable[[], Any]]:
    from django.http import HttpRequest, JsonResponse
    from django.test import RequestFactory
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class Receipt(APIView):
        authentication_classes: list[Any] = []
        permission_classes: list[Any] = []

        def post(self, request: Request) -> Response:
            return Response({"stored": bool(request.data)})

    def receipt(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"stored": bool(json.loads(request.body))})

    factory = RequestFactory(SERVER_NAME="127.0.0.1")
    drf_view = Receipt.as_view()

    def drf() -> bytes:
        response = drf_view(factory.post("/event", BODY, content_type="application/json"))
        response.render()
        return bytes(response.content)

    def plain() -> bytes:
        return bytes(receipt(factory.post("/event", BODY, content_type="application/json")).content)

    return drf, plain


if __name__ == "__main__":
    sys.exit(main())
