"""Tags and notes on calls: who may add them, the call's history, the call list's column
and filter, and the CSV (calls/annotations.py, calls/annotations_admin.py)."""

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse

from calls import annotations
from calls.models import BuiltinTag, Call, CallNote, CallTag, Tag
from tests.calls.conftest import member
from tests.factories import CallFactory

pytestmark = pytest.mark.django_db

CALLS = reverse("admin:calls_call_changelist")
EXPORT = reverse("admin:calls_call_export")


def tag(builtin: BuiltinTag) -> Tag:
    return Tag.objects.get(builtin=builtin)


def url(call: Call, action: str) -> str:
    return reverse(f"admin:calls_call_{action}", args=[call.pk])


def page(client: Client, call: Call) -> str:
    response = client.get(reverse("admin:calls_call_change", args=[call.pk]))
    assert response.status_code == 200
    return response.content.decode()


def state() -> tuple[list[Any], list[Any]]:
    """Every tag link and note, to check that a refused request changed nothing."""
    return (
        list(CallTag.objects.values_list("call_id", "tag_id", "removed_at")),
        list(CallNote.objects.values_list("call_id", "text")),
    )


# --- the tags ------------------------------------------------------------------------------


def test_the_built_in_tags_are_made_by_the_migration() -> None:
    assert sorted(Tag.objects.values_list("builtin", "name")) == [
        ("lead", "lead"),
        ("sale", "sale"),
        ("spam", "spam"),
        ("wrong_number", "wrong number"),
    ]


def test_a_tag_name_is_unique_whatever_its_case() -> None:
    Tag.objects.create(name="Callback promised")

    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.create(name="CALLBACK PROMISED")
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.create(name="Lead")


def test_an_operator_adds_a_tag_in_the_admin_and_may_not_delete_a_built_in_one(admin_client: Client) -> None:
    response = admin_client.post(reverse("admin:calls_tag_add"), {"name": "Callback promised"})

    assert response.status_code == 302
    assert Tag.objects.filter(name="Callback promised", builtin="").exists()
    lead = tag(BuiltinTag.LEAD)
    assert admin_client.post(reverse("admin:calls_tag_delete", args=[lead.pk]), {"post": "yes"}).status_code == 403
    assert Tag.objects.filter(pk=lead.pk).exists()


def test_a_supervisor_tags_and_untags_a_call_and_the_history_keeps_both(supervisor: Client) -> None:
    call = CallFactory.create()
    lead = tag(BuiltinTag.LEAD)

    added = supervisor.post(url(call, "tags_add"), {"tag": lead.pk})
    again = supervisor.post(url(call, "tags_add"), {"tag": lead.pk})  # a second click: no second tag

    assert added.status_code == 302 and again.status_code == 302
    assert added["Location"].startswith(reverse("admin:calls_call_change", args=[call.pk]))
    assert annotations.current_tags(call) == [lead]
    assert CallTag.objects.count() == 1

    removed = supervisor.post(url(call, "tags_remove"), {"tag": lead.pk})

    assert removed.status_code == 302
    assert annotations.current_tags(call) == []
    link = CallTag.objects.get()  # kept: who took it off, and when
    assert link.removed_at is not None
    assert link.added_by == link.removed_by == User.objects.get(username="supervisors")
    history = [(entry.what, entry.who, entry.detail) for entry in annotations.call_history(call)]
    assert history == [("Tagged", "supervisors", "lead"), ("Tag removed", "supervisors", "lead")]
    body = page(supervisor, call)
    assert "Tag removed" in body and "No tags." in body


def test_a_note_is_appended_and_shown_with_its_author_and_time(supervisor: Client) -> None:
    call = CallFactory.create()

    supervisor.post(url(call, "notes_add"), {"text": "  Wants a quote for 40 windows.  "})
    supervisor.post(url(call, "notes_add"), {"text": "Quote sent."})

    assert list(call.notes.values_list("text", flat=True)) == ["Wants a quote for 40 windows.", "Quote sent."]
    body = page(supervisor, call)
    assert "Wants a quote for 40 windows." in body
    assert body.index("Wants a quote for 40 windows.") < body.index("Quote sent.")
    # Notes are never edited: there is no such URL or permission.
    assert not User.objects.get(username="supervisors").has_perm("calls.change_callnote")


