"""The admin in the words of the people who use it, in an order that makes sense."""

import pytest
from django.test import Client
from django.urls import reverse

from calls.models import Outcome
from tests.factories import CallFactory

pytestmark = pytest.mark.django_db


def test_the_call_page_speaks_plainly(admin_client: Client) -> None:
    call = CallFactory.create(outcome=Outcome.MISSED, attempt=0)
    body = admin_client.get(reverse("admin:calls_call_change", args=[call.pk])).content.decode()
    for developer_words in ("CALL_RETENTION_DAYS", "0 is the first", "claimed by one process", "Attempt:"):
        assert developer_words not in body
    assert "The campaign&#x27;s call centre number" in body or "The campaign's call centre number" in body


def test_the_admin_home_lists_calls_and_campaigns_first(admin_client: Client) -> None:
    apps = [app["app_label"] for app in admin_client.get(reverse("admin:index")).context["app_list"]]
    assert apps[:2] == ["calls", "campaigns"]
    assert set(apps[2:]) >= {"auth", "axes"}
    models = [m["object_name"] for m in admin_client.get(reverse("admin:index")).context["app_list"][0]["models"]]
    assert models[0] == "Call"


def test_view_site_opens_the_call_history(admin_client: Client) -> None:
    body = admin_client.get(reverse("admin:index")).content.decode()
    assert f'<a href="{reverse("admin:calls_call_changelist")}">View site</a>' in body


def test_breadcrumbs_do_not_repeat_calls(admin_client: Client) -> None:
    for url in (reverse("admin:calls_call_report"), reverse("admin:calls_call_changelist")):
        crumbs = admin_client.get(url).content.decode().split('class="breadcrumbs"', 1)[1].split("</div>", 1)[0]
        assert "Calls</a>\n&rsaquo; <a" not in crumbs
        assert crumbs.count(">Calls<") <= 1
