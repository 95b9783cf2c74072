"""NCCO builders: pure functions that return the JSON Vonage executes.

They return plain dicts (what the answer webhooks send back) and are unit-tested
without HTTP. Vonage's NCCO reference is strict about types: ``startOnEnter`` must be
a JSON boolean (the 2018 tutorial sent the string "false") and ``musicOnHoldUrl`` an
array with one URL.
"""

import re
from typing import Any

from campaigns.whisper import MAX_TALK_CHARS

NccoAction = dict[str, Any]
Ncco = list[NccoAction]

# Vonage's ``connect.from``: 7 to 15 ASCII digits. ``str.isdigit`` is not enough: it
# also accepts "²" and Arabic-Indic digits, which Vonage rejects as an invalid NCCO.
_CONNECT_FROM = re.compile(r"[0-9]{7,15}")


def talk(text: str, *, language: str = "", style: int | None = None) -> NccoAction:
    action: NccoAction = {"action": "talk", "text": text[:MAX_TALK_CHARS]}
    if language:
        action["language"] = language
    if style is not None:
        action["style"] = style
    return action


def caller_waits(*, greeting: str, conference_name: str, hold_music_url: str) -> Ncco:
    """The caller hears the greeting, then hold music until the agent enters."""
    return [
        talk(greeting),
        {
            "action": "conversation",
            "name": conference_name,
            "startOnEnter": False,
            "musicOnHoldUrl": [hold_music_url],
        },
    ]


def agent_hears_whisper(*, whisper: str, conference_name: str) -> Ncco:
    """The agent hears the whisper, then joins: hold music stops and both talk.

    ``endOnExit`` on the agent ends the conversation when the agent hangs up, so the
    caller is never left alone in it.
    """
    return [
        talk(whisper),
        {
            "action": "conversation",
            "name": conference_name,
            "startOnEnter": True,
            "endOnExit": True,
        },
    ]


def caller_connects_directly(
    *, greeting: str, destination: str, from_number: str, event_url: str = ""
) -> Ncco:
    """Connect the caller straight to the call centre: used when no whisper is possible.

    ``from`` must be one of our Vonage numbers (7 to 15 digits); without a valid one
    Vonage presents the caller's own number, which is still better than silence.
    """
    connect: NccoAction = {
        "action": "connect",
        "endpoint": [{"type": "phone", "number": destination}],
    }
    if _CONNECT_FROM.fullmatch(from_number):
        connect["from"] = from_number
    if event_url:
        connect["eventUrl"] = [event_url]
    return [talk(greeting), connect]


def agent_hears_caller_left() -> Ncco:
    """An agent who answers after the caller has gone is told so and not conferenced."""
    return [talk("The caller has hung up.")]


def agent_hears_call_failed() -> Ncco:
    """An agent whose answer webhook failed unexpectedly is told so, not connected."""
    return [talk("Sorry, this call could not be connected.")]


def agent_hears_call_taken() -> Ncco:
    """An agent on a duplicate agent call (one Vonage created for a re-sent request) is
    told so and not conferenced; the call ends after the talk."""
    return [talk("This call is being answered by a colleague.")]
