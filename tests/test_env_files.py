"""The environment as a newcomer and an operator meet it: ``cp .env.example .env`` gives a
working development setup, the README's commands work with it, an empty value means unset,
and a production process without SECRET_KEY refuses to start with one sentence. Each case
runs manage.py in a fresh interpreter with a clean environment, as a shell would."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY_MISSING = (
    "ImproperlyConfigured: SECRET_KEY is not set: set it in the environment file for production "
    "(deploy/env.example), or use DEBUG=true for development (cp .env.example .env)."
)
# What a request through the whole stack shows: the login page and the health check.
REQUESTS = """
import django, json
django.setup()
from django.conf import settings
from django.test import Client
client = Client(HTTP_HOST="127.0.0.1:8000")
print(json.dumps({
    "login": client.get("/admin/login/").status_code,
    "healthz": client.get("/healthz").status_code,
    "localhost": Client(HTTP_HOST="localhost").get("/admin/login/").status_code,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "CALL_CENTER_NUMBER": settings.CALL_CENTER_NUMBER,
    "LOG_FORMAT": settings.LOG_FORMAT,
}))
"""


def manage(*args: str, env_file: Path | str = os.devnull, **env: str) -> subprocess.CompletedProcess[str]:
    """``python manage.py *args`` with nothing but PATH, HOME and ``env`` set, reading ``env_file``
    as it would read ``.env`` beside manage.py."""
    environment = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/"), "ENV_FILE": str(env_file)}
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        cwd=BASE_DIR,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def development_env_file(tmp_path: Path) -> Path:
    """``cp .env.example .env``."""
    copy = tmp_path / ".env"
    shutil.copyfile(BASE_DIR / ".env.example", copy)
    return copy


def test_production_without_a_secret_key_refuses_to_start_with_one_sentence() -> None:
    result = manage("check")

    assert result.returncode == 1
    assert result.stderr.strip() == SECRET_KEY_MISSING
    assert "Traceback" not in result.stderr


def test_an_empty_secret_key_counts_as_unset() -> None:
    # `SECRET_KEY=` in an env file used to give Django an empty key: a 500 on every request.
    result = manage("check", SECRET_KEY="", DEBUG="false")

    assert result.returncode == 1
    assert result.stderr.strip() == SECRET_KEY_MISSING


def test_an_empty_secret_key_in_the_env_file_counts_as_unset(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("DEBUG=false\nSECRET_KEY=\nALLOWED_HOSTS=whisper.example.com\n")

    result = manage("check", env_file=env_file)

    assert result.returncode == 1
    assert result.stderr.strip() == SECRET_KEY_MISSING


def test_production_with_a_secret_key_starts() -> None:
    result = manage(
        "check",
        SECRET_KEY="a-production-secret-key-of-fifty-characters-or-more-0123456789",
        ALLOWED_HOSTS="whisper.example.com",
        CALL_CENTER_NUMBER="447700900999",
        DATABASE_URL="sqlite:///:memory:",
    )

    assert result.returncode == 0, result.stderr


def test_the_example_env_file_is_a_working_development_setup(tmp_path: Path) -> None:
    env_file = development_env_file(tmp_path)
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"

    checked = manage("check", env_file=env_file, DATABASE_URL=database)
    assert checked.returncode == 0, checked.stderr
    migrated = manage("migrate", "--noinput", env_file=env_file, DATABASE_URL=database)
    assert migrated.returncode == 0, migrated.stderr
    served = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", REQUESTS],
        cwd=BASE_DIR,
        env={
            "PATH": os.environ.get("PATH", ""),
            "ENV_FILE": str(env_file),
            "DJANGO_SETTINGS_MODULE": "whisper_project.settings",
            "DATABASE_URL": database,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.returncode == 0, served.stderr
    shown = served.stdout.strip().splitlines()[-1]
    # No DisallowedHost (400) on the development addresses, no 500, and cookies that work
    # over plain http; the empty and unset values take the development defaults.
    assert shown == (
        '{"login": 200, "healthz": 200, "localhost": 200, "SESSION_COOKIE_SECURE": false, '
        '"CALL_CENTER_NUMBER": "447700900999", "LOG_FORMAT": "plain"}'
    )


def test_the_readme_commands_work_with_the_development_env_file(tmp_path: Path) -> None:
    env_file = development_env_file(tmp_path)
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert manage("migrate", "--noinput", env_file=env_file, DATABASE_URL=database).returncode == 0

    listed = manage("simulate_call", "--list", env_file=env_file, DATABASE_URL=database)
    assert listed.returncode == 0, listed.stderr
    assert "agent-busy" in listed.stdout

    demo = str(BASE_DIR / "campaigns" / "demo_campaigns.json")
    imported = manage("import_campaigns", demo, env_file=env_file, DATABASE_URL=database)
    assert imported.returncode == 0, imported.stderr
    exported = manage("export_campaigns", env_file=env_file, DATABASE_URL=database)
    assert exported.returncode == 0, exported.stderr
    assert "447700900001" in exported.stdout

    seeded = manage("seed_calls", "--count", "20", "--verbosity", "0", env_file=env_file, DATABASE_URL=database)
    assert seeded.returncode == 0, seeded.stderr
    assert "Added 20 calls" in seeded.stdout


def test_seed_calls_refuses_a_production_database_from_the_command_line(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    production = {
        "SECRET_KEY": "a-production-secret-key-of-fifty-characters-or-more-0123456789",
        "CALL_CENTER_NUMBER": "447700900999",
        "DATABASE_URL": database,
    }
    assert manage("migrate", "--noinput", **production).returncode == 0
    demo = str(BASE_DIR / "campaigns" / "demo_campaigns.json")
    assert manage("import_campaigns", demo, **production).returncode == 0

    refused = manage("seed_calls", "--count", "20", "--verbosity", "0", **production)
    assert refused.returncode == 1
    assert "looks like a production database" in refused.stderr
    assert "--allow-production" in refused.stderr
    allowed = manage("seed_calls", "--count", "20", "--allow-production", "--verbosity", "0", **production)
    assert allowed.returncode == 0, allowed.stderr
    assert "Added 20 calls" in allowed.stdout


def test_gunicorn_without_a_secret_key_stops_instead_of_serving_errors() -> None:
    # It used to boot with an empty key and answer 500 to every request.
    result = subprocess.run(  # noqa: S603 - our own gunicorn and application
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "whisper_project.wsgi",
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--no-control-socket",
        ],
        cwd=BASE_DIR,
        env={"PATH": os.environ.get("PATH", ""), "ENV_FILE": os.devnull, "SECRET_KEY": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 3  # gunicorn's "worker failed to boot": the server stops
    assert SECRET_KEY_MISSING in result.stderr.splitlines()
    assert "Traceback" not in result.stderr
