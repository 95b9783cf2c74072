"""Callers' numbers are for those with ``calls.see_caller_numbers`` (Supervisors, superusers).

Each test is the request a Marketing user could make before, which showed or matched the
full number, and what it gives them now; a Supervisor's same request still shows it.
"""

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calls.models import Call, CallEvent, CallState, LegRole, LegStatus, Outcome
from campaigns.models import TrackingNumber
from tests.factories import CallFactory, CallLegFactory, TrackingNumberFactory

pytestmark = pytest.mark.django_db

CALLS = reverse("admin:calls_call_changelist")
EVENTS = reverse("admin:calls_callevent_changelist")
CALLER = "447946000123"
# Every way the number could show up on a page: as stored, with a "+", spaced, spoken.
FULL_FORMS = ("447946000123", "+447946000123", "+44 7946 000123", "7946 000123", "4 4 7 9 4 6 0 0 0 1 2 3")
MASKED = "…0123"


@pytest.fixture
def call(db: None) -> Call:
    number = TrackingNumberFactory.create(number="447700900555", source="Radio advert")
    start = timezone.now() - timedelta(minutes=5)
    call = CallFactory.create(
        tracking_number=number,
        caller_number=CALLER,
        started_at=start,
        whisper_text="Call about the summer offer from 4 4 7 9 4 6 0 0 0 1 2 3",
        # A greeting may read out the caller's number too ({caller}).
        caller_ncco=[
            {"action": "talk", "text": "Thank you for calling from 4 4 7 9 4 6 0 0 0 1 2 3."},
            {"action": "conversation", "name": "whisper-privacy"},
        ],
        state=CallState.ENDED,
        outcome=Outcome.ANSWERED,
    )
    caller_leg = CallLegFactory.create(
        call=call, role=LegRole.CALLER, from_number=CALLER, to_number=number.number, status=LegStatus.COMPLETED
    )
    CallLegFactory.create(
        call=call,
        role=LegRole.AGENT,
        direction="outbound",
        from_number=number.number,
        to_number="447700900999",
        status=LegStatus.COMPLETED,
    )
    CallEvent.objects.create(
        dedupe_key="privacy-1",
        call=call,
        leg=caller_leg,
        leg_uuid=caller_leg.uuid,
        kind="status",
        status="started",
        payload={"from": CALLER, "to": number.number, "uuid": caller_leg.uuid, "status": "started"},
    )
    return call


def shows_full_number(body: str) -> bool:
    return any(form in body for form in FULL_FORMS)


def test_the_permission_is_the_supervisors_and_not_marketings() -> None:
    assert Group.objects.get(name="Supervisors").permissions.filter(codename="see_caller_numbers").exists()
    assert not Group.objects.get(name="Marketing").permissions.filter(codename="see_caller_numbers").exists()


def test_call_list_masks_the_caller_for_marketing(marketing: Client, supervisor: Client, call: Call) -> None:
    masked = marketing.get(CALLS).content.decode()
    shown = supervisor.get(CALLS).content.decode()

    assert not shows_full_number(masked) and MASKED in masked
    assert "+44 7946 000123" in shown


def test_call_page_masks_caller_legs_payloads_and_whisper_for_marketing(
    marketing: Client, supervisor: Client, admin_client: Client, call: Call
) -> None:
    url = reverse("admin:calls_call_change", args=[call.pk])

    masked = marketing.get(url).content.decode()
    shown = supervisor.get(url).content.decode()

    assert not shows_full_number(masked)
    assert MASKED in masked
    assert "Call about the summer offer from …0123" in masked  # the spoken {caller}
    assert "Thank you for calling from …0123." in masked  # in the timeline's greeting
    assert "+44 7700 900555" in masked  # the campaign's own number is not hidden
    assert (
        "+44 7946 000123" in shown
        and "4 4 7 9 4 6 0 0 0 1 2 3" in shown
        and f'"{CALLER}"' in shown.replace("&quot;", '"')
    )
    assert "+44 7946 000123" in admin_client.get(url).content.decode()  # superusers see everything


def test_event_pages_mask_the_payload_for_marketing(marketing: Client, supervisor: Client, call: Call) -> None:
    event = call.events.get()
    url = reverse("admin:calls_callevent_change", args=[event.pk])

    assert not shows_full_number(marketing.get(url).content.decode())
    assert CALLER in supervisor.get(url).content.decode()


