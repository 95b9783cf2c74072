"""``manage.py purge_calls``: apply CALL_RETENTION_DAYS (daily, from cron)."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from calls.retention import calls_delete, calls_due, calls_redact


class Command(BaseCommand):
    help = (
        "Redact callers' numbers on calls older than CALL_RETENTION_DAYS (or delete those calls with "
        "--delete), in batches. Safe to run again at any time."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--days", type=int, default=None, help="Override CALL_RETENTION_DAYS.")
        parser.add_argument("--delete", action="store_true", help="Delete the old calls instead of redacting them.")
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args: Any, days: int | None, delete: bool, batch_size: int, **options: Any) -> None:
        days = settings.CALL_RETENTION_DAYS if days is None else days
        if days < 1 or batch_size < 1:
            raise CommandError("--days and --batch-size must be at least 1.")
        cutoff = timezone.now() - timedelta(days=days)
        due = calls_due(older_than=cutoff)
        total = due.count() if delete else due.filter(redacted_at__isnull=True).count()
        with tqdm(total=total, unit="call", disable=options["verbosity"] == 0, file=self.stderr) as bar:
            if delete:
                done = calls_delete(older_than=cutoff, batch_size=batch_size, progress=bar.update)
            else:
                done = calls_redact(older_than=cutoff, batch_size=batch_size, progress=bar.update)
        verb = "Deleted" if delete else "Redacted the caller's number on"
        self.stdout.write(f"{verb} {done} calls started before {cutoff:%Y-%m-%d %H:%M} ({days} days).")
