"""``manage.py import_campaigns FILE.json``: create or update campaigns from a file."""

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.services import CampaignFileInvalid, campaigns_import


class Command(BaseCommand):
    help = (
        "Create or update campaigns and their tracking numbers from a JSON file (“-” reads standard "
        "input), in the format export_campaigns writes. Campaigns are matched by name and numbers by "
        "number; a number the file puts on another campaign moves there. Nothing is deleted. The "
        "file is checked whole first: if any part is wrong, nothing is changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The campaigns file (JSON), or “-” for standard input.")

    def handle(self, *args: Any, file: str, **options: Any) -> None:
        data = load_json(read_text(file), source=file)
        try:
            summary = campaigns_import(data=data)
        except CampaignFileInvalid as exc:
            count = len(exc.problems)
            heading = "a problem" if count == 1 else f"{count} problems"
            lines = "\n".join(f"  - {problem}" for problem in exc.problems)
            raise CommandError(
                f"{source_name(file)} was not imported; nothing was changed. It has {heading}:\n{lines}"
            ) from None
        if options["verbosity"] >= 1:
            for change in summary.changes:
                self.stdout.write(change)
        self.stdout.write(self.style.SUCCESS(str(summary)))


def read_text(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"Cannot read {file}: {exc}") from None


def load_json(text: str, *, source: str) -> Any:
    """The parsed file; a key given twice in one object is refused, not silently
    overwritten by the second."""

    def refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise CommandError(
                    f"{source_name(source)} was not imported: the key “{key}” appears twice in one object."
                )
            result[key] = value
        return result

    try:
        return json.loads(text, object_pairs_hook=refuse_repeated_keys)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{source_name(source)} was not imported: it is not valid JSON ({exc.msg} at line "
            f"{exc.lineno}, column {exc.colno})."
        ) from None


def source_name(file: str) -> str:
    return "The standard input" if file == "-" else file
