"""``manage.py simulate_call --scenario agent-busy --strategy connect``

Plays Vonage's side of a whole call against the app, in-process, and prints what the
caller and the agent hear at each step, then the call's record and a verdict. The app's
requests to Vonage's REST API go through the real SDK to a local TLS fake of the API,
with throwaway credentials: nothing leaves the machine, whatever the environment says.
"""

import logging
from types import ModuleType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.models import Strategy
from campaigns.phone import InvalidNumber, normalize_number

# The scenarios' caller (devtools/simulator/scenarios.py), here so that --help works
# without the development requirements.
CALLER_NUMBER = "447946000123"
MISSING = (
    "The simulator is a development tool and needs the development requirements "
    "(trustme and cryptography, for its local TLS fake of Vonage's API): "
    ".venv/bin/pip install -r requirements-dev.txt ({error})."
)


def simulator() -> ModuleType:
    """The simulator package, or a CommandError saying what to install."""
    try:
        import devtools.simulator
    except ImportError as exc:
        raise CommandError(MISSING.format(error=exc)) from None
    return devtools.simulator


class Command(BaseCommand):
    help = (
        "Play Vonage's part in a whole call, in-process: prints what the caller and the agent hear, "
        "the events and REST requests, and the call's record; exits non-zero when the scenario's "
        "outcome is not the expected one. Nothing is sent to Vonage."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scenario", default="answered", help="What happens (--list shows them).")
        parser.add_argument(
            "--strategy",
            choices=Strategy.values,
            help="Conference or connect (default: the scenario campaign's own, conference when new).",
        )
        parser.add_argument(
            "--to",
            help="Dial this number as configured in the admin instead of the scenario's own campaign.",
        )
        parser.add_argument("--from", dest="from_", default=CALLER_NUMBER, help="The caller's number.")
        parser.add_argument("--talk-seconds", type=int, default=45, help="How long caller and agent talk.")
        parser.add_argument("--list", action="store_true", help="List the scenarios and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        sim = simulator()
        if options["list"]:
            width = max(len(name) for name in sim.SCENARIOS)
            for scenario in sim.SCENARIOS.values():
                self.stdout.write(f"{scenario.name:<{width}}  {scenario.story} (expected: {scenario.expected})")
            return
        if options["scenario"] not in sim.SCENARIOS:
            raise CommandError(
                f"No scenario {options['scenario']!r}: choose one of {', '.join(sorted(sim.SCENARIOS))}."
            )
        scenario = sim.SCENARIOS[options["scenario"]]
        try:
            to = normalize_number(options["to"]) if options["to"] else None
            from_ = normalize_number(options["from_"]) if options["from_"] else ""
        except InvalidNumber as exc:
            raise CommandError(str(exc)) from exc
        if to and options["strategy"]:
            raise CommandError(
                "--strategy applies to a scenario's own campaign; with --to the number's campaign "
                "keeps its own strategy (change it in the admin)."
            )

        quiet = options["verbosity"] < 2
        loggers = [logging.getLogger(name) for name in ("calls", "campaigns", "vonage", "vonage_http_client")]
        levels = [logger.level for logger in loggers]
        if quiet:
            # The narration says what happens; the app's log lines are for -v 2. Errors stay.
            for logger in loggers:
                logger.setLevel(logging.ERROR)
        try:
            with sim.local_vonage() as fake:
                result = sim.run_scenario(
                    scenario,
                    fake=fake,
                    narrate=self.stdout.write,
                    strategy=options["strategy"],
                    to=to,
                    from_=from_,
                    talk_seconds=options["talk_seconds"],
                )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
        if not result.ok:
            raise CommandError(f"Scenario {scenario.name}: {result.verdict}")
