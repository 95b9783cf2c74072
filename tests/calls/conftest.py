"""Staff in the roles the admin serves (calls/roles.py), logged in."""

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client


def member(group: str) -> Client:
    """A logged-in staff member of ``group`` (created by the roles migration)."""
    user = User.objects.create_user(username=group.lower(), password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def marketing(db: None) -> Client:
    return member("Marketing")


@pytest.fixture
def supervisor(db: None) -> Client:
    return member("Supervisors")
