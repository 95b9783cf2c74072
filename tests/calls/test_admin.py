"""Call history in the admin, as supervisors read it: read-only records from Vonage."""

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calls import vonage_adapter
from calls.models import Call, CallEvent, CallLeg, CallState, LegRole, LegStatus, NumberStatus, Outcome
from campaigns.models import TrackingNumber
from tests.conftest import load_fixture
from tests.factories import CallFactory, CallLegFactory, CampaignFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db

CALLS = reverse("admin:calls_call_changelist")
EVENTS = reverse("admin:calls_callevent_changelist")


def change_url(call: Call) -> str:
    return reverse("admin:calls_call_change", args=[call.pk])


def delete_url(call: Call) -> str:
    return reverse("admin:calls_call_delete", args=[call.pk])


def recording_url(call: Call) -> str:
    return reverse("admin:calls_call_recording", args=[call.pk])


VOICEMAIL_URL = "https://api.nexmo.com/v1/files/aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb" * 512


@pytest.fixture
def supervisor_client(db: None) -> Client:
    """A staff member who may view calls, legs and events and see callers' numbers, and nothing more."""
    user = User.objects.create_user("supervisor", password="not-used", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="calls",
            codename__in=["view_call", "view_callleg", "view_callevent", "see_caller_numbers"],
        )
    )
    client = Client()
    client.force_login(user)
    return client


def answered_call(tracking_number: TrackingNumber | None = None, **fields: Any) -> Call:
    """A call answered by the agent, with both legs and four events, as Vonage reported it."""
    number = tracking_number or TrackingNumberFactory.create()
    start = fields.pop("started_at", timezone.now() - timedelta(minutes=5))
    call = CallFactory.create(
        tracking_number=number,
        started_at=start,
        whisper_text=f"Incoming call regarding {number.campaign.topic}",
        state=CallState.ENDED,
        outcome=Outcome.ANSWERED,
        agent_answered_at=start + timedelta(seconds=9),
        ended_at=start + timedelta(seconds=69),
        wait_seconds=9,
        talk_seconds=60,
        **fields,
    )
    caller = CallLegFactory.create(
        call=call,
        role=LegRole.CALLER,
        from_number=call.caller_number,
        to_number=call.called_number,
        status=LegStatus.COMPLETED,
        started_at=start,
        answered_at=start,
        ended_at=start + timedelta(seconds=69),
        duration=69,
        price=Decimal("0.00690000"),
        rate=Decimal("0.00600000"),
        network="23420",
        region_url="https://api-eu-1.vonage.com",
    )
    agent = CallLegFactory.create(
        call=call,
        role=LegRole.AGENT,
        direction="outbound",
        from_number=call.called_number,
        to_number=call.destination,
        status=LegStatus.COMPLETED,
        started_at=start + timedelta(seconds=1),
        answered_at=start + timedelta(seconds=9),
        ended_at=start + timedelta(seconds=69),
        duration=60,
        network="Vodafone",
    )
    for offset, (leg, fixture) in enumerate(
        [
            (caller, "event_inbound_started.json"),
            (agent, "event_outbound_answered.json"),
            (agent, "event_outbound_completed.json"),
            (caller, "event_inbound_completed.json"),
        ]
    ):
        payload = {**load_fixture(f"vonage/{fixture}"), "uuid": leg.uuid}
        CallEvent.objects.create(
            dedupe_key=f"status:{leg.uuid}:{payload['status']}",
            call=call,
            leg=leg,
            leg_uuid=leg.uuid,
            kind="status",
            status=payload["status"],
            occurred_at=start + timedelta(seconds=offset * 10),
            received_at=start + timedelta(seconds=offset * 10, milliseconds=150),
            payload=payload,
        )
    return call


# --- the list ----------------------------------------------------------------------------


def test_call_list_shows_the_columns_supervisors_read(
    admin_client: Client, summer_number: TrackingNumber, settings: Any
) -> None:
    settings.TIME_ZONE = "Europe/London"
    answered_call(summer_number, caller_number="447946000123")

    response = admin_client.get(CALLS)

    assert response.status_code == 200
    body = response.content.decode()
    for text in ("Summer offer", "M4 billboard", "+44 7946 000123", "Answered", "0:09", "Times in Europe/London"):
        assert text in body
    # Only these, so the list fits a laptop's width (tests/browser/test_laptop_layout.py).
    assert list(response.context["cl"].list_display)[1:] == [
        "started",
        "campaign",
        "source_shown",
        "caller",
        "outcome",
        "wait",
        "talk",
        "tags_shown",
    ]


