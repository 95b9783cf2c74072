"""``manage.py vonage_setup``: create or update the Vonage application and link the numbers."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from calls import vonage_setup as setup


class Command(BaseCommand):
    help = (
        "Point Vonage at this app: create the Vonage application (or, when VONAGE_APPLICATION_ID "
        "is set, replace that application's voice settings) with the answer, fallback and event "
        "URLs under PUBLIC_URL and signed webhooks, then link every active tracking number to "
        "it. Uses the account's VONAGE_API_KEY and VONAGE_API_SECRET."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--name",
            default=setup.DEFAULT_APPLICATION_NAME,
            help=(f"The application's name in the Vonage dashboard (default: “{setup.DEFAULT_APPLICATION_NAME}”)."),
        )
        parser.add_argument(
            "--private-key-file",
            default=setup.DEFAULT_PRIVATE_KEY_FILE,
            help=(
                "Where to save a new application's private key, readable only by you "
                f"(default: {setup.DEFAULT_PRIVATE_KEY_FILE}). Vonage gives it only once."
            ),
        )
        parser.add_argument("--force", action="store_true", help="Overwrite the private key file if it exists.")
        parser.add_argument("--dry-run", action="store_true", help="Print what would be done; send nothing to Vonage.")

    def handle(self, *args: Any, name: str, private_key_file: str, force: bool, dry_run: bool, **options: Any) -> None:
        key_path = Path(private_key_file).expanduser().resolve()
        application_id: str = settings.VONAGE_APPLICATION_ID
        try:
            setup.account_check()
            setup.public_url_check(settings.PUBLIC_URL)
            spec = setup.application_spec(name=name, public_url=settings.PUBLIC_URL)
            numbers = setup.numbers_to_link()
            if not application_id:
                setup.private_key_file_check(key_path, force=force)
            if dry_run:
                self._dry_run(spec, application_id, key_path, numbers)
                return
            if application_id:
                setup.application_update(application_id=application_id, spec=spec)
                self.stdout.write(f"Updated application {application_id} (“{spec.name}”):")
                self.stdout.write("\n".join(setup.application_summary(spec)))
            else:
                application_id = self._create(spec, key_path, force=force)
            if not numbers:
                self.stdout.write("There are no active tracking numbers to link.")
                return
            results = setup.numbers_link(application_id=application_id, numbers=numbers)
        except setup.SetupError as exc:
            raise CommandError(str(exc)) from None

        for result in results:
            if result.linked:
                self.stdout.write(result.message)
            else:
                self.stderr.write(result.message)
        failed = [result for result in results if not result.linked]
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(results)} numbers could not be linked to application "
                f"{application_id}: {', '.join(result.number for result in failed)}."
            )
        self.stdout.write(self.style.SUCCESS(f"All {len(results)} numbers are linked to application {application_id}."))

    def _create(self, spec: setup.VoiceApplicationSpec, key_path: Path, *, force: bool) -> str:
        created = setup.application_create(spec=spec)
        try:
            setup.private_key_write(key_path, created.private_key, force=force)
        except OSError as exc:
            raise setup.SetupError(
                f"Application {created.id} was created, but its private key could not be saved to "
                f"{key_path}: {exc}. Generate a new key pair for it in the Vonage dashboard."
            ) from exc
        self.stdout.write(f"Created application {created.id} (“{spec.name}”):")
        self.stdout.write("\n".join(setup.application_summary(spec)))
        self.stdout.write(f"Saved its private key to {key_path} (readable only by you).")
        self.stdout.write(
            "Set these in the environment (or .env) and restart the app:\n"
            f"  VONAGE_APPLICATION_ID={created.id}\n"
            f"  VONAGE_PRIVATE_KEY={key_path}"
        )
        if not settings.VONAGE_SIGNATURE_SECRET:
            self.stdout.write(
                "Vonage signs every webhook to this application: also set VONAGE_SIGNATURE_SECRET to "
                "the account's signature secret (Vonage dashboard, API settings)."
            )
        return created.id

    def _dry_run(
        self, spec: setup.VoiceApplicationSpec, application_id: str, key_path: Path, numbers: list[Any]
    ) -> None:
        self.stdout.write("Dry run: nothing is sent to Vonage.")
        if application_id:
            self.stdout.write(f"Would update application {application_id} (“{spec.name}”):")
        else:
            self.stdout.write(f"Would create application “{spec.name}”:")
        self.stdout.write("\n".join(setup.application_summary(spec)))
        if not application_id:
            self.stdout.write(f"Would save its private key to {key_path}.")
        if not numbers:
            self.stdout.write("There are no active tracking numbers to link.")
        for number in numbers:
            self.stdout.write(f"Would link {setup.number_label(number)} to the application, if the account owns it.")
