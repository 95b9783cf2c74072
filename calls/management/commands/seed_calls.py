"""``manage.py seed_calls --count 1000000``: realistic call history, in batches."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from calls.models import Call
from calls.seeding import mark_first_calls, seed_calls
from campaigns.models import TrackingNumber


class Command(BaseCommand):
    help = "Fill the call history with realistic calls to the existing campaign numbers (for reports and benchmarks)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--count", type=int, default=10_000)
        parser.add_argument("--days", type=int, default=365, help="Spread the calls over this many past days.")
        parser.add_argument("--seed", type=int, default=1, help="Random seed: the same seed gives the same calls.")
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Write fake calls even though DEBUG is off (a production database, or a benchmark's).",
        )

    def handle(self, *args: Any, count: int, days: int, seed: int, allow_production: bool, **options: Any) -> None:
        if not settings.DEBUG and not allow_production:
            # Fake calls in a real history would skew every report, and nothing marks them.
            database = settings.DATABASES["default"]
            raise CommandError(
                f"DEBUG is off, so {database.get('NAME')} on {database.get('HOST') or 'this machine'} looks like "
                "a production database: seed_calls writes fake calls. Add --allow-production to write them anyway."
            )
        numbers = list(TrackingNumber.objects.select_related("campaign"))
        if not numbers:
            raise CommandError("There are no tracking numbers: import campaigns first (make run does).")
        if count < 1 or days < 1:
            raise CommandError("--count and --days must be at least 1.")
        with tqdm(total=count, unit="call", disable=options["verbosity"] == 0, file=self.stderr) as progress:
            for batch in seed_calls(count=count, days=days, numbers=numbers, seed=seed):
                with transaction.atomic():
                    Call.objects.bulk_create(batch)
                progress.update(len(batch))
        mark_first_calls()
        self.stdout.write(f"Added {count} calls over {days} days to {len(numbers)} numbers.")
