"""Reads: which campaign a number belongs to, and what a call's records say."""

from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.db.models import Model, QuerySet

from campaigns.destinations import ringable
from campaigns.models import DEFAULT_GREETING, Campaign, TrackingNumber
from campaigns.phone import InvalidNumber, normalize_number

from .models import CallLeg, NumberStatus

M = TypeVar("M", bound=Model)


def one_or_none(queryset: "QuerySet[M]") -> M | None:
    """The one row a lookup can match, or None: ``first()`` without the ORDER BY it adds
    (the models' default ordering), which is a good part of what compiling a small
    query costs on the webhooks' path."""
    found = list(queryset.order_by()[:1])
    return found[0] if found else None


@dataclass(frozen=True)
class Route:
    """Where a call to ``called_number`` goes, decided when it comes in."""

    called_number: str
    number_status: str
    tracking_number: TrackingNumber | None
    campaign: Campaign | None
    destination: str
    greeting: str
    hold_music_url: str
    source: str
    # The campaign's destination, when outside the allow-list and replaced by the call centre.
    refused_destination: str = ""


def route_for(to: str) -> Route:
    """The active campaign for a dialled number, or the call centre's safe default."""
    try:
        called = normalize_number(to)
    except InvalidNumber:
        called = str(to)[:32]
    number = one_or_none(
        TrackingNumber.objects.select_related("campaign")
        .prefetch_related("campaign__opening_hours")
        .filter(number=called)
    )
    campaign = number.campaign if number else None
    if number is None:
        status = NumberStatus.UNKNOWN
    elif number.is_active and campaign is not None and campaign.is_active:
        status = NumberStatus.TRACKED
    else:
        status = NumberStatus.INACTIVE
    routed = campaign if status == NumberStatus.TRACKED else None
    destination = routed.destinations[0] if routed else settings.CALL_CENTER_NUMBER
    # Defence in depth: a destination saved before ALLOWED_DESTINATION_PREFIXES was
    # narrowed is not rung (the call centre is); services logs it with the call.
    (destination,), refused = ringable([destination])
    return Route(
        called_number=called,
        number_status=status,
        tracking_number=number,
        campaign=campaign,
        destination=destination,
        greeting=routed.greeting if routed else DEFAULT_GREETING,
        hold_music_url=(routed.hold_music_url if routed and routed.hold_music_url else settings.HOLD_MUSIC_URL),
        source=number.source if number else "",
        refused_destination=refused[0] if refused else "",
    )


def caller_leg(uuid: str) -> CallLeg | None:
    return one_or_none(CallLeg.objects.select_related("call").filter(uuid=uuid, role="caller"))