def test_call_list_says_when_a_call_was_to_an_unknown_number(admin_client: Client) -> None:
    CallFactory.create(
        tracking_number=None, campaign=None, called_number="447700900404", source="", number_status=NumberStatus.UNKNOWN
    )
    assert "Unknown number" in admin_client.get(CALLS).content.decode()


def test_call_list_is_newest_first(admin_client: Client) -> None:
    old = CallFactory.create(started_at=timezone.now() - timedelta(days=2))
    new = CallFactory.create(started_at=timezone.now())
    middle = CallFactory.create(started_at=timezone.now() - timedelta(days=1))

    response = admin_client.get(CALLS)

    assert list(response.context["cl"].result_list) == [new, middle, old]


def test_filtering_by_outcome_lists_only_those_calls(admin_client: Client) -> None:
    missed = CallFactory.create_batch(2, outcome=Outcome.MISSED)
    CallFactory.create(outcome=Outcome.ANSWERED)
    CallFactory.create(outcome=Outcome.BUSY)

    response = admin_client.get(CALLS, {"outcome__exact": Outcome.MISSED})

    assert response.status_code == 200
    assert set(response.context["cl"].result_list) == set(missed)


def test_filtering_by_campaign_and_number_status(admin_client: Client) -> None:
    campaign = CampaignFactory.create()
    ours = CallFactory.create(tracking_number=TrackingNumberFactory.create(campaign=campaign))
    CallFactory.create()
    unknown = CallFactory.create(
        tracking_number=None,
        campaign=None,
        source="",
        number_status=NumberStatus.UNKNOWN,
        called_number="15550100",
    )

    by_campaign = admin_client.get(CALLS, {"campaign__id__exact": campaign.pk})
    by_status = admin_client.get(CALLS, {"number_status__exact": NumberStatus.UNKNOWN})

    assert list(by_campaign.context["cl"].result_list) == [ours]
    assert list(by_status.context["cl"].result_list) == [unknown]
    assert "Unknown number" in by_status.content.decode()


def test_filtering_by_a_date_range(admin_client: Client) -> None:
    recent = CallFactory.create(started_at=timezone.now() - timedelta(days=1))
    CallFactory.create(started_at=timezone.now() - timedelta(days=40))
    CallFactory.create(started_at=timezone.now() + timedelta(days=3))
    today = timezone.localdate()
    params = {"started_from": (today - timedelta(days=6)).isoformat(), "started_to": today.isoformat()}

    response = admin_client.get(CALLS, params)

    assert list(response.context["cl"].result_list) == [recent]
    assert 'name="started_from"' in response.content.decode()  # the sidebar's form, kept filled in


def test_a_date_range_that_is_not_a_date_says_so(admin_client: Client) -> None:
    response = admin_client.get(CALLS, {"started_from": "yesterday"})
    assert response.status_code == 302 and "e=1" in response["Location"]


def test_date_hierarchy_narrows_to_a_day(admin_client: Client) -> None:
    today = timezone.localtime()
    todays = CallFactory.create(started_at=today)
    CallFactory.create(started_at=today - timedelta(days=3))

    response = admin_client.get(
        CALLS,
        {"started_at__year": today.year, "started_at__month": today.month, "started_at__day": today.day},
    )

    assert list(response.context["cl"].result_list) == [todays]


@pytest.mark.parametrize("term", ["447946000123", "+44 7946 000123", "000123"])
def test_search_by_caller_number(admin_client: Client, term: str) -> None:
    wanted = CallFactory.create(caller_number="447946000123")
    CallFactory.create(caller_number="447946000999")

    response = admin_client.get(CALLS, {"q": term})

    assert list(response.context["cl"].result_list) == [wanted]


def test_search_by_called_number_and_leg_uuid(admin_client: Client) -> None:
    wanted = answered_call(TrackingNumberFactory.create(number="447700900555"))
    answered_call()
    agent_uuid = wanted.legs.get(role=LegRole.AGENT).uuid

    by_number = admin_client.get(CALLS, {"q": "+44 7700 900555"})
    by_uuid = admin_client.get(CALLS, {"q": agent_uuid})

    assert list(by_number.context["cl"].result_list) == [wanted]
    assert list(by_uuid.context["cl"].result_list) == [wanted]


