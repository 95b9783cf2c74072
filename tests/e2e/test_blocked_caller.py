"""A blocked caller calls, with the real SDK configured against the TLS fake: Vonage is
asked for nothing (no POST /v1/calls), the caller hears a short message, and the call
is recorded as blocked."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.utils import timezone

from calls import annotations
from calls.annotations import BLOCKED_MESSAGE
from calls.models import BuiltinTag, Call, Outcome, Tag
from campaigns.models import TrackingNumber
from devtools.fake_vonage_api import FakeVonageAPI
from tests.e2e.conftest import CALLER_NUMBER, post_event
from tests.e2e.test_call_flow import caller_dials
from tests.factories import CallFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]


def block(number: str, *, to: TrackingNumber) -> None:
    earlier = CallFactory.create(caller_number=number, tracking_number=to)
    annotations.call_tag_add(call=earlier, tag=Tag.objects.get(builtin=BuiltinTag.SPAM), user=AnonymousUser())
    annotations.caller_block(call=earlier, user=AnonymousUser(), reason="robocalls")


def test_a_blocked_caller_is_told_and_hung_up_and_vonage_is_asked_for_nothing(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber
) -> None:
    block(CALLER_NUMBER, to=summer_number)

    caller, ncco = caller_dials(client, vonage)
    now = timezone.now()
    post_event(client, caller.completed(start=now, end=now + timedelta(seconds=3), rate="0.01", price="0.0005"))

    assert [action["action"] for action in ncco] == ["talk"]
    assert ncco[0]["text"] == BLOCKED_MESSAGE
    assert vonage.requests == []  # no POST /v1/calls, no transfer, no hang-up
    call = Call.objects.get(legs__uuid=caller.uuid)
    assert call.outcome == Outcome.BLOCKED


def test_the_same_caller_unblocked_rings_the_agent_through_the_fake(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber
) -> None:
    block(CALLER_NUMBER, to=summer_number)
    blocked = annotations.blocked_caller_for(CALLER_NUMBER)
    assert blocked is not None
    annotations.caller_unblock(blocked=blocked, user=AnonymousUser())

    caller_dials(client, vonage)

    assert len(vonage.create_requests()) == 1
