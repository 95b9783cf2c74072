"""The whisper preview's endpoint: what the campaign form's script shows as the marketer types."""

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from campaigns.admin import PREVIEW_CALLER, WHISPER_WARNING
from campaigns.whisper import MAX_TALK_CHARS, render_template, speaking_seconds
from tests.campaigns.test_admin import logged_in, member

pytestmark = pytest.mark.django_db

PREVIEW = reverse("admin:campaigns_campaign_preview")
SCRIPT = Path(__file__).resolve().parents[2] / "campaigns" / "static" / "campaigns" / "whisper_preview.js"


def preview(client: Client, **params: str) -> dict[str, Any]:
    response = client.get(PREVIEW, params)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.json()


def test_renders_the_template_with_the_forms_values_and_samples(admin_client: Client) -> None:
    template = "{topic} for {campaign}, from {source} on {number}. Caller {caller}, {calls_before}"

    answer = preview(
        admin_client, template=template, topic="the spring sale", name="Spring", number="", language="en-GB"
    )

    assert answer["text"] == (
        "the spring sale for Spring, from M4 billboard on 4 4 7 7 0 0 9 0 0 1 2 3. "
        f"Caller {PREVIEW_CALLER}, 2 earlier calls"
    )
    assert answer["error"] == ""
    assert answer["language"] == "en-GB"
    assert "no number yet" in answer["note"]


def test_is_rendered_by_the_renderer_calls_use(admin_client: Client) -> None:
    template = "Incoming   call regarding {topic}  "

    answer = preview(admin_client, template=template, topic="  the sale ", name="Sale")

    assert answer["text"] == render_template(template, {"topic": "  the sale "}) == "Incoming call regarding the sale"


def test_reads_the_first_number_as_typed(admin_client: Client) -> None:
    answer = preview(
        admin_client, template="{source}: {number}", topic="t", name="n", number="+44 7700 900555", source="Radio"
    )

    assert answer["text"] == "Radio: 4 4 7 7 0 0 9 0 0 5 5 5"
    assert answer["note"].startswith("As heard for a call to +44 7700 900555.")


def test_a_number_without_a_source_reads_no_source(admin_client: Client) -> None:
    answer = preview(admin_client, template="From {source}.", topic="t", name="n", number="447700900555", source="")

    assert answer["text"] == "From ."


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param("Incoming call regarding {tpoic}", "Unknown variable {tpoic}.", id="unknown-variable"),
        pytest.param("Incoming call regarding {topic", "The template is malformed", id="malformed"),
        pytest.param("{topic!r}", "“{topic}” is not a variable", id="conversion"),
        pytest.param("x" * (MAX_TALK_CHARS + 1), f"Vonage speaks at most {MAX_TALK_CHARS}", id="too-long"),
    ],
)
def test_an_invalid_template_gives_the_forms_error_instead_of_a_preview(
    admin_client: Client, template: str, message: str
) -> None:
    answer = preview(admin_client, template=template, topic="the sale", name="Sale")

    assert message in answer["error"]
    assert answer["text"] == ""
    assert answer["seconds"] is None
    assert answer["warning"] is False


def test_the_error_is_the_one_the_form_shows(admin_client: Client) -> None:
    from tests.campaigns.test_admin import ADD, new_campaign_data

    posted = admin_client.post(ADD, new_campaign_data(admin_client, whisper_template="Hi {tpoic}"))
    answer = preview(admin_client, template="Hi {tpoic}", topic="the sale", name="Sale")

    assert posted.context["adminform"].form.errors["whisper_template"] == [answer["error"]]


def test_speaking_time_and_no_warning_for_a_short_whisper(admin_client: Client) -> None:
    answer = preview(admin_client, template="Incoming call regarding {topic}", topic="the sale", name="Sale")

    assert answer["seconds"] == speaking_seconds("Incoming call regarding the sale") == 2.5
    assert answer["warning"] is False
    assert answer["warning_text"] == ""
    assert answer["seconds_with_accept_prompt"] is None


def test_a_whisper_over_five_seconds_is_flagged(admin_client: Client) -> None:
    answer = preview(admin_client, template="Incoming call from {caller} regarding {topic}", topic="the sale", name="S")

    assert answer["seconds"] > 5
    assert answer["warning"] is True
    assert answer["warning_text"] == WHISPER_WARNING


@pytest.mark.parametrize(("words", "warning"), [(11, False), (12, True)])
def test_the_warning_starts_above_five_seconds(admin_client: Client, words: int, warning: bool) -> None:
    answer = preview(admin_client, template=" ".join(["word"] * words), topic="t", name="n")

    assert (answer["seconds"] > 5) is warning
    assert answer["warning"] is warning


def test_times_the_accept_prompt_when_one_is_sent(admin_client: Client) -> None:
    answer = preview(
        admin_client, template="Incoming call regarding {topic}", topic="the sale", name="S", accept_prompt="Press 1."
    )

    assert answer["seconds_with_accept_prompt"] == speaking_seconds("Incoming call regarding the sale Press 1.")
    assert answer["warning"] is False  # the whisper itself is short


def test_only_get(admin_client: Client) -> None:
    assert admin_client.post(PREVIEW, {"template": "{topic}"}).status_code == 405


def test_anonymous_visitors_are_sent_to_the_login(client: Client) -> None:
    response = client.get(PREVIEW, {"template": "{topic}"})

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_staff_without_campaign_permissions_are_refused() -> None:
    user = User.objects.create_user(username="someone", password="x", is_staff=True)

    assert logged_in(user).get(PREVIEW, {"template": "{topic}"}).status_code == 403


@pytest.mark.parametrize("group", ["Marketing", "Supervisors"])
def test_both_roles_may_preview(group: str) -> None:
    answer = logged_in(member(group)).get(PREVIEW, {"template": "About {topic}", "topic": "x"}).json()

    assert answer["text"] == "About x"


def test_adding_campaigns_is_enough_to_preview() -> None:
    user = User.objects.create_user(username="adder", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="add_campaign"))

    assert logged_in(user).get(PREVIEW, {"template": "{topic}", "topic": "x"}).status_code == 200


def test_the_script_documents_the_element_ids_the_page_has(admin_client: Client) -> None:
    from tests.campaigns.test_admin import ADD

    script = SCRIPT.read_text()
    body = admin_client.get(ADD).content.decode()

    for element_id in (
        "whisper-preview",
        "whisper-preview-text",
        "whisper-preview-error",
        "whisper-preview-note",
        "whisper-preview-seconds",
        "whisper-preview-accept",
        "whisper-preview-accept-seconds",
        "whisper-preview-warning",
        "whisper-preview-listen",
    ):
        assert f"#{element_id} " in script
        assert f'id="{element_id}"' in body
    assert "speechSynthesis" in script
    assert "http" not in script  # nothing from a CDN: the endpoint is the page's own