@pytest.mark.parametrize("calls", [1, 30])
def test_call_list_query_count_does_not_grow_with_calls(
    admin_client: Client, django_assert_num_queries: Any, calls: int
) -> None:
    for _ in range(calls):
        answered_call()
    admin_client.get(CALLS)

    # session, user, campaigns for the filter, count (once: no "total" count), page of
    # calls with their campaigns, first and last start and the days between for the
    # date hierarchy (years and months come from first and last: no scan of every call);
    # on PostgreSQL the pager first reads the table's size estimate; the sources for
    # the source filter, the demo campaigns (none: no filter, the estimate still applies);
    # the tags for the tag filter, the page's tags (one query for all its calls)
    with django_assert_num_queries(11 + (connection.vendor == "postgresql")):
        response = admin_client.get(CALLS)
    assert len(response.context["cl"].result_list) == calls


@pytest.mark.parametrize("calls", [1, 30])
def test_filtered_call_list_query_count_does_not_grow_with_calls(
    supervisor_client: Client, django_assert_num_queries: Any, calls: int
) -> None:
    for _ in range(calls):
        answered_call()
    params = {"outcome__exact": Outcome.ANSWERED, "q": "4479"}
    supervisor_client.get(CALLS, params)

    # as above, plus the user's and groups' permissions for a staff user who is not a
    # superuser
    with django_assert_num_queries(11):
        response = supervisor_client.get(CALLS, params)
    assert len(response.context["cl"].result_list) == calls


# --- the detail page ---------------------------------------------------------------------


def test_call_detail_shows_the_whisper_both_legs_and_the_timeline(
    admin_client: Client, summer_number: TrackingNumber
) -> None:
    call = answered_call(summer_number)
    caller, agent = call.legs.get(role=LegRole.CALLER), call.legs.get(role=LegRole.AGENT)

    response = admin_client.get(change_url(call))

    assert response.status_code == 200
    body = response.content.decode()
    assert "“Incoming call regarding the summer offer”" in body
    assert "M4 billboard" in body
    assert caller.uuid in body and agent.uuid in body
    assert "0.0069 EUR" in body and "23420" in body and "https://api-eu-1.vonage.com" in body
    legs, events = response.context["inline_admin_formsets"]
    assert [form.original for form in legs] == [caller, agent]
    assert [form.original.status for form in events] == ["started", "answered", "completed", "completed"]
    assert "&quot;direction&quot;: &quot;outbound&quot;" in body  # the payload, pretty-printed
    assert '<input type="submit"' not in body.split('id="call_form"')[1]  # nothing to save


def test_times_are_shown_to_the_second_and_events_to_the_millisecond(admin_client: Client) -> None:
    start = timezone.make_aware(datetime(2025, 3, 14, 9, 15, 7, 250000))
    call = answered_call(started_at=start)

    detail = admin_client.get(change_url(call)).content.decode()
    listed = admin_client.get(CALLS).content.decode()

    assert "14 Mar 2025, 09:15:07" in listed
    assert "14 Mar 2025, 09:15:16" in detail  # the agent answered, 9 s in
    assert "14 Mar 2025, 09:15:27.250" in detail  # Vonage's timestamp of the third event
    assert "14 Mar 2025, 09:15:27.400" in detail  # and when it reached us


def test_call_detail_explains_a_call_without_a_whisper(admin_client: Client) -> None:
    call = CallFactory.create(outcome=Outcome.MISSED, whisper_text="")

    body = admin_client.get(change_url(call)).content.decode()

    assert "No whisper was spoken" in body


def test_every_call_field_is_on_the_detail_page(admin_client: Client) -> None:
    call = CallFactory.create()
    response = admin_client.get(change_url(call))

    # every field is read-only, so each is shown as an AdminReadonlyField
    names = {field.field["name"] for fieldset in response.context["adminform"] for line in fieldset for field in line}
    replaced = {
        "started_at": "started",
        "agent_answered_at": "agent_answered",
        "ended_at": "ended",
        "whisper_text": "whisper_spoken",
        "caller_ncco": "caller_ncco_pretty",
        "fallback_at": "fallback",
        "recording_seconds": "recording",
        "caller_number": "caller",
        "called_number": "called",
        "destination": "destination_rung",
        "attempt": "attempt_shown",
        "wait_seconds": "wait",
        "talk_seconds": "talk",
    }
    expected = {replaced.get(f.name, f.name) for f in Call._meta.concrete_fields if not f.primary_key}
    assert expected <= names


