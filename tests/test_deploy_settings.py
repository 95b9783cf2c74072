"""Production settings, read as a production process reads them: from the environment,
at import. Each case runs in a fresh interpreter."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "SECRET_KEY": "a-production-secret-key-of-fifty-characters-or-more-0123456789",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "whisper.example.com",
    "DATABASE_URL": "sqlite:///:memory:",
    "PUBLIC_URL": "https://whisper.example.com",
    "CALL_CENTER_NUMBER": "447700900999",
    "VONAGE_SIGNATURE_SECRET": "a-signature-secret",
    "TRUST_X_FORWARDED_PROTO": "true",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}
SHOW = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": s.CSRF_COOKIE_SECURE,
    "SECURE_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": s.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "SECURE_PROXY_SSL_HEADER": s.SECURE_PROXY_SSL_HEADER,
    "SECURE_SSL_REDIRECT": s.SECURE_SSL_REDIRECT,
    "TRUSTED_PROXY_COUNT": s.TRUSTED_PROXY_COUNT,
    "AXES_FAILURE_LIMIT": s.AXES_FAILURE_LIMIT,
    "AXES_COOLOFF_SECONDS": s.AXES_COOLOFF_TIME.total_seconds(),
    "console_formatter": s.LOGGING["handlers"]["console"]["formatter"],
}))
"""


def run(code: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(BASE_DIR)),
        "DJANGO_SETTINGS_MODULE": "whisper_project.settings",
        "ENV_FILE": os.devnull,  # not the developer's .env
        **env,
    }
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, *code], cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=120
    )


def production_settings(**env: str) -> dict:
    result = run(["-c", SHOW], **{**PRODUCTION, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_settings_are_secure_as_configured() -> None:
    assert production_settings() == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_SSL_REDIRECT": True,
        "TRUSTED_PROXY_COUNT": 0,
        "AXES_FAILURE_LIMIT": 5,
        "AXES_COOLOFF_SECONDS": 900.0,
        "console_formatter": "plain",
    }


def test_without_a_proxy_the_forwarded_headers_are_not_trusted() -> None:
    shown = production_settings(TRUST_X_FORWARDED_PROTO="false")
    assert shown["SECURE_PROXY_SSL_HEADER"] is None
    assert shown["TRUSTED_PROXY_COUNT"] == 0


def test_json_logs_and_proxy_count_are_read_from_the_environment() -> None:
    shown = production_settings(LOG_FORMAT="json", TRUSTED_PROXY_COUNT="1", AXES_FAILURE_LIMIT="3")
    assert (shown["console_formatter"], shown["TRUSTED_PROXY_COUNT"], shown["AXES_FAILURE_LIMIT"]) == ("json", 1, 3)


def test_an_unknown_log_format_refuses_to_start() -> None:
    result = run(["-c", SHOW], **{**PRODUCTION, "LOG_FORMAT": "xml"})
    assert result.returncode != 0
    assert 'LOG_FORMAT must be "plain" or "json"' in result.stderr


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_check_deploy_is_clean_with_production_settings(log_format: str) -> None:
    """What .ci/run runs, here on SQLite: Django's, django-axes' and our own checks, and
    drf-spectacular's generation of the webhooks' description, with no warning."""
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION, LOG_FORMAT=log_format)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
