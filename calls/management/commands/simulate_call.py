"""``manage.py simulate_call --to 447700900001 --from 447946000123``"""

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.test import override_settings

from calls.simulator import run_answered_call
from campaigns.phone import InvalidNumber, normalize_number


class Command(BaseCommand):
    help = (
        "Play Vonage's part in a whole call, in-process: prints what the caller and the agent "
        "hear and the events, and leaves the call in the admin. Nothing is sent to Vonage."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--to", required=True, help="The number dialled (a campaign number).")
        parser.add_argument("--from", dest="from_", default="447946000123", help="The caller's number.")
        parser.add_argument("--talk-seconds", type=int, default=45, help="How long caller and agent talk.")

    def handle(self, *args: Any, to: str, from_: str, talk_seconds: int, **options: Any) -> None:
        try:
            to = normalize_number(to)
            from_ = normalize_number(from_) if from_ else ""
        except InvalidNumber as exc:
            raise CommandError(str(exc)) from exc
        if options["verbosity"] < 2:
            # The narration says what happens; the app's log lines are for -v 2.
            logging.getLogger("calls").setLevel(logging.WARNING)
        # The simulator plays Vonage: never place a real call, whatever the environment says.
        with override_settings(VONAGE_APPLICATION_ID="", VONAGE_PRIVATE_KEY=""):
            call = run_answered_call(to=to, from_=from_, talk_seconds=talk_seconds, narrate=self.stdout.write)
        if call is None:
            raise CommandError("The app recorded no call; see the log lines above.")
