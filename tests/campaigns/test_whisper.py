"""Whisper templates: validated when saved, rendered without ever failing a call."""

import pytest

from campaigns.whisper import (
    MAX_TALK_CHARS,
    TemplateError,
    render_template,
    template_variables,
    validate_template,
)

VALUES = {"topic": "the summer offer", "campaign": "Summer", "source": "M4 billboard", "number": "4 4 7"}


def test_template_variables_are_listed_in_order() -> None:
    assert template_variables("{topic} from {source}, {topic}") == ["topic", "source", "topic"]
    assert template_variables("No variables at all.") == []


def test_every_documented_variable_is_accepted() -> None:
    validate_template("Regarding {topic} ({campaign}) from {source}, dialled {number}.")


def test_unknown_variable_is_named_in_the_error() -> None:
    with pytest.raises(TemplateError, match=r"Unknown variable \{topik\}"):
        validate_template("Incoming call regarding {topik}")


def test_error_lists_the_known_variables() -> None:
    with pytest.raises(TemplateError) as excinfo:
        validate_template("{price}")

    message = str(excinfo.value)
    for name in ("{topic}", "{campaign}", "{source}", "{number}"):
        assert name in message


@pytest.mark.parametrize(
    "template",
    [
        "Regarding {",
        "Regarding }",
        "Regarding {}",
        "Regarding {0}",
        "{topic.upper}",
        "{topic!r}",
        "{topic:>20}",
    ],
)
def test_malformed_or_clever_placeholders_are_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        validate_template(template)


def test_escaped_braces_are_text_not_variables() -> None:
    validate_template("Press {{1}} for {topic}")
    assert render_template("Press {{1}} for {topic}", VALUES) == "Press {1} for the summer offer"


def test_template_longer_than_vonage_speaks_is_refused() -> None:
    validate_template("a" * MAX_TALK_CHARS)
    with pytest.raises(TemplateError, match="1501 characters"):
        validate_template("a" * (MAX_TALK_CHARS + 1))


def test_render_fills_in_the_values_and_tidies_whitespace() -> None:
    text = render_template("Incoming call  regarding {topic},\nfrom the {source}", VALUES)

    assert text == "Incoming call regarding the summer offer, from the M4 billboard"


def test_render_never_fails_on_a_template_written_around_the_form() -> None:
    assert render_template("About {nothing} here", VALUES) == "About here"
    assert render_template("Broken {topic", VALUES) == "Broken topic"
    assert render_template("Positional {0}", VALUES) == "Positional 0"


def test_values_are_not_themselves_treated_as_templates() -> None:
    assert render_template("Regarding {topic}", {"topic": "{campaign}"}) == "Regarding {campaign}"


def test_rendered_text_is_capped_at_1500_characters() -> None:
    assert len(render_template("{topic}", {"topic": "x" * 5000})) == MAX_TALK_CHARS


@pytest.mark.parametrize(
    ("count", "words"),
    [(0, "no earlier calls"), (1, "1 earlier call"), (2, "2 earlier calls"), (11, "11 earlier calls")],
)
def test_calls_before_reads_right_for_any_count(count: int, words: str) -> None:
    from campaigns.whisper import earlier_calls

    assert earlier_calls(count) == words
