"""Settings for Call Whisper, read from the environment with django-environ.

Every variable is listed, with a one-line comment, in ``.env.example`` (development) and
``deploy/env.example`` (production); tests/test_deploy_files.py keeps both complete. Secrets have
no production default: only with ``DEBUG`` on does the app fall back to development
values, so a production process without ``SECRET_KEY`` refuses to start.
"""

import os
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


class _SetVariables(Mapping[str, str]):
    """The process environment without its empty variables: ``KEY=`` in an env file (as
    ``.env.example`` writes the ones it leaves unset) means unset, so the default applies
    and a required setting is reported missing instead of being read as ``""``."""

    def __getitem__(self, name: str) -> str:
        value = os.environ[name]
        if value == "":
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name, value in os.environ.items() if value != "")

    def __len__(self) -> int:
        return sum(1 for _ in self)


env = environ.Env()
env.ENVIRON = _SetVariables()
# The env file beside manage.py (ENV_FILE names another; /dev/null reads none, as the test
# suite does). Variables already in the environment win over the file.
environ.Env.read_env(os.environ.get("ENV_FILE") or BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        # One sentence, shown by manage.py without a traceback.
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: set it in the environment file for production "
            "(deploy/env.example), or use DEBUG=true for development (cp .env.example .env)."
        )
    SECRET_KEY = "django-insecure-development-only-key-change-me"  # noqa: S105 - DEBUG only

# Earlier secret keys still accepted while rotating SECRET_KEY (sessions, callback URLs of
# calls in progress: calls.webhooks.callback_urls).
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "simple_history",
    "campaigns",
    "calls",
    "alerts",
    # The simulator's command (manage.py simulate_call); its fake of Vonage's API and
    # their dependencies load only when it runs (requirements-dev.txt).
    "devtools",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Records who made each change to a campaign (django-simple-history's history_user).
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# django-axes first: it refuses a locked-out login before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "whisper_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "whisper_project.wsgi.application"
ASGI_APPLICATION = "whisper_project.asgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, without the health check on every request while a connection is
    # known good (whisper_project/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "whisper_project.postgresql"
    # The reports group tens of thousands of calls; PostgreSQL's default 4 MB of sort
    # memory makes them spill to disk (benchmarks/admin_pages.py measures the effect).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "options", f"-c work_mem={env('DATABASE_WORK_MEM', default='32MB')}"
    )
    # A database host that does not answer must not hold an answer webhook past Vonage's
    # 5 s: without this psycopg waits 130 s to connect. The webhook then answers its safe
    # default (tests/e2e/test_database_outage.py). psycopg's minimum is 2 s.
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=2))
    # Prepared statements: every webhook runs the same few statements, and PostgreSQL spent
    # more CPU parsing and planning them than running them (benchmarks/webhook_cpu.py: 13.1
    # ms of PostgreSQL's CPU a call without, 8.1 with). psycopg prepares a statement on a
    # connection the second time it runs there (server-side binding, which preparing needs).
    # Off for a pooler that cannot keep them: pgbouncer before 1.21, or in transaction mode
    # without max_prepared_statements.
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        DATABASES["default"]["OPTIONS"].setdefault("server_side_binding", True)
        DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", 2)
# A connection that served a request without error this recently is not health-checked
# before the next one (whisper_project/postgresql/base.py).
DATABASE_KNOWN_GOOD_SECONDS = env.float("DATABASE_KNOWN_GOOD_SECONDS", default=1.0)
# After a failed connect, webhooks leave the database alone this long (calls/database_outage.py).
DATABASE_OUTAGE_BACKOFF_SECONDS = env.float("DATABASE_OUTAGE_BACKOFF_SECONDS", default=5.0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Webhooks for both legs of a call arrive at once; wait for SQLite's write lock
    # instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
# One date and time format on every admin page (whisper_project/formats/).
FORMAT_MODULE_PATH = ["whisper_project.formats"]
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Production behind a TLS-terminating proxy: all of these are off unless set.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("TRUST_X_FORWARDED_PROTO", default=False) else None
)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Vonage does not follow redirects on POST: keep the webhook routes reachable over HTTP
# when a redirect is enabled for the admin.
SECURE_REDIRECT_EXEMPT = [
    r"^answer_inbound/?$",
    r"^answer_outbound/?$",
    r"^answer_callback/?$",
    r"^event/?$",
    r"^fallback/?$",
    r"^healthz/?$",
]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# How many proxies in front of the app append to X-Forwarded-For; 0 (the default) ignores
# the header, which anyone can send. The client is the address the outermost trusted
# proxy saw: the entry this many places from the right.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# Admin logins are throttled (django-axes): after AXES_FAILURE_LIMIT wrong passwords for
# one username from one address, that pair is refused for AXES_COOLOFF_MINUTES, even with
# the right password; other users and other addresses are not affected.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "whisper_project.client_ip.client_ip"

