"""Settings for the test suite: production settings with safe test values."""

import os

# The suite reads no env file: a developer's .env (DEBUG=true, a database) must not change it,
# nor the servers and commands it starts, which inherit this environment.
os.environ.setdefault("ENV_FILE", os.devnull)
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("CALL_CENTER_NUMBER", "447700900999")
os.environ.setdefault("PUBLIC_URL", "https://whisper.example.com")
# Most tests post webhooks without a signature; tests/calls/test_signatures.py and
# tests/calls/test_webhook_boundary.py turn this off and sign for real.
os.environ.setdefault("UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS", "true")

from .settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# Tests never reach a real Vonage: credentials and hosts are set per test.
VONAGE_APPLICATION_ID = ""
VONAGE_PRIVATE_KEY = ""
VONAGE_API_KEY = ""
VONAGE_API_SECRET = ""
VONAGE_SIGNATURE_SECRET = ""
VONAGE_API_HOST = "vonage.invalid"
# pytest-django's test transaction is invisible to other threads' connections: the first
# agent call is placed in the request's thread (tests/e2e run real servers with "background").
AGENT_CALL_DISPATCH = "inline"
# Unpaced: tests place calls back to back; the pacing tests turn it on (tests/calls/test_pacing.py).
VONAGE_CALLS_PER_SECOND = 0.0
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