@pytest.mark.parametrize(
    ("action", "data", "reason"),
    [
        ("notes_add", {"text": "   "}, "The note is empty"),
        ("notes_add", {"text": "x" * 4001}, "keep it to 4000"),
        ("tags_add", {"tag": "lead"}, "there is no such tag"),
        ("tags_add", {"tag": "999999"}, "there is no such tag"),
        ("tags_remove", {"tag": "SPAM_ID"}, "This call is not tagged “spam”."),
    ],
)
def test_bad_input_is_a_400_saying_why_and_changes_nothing(
    supervisor: Client, action: str, data: dict[str, str], reason: str
) -> None:
    call = CallFactory.create()
    if data.get("tag") == "SPAM_ID":
        data = {"tag": str(tag(BuiltinTag.SPAM).pk)}
    before = state()

    response = supervisor.post(url(call, action), data)

    assert response.status_code == 400
    assert reason in response.content.decode()
    assert state() == before


def test_the_actions_take_only_a_post() -> None:
    call = CallFactory.create()
    client = member("Supervisors")

    assert client.get(url(call, "tags_add"), {"tag": tag(BuiltinTag.LEAD).pk}).status_code == 405
    assert CallTag.objects.count() == 0


def test_marketing_sees_tags_but_may_not_tag_or_write_notes_nor_read_them(marketing: Client) -> None:
    call = CallFactory.create()
    annotations.call_tag_add(call=call, tag=tag(BuiltinTag.SALE), user=User.objects.get(username="marketing"))
    annotations.call_note_add(call=call, user=User.objects.get(username="marketing"), text="Private remark.")
    before = state()

    assert marketing.post(url(call, "tags_add"), {"tag": tag(BuiltinTag.LEAD).pk}).status_code == 403
    assert marketing.post(url(call, "notes_add"), {"text": "Hello"}).status_code == 403
    assert state() == before
    body = page(marketing, call)
    assert "sale" in body and "Private remark." not in body
    assert "Add note" not in body and 'form="call-tagsadd-form"' not in body
    listed = marketing.get(CALLS)
    assert "tags_shown" in listed.context["cl"].list_display


def test_an_agent_tags_and_writes_notes_on_calls_but_may_not_block() -> None:
    agent = member("Agents")
    call = CallFactory.create()
    spam = tag(BuiltinTag.SPAM)

    assert agent.post(url(call, "tags_add"), {"tag": spam.pk}).status_code == 302
    assert agent.post(url(call, "notes_add"), {"text": "Robocall."}).status_code == 302
    assert agent.post(url(call, "block"), {"reason": "robocall"}).status_code == 403
    assert annotations.current_tags(call) == [spam]
    # Agents see calls with the callers' numbers masked, as Marketing does.
    assert not Group.objects.get(name="Agents").permissions.filter(codename="see_caller_numbers").exists()