def test_call_detail_shows_how_the_agent_was_rung_and_how_it_ended(admin_client: Client) -> None:
    start = timezone.make_aware(datetime(2025, 3, 14, 9, 15, 7))
    call = answered_call(
        started_at=start,
        strategy="connect",
        accept_required=True,
        attempt=1,
        resolution=Outcome.VOICEMAIL,
        fallback_at=start + timedelta(seconds=45),
    )
    agent = call.legs.get(role=LegRole.AGENT)
    agent.attempt = 1
    agent.accepted_at = start + timedelta(seconds=12)
    agent.save()
    declined = CallLegFactory.create(
        call=call,
        role=LegRole.AGENT,
        direction="outbound",
        attempt=0,
        declined_at=start + timedelta(seconds=5),
        created_at=start,
    )

    response = admin_client.get(change_url(call))

    body = response.content.decode()
    assert "Ringing the agent" in body
    assert "connect" in body and "Voicemail" in body
    assert "14 Mar 2025, 09:15:52" in body  # moved to the fallback, 45 s in
    legs = response.context["inline_admin_formsets"][0]
    assert [f["name"] for f in legs.fields()][5:10] == ["attempt", "started", "answered", "accepted", "declined"]
    caller = call.legs.get(role=LegRole.CALLER)
    assert [form.original for form in legs] == [declined, caller, agent]
    assert "14 Mar 2025, 09:15:12" in body  # the first destination declined, 5 s in
    assert "14 Mar 2025, 09:15:19" in body  # the second accepted, 12 s in


# --- the voicemail -----------------------------------------------------------------------


def test_call_detail_plays_the_voicemail_and_says_how_long_it_is(admin_client: Client) -> None:
    call = CallFactory.create(outcome=Outcome.VOICEMAIL, recording_url=VOICEMAIL_URL, recording_seconds=42)

    body = admin_client.get(change_url(call)).content.decode()

    assert f'<audio controls preload="none" src="{recording_url(call)}">' in body
    assert "0:42 long." in body
    assert VOICEMAIL_URL in body  # Vonage's own address, for support, under "Vonage"


def test_call_detail_without_a_voicemail_says_so(admin_client: Client) -> None:
    call = CallFactory.create(outcome=Outcome.MISSED)

    body = admin_client.get(change_url(call)).content.decode()

    assert "No voicemail was left." in body
    assert "<audio" not in body


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replaces the adapter's download: the URLs asked for, answered with :data:`MP3`."""
    asked: list[str] = []

    def download(*, url: str) -> bytes:
        asked.append(url)
        return MP3

    monkeypatch.setattr(vonage_adapter, "recording_download", download)
    return asked


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client"])
def test_the_voicemail_is_served_through_the_adapter(
    request: pytest.FixtureRequest, client_name: str, downloads: list[str]
) -> None:
    client: Client = request.getfixturevalue(client_name)
    call = CallFactory.create(recording_url=VOICEMAIL_URL, recording_seconds=42)

    response = client.get(recording_url(call))

    assert response.status_code == 200
    assert response["Content-Type"] == "audio/mpeg"
    assert response.content == MP3
    assert response["Content-Disposition"] == f'inline; filename="call-{call.pk}-voicemail.mp3"'
    assert downloads == [VOICEMAIL_URL]


def test_staff_without_view_permission_may_not_hear_the_voicemail(downloads: list[str]) -> None:
    call = CallFactory.create(recording_url=VOICEMAIL_URL)
    user = User.objects.create_user("marketing", password="not-used", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="campaigns"))
    client = Client()
    client.force_login(user)

    assert client.get(recording_url(call)).status_code == 403
    assert downloads == []


def test_the_voicemail_needs_a_login(client: Client, downloads: list[str]) -> None:
    call = CallFactory.create(recording_url=VOICEMAIL_URL)

    response = client.get(recording_url(call))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert downloads == []


def test_a_call_without_a_voicemail_is_404(admin_client: Client, downloads: list[str]) -> None:
    call = CallFactory.create()

    assert admin_client.get(recording_url(call)).status_code == 404
    assert admin_client.get(reverse("admin:calls_call_recording", args=[call.pk + 1])).status_code == 404
    assert downloads == []


def test_the_voicemail_is_only_read(admin_client: Client, downloads: list[str]) -> None:
    call = CallFactory.create(recording_url=VOICEMAIL_URL)

    assert admin_client.post(recording_url(call)).status_code == 405
    assert downloads == []


def test_vonage_unreachable_is_a_502_saying_so(admin_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*, url: str) -> bytes:
        raise vonage_adapter.VonageUnavailable("Vonage answered 503 for the recording.", status_code=503)

    monkeypatch.setattr(vonage_adapter, "recording_download", unavailable)
    call = CallFactory.create(recording_url=VOICEMAIL_URL)

    response = admin_client.get(recording_url(call))

    assert response.status_code == 502
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == (
        "The voicemail could not be fetched from Vonage. Vonage answered 503 for the recording."
    )


