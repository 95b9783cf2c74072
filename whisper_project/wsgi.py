import os
import sys

import django
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whisper_project.settings")
try:
    # What django.core.wsgi.get_wsgi_application does, with the project's handler: the
    # webhooks are served without the site's middleware (whisper_project/handlers.py).
    django.setup(set_prefix=False)
    from whisper_project.handlers import SiteHandler

    application = SiteHandler()
    # Safe by default: a production process without the webhook signature secret does
    # not start (gunicorn runs no system checks; calls.E005 covers manage.py).
    from calls.checks import refuse_unsafe_start

    refuse_unsafe_start()
except ImproperlyConfigured as error:
    # A missing or bad setting (SECRET_KEY…): one line for the operator, and exit code 3,
    # gunicorn's "worker failed to boot", which stops the server instead of respawning the
    # worker (the unit's ExecStartPre check normally says it first).
    print(f"ImproperlyConfigured: {error}", file=sys.stderr)
    raise SystemExit(3) from None

# The SDK's import and the key's parsing take a second or more on a fresh worker (far
# more on a busy machine): pay them now, not on the first caller's agent call, which has
# AGENT_CALL_DEADLINE_SECONDS to be placed.
try:
    from calls import vonage_adapter

    vonage_adapter.warm_up()
except Exception:  # noqa: S110 - a bad key is reported by the first request that needs it
    pass