# The largest webhook body we read; Vonage's are a few hundred bytes.
WEBHOOK_MAX_BODY_BYTES = 64 * 1024

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "calls.webhooks.auth.webhook_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The OpenAPI description of the webhooks, at /api/schema/ (Swagger UI at /api/docs/,
# its assets served locally by drf-spectacular-sidecar).
SPECTACULAR_SETTINGS = {
    "TITLE": "Call Whisper webhooks",
    "DESCRIPTION": (
        "The routes Vonage's Voice API calls: answer webhooks that return an NCCO (a JSON array of "
        "actions), the event webhook, and the fallback answer URL. With VONAGE_SIGNATURE_SECRET set, "
        "every request must carry Vonage's signed JWT in `Authorization: Bearer …`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request components of their own, so required strings say minLength 1 as DRF does.
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# --- Call Whisper -----------------------------------------------------------------
PUBLIC_URL = env("PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
CALL_CENTER_NUMBER = env("CALL_CENTER_NUMBER", default="447700900999" if DEBUG else "")
# Prefixes (E.164 digits, comma-separated) of the numbers campaigns may ring; empty: the
# country calling code of CALL_CENTER_NUMBER, which is itself always allowed.
ALLOWED_DESTINATION_PREFIXES = env.list("ALLOWED_DESTINATION_PREFIXES", default=[])
HOLD_MUSIC_URL = env(
    "HOLD_MUSIC_URL",
    default="https://nexmo-community.github.io/ncco-examples/assets/voice_api_audio_streaming.mp3",
)
# What the caller hears, with the connect strategy, between the agent answering and the
# end of the whisper (``onAnswer.ringbackTone``): without it, silence. Empty: none.
RINGBACK_TONE_URL = env(
    "RINGBACK_TONE_URL",
    default="https://nexmo-community.github.io/ncco-examples/assets/voice_api_audio_streaming.mp3",
)
VONAGE_APPLICATION_ID = env("VONAGE_APPLICATION_ID", default="")
VONAGE_PRIVATE_KEY = env("VONAGE_PRIVATE_KEY", default="")
VONAGE_API_KEY = env("VONAGE_API_KEY", default="")
VONAGE_API_SECRET = env("VONAGE_API_SECRET", default="")
VONAGE_SIGNATURE_SECRET = env("VONAGE_SIGNATURE_SECRET", default="")
# Minutes a Vonage signature is accepted after its ``iat`` (Vonage's tokens carry no ``exp``).
VONAGE_SIGNATURE_MAX_AGE_MINUTES = env.float("VONAGE_SIGNATURE_MAX_AGE_MINUTES", default=5.0)
# Without VONAGE_SIGNATURE_SECRET a production server (DEBUG off) refuses to start and refuses
# every webhook; this opt-out accepts anyone's requests instead. Never on a reachable server.
UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS = env.bool("UNSAFE_ACCEPT_UNSIGNED_WEBHOOKS", default=False)
VONAGE_API_HOST = env("VONAGE_API_HOST", default="api.nexmo.com")
# Seconds the SDK waits to connect and for each read; whole seconds (the SDK's type).
VONAGE_TIMEOUT_SECONDS = env.int("VONAGE_TIMEOUT_SECONDS", default=2)
# The most we wait for Vonage to create an agent call; the caller's checkpoint after the
# greeting waits as long, then connects the caller straight to the call centre instead.
AGENT_CALL_DEADLINE_SECONDS = env.float("AGENT_CALL_DEADLINE_SECONDS", default=3.0)
# Where the first agent call is placed (conference strategy): "background" answers the
# caller at once and asks Vonage on a worker thread of the same process; "inline" asks
# before answering (the test suite's choice: one thread, one database connection).
AGENT_CALL_DISPATCH = env.str("AGENT_CALL_DISPATCH", default="background")
# Worker threads per server process placing agent calls; each holds a database connection.
AGENT_CALL_THREADS = env.int("AGENT_CALL_THREADS", default=8)
# Vonage's limit on new outbound calls per second for the account, REST create-calls and
# NCCO connects alike (VONAGE.md); every process and instance paces under it together
# through one database row (calls/pacing.py). 0 turns pacing off (the test suite).
VONAGE_CALLS_PER_SECOND = env.float("VONAGE_CALLS_PER_SECOND", default=3.0)
# A caller queued under that limit hears "you are number N in line" after the greeting.
CALL_QUEUE_ANNOUNCE_POSITION = env.bool("CALL_QUEUE_ANNOUNCE_POSITION", default=False)

# A directory where each web process appends (fsync'd JSON lines) what the answer and
# event webhooks received while the database was unreachable; `manage.py reconcile_calls`
# records it once the database is back (calls/spool.py). Empty: nothing is kept, and a
# call answered during an outage leaves no record.
WEBHOOK_SPOOL_DIR = env.str("WEBHOOK_SPOOL_DIR", default="")
# A caller's answer that waited longer than this in the server's queue (X-Request-Start,
# stamped by the proxy) is answered at once with the call centre, directly, and spooled for
# reconcile_calls to record (calls/webhooks/overload.py); 0 turns shedding off. Needs
# WEBHOOK_SPOOL_DIR: without it nothing is shed. 1 s: while the shed calls are within what
# the servers serve, the queue holds near a second, so the answers that are not shed (an
# agent's, a checkpoint) wait about that long too, well inside Vonage's 5 s; past that, one
# queue grows anyway. An event that waited longer sheds the callers of the next second too:
# with the answers on processes of their own (deploy/nginx.conf) the events' queue is where
# overload shows (README, "Performance and scaling").
ANSWER_SHED_AFTER_SECONDS = env.float("ANSWER_SHED_AFTER_SECONDS", default=1.0)

# Days a caller's number is kept; `manage.py purge_calls` redacts (or deletes) older calls.
CALL_RETENTION_DAYS = env.int("CALL_RETENTION_DAYS", default=365)
# How the admin shows phone numbers: "international" (+44 7946 000123) or "national"
# (07946 000123, for numbers in the call centre's country; others stay international).
PHONE_NUMBER_DISPLAY = env.str("PHONE_NUMBER_DISPLAY", default="international")
if PHONE_NUMBER_DISPLAY not in ("international", "national"):
    raise ImproperlyConfigured("PHONE_NUMBER_DISPLAY must be international or national.")
# The currency of Vonage's call prices (EUR unless the account is billed in another).
CALL_PRICE_CURRENCY = env.str("CALL_PRICE_CURRENCY", default="EUR")

# Alerts about missed calls and voicemails (alerts/, `manage.py send_alerts`). Mail goes through
# Django's mail with the server in EMAIL_URL (django-environ: smtp+tls://user:password@host:587,
# smtp+ssl://…:465, smtp://host:25; consolemail:// prints it). Development prints it by default.
_EMAIL = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
EMAIL_BACKEND = _EMAIL["EMAIL_BACKEND"]
EMAIL_HOST = _EMAIL.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = _EMAIL.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _EMAIL.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _EMAIL.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_EMAIL.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(_EMAIL.get("EMAIL_USE_SSL"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Call Whisper <alerts@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Seconds the mail server may take to accept a message before the attempt counts as failed.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)

LOG_LEVEL = env("LOG_LEVEL", default="INFO")
# "plain" lines for people, or "json": one object a line with timestamp, level, logger,
# message and, when known, call_id, for a log collector.
LOG_FORMAT = env("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f'LOG_FORMAT must be "plain" or "json", not "{LOG_FORMAT}".')
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # The call a line is about (calls.logging.call_context), and secrets removed from
        # every line, the SDK's DEBUG request headers included.
        "call_id": {"()": "calls.logging.CallIdFilter"},
        "redact_secrets": {"()": "calls.logging.RedactSecretsFilter"},
    },
    "formatters": {
        # Both write one record a line: control characters in a message are escaped.
        "plain": {"()": "calls.logging.PlainFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "calls.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["call_id", "redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "calls": {"level": LOG_LEVEL},
        "campaigns": {"level": LOG_LEVEL},
        "alerts": {"level": LOG_LEVEL},
        "django.request": {"level": "ERROR"},
    },
}
