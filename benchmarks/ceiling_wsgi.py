"""The ceiling for ``benchmarks/calls.py`` and ``benchmarks/seed_side_by_side.py``: bare
Django views returning a fixed NCCO.

Served by gunicorn exactly as the app is (``gunicorn benchmarks.ceiling_wsgi``), so the
difference between the two is what the app's own work costs: the middleware, DRF, the
database and the agent call placed at the fake. No app, no database, no middleware: what
any Django app served so reaches on this machine, at best.
"""

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import re_path

NCCO = [
    {"action": "talk", "text": "Please wait while we connect you.", "language": "en-GB", "style": 0},
    {
        "action": "conversation",
        "name": "whisper-00000000000000000000000000000000",
        "startOnEnter": False,
        "endOnExit": True,
        "musicOnHoldUrl": ["https://nexmo-community.github.io/ncco-examples/assets/voice_api_audio_streaming.mp3"],
    },
]


AGENT_NCCO = [
    {"action": "talk", "text": "Call about the summer offer.", "language": "en-GB", "style": 0},
    {"action": "conversation", "name": "whisper-00000000000000000000000000000000", "startOnEnter": True},
]


def answer_inbound(request: HttpRequest) -> JsonResponse:
    return JsonResponse(NCCO, safe=False)


def answer_outbound(request: HttpRequest) -> JsonResponse:
    return JsonResponse(AGENT_NCCO, safe=False)


urlpatterns = [re_path(r"^answer_inbound/?$", answer_inbound), re_path(r"^answer_outbound/?$", answer_outbound)]

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="ceiling-benchmark-only",  # noqa: S106 - nothing is signed
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={},
        USE_TZ=True,
    )

application = get_wsgi_application()
