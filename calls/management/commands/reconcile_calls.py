"""``manage.py reconcile_calls``: from cron every minute, or ``--loop 15`` as a sidecar."""

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from calls.reconcile import ReconcileReport, reconcile
from calls.webhooks.replay import signed_requests_forget

logger = logging.getLogger("calls.reconcile")


class Command(BaseCommand):
    help = (
        "Ask Vonage about calls that look stuck and put their records right, hang up orphaned agent "
        "legs, and move callers who have waited too long to the fallback. Safe to run every minute "
        "and alongside the webhooks."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=120,
            metavar="SECONDS",
            help="Ask about legs without a final status recorded at least this long ago (default 120).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Ask Vonage and report, but change nothing (no writes, no hang-ups)."
        )
        parser.add_argument(
            "--loop",
            type=float,
            metavar="SECONDS",
            help="Run again every SECONDS until stopped, for a sidecar process instead of cron.",
        )
        parser.add_argument("--max-runs", type=int, metavar="N", help="With --loop: stop after N runs.")

    def _forget_signatures(self, *, dry_run: bool) -> None:
        """The replay store keeps each accepted signature only while it could be replayed."""
        if not dry_run:
            signed_requests_forget(max_age_seconds=settings.VONAGE_SIGNATURE_MAX_AGE_MINUTES * 60)

    def handle(
        self,
        *args: Any,
        older_than: int,
        dry_run: bool,
        loop: float | None,
        max_runs: int | None,
        **options: Any,
    ) -> None:
        if older_than < 0:
            raise CommandError("--older-than must be 0 seconds or more.")
        if loop is not None and loop <= 0:
            raise CommandError("--loop must be more than 0 seconds.")
        if max_runs is not None and (max_runs < 1 or loop is None):
            raise CommandError("--max-runs needs --loop and must be 1 or more.")

        threshold = timedelta(seconds=older_than)
        if loop is None:
            try:
                report = reconcile(older_than=threshold, dry_run=dry_run)
                self._forget_signatures(dry_run=dry_run)
            except Exception as exc:
                logger.exception("reconcile.failed")
                raise CommandError(f"Reconciliation failed: {type(exc).__name__}: {exc}") from exc
            self._print(report)
            return

        runs = 0
        try:
            while True:
                try:
                    self._print(reconcile(older_than=threshold, dry_run=dry_run))
                    self._forget_signatures(dry_run=dry_run)
                except Exception as exc:
                    # A sidecar keeps going (the database may be back next time): callers
                    # on hold depend on it. Logged with the traceback for the operator.
                    logger.exception("reconcile.failed")
                    self.stderr.write(f"Reconciliation failed: {type(exc).__name__}: {exc}")
                runs += 1
                if max_runs is not None and runs >= max_runs:
                    return
                # A long-lived process: drop connections that are too old or broken.
                close_old_connections()
                time.sleep(loop)
        except KeyboardInterrupt:
            return

    def _print(self, report: ReconcileReport) -> None:
        self.stdout.write(report.summary())