def test_staff_without_the_tag_permission_see_no_tags_nor_the_tag_filter() -> None:
    user = User.objects.create_user("clerk", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_call"))
    client = Client()
    client.force_login(user)
    call = CallFactory.create()

    listed = client.get(CALLS)
    assert "tags_shown" not in listed.context["cl"].list_display
    assert "Tags and notes" not in page(client, call)
    assert client.post(url(call, "notes_add"), {"text": "x"}).status_code == 403


def test_a_note_quoting_the_callers_number_is_masked_for_those_who_may_not_see_it(marketing: Client) -> None:
    call = CallFactory.create(caller_number="447946000123")
    user = User.objects.create_user("reader", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Agents"))
    client = Client()
    client.force_login(user)
    annotations.call_note_add(call=call, user=user, text="Called back 447946000123 twice.")

    body = page(client, call)
    assert "Called back" in body and "twice." in body
    assert "447946000123" not in body


# --- the call list -------------------------------------------------------------------------


def test_the_call_list_shows_tags_and_filters_by_tag_or_no_tag(supervisor: Client) -> None:
    staff = User.objects.get(username="supervisors")
    lead_call, sale_call, untagged, untagged_later = CallFactory.create_batch(4)
    annotations.call_tag_add(call=lead_call, tag=tag(BuiltinTag.LEAD), user=staff)
    annotations.call_tag_add(call=sale_call, tag=tag(BuiltinTag.LEAD), user=staff)
    annotations.call_tag_add(call=sale_call, tag=tag(BuiltinTag.SALE), user=staff)
    annotations.call_tag_add(call=untagged_later, tag=tag(BuiltinTag.SPAM), user=staff)
    annotations.call_tag_remove(call=untagged_later, tag=tag(BuiltinTag.SPAM), user=staff)

    def listed(**params: Any) -> set[int]:
        response = supervisor.get(CALLS, params)
        assert response.status_code == 200
        return {call.pk for call in response.context["cl"].result_list}

    assert listed(tag=tag(BuiltinTag.LEAD).pk) == {lead_call.pk, sale_call.pk}
    assert listed(tag=tag(BuiltinTag.SALE).pk) == {sale_call.pk}
    assert listed(tag=tag(BuiltinTag.SPAM).pk) == set()  # taken off: not tagged now
    assert listed(tag="none") == {untagged.pk, untagged_later.pk}
    body = supervisor.get(CALLS).content.decode()
    assert "lead, sale" in body
    assert "No tag" in body  # the filter's choice
    assert supervisor.get(CALLS, {"tag": "lead"}).status_code != 200  # not a tag's id: the admin's error


@pytest.mark.parametrize("tagged_calls", [1, 25])
def test_the_call_lists_query_count_does_not_grow_with_tagged_calls(
    supervisor: Client, django_assert_num_queries: Any, tagged_calls: int
) -> None:
    staff = User.objects.get(username="supervisors")
    for call in CallFactory.create_batch(tagged_calls):
        annotations.call_tag_add(call=call, tag=tag(BuiltinTag.LEAD), user=staff)
        annotations.call_tag_add(call=call, tag=tag(BuiltinTag.SALE), user=staff)
    supervisor.get(CALLS)

    # session, user, the user's and groups' permissions, campaigns for the campaign
    # filter, sources for the source filter, the demo campaigns, the tags for the tag
    # filter, count, the page of calls, its calls' tags (one query), the date hierarchy's
    # first and last start and its days; on PostgreSQL the pager's size estimate
    with django_assert_num_queries(13 + (connection.vendor == "postgresql")):
        response = supervisor.get(CALLS)
    assert len(response.context["cl"].result_list) == tagged_calls
    assert response.content.decode().count('<td class="field-tags_shown">lead, sale</td>') == tagged_calls


# --- the CSV -------------------------------------------------------------------------------


def test_the_csv_has_each_calls_tags_and_notes_and_keeps_them_inert(supervisor: Client) -> None:
    staff = User.objects.get(username="supervisors")
    staff.first_name, staff.last_name = "Sam", "Lee"
    staff.save()
    tagged, plain = CallFactory.create_batch(2)
    annotations.call_tag_add(call=tagged, tag=tag(BuiltinTag.SALE), user=staff)
    annotations.call_tag_add(call=tagged, tag=tag(BuiltinTag.LEAD), user=staff)
    annotations.call_tag_add(call=tagged, tag=tag(BuiltinTag.SPAM), user=staff)
    annotations.call_tag_remove(call=tagged, tag=tag(BuiltinTag.SPAM), user=staff)
    first = annotations.call_note_add(call=tagged, user=staff, text="Wants a quote.")
    annotations.call_note_add(call=tagged, user=staff, text='=HYPERLINK("https://example.com")')

    response = supervisor.get(EXPORT)
    header, *rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert header[-2:] == ["tags", "notes"]
    by_call = {row[4]: row for row in rows}
    assert by_call[tagged.caller_number][-2] == "lead, sale"
    notes = by_call[tagged.caller_number][-1].split("\n")
    assert notes[0].endswith(" Sam Lee: Wants a quote.")
    assert notes[0].startswith(first.created_at.astimezone().isoformat(timespec="seconds")[:10])
    assert notes[1].endswith('Sam Lee: =HYPERLINK("https://example.com")')
    assert by_call[plain.caller_number][-2:] == ["", ""]


def test_a_tag_named_like_a_formula_is_written_as_text(supervisor: Client) -> None:
    staff = User.objects.get(username="supervisors")
    call = CallFactory.create()
    annotations.call_tag_add(call=call, tag=Tag.objects.create(name="=cmd|' /C calc'!A0"), user=staff)

    response = supervisor.get(EXPORT)
    (_, row) = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert row[-2] == "'=cmd|' /C calc'!A0"