def test_an_event_without_a_call_masks_its_from_for_marketing(marketing: Client) -> None:
    event = CallEvent.objects.create(
        dedupe_key="orphan", kind="status", status="started", payload={"from": CALLER, "to": "447700900555"}
    )
    body = marketing.get(reverse("admin:calls_callevent_change", args=[event.pk])).content.decode()
    assert not shows_full_number(body)


@pytest.mark.parametrize("term", ["447946000123", "+44 7946 000123", "07946 000123", "000123", "4479460"])
def test_marketing_cannot_find_a_call_by_the_callers_number(
    marketing: Client, supervisor: Client, call: Call, term: str
) -> None:
    assert list(marketing.get(CALLS, {"q": term}).context["cl"].result_list) == []
    assert list(supervisor.get(CALLS, {"q": term}).context["cl"].result_list) == [call]


def test_marketing_still_finds_a_call_by_the_campaigns_number(marketing: Client, call: Call) -> None:
    assert list(marketing.get(CALLS, {"q": "+44 7700 900555"}).context["cl"].result_list) == [call]


@pytest.mark.parametrize(
    "lookup",
    [
        {"caller_number__startswith": "4479"},
        {"caller_number": CALLER},
        {"whisper_text__contains": "4 4 7 9"},
        {"legs__from_number__startswith": "4479"},
    ],
)
def test_marketing_cannot_filter_by_the_callers_number_in_the_query_string(
    marketing: Client, supervisor: Client, call: Call, lookup: dict[str, str]
) -> None:
    # Django's admin answers a lookup it does not allow with 400 Bad Request.
    assert marketing.get(CALLS, lookup).status_code == 400
    if not lookup.keys() & {"legs__from_number__startswith"}:
        assert list(supervisor.get(CALLS, lookup).context["cl"].result_list) == [call]


def test_marketing_cannot_filter_events_by_their_payload(marketing: Client, call: Call) -> None:
    assert marketing.get(EVENTS, {"payload__from__startswith": "4479"}).status_code == 400
    assert marketing.get(EVENTS, {"call__caller_number__startswith": "4479"}).status_code == 400
    # The event list's own filters still work.
    assert marketing.get(EVENTS, {"call__isempty": "1"}).status_code == 200
    assert marketing.get(EVENTS, {"kind": "status"}).status_code == 200


def test_marketing_cannot_sort_by_the_callers_number(marketing: Client, call: Call) -> None:
    response = marketing.get(CALLS)
    columns = list(response.context["cl"].list_display)
    assert "caller" not in columns and "caller_masked" in columns
    # Sorting by the column that showed the caller orders by nothing of the caller's.
    index = columns.index("caller_masked")
    ordered = marketing.get(CALLS, {"o": str(index)})
    assert "caller_number" not in str(ordered.context["cl"].queryset.query).split("ORDER BY")[-1]


def test_the_report_drill_down_masks_callers(marketing: Client, call: Call) -> None:
    day = timezone.localdate(call.started_at).isoformat()
    body = marketing.get(CALLS, {"period": f"{day}..{day}", "outcome__exact": Outcome.ANSWERED}).content.decode()
    assert MASKED in body and not shows_full_number(body)


def test_the_csv_masks_callers_for_staff_without_the_permission(call: Call) -> None:
    user = User.objects.create_user(username="exporter", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Marketing"))
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(codename="export_calls"))
    client = Client()
    client.force_login(user)
    body = b"".join(client.get(reverse("admin:calls_call_export")).streaming_content).decode()  # type: ignore[attr-defined]
    assert MASKED in body and not shows_full_number(body)


def test_the_whisper_preview_masks_the_sample_caller_for_marketing(marketing: Client) -> None:
    params = {"template": "Call from {caller}", "topic": "t", "name": "n"}
    url = reverse("admin:campaigns_campaign_preview")

    masked: dict[str, Any] = marketing.get(url, params).json()
    assert "4 4 7 9" not in masked["text"] and "…0123" in masked["text"]
    assert "4 4 7 9" not in masked["note"]


def test_the_campaign_form_masks_the_preview_for_marketing(marketing: Client, summer_number: TrackingNumber) -> None:
    campaign = summer_number.campaign
    campaign.whisper_template = "Call from {caller}"
    campaign.save()
    body = marketing.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()
    assert "4 4 7 9 4 6" not in body
