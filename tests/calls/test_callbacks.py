"""The call-back queue (calls/callbacks.py): who is in it, marking handled, and a
call-back placed, whispered, connected and recorded through the usual /event route."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calls import callbacks
from calls.models import Call, CallbackHandled, CallDirection, CallLeg, CallState, LegRole, Outcome, StaffProfile
from calls.vonage_adapter import VonageUnavailable
from campaigns.models import Campaign, TrackingNumber
from tests.conftest import VonageRecorder, callback_path, post_json, with_fields
from tests.factories import CallFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db

CALLER = "447946000123"
STAFF_PHONE = "447700900555"
QUEUE = "/admin/calls/call/callbacks/"


def missed(number: TrackingNumber, *, caller: str = CALLER, minutes_ago: int = 60, **fields: Any) -> Call:
    fields.setdefault("outcome", Outcome.MISSED)
    return CallFactory(
        tracking_number=number,
        caller_number=caller,
        started_at=timezone.now() - timedelta(minutes=minutes_ago),
        state=CallState.ENDED,
        **fields,
    )


def staff(*, phone: str = STAFF_PHONE, name: str = "sam") -> tuple[User, Client]:
    user = User.objects.create_user(username=name, password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Supervisors"))
    if phone:
        StaffProfile.objects.create(user=user, phone=phone)
    client = Client()
    client.force_login(user)
    return user, client


def status(leg_uuid: str, value: str, **extra: Any) -> dict[str, Any]:
    return {
        "uuid": leg_uuid,
        "conversation_uuid": "CON-callback",
        "status": value,
        "direction": "outbound",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        **extra,
    }


# --- the queue ------------------------------------------------------------------------------


def test_queue_has_one_entry_per_caller_per_campaign_oldest_first_with_the_tries(
    summer_number: TrackingNumber,
) -> None:
    other = TrackingNumberFactory(number="447700900002")
    first = missed(summer_number, minutes_ago=90)
    missed(summer_number, minutes_ago=30, outcome=Outcome.VOICEMAIL)
    elsewhere = missed(other, minutes_ago=120, caller="447946000777", outcome=Outcome.ABANDONED)
    closed = missed(summer_number, minutes_ago=10, caller="447946000888", outcome=Outcome.CLOSED)
    missed(summer_number, minutes_ago=5, caller="")  # withheld: cannot be called back
    missed(summer_number, minutes_ago=5, caller="447946000999", outcome=Outcome.ANSWERED)
    missed(summer_number, minutes_ago=5, caller="447946000555", outcome=Outcome.IN_PROGRESS)

    entries = callbacks.callback_queue()

    assert [(e.call.pk, e.attempts) for e in entries] == [(elsewhere.pk, 1), (first.pk, 2), (closed.pk, 1)]
    assert [e.call.pk for e in callbacks.callback_queue(campaign_id=other.campaign_id)] == [elsewhere.pk]


def test_a_later_answered_call_either_way_takes_the_caller_out(summer_number: TrackingNumber) -> None:
    entry = missed(summer_number, minutes_ago=60)
    missed(summer_number, minutes_ago=70, caller="447946000777")
    # An answered call *before* the missed one does not count.
    missed(summer_number, minutes_ago=80, outcome=Outcome.ANSWERED)
    assert entry.pk in [e.call.pk for e in callbacks.callback_queue()]

    missed(summer_number, minutes_ago=1, outcome=Outcome.ANSWERED)
    assert [e.call.caller_number for e in callbacks.callback_queue()] == ["447946000777"]

    # An answered call-back works the same way.
    other = missed(summer_number, minutes_ago=70, caller="447946000777")
    CallFactory(
        tracking_number=summer_number,
        caller_number="447946000777",
        direction=CallDirection.CALLBACK,
        callback_of=other,
        outcome=Outcome.ANSWERED,
        state=CallState.ENDED,
    )
    assert callbacks.callback_queue() == []


def test_the_queue_is_one_query_however_long(summer_number: TrackingNumber) -> None:
    for n in range(30):
        missed(summer_number, caller=f"4479460001{n:02d}", minutes_ago=n + 1)
        missed(summer_number, caller=f"4479460001{n:02d}", minutes_ago=n + 100)
    with CaptureQueriesContext(connection) as queries:
        entries = callbacks.callback_queue()
        assert all(entry.call.campaign.name for entry in entries)
    assert len(entries) == 30
    assert all(entry.attempts == 2 for entry in entries)
    assert len(queries) == 1


def test_queue_page_masks_the_caller_for_those_who_may_not_see_numbers(
    summer_number: TrackingNumber, django_assert_max_num_queries: Any
) -> None:
    missed(
        summer_number,
        recording_url="https://api.nexmo.com/v1/files/aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        outcome=Outcome.VOICEMAIL,
    )
    _, supervisor = staff()
    page = supervisor.get(QUEUE)
    assert page.status_code == 200
    assert "+44 7946 000123" in page.content.decode()
    assert "voicemail-player" in page.content.decode()

    masked_user = User.objects.create_user(username="masked", password="x", is_staff=True)
    masked_user.user_permissions.add(*_permissions("call_back", "view_call"))
    client = Client()
    client.force_login(masked_user)
    body = client.get(QUEUE).content.decode()
    assert "…0123" in body and "7946 000123" not in body


def test_marketing_may_not_see_the_queue_nor_call_back(marketing: Client, summer_number: TrackingNumber) -> None:
    entry = missed(summer_number)
    assert marketing.get(QUEUE).status_code == 403
    assert marketing.post(f"{QUEUE}{entry.pk}/call/").status_code == 403
    assert marketing.post(f"{QUEUE}{entry.pk}/handled/", {"note": "x"}).status_code == 403
    assert not Call.objects.filter(direction=CallDirection.CALLBACK).exists()
    assert not CallbackHandled.objects.exists()


def _permissions(*codenames: str) -> list[Any]:
    from django.contrib.auth.models import Permission

    return list(Permission.objects.filter(content_type__app_label="calls", codename__in=codenames))


# --- marking handled ------------------------------------------------------------------------


def test_mark_handled_stores_who_when_and_the_note_and_the_caller_leaves(summer_number: TrackingNumber) -> None:
    entry = missed(summer_number, minutes_ago=60)
    later = missed(summer_number, minutes_ago=30)
    user, client = staff()

    response = client.post(f"{QUEUE}{entry.pk}/handled/", {"note": "Emailed the brochure."})

    assert response.status_code == 302
    handled = CallbackHandled.objects.get()
    assert (handled.call, handled.handled_by, handled.note) == (entry, user, "Emailed the brochure.")
    assert abs((timezone.now() - handled.handled_at).total_seconds()) < 60
    assert callbacks.callback_queue() == []
    # Kept in the call's page.
    page = client.get(f"/admin/calls/call/{entry.pk}/change/").content.decode()
    assert "Marked handled by sam" in page and "Emailed the brochure." in page
    # A new missed call afterwards is a new entry.
    newer = missed(summer_number, minutes_ago=0)
    assert [e.call.pk for e in callbacks.callback_queue()] == [newer.pk]
    assert later.pk != newer.pk


def test_mark_handled_without_a_note_changes_nothing(summer_number: TrackingNumber) -> None:
    entry = missed(summer_number)
    _, client = staff()
    response = client.post(f"{QUEUE}{entry.pk}/handled/", {"note": "   "}, follow=True)
    assert "Write a note" in response.content.decode()
    assert not CallbackHandled.objects.exists()


def test_get_on_the_buttons_is_refused(summer_number: TrackingNumber, vonage: VonageRecorder) -> None:
    entry = missed(summer_number)
    _, client = staff()
    assert client.get(f"{QUEUE}{entry.pk}/call/").status_code == 405
    assert client.get(f"{QUEUE}{entry.pk}/handled/").status_code == 405
    assert vonage.placed == []


def test_call_back_without_csrf_token_is_refused(summer_number: TrackingNumber, vonage: VonageRecorder) -> None:
    entry = missed(summer_number)
    user, _ = staff()
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(f"{QUEUE}{entry.pk}/call/").status_code == 403
    assert vonage.placed == []
    assert not Call.objects.filter(direction=CallDirection.CALLBACK).exists()


# --- calling back ---------------------------------------------------------------------------


def test_call_back_rings_the_staff_phone_from_the_campaign_number(
    summer_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    entry = missed(summer_number)
    user, client = staff()

    response = client.post(f"{QUEUE}{entry.pk}/call/", follow=True)

    assert "Your phone is ringing" in response.content.decode()
    [placed] = vonage.placed
    assert placed["to"] == STAFF_PHONE
    assert placed["from_"] == summer_number.number
    assert "/answer_callback?" in placed["answer_url"] and "sig=" in placed["answer_url"]
    assert placed["machine_detection"] == "hangup"
    callback = Call.objects.get(direction=CallDirection.CALLBACK)
    assert (callback.callback_of, callback.placed_by, callback.caller_number) == (entry, user, CALLER)
    assert callback.campaign == summer_number.campaign
    staff_leg = callback.legs.get()
    assert (staff_leg.role, staff_leg.uuid, staff_leg.to_number) == (LegRole.AGENT, "agent-1", STAFF_PHONE)
    # The entry stays until the caller is reached, marked as under way.
    [queued] = callbacks.callback_queue()
    assert queued.callback_in_progress


def test_double_click_places_one_call(summer_number: TrackingNumber, vonage: VonageRecorder) -> None:
    entry = missed(summer_number)
    _, client = staff()
    client.post(f"{QUEUE}{entry.pk}/call/")
    second = client.post(f"{QUEUE}{entry.pk}/call/", follow=True)
    assert "already under way" in second.content.decode()
    assert len(vonage.placed) == 1
    assert Call.objects.filter(direction=CallDirection.CALLBACK).count() == 1


def test_staff_without_a_phone_are_told_and_nothing_is_placed(
    summer_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    entry = missed(summer_number)
    _, client = staff(phone="")
    page = client.get(QUEUE).content.decode()
    assert "add your phone number to your staff profile" in page
    response = client.post(f"{QUEUE}{entry.pk}/call/", follow=True)
    assert "Your staff profile has no phone number" in response.content.decode()
    assert vonage.placed == []
    assert not Call.objects.filter(direction=CallDirection.CALLBACK).exists()


def test_a_call_back_vonage_refuses_is_recorded_failed_and_can_be_tried_again(
    summer_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    entry = missed(summer_number)
    _, client = staff()
    vonage.place_error = VonageUnavailable("Vonage answered 500.", status_code=500)
    response = client.post(f"{QUEUE}{entry.pk}/call/", follow=True)
    assert "Vonage did not place the call: Vonage answered 500." in response.content.decode()
    failed = Call.objects.get(direction=CallDirection.CALLBACK)
    assert (failed.outcome, failed.state) == (Outcome.FAILED, CallState.ENDED)
    vonage.place_error = None
    client.post(f"{QUEUE}{entry.pk}/call/")
    assert len(vonage.placed) == 1


def test_the_whole_call_back_through_the_webhooks(
    client: Client, summer_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    entry = missed(summer_number)
    Campaign.objects.filter(pk=summer_number.campaign_id).update(timezone="Europe/London")
    _, staff_client = staff()
    staff_client.post(f"{QUEUE}{entry.pk}/call/")
    callback = Call.objects.get(direction=CallDirection.CALLBACK)

    # The staff member answers: whisper, then the caller rung from the campaign number.
    answer = client.get(
        with_fields(
            callback_path("answer_callback", call=callback.pk),
            {"uuid": "agent-1", "to": STAFF_PHONE, "from": summer_number.number, "conversation_uuid": "CON-callback"},
        )
    )
    assert answer.status_code == 200
    talk, connect = answer.json()
    assert talk["action"] == "talk"
    assert talk["text"].startswith("Calling back a caller who missed the summer offer, at ")
    assert connect["endpoint"] == [{"type": "phone", "number": CALLER}]
    assert connect["from"] == summer_number.number
    assert "/event?" in connect["eventUrl"][0] and "sig=" in connect["eventUrl"][0]
    # A retry gets the same answer.
    again = client.get(
        with_fields(
            callback_path("answer_callback", call=callback.pk),
            {"uuid": "agent-1", "to": STAFF_PHONE, "from": summer_number.number},
        )
    )
    assert again.json() == answer.json()

    event = callback_path("event", call=callback.pk)
    post_json(client, "/event", status("agent-1", "answered"))
    post_json(client, event, status("caller-leg", "started", to=CALLER))
    post_json(client, event, status("caller-leg", "ringing", to=CALLER))
    callback.refresh_from_db()
    assert (callback.outcome, callback.state) == (Outcome.IN_PROGRESS, CallState.WAITING)
    post_json(client, event, status("caller-leg", "answered", to=CALLER))
    callback.refresh_from_db()
    assert (callback.outcome, callback.state) == (Outcome.ANSWERED, CallState.CONNECTED)
    caller_leg = CallLeg.objects.get(uuid="caller-leg")
    assert (caller_leg.call, caller_leg.role) == (callback, LegRole.CALLER)
    assert callbacks.callback_queue() == []  # reached: out of the queue

    post_json(client, event, status("caller-leg", "completed", to=CALLER, duration="60"))
    post_json(client, "/event", status("agent-1", "completed", duration="75"))
    callback.refresh_from_db()
    assert (callback.outcome, callback.state) == (Outcome.ANSWERED, CallState.ENDED)
    assert callback.events.count() == 6
    page = staff_client.get(f"/admin/calls/call/{entry.pk}/change/").content.decode()
    assert "Called back by sam" in page and "answered" in page


def test_a_caller_who_does_not_answer_the_call_back_stays_in_the_queue(
    client: Client, summer_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    entry = missed(summer_number)
    _, staff_client = staff()
    staff_client.post(f"{QUEUE}{entry.pk}/call/")
    callback = Call.objects.get(direction=CallDirection.CALLBACK)
    event = callback_path("event", call=callback.pk)
    post_json(client, "/event", status("agent-1", "answered"))
    post_json(client, event, status("caller-leg", "timeout", to=CALLER))
    post_json(client, event, status("caller-leg", "completed", to=CALLER))
    post_json(client, "/event", status("agent-1", "completed"))
    callback.refresh_from_db()
    assert (callback.outcome, callback.state) == (Outcome.MISSED, CallState.ENDED)
    [queued] = callbacks.callback_queue()
    assert queued.call == entry and not queued.callback_in_progress
    assert queued.last_callback_label == "Missed"


def test_an_answer_url_with_a_forged_call_is_refused(client: Client, summer_number: TrackingNumber) -> None:
    entry = missed(summer_number)
    response = client.get(f"/answer_callback?call={entry.pk}&uuid=x&to=1&from=2")
    assert response.status_code == 403
    assert not CallLeg.objects.exists()


def test_an_inbound_call_is_not_a_call_back(client: Client, summer_number: TrackingNumber) -> None:
    entry = missed(summer_number)
    response = client.get(with_fields(callback_path("answer_callback", call=entry.pk), {"uuid": "x", "to": "1"}))
    assert response.status_code == 404
    assert not CallLeg.objects.exists()


# --- the whisper ------------------------------------------------------------------------------


def test_spoken_time_says_when_in_the_campaigns_time_zone() -> None:
    now = datetime(2026, 7, 15, 16, 0, tzinfo=UTC)  # 17:00 in London (BST)
    at = datetime(2026, 7, 15, 9, 42, tzinfo=UTC)
    assert callbacks.spoken_time(at, zone="Europe/London", now=now) == "10:42 this morning"
    assert callbacks.spoken_time(at - timedelta(days=1), zone="Europe/London", now=now) == "10:42 yesterday morning"
    assert callbacks.spoken_time(at + timedelta(hours=5), zone="Europe/London", now=now) == "15:42 this afternoon"
    assert callbacks.spoken_time(at - timedelta(days=3), zone="Europe/London", now=now) == "10:42 on Sunday morning"
    assert callbacks.spoken_time(at - timedelta(days=30), zone="Europe/London", now=now) == "10:42 on 15 June"


def test_the_call_back_template_is_validated_like_the_whisper(summer_campaign: Campaign) -> None:
    from django.core.exceptions import ValidationError

    summer_campaign.callback_template = "Call back about {topic} at {time} from {nonsense}"
    with pytest.raises(ValidationError) as error:
        summer_campaign.full_clean()
    assert "Unknown variable {nonsense}" in str(error.value.message_dict["callback_template"])
    summer_campaign.callback_template = "Call back about {topic}, {calls_before}, at {time}"
    summer_campaign.full_clean()


# --- the staff profile ------------------------------------------------------------------------


def test_staff_edit_their_own_phone_only(summer_number: TrackingNumber) -> None:
    user, client = staff(phone="")
    other, _ = staff(name="kim")
    response = client.post("/admin/calls/staffprofile/add/", {"phone": "+44 7700 900 444"})
    assert response.status_code == 302
    assert StaffProfile.objects.get(user=user).phone == "447700900444"
    theirs = StaffProfile.objects.get(user=other)
    assert client.get(f"/admin/calls/staffprofile/{theirs.pk}/change/").status_code in (302, 403, 404)
    client.post(f"/admin/calls/staffprofile/{theirs.pk}/change/", {"phone": "447700900111"})
    theirs.refresh_from_db()
    assert theirs.phone == STAFF_PHONE


def test_a_phone_outside_the_allowed_prefixes_is_refused(settings: Any, db: None) -> None:
    settings.ALLOWED_DESTINATION_PREFIXES = "44"
    user, client = staff(phone="")
    response = client.post("/admin/calls/staffprofile/add/", {"phone": "+1 900 555 0100"})
    assert response.status_code == 200
    assert not StaffProfile.objects.filter(user=user).exists()


def test_adding_a_second_profile_opens_the_one_there_is(db: None) -> None:
    user, client = staff()
    response = client.get("/admin/calls/staffprofile/add/")
    assert response.status_code == 302
    assert response["Location"] == f"/admin/calls/staffprofile/{user.staff_profile.pk}/change/"


def test_the_call_list_tells_call_backs_from_inbound_calls(
    summer_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    entry = missed(summer_number)
    _, client = staff()
    client.post(f"{QUEUE}{entry.pk}/call/")
    callback = Call.objects.get(direction=CallDirection.CALLBACK)
    listed = client.get("/admin/calls/call/", {"direction__exact": "callback"}).context["cl"].result_list
    assert [call.pk for call in listed] == [callback.pk]
    page = client.get(f"/admin/calls/call/{callback.pk}/change/").content.decode()
    assert "Outbound call-back" in page and f"Call {entry.pk} to" in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL; SQLite serialises writes"
)
def test_two_presses_at_the_same_moment_place_one_call(vonage: VonageRecorder) -> None:
    import threading

    number = TrackingNumberFactory.create(number="447700900001")
    entry = missed(number)
    # Not staff(): a transactional test may run after another flushed the role groups.
    user = User.objects.create_user(username="sam", password="x", is_staff=True)
    StaffProfile.objects.create(user=user, phone=STAFF_PHONE)
    barrier = threading.Barrier(4)
    results: list[str] = []

    def press() -> None:
        try:
            barrier.wait()
            callbacks.callback_place(call_id=entry.pk, user=user)
            results.append("placed")
        except callbacks.CallbackRefused as exc:
            results.append(str(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=press) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results)[-1] == "placed" and results.count("placed") == 1
    assert len(vonage.placed) == 1
    assert Call.objects.filter(direction=CallDirection.CALLBACK).count() == 1


def test_without_vonage_credentials_the_call_back_says_it_was_not_placed(summer_number: TrackingNumber) -> None:
    entry = missed(summer_number)
    _, client = staff()
    response = client.post(f"{QUEUE}{entry.pk}/call/", follow=True)
    assert "Vonage credentials are not configured" in response.content.decode()
    dry = Call.objects.get(direction=CallDirection.CALLBACK)
    assert (dry.state, dry.outcome) == (CallState.ENDED, Outcome.FAILED)
    # Nothing is left under way: the entry can be called back once credentials are set.
    [queued] = callbacks.callback_queue()
    assert queued.call == entry and not queued.callback_in_progress


# --- the staff leg in the flow's other paths ------------------------------------------------


def test_a_staff_leg_event_adopted_late_neither_hangs_up_nor_moves_anyone(
    summer_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    from calls import events
    from calls.models import CallEvent

    entry = missed(summer_number)
    _, client = staff()
    client.post(f"{QUEUE}{entry.pk}/call/")
    # The staff leg's "ringing" stored unmatched while the leg was being recorded.
    CallEvent.objects.create(
        dedupe_key="status:agent-1:ringing",
        leg_uuid="agent-1",
        kind="status",
        status="ringing",
        payload=status("agent-1", "ringing"),
    )
    events.leg_events_adopt("agent-1")
    assert vonage.hangups == [] and vonage.transfers == []
    assert CallLeg.objects.get(uuid="agent-1").status == "ringing"


def test_reconcile_leaves_a_staff_leg_alone_until_the_callers_leg_ended(
    client: Client, summer_number: TrackingNumber, vonage: VonageRecorder
) -> None:
    from calls import reconcile

    entry = missed(summer_number)
    _, staff_client = staff()
    staff_client.post(f"{QUEUE}{entry.pk}/call/")
    callback = Call.objects.get(direction=CallDirection.CALLBACK)
    post_json(client, "/event", status("agent-1", "answered"))
    staff_leg = CallLeg.objects.get(uuid="agent-1")
    assert not reconcile._orphaned(staff_leg)  # hearing the whisper: no caller leg yet
    event = callback_path("event", call=callback.pk)
    post_json(client, event, status("caller-leg", "answered", to=CALLER))
    assert not reconcile._orphaned(staff_leg)  # talking
    post_json(client, event, status("caller-leg", "completed", to=CALLER))
    assert reconcile._orphaned(staff_leg)  # the caller is gone


def test_call_back_waits_for_the_accounts_next_send_time(
    summer_number: TrackingNumber, vonage: VonageRecorder, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from calls import pacing

    settings.VONAGE_CALLS_PER_SECOND = 1
    pacing.slot_claim()  # another call took this second
    waits: list[float] = []
    monkeypatch.setattr(callbacks.time, "sleep", waits.append)
    entry = missed(summer_number)
    _, client = staff()
    client.post(f"{QUEUE}{entry.pk}/call/")
    assert len(vonage.placed) == 1
    [wait] = waits
    assert 0 < wait <= callbacks.PACING_WAIT_SECONDS


def test_a_superuser_edits_anyones_phone(db: None) -> None:
    user, _ = staff()
    admin = User.objects.create_superuser("root", password="x")
    client = Client()
    client.force_login(admin)
    profile = StaffProfile.objects.get(user=user)
    response = client.post(
        f"/admin/calls/staffprofile/{profile.pk}/change/", {"user": user.pk, "phone": "+44 7700 900 111"}
    )
    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.phone == "447700900111"