def test_supervisor_with_view_permission_reads_calls(supervisor_client: Client) -> None:
    call = answered_call()

    listed = supervisor_client.get(CALLS)
    detail = supervisor_client.get(change_url(call))

    assert listed.status_code == 200
    assert list(listed.context["cl"].result_list) == [call]
    assert "action-checkbox" not in listed.content.decode()  # no delete action to offer
    assert detail.status_code == 200
    assert call.legs.get(role=LegRole.AGENT).uuid in detail.content.decode()


# --- nobody edits what Vonage reported ----------------------------------------------------


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client"])
def test_nobody_adds_a_call(request: pytest.FixtureRequest, client_name: str) -> None:
    client: Client = request.getfixturevalue(client_name)

    assert client.get(reverse("admin:calls_call_add")).status_code == 403
    assert client.post(reverse("admin:calls_call_add"), {"called_number": "447700900001"}).status_code == 403
    assert client.get(reverse("admin:calls_callevent_add")).status_code == 403
    assert not Call.objects.exists()


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client"])
def test_nobody_changes_a_call(request: pytest.FixtureRequest, client_name: str) -> None:
    client: Client = request.getfixturevalue(client_name)
    call = answered_call()

    response = client.post(
        change_url(call),
        {"outcome": Outcome.MISSED, "whisper_text": "edited", "_save": "Save"},
    )

    assert response.status_code == 403
    call.refresh_from_db()
    assert call.outcome == Outcome.ANSWERED
    assert call.whisper_text.startswith("Incoming call regarding")


def test_nobody_changes_an_event(admin_client: Client) -> None:
    event = answered_call().events.first()
    assert event is not None
    url = reverse("admin:calls_callevent_change", args=[event.pk])

    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"status": "failed", "_save": "Save"}).status_code == 403
    event.refresh_from_db()
    assert event.status == "started"


def test_a_superuser_may_delete_a_call_with_its_legs_and_events(admin_client: Client) -> None:
    call = answered_call()

    confirm = admin_client.get(delete_url(call))
    response = admin_client.post(delete_url(call), {"post": "yes"})

    assert confirm.status_code == 200
    assert response.status_code == 302
    assert not Call.objects.exists()
    assert not CallLeg.objects.exists()
    assert not CallEvent.objects.exists()


def test_staff_who_are_not_superusers_may_not_delete_a_call(supervisor_client: Client) -> None:
    call = answered_call()

    assert supervisor_client.get(delete_url(call)).status_code == 403
    assert supervisor_client.post(delete_url(call), {"post": "yes"}).status_code == 403
    # the bulk action is not offered to them, and posting it anyway deletes nothing
    supervisor_client.post(CALLS, {"action": "delete_selected", "_selected_action": [call.pk], "post": "yes"})
    assert Call.objects.filter(pk=call.pk).exists()


# --- events on their own -----------------------------------------------------------------


def test_event_list_shows_events_that_matched_no_call(admin_client: Client) -> None:
    call = answered_call()
    stray = CallEvent.objects.create(
        dedupe_key="status:unknown-leg:ringing",
        leg_uuid="ffffffff-0000-4000-8000-000000000000",
        kind="status",
        status="ringing",
        payload={"uuid": "ffffffff-0000-4000-8000-000000000000", "status": "ringing"},
    )

    listed = admin_client.get(EVENTS)
    unmatched = admin_client.get(EVENTS, {"call__isempty": "1"})
    searched = admin_client.get(EVENTS, {"q": stray.leg_uuid})
    by_status = admin_client.get(EVENTS, {"status": "ringing"})

    assert listed.status_code == 200
    body = listed.content.decode()
    assert "no call" in body
    assert f'href="{change_url(call)}"' in body
    assert list(unmatched.context["cl"].result_list) == [stray]
    assert list(searched.context["cl"].result_list) == [stray]
    assert list(by_status.context["cl"].result_list) == [stray]


@pytest.mark.parametrize("calls", [1, 30])
def test_event_list_query_count_does_not_grow(admin_client: Client, django_assert_num_queries: Any, calls: int) -> None:
    for _ in range(calls):
        answered_call()
    admin_client.get(EVENTS)

    # session, user, kinds and statuses for the filters, count, total count, page
    with django_assert_num_queries(7):
        response = admin_client.get(EVENTS)
    assert len(response.context["cl"].result_list) == min(4 * calls, 100)
