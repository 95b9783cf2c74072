"""A call-back, button to hang-up, with the staff call placed through the real SDK at the
local TLS fake of Vonage's API (calls/callbacks.py)."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from calls import callbacks
from calls.models import Call, CallDirection, CallLeg, CallState, LegRole, Outcome, StaffProfile
from campaigns.models import TrackingNumber
from devtools.fake_vonage_api import FakeVonageAPI
from tests.conftest import callback, callback_path, with_fields
from tests.e2e.conftest import CALLER_NUMBER, Leg, post_event
from tests.factories import CallFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

CAMPAIGN_NUMBER = "447700900001"
STAFF_PHONE = "447700900555"


def test_call_back_from_the_queue_to_the_caller_connected(
    client: Client, vonage: FakeVonageAPI, summer_number: TrackingNumber
) -> None:
    missed = CallFactory(
        tracking_number=summer_number,
        caller_number=CALLER_NUMBER,
        outcome=Outcome.VOICEMAIL,
        state=CallState.ENDED,
        started_at=timezone.now() - timedelta(hours=1),
    )
    user = User.objects.create_user(username="sam", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Supervisors"))
    StaffProfile.objects.create(user=user, phone=STAFF_PHONE)
    staff_client = Client()
    staff_client.force_login(user)

    response = staff_client.post(f"/admin/calls/call/callbacks/{missed.pk}/call/")
    assert response.status_code == 302

    # One create-call at the fake, through the SDK: the staff phone, from the campaign number.
    (create,) = vonage.create_requests()
    callback_call = Call.objects.get(direction=CallDirection.CALLBACK)
    assert create.status == 201
    assert create.json["to"] == [{"type": "phone", "number": STAFF_PHONE}]
    assert create.json["from"] == {"type": "phone", "number": CAMPAIGN_NUMBER}
    assert create.json["answer_url"] == [callback("answer_callback", call=callback_call.pk)]
    assert create.json["machine_detection"] == "hangup"
    staff_leg = callback_call.legs.get()
    assert staff_leg.role == LegRole.AGENT and not staff_leg.uuid.startswith("dryrun-")

    # The staff member answers: Vonage asks our answer URL.
    staff = Leg(from_=CAMPAIGN_NUMBER, to=STAFF_PHONE, direction="outbound", uuid=staff_leg.uuid)
    now = timezone.now()
    post_event(client, staff.answered(now))
    answer = client.get(
        with_fields(callback_path("answer_callback", call=callback_call.pk), staff.answer_params(vonage.url))
    )
    assert answer.status_code == 200
    talk, connect = answer.json()
    assert talk["text"].startswith("Calling back a caller who missed the summer offer, at ")
    assert connect == {
        "action": "connect",
        "endpoint": [{"type": "phone", "number": CALLER_NUMBER}],
        "eventUrl": [callback("event", call=callback_call.pk)],
        "from": CAMPAIGN_NUMBER,
        "timeout": summer_number.campaign.ring_seconds,
    }

    # Vonage rings the caller; the connect's leg reports to the eventUrl we gave it.
    reached = Leg(from_=CAMPAIGN_NUMBER, to=CALLER_NUMBER, direction="outbound")
    reached.conversation_uuid = staff.conversation_uuid
    event_path = callback_path("event", call=callback_call.pk)
    for payload in (reached.event("started", now), reached.event("ringing", now), reached.answered(now)):
        response = client.post(event_path, json.dumps(payload), content_type="application/json")
        assert response.status_code == 200
    callback_call.refresh_from_db()
    assert (callback_call.outcome, callback_call.state) == (Outcome.ANSWERED, CallState.CONNECTED)
    assert CallLeg.objects.get(uuid=reached.uuid).role == LegRole.CALLER
    assert callbacks.callback_queue() == []

    end = now + timedelta(seconds=90)
    client.post(
        event_path,
        json.dumps(reached.completed(start=now, end=end, rate="0.027", price="0.0405")),
        content_type="application/json",
    )
    post_event(client, staff.completed(start=now, end=end, rate="0.027", price="0.0405"))
    callback_call.refresh_from_db()
    assert (callback_call.outcome, callback_call.state, callback_call.talk_seconds) == (
        Outcome.ANSWERED,
        CallState.ENDED,
        90,
    )
    assert callback_call.callback_of == missed and callback_call.placed_by == user
    # Nothing else was asked of Vonage: Vonage bridges the two legs itself.
    assert [request.route for request in vonage.requests] == ["create"]
