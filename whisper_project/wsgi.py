import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whisper_project.settings")
application = get_wsgi_application()

# Safe by default: a production process without the webhook signature secret does not
# start (gunicorn runs no system checks; calls.E005 covers manage.py).
from calls.checks import refuse_unsafe_start  # noqa: E402

refuse_unsafe_start()
