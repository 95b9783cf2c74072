"""Typed factory-boy factories for the models."""

import uuid

import factory
from django.utils import timezone

from calls.models import Call, CallLeg, LegRole
from campaigns.models import Campaign, TrackingNumber


class CampaignFactory(factory.django.DjangoModelFactory[Campaign]):
    class Meta:
        model = Campaign
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Campaign {n}")
    topic = factory.Sequence(lambda n: f"offer number {n}")
    destination = ""
    is_active = True


class TrackingNumberFactory(factory.django.DjangoModelFactory[TrackingNumber]):
    class Meta:
        model = TrackingNumber

    number = factory.Sequence(lambda n: f"4477009{n:05d}")
    campaign = factory.SubFactory(CampaignFactory)
    source = factory.Sequence(lambda n: f"Billboard {n}")
    is_active = True


class CallFactory(factory.django.DjangoModelFactory[Call]):
    class Meta:
        model = Call

    tracking_number = factory.SubFactory(TrackingNumberFactory)
    campaign = factory.SelfAttribute("tracking_number.campaign")
    caller_number = factory.Sequence(lambda n: f"4479460{n:05d}")
    called_number = factory.SelfAttribute("tracking_number.number")
    source = factory.SelfAttribute("tracking_number.source")
    destination = "447700900999"
    conference_name = factory.LazyFunction(lambda: f"whisper-{uuid.uuid4().hex}")
    started_at = factory.LazyFunction(timezone.now)


class CallLegFactory(factory.django.DjangoModelFactory[CallLeg]):
    class Meta:
        model = CallLeg

    uuid = factory.LazyFunction(lambda: str(uuid.uuid4()))
    call = factory.SubFactory(CallFactory)
    role = LegRole.CALLER
    conversation_uuid = factory.LazyFunction(lambda: f"CON-{uuid.uuid4()}")
    direction = "inbound"
