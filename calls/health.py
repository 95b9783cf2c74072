"""``/healthz`` for load balancers and orchestrators: is the database answering?

A plain Django view (no DRF, no authentication, no session) so that it works whatever
the webhooks' settings are, and is cheap enough to be polled every few seconds.
"""

import logging

from django.db import Error as DatabaseError
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.error("healthz.database_unavailable error=%s", type(exc).__name__)
        return JsonResponse({"status": "database unavailable"}, status=503)
    return JsonResponse({"status": "ok"})
