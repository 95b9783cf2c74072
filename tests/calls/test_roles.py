"""The Marketing, Supervisors and Agents groups, created by migrations, and what each can do."""

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from calls.roles import ROLE_PERMISSIONS
from tests.factories import CallFactory, CampaignFactory


def member(group: str) -> User:
    user = User.objects.create_user(username=group.lower(), password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.mark.django_db
@pytest.mark.parametrize("group", ["Marketing", "Supervisors", "Agents"])
def test_groups_exist_with_exactly_their_permissions(group: str) -> None:
    permissions = {(p.content_type.app_label, p.codename) for p in Group.objects.get(name=group).permissions.all()}
    assert permissions == set(ROLE_PERMISSIONS[group])


@pytest.mark.django_db
def test_marketing_manages_campaigns_and_only_views_calls() -> None:
    user = member("Marketing")
    assert user.has_perms(["campaigns.add_campaign", "campaigns.change_campaign", "campaigns.change_trackingnumber"])
    assert user.has_perms(["calls.view_call", "calls.view_report"])
    assert not user.has_perm("calls.change_call")
    assert not user.has_perm("calls.delete_call")
    assert not user.has_perm("calls.export_calls")


@pytest.mark.django_db
def test_supervisors_view_and_export_but_change_nothing() -> None:
    user = member("Supervisors")
    assert user.has_perms(["calls.view_call", "calls.view_report", "calls.export_calls", "campaigns.view_campaign"])
    assert not user.has_perm("campaigns.change_campaign")
    assert not user.has_perm("campaigns.add_trackingnumber")
    assert not user.has_perm("calls.delete_call")


@pytest.mark.django_db
@pytest.mark.parametrize(("group", "status"), [("Marketing", 200), ("Supervisors", 403)])
def test_only_marketing_opens_the_add_campaign_page(group: str, status: int) -> None:
    client = Client()
    client.force_login(member(group))
    assert client.get("/admin/campaigns/campaign/add/").status_code == status


@pytest.mark.django_db
@pytest.mark.parametrize("group", ["Marketing", "Supervisors", "Agents"])
def test_both_roles_read_calls_but_cannot_change_or_delete_them(group: str) -> None:
    call = CallFactory.create(campaign=CampaignFactory.create())
    client = Client()
    client.force_login(member(group))
    assert client.get("/admin/calls/call/").status_code == 200
    assert client.get(f"/admin/calls/call/{call.pk}/change/").status_code == 200
    assert client.get(f"/admin/calls/call/{call.pk}/delete/").status_code == 403
    assert client.get("/admin/calls/call/add/").status_code == 403


@pytest.mark.django_db
def test_agents_tag_and_write_notes_and_nothing_more() -> None:
    user = member("Agents")
    assert user.has_perms(["calls.view_call", "calls.tag_call", "calls.add_callnote", "calls.view_callnote"])
    assert not user.has_perm("calls.see_caller_numbers")
    assert not user.has_perm("calls.add_blockedcaller")
    assert not user.has_perm("calls.view_report")
    assert not user.has_perm("calls.change_callnote")


@pytest.mark.django_db
def test_supervisors_tag_write_notes_and_block_and_marketing_only_sees_tags() -> None:
    supervisor, marketer = member("Supervisors"), member("Marketing")
    assert supervisor.has_perms(
        ["calls.tag_call", "calls.add_callnote", "calls.add_blockedcaller", "calls.delete_blockedcaller"]
    )
    assert marketer.has_perms(["calls.view_tag", "calls.view_calltag"])
    assert not marketer.has_perm("calls.tag_call")
    assert not marketer.has_perm("calls.view_callnote")
