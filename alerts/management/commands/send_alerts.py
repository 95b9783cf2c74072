"""``manage.py send_alerts``: from cron every minute, or ``--loop 15`` as a sidecar.

A command of its own, not a step of ``reconcile_calls``: reconcile keeps promises to
callers on hold (the longest wait), and a slow or unreachable mail server must not hold
that up; alerts can wait a minute, callers cannot.
"""

import logging
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from alerts.services import alerts_run

logger = logging.getLogger("alerts")


class Command(BaseCommand):
    help = (
        "Queue alerts for missed calls and voicemails that ended since the last runs, and send what is due "
        "(email, hourly digests, SMS), retrying failures with back-off. Safe to run on several machines at once."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--loop", type=float, metavar="SECONDS", help="Run again every SECONDS until stopped (a sidecar)."
        )
        parser.add_argument("--max-runs", type=int, metavar="N", help="With --loop: stop after N runs.")

    def handle(self, *args: Any, loop: float | None, max_runs: int | None, **options: Any) -> None:
        if loop is not None and loop <= 0:
            raise CommandError("--loop must be more than 0 seconds.")
        if max_runs is not None and (max_runs < 1 or loop is None):
            raise CommandError("--max-runs needs --loop and must be 1 or more.")
        if loop is None:
            try:
                self.stdout.write(alerts_run().summary())
            except Exception as exc:
                logger.exception("alerts.run_failed")
                raise CommandError(f"Sending alerts failed: {type(exc).__name__}: {exc}") from exc
            return
        runs = 0
        try:
            while True:
                try:
                    self.stdout.write(alerts_run().summary())
                except Exception as exc:  # the database may be back next time
                    logger.exception("alerts.run_failed")
                    self.stderr.write(f"Sending alerts failed: {type(exc).__name__}: {exc}")
                runs += 1
                if max_runs is not None and runs >= max_runs:
                    return
                close_old_connections()
                time.sleep(loop)
        except KeyboardInterrupt:
            return
