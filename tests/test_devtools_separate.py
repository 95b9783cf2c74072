"""The TLS fake and the simulator are development tools (issue 11): the production app
neither imports them nor needs their dependencies."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "whisper_project.settings",
    "DEBUG": "false",
    "SECRET_KEY": "a-production-secret-key-for-this-test-only-0123456789",
    "ALLOWED_HOSTS": "testserver",
    "CALL_CENTER_NUMBER": "447700900999",
    "PUBLIC_URL": "https://whisper.example.com",
    "VONAGE_SIGNATURE_SECRET": "a-signature-secret-for-this-test-only",
    "DATABASE_URL": "sqlite:///:memory:",
    "ENV_FILE": os.devnull,
}
# Makes the development requirements unimportable, as on a production install.
WITHOUT_DEV_REQUIREMENTS = (
    "import sys; sys.modules['trustme'] = None; sys.modules['cryptography'] = None; "
    "DEV = ('trustme', 'cryptography', 'devtools.fake_vonage_api', 'devtools.simulator'); "
)


def run(code: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/"), **PRODUCTION}
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", WITHOUT_DEV_REQUIREMENTS + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_production_app_serves_without_the_development_tools() -> None:
    served = run(
        "import whisper_project.wsgi; from django.test import Client; "
        "import calls.admin, calls.webhooks.views, calls.reconcile, campaigns.admin; "
        "from django.core.management import get_commands; assert 'simulate_call' in get_commands(); "
        "print(Client().get('/api/schema/').status_code); "
        "print(sorted(m for m, module in sys.modules.items() if module is not None and m.startswith(DEV)))"
    )

    assert served.returncode == 0, served.stderr
    assert served.stdout.split() == ["200", "[]"]


def test_simulate_call_says_plainly_what_to_install() -> None:
    listed = run(
        "import django; django.setup(); from django.core.management import call_command; "
        "call_command('simulate_call', '--list')"
    )

    assert listed.returncode != 0
    assert "pip install -r requirements-dev.txt" in listed.stderr
    assert "Traceback" in listed.stderr  # call_command raises; manage.py prints the message alone


def test_manage_py_simulate_call_prints_one_sentence_without_them() -> None:
    shown = run(
        "import sys, runpy; sys.argv = ['manage.py', 'simulate_call', '--list']; "
        "runpy.run_path('manage.py', run_name='__main__')"
    )

    assert shown.returncode == 1
    assert shown.stderr.startswith("CommandError: The simulator is a development tool")
    assert "Traceback" not in shown.stderr
