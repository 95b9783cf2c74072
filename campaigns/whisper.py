"""Whisper and greeting templates: ``"Incoming call regarding {topic}"``.

Templates use ``{name}`` placeholders from a fixed list, so a marketer's typo is a
form error naming the unknown variable instead of a failed call.
"""

from collections.abc import Mapping
from string import Formatter

# Vonage's talk action reads at most 1,500 characters.
MAX_TALK_CHARS = 1500

WHISPER_VARIABLES: dict[str, str] = {
    "topic": "the campaign's topic",
    "campaign": "the campaign's name",
    "source": "where the number is advertised, e.g. “M4 billboard”",
    "number": "the number the caller dialled, digit by digit",
    "caller": "the caller's number, digit by digit, or “a withheld number”",
    "calls_before": "the caller's earlier calls to the campaign, e.g. “2 earlier calls” or “no earlier calls”",
}

# The call-back whisper (calls/callbacks.py) knows one more: when the missed call came.
CALLBACK_VARIABLES: dict[str, str] = {
    **WHISPER_VARIABLES,
    "time": "when the missed call came, in the campaign's time zone, e.g. “10:42 this morning”",
}


def earlier_calls(count: int) -> str:
    """``{calls_before}`` as words that read right for any count: "1 earlier call"."""
    if count == 0:
        return "no earlier calls"
    return f"{count} earlier call{'' if count == 1 else 's'}"


# Speaking rate used to estimate how long a whisper takes (about 150 words a minute).
WORDS_PER_SECOND = 2.5


def speaking_seconds(text: str) -> float:
    """Roughly how long text-to-speech takes to say ``text``; digits count as words."""
    words = len(text.split())
    return round(words / WORDS_PER_SECOND + 0.5, 1) if words else 0.0


class TemplateError(ValueError):
    """A template that cannot be rendered."""


def template_variables(template: str, variables: Mapping[str, str] = WHISPER_VARIABLES) -> list[str]:
    """The placeholder names in ``template``, in order; raises TemplateError if malformed."""
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(
            f"The template is malformed: {exc}. Use {{topic}} for a variable and {{{{ for a brace."
        ) from exc
    names = []
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field == "" or not field.isidentifier() or spec or conversion:
            raise TemplateError(f"“{{{field}}}” is not a variable. Use one of: {', '.join(variables)}.")
        names.append(field)
    return names


def validate_template(template: str, variables: Mapping[str, str] = WHISPER_VARIABLES) -> None:
    """Raise TemplateError naming the first unknown variable (of ``variables``) or the length problem."""
    for name in template_variables(template, variables):
        if name not in variables:
            known = ", ".join("{" + v + "}" for v in variables)
            raise TemplateError(f"Unknown variable {{{name}}}. Known variables: {known}.")
    if len(template) > MAX_TALK_CHARS:
        raise TemplateError(f"The text is {len(template)} characters; Vonage speaks at most {MAX_TALK_CHARS}.")


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Fill in ``template``; unknown variables render empty rather than failing a call."""
    try:
        text = Formatter().vformat(template, (), _Blank(values))
    except (ValueError, IndexError, AttributeError):
        # Saved templates are validated; this only guards data written around the form.
        text = template.replace("{", "").replace("}", "")
    return " ".join(text.split())[:MAX_TALK_CHARS]


class _Blank(dict):
    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)

    def __missing__(self, key: str) -> str:
        return ""
