"""One request per Vonage signature, remembered in the database so that every process
and every instance behind the load balancer agrees (DESIGN.md: nothing in memory)."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from ..models import SignedWebhook
from ..statements import row_insert_or_skip

logger = logging.getLogger(__name__)


REPLAY_REFUSED = "This Vonage signature was already used for another request: a replay is refused."


@dataclass(frozen=True)
class Admission:
    """A request's valid signature, to be remembered inside the webhook's own
    transaction, by its first statement (calls/statements.call_and_legs_admitting)."""

    jti: str
    digest: str  # calls/webhooks/signatures.request_digest


class Replayed(Exception):
    """The signature was already used for a different request: nothing may be done."""


def signed_request_admit(*, jti: str, digest: str) -> bool:
    """True the first time a token is seen, and again for the very same request (a
    retry); False for a token already used for a different request (a replay)."""
    if row_insert_or_skip(SignedWebhook, jti=jti, digest=digest, unique="jti") is not None:
        return True  # one statement, in autocommit: no transaction around it
    return _seen_for(jti) == digest


def admission_settle(admission: Admission, *, remembered: bool | None) -> None:
    """After the statement that remembered ``admission`` (``remembered``: whether it
    inserted the token; None when it could not tell): raise :class:`Replayed` unless
    the token is new or was seen for this very request (Vonage's retry)."""
    if remembered:
        return
    if _seen_for(admission.jti) != admission.digest:
        raise Replayed(REPLAY_REFUSED)


def _seen_for(jti: str) -> str | None:
    return SignedWebhook.objects.filter(jti=jti).values_list("digest", flat=True).first()


def signed_requests_forget(*, max_age_seconds: float) -> int:
    """Forget tokens too old to be accepted again anyway; returns how many."""
    cutoff = timezone.now() - timedelta(seconds=max_age_seconds + 120)
    deleted, _ = SignedWebhook.objects.filter(received_at__lt=cutoff).delete()
    if deleted:
        logger.info("replay.forgotten count=%d", deleted)
    return deleted
