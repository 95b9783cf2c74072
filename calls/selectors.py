"""Reads: which campaign a number belongs to, and what a call's records say."""

from dataclasses import dataclass

from django.conf import settings

from campaigns.models import DEFAULT_GREETING, Campaign, TrackingNumber
from campaigns.phone import InvalidNumber, normalize_number

from .models import CallLeg, NumberStatus


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


def route_for(to: str) -> Route:
    """The active campaign for a dialled number, or the call centre's safe default."""
    try:
        called = normalize_number(to)
    except InvalidNumber:
        called = str(to)[:32]
    number = TrackingNumber.objects.select_related("campaign").filter(number=called).first()
    campaign = number.campaign if number else None
    if number is None:
        status = NumberStatus.UNKNOWN
    elif number.is_active and campaign is not None and campaign.is_active:
        status = NumberStatus.TRACKED
    else:
        status = NumberStatus.INACTIVE
    routed = campaign if status == NumberStatus.TRACKED else None
    return Route(
        called_number=called,
        number_status=status,
        tracking_number=number,
        campaign=campaign,
        destination=routed.destinations[0] if routed else settings.CALL_CENTER_NUMBER,
        greeting=routed.greeting if routed else DEFAULT_GREETING,
        hold_music_url=(routed.hold_music_url if routed and routed.hold_music_url else settings.HOLD_MUSIC_URL),
        source=number.source if number else "",
    )


def caller_leg(uuid: str) -> CallLeg | None:
    return CallLeg.objects.select_related("call").filter(uuid=uuid, role="caller").first()
