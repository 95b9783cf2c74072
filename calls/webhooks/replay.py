"""One request per Vonage signature, remembered in the database so that every process
and every instance behind the load balancer agrees (DESIGN.md: nothing in memory)."""

import logging
from datetime import timedelta

from django.utils import timezone

from ..models import SignedWebhook
from ..statements import row_insert_or_skip

logger = logging.getLogger(__name__)


def signed_request_admit(*, jti: str, digest: str) -> bool:
    """True the first time a token is seen, and again for the very same request (a
    retry); False for a token already used for a different request (a replay)."""
    if row_insert_or_skip(SignedWebhook, jti=jti, digest=digest, unique="jti") is not None:
        return True  # one statement, in autocommit: no transaction around it
    seen = SignedWebhook.objects.filter(jti=jti).values_list("digest", flat=True).first()
    return seen == digest


def signed_requests_forget(*, max_age_seconds: float) -> int:
    """Forget tokens too old to be accepted again anyway; returns how many."""
    cutoff = timezone.now() - timedelta(seconds=max_age_seconds + 120)
    deleted, _ = SignedWebhook.objects.filter(received_at__lt=cutoff).delete()
    if deleted:
        logger.info("replay.forgotten count=%d", deleted)
    return deleted
