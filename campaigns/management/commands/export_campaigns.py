"""``manage.py export_campaigns``: write every campaign in the import format."""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.services import campaigns_export


class Command(BaseCommand):
    help = (
        "Write every campaign and its tracking numbers as JSON, in the format import_campaigns "
        "reads, with every key and in a stable order (campaigns by name, numbers by number)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", "-o", metavar="FILE", help="Write to FILE instead of standard output.")

    def handle(self, *args: Any, output: str | None, **options: Any) -> None:
        text = campaigns_json(campaigns_export())
        if output is None:
            self.stdout.write(text, ending="")
            return
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc}") from None
        if options["verbosity"] >= 1:
            self.stdout.write(f"Wrote the campaigns to {output}.")


def campaigns_json(campaigns: list[dict[str, Any]]) -> str:
    return json.dumps(campaigns, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
