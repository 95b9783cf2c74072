"""NCCO builders: pure functions that return the JSON Vonage executes.

They return plain dicts (what the answer webhooks send back) and are unit-tested
without HTTP. Vonage's NCCO reference is strict about types: ``startOnEnter`` must be
a JSON boolean (the 2018 tutorial sent the string "false") and ``musicOnHoldUrl`` an
array with one URL.
"""

import re
from dataclasses import dataclass
from typing import Any

from campaigns.whisper import MAX_TALK_CHARS

NccoAction = dict[str, Any]
Ncco = list[NccoAction]

# Vonage's ``connect.from``: 7 to 15 ASCII digits. ``str.isdigit`` is not enough: it
# also accepts "²" and Arabic-Indic digits, which Vonage rejects as an invalid NCCO.
_CONNECT_FROM = re.compile(r"[0-9]{7,15}")


# Press-1-to-accept: one digit, and Vonage's longest wait for it (10 s).
ACCEPT_DIGIT = "1"
ACCEPT_TIMEOUT_SECONDS = 8


@dataclass(frozen=True)
class Voice:
    """A campaign's text-to-speech settings: BCP-47 language and Vonage's style number."""

    language: str = ""
    style: int | None = None


def talk(text: str, *, voice: Voice | None = None, language: str = "", style: int | None = None) -> NccoAction:
    action: NccoAction = {"action": "talk", "text": text[:MAX_TALK_CHARS]}
    language = voice.language if voice else language
    style = voice.style if voice else style
    if language:
        action["language"] = language
    if style is not None:
        action["style"] = style
    return action


def caller_waits(
    *, greeting: str, conference_name: str, hold_music_url: str, voice: Voice | None = None, checkpoint_url: str = ""
) -> Ncco:
    """The caller hears the greeting, then hold music until the agent enters.

    ``endOnExit`` on the caller too: a caller who hangs up ends the conversation, so
    an agent is never left in an empty room.

    With ``checkpoint_url``, a ``notify`` between the two asks us, once the greeting is
    over, whether the agent is being rung: the agent call is placed while the greeting
    plays, and if Vonage refused it our answer to the notify (an NCCO) replaces the
    hold, so the caller is connected straight to the call centre with no REST request.
    """
    checkpoint: Ncco = []
    if checkpoint_url:
        checkpoint = [{"action": "notify", "payload": {"checkpoint": "agent"}, "eventUrl": [checkpoint_url]}]
    return [
        talk(greeting, voice=voice),
        *checkpoint,
        {
            "action": "conversation",
            "name": conference_name,
            "startOnEnter": False,
            "endOnExit": True,
            "musicOnHoldUrl": [hold_music_url],
        },
    ]


def agent_joins(*, conference_name: str) -> NccoAction:
    """The agent enters the caller's conversation: hold music stops and both talk.

    ``endOnExit`` on the agent ends the conversation when the agent hangs up, so the
    caller is never left alone in it.
    """
    return {"action": "conversation", "name": conference_name, "startOnEnter": True, "endOnExit": True}


def agent_hears_whisper(
    *, whisper: str, conference_name: str, voice: Voice | None = None, accept: "AcceptPrompt | None" = None
) -> Ncco:
    """The agent hears the whisper, then joins (or, with press 1 to accept, is asked)."""
    if accept is not None:
        return [talk(whisper, voice=voice), *accept_input(accept, voice=voice)]
    return [talk(whisper, voice=voice), agent_joins(conference_name=conference_name)]


@dataclass(frozen=True)
class AcceptPrompt:
    prompt: str
    event_url: str


def accept_input(accept: AcceptPrompt, *, voice: Voice | None = None) -> Ncco:
    """Ask the agent to press 1; the answer arrives as an ``input`` event at ``event_url``,
    and our response to that event is the agent's next NCCO."""
    return [
        talk(accept.prompt, voice=voice),
        {
            "action": "input",
            "type": ["dtmf"],
            "dtmf": {"maxDigits": 1, "timeOut": ACCEPT_TIMEOUT_SECONDS},
            "eventUrl": [accept.event_url],
        },
    ]


def agent_whisper_on_answer(*, whisper: str, voice: Voice | None = None, accept: AcceptPrompt | None = None) -> Ncco:
    """The ``connect`` strategy's ``onAnswer`` NCCO: runs on the agent's leg only, then
    Vonage bridges agent and caller itself."""
    ncco = [talk(whisper, voice=voice)]
    if accept is not None:
        ncco.extend(accept_input(accept, voice=voice))
    return ncco


def agent_accepted_connect() -> Ncco:
    """The connect strategy after the agent pressed 1: a word, then Vonage bridges."""
    return [talk("Connecting you now.")]


def agent_declined() -> Ncco:
    """The agent pressed something else, or nothing: the caller is passed on."""
    return [talk("The caller will be passed on. Goodbye.")]


def caller_connects_to_agent(
    *,
    destination: str,
    from_number: str,
    ring_seconds: int,
    on_answer_url: str,
    event_url: str,
    greeting: str = "",
    voice: Voice | None = None,
    ringback_tone_url: str = "",
) -> Ncco:
    """The ``connect`` strategy: Vonage rings the agent, runs ``on_answer_url``'s NCCO (the
    whisper) on the agent's leg, then bridges. With ``eventType: synchronous`` our answer to
    a busy, timeout, failed, rejected or unanswered event is the caller's next NCCO.
    ``machineDetection: hangup`` keeps an answering machine from taking the caller.

    While the agent's phone rings the caller hears the network's ringing; once the agent
    answers, and until the whisper is over, the caller would hear silence: the
    ``onAnswer`` ``ringbackTone`` is played to the caller on repeat meanwhile."""
    on_answer: NccoAction = {"url": on_answer_url}
    if ringback_tone_url:
        on_answer["ringbackTone"] = ringback_tone_url
    connect: NccoAction = {
        "action": "connect",
        "endpoint": [{"type": "phone", "number": destination, "onAnswer": on_answer}],
        "timeout": ring_seconds,
        "eventType": "synchronous",
        "eventUrl": [event_url],
        "machineDetection": "hangup",
    }
    if _CONNECT_FROM.fullmatch(from_number):
        connect["from"] = from_number
    return ([talk(greeting, voice=voice)] if greeting else []) + [connect]


def caller_hears_message(*, text: str, voice: Voice | None = None) -> Ncco:
    """A message, then the NCCO ends and Vonage hangs up."""
    return [talk(text, voice=voice)]


def caller_leaves_voicemail(*, prompt: str, event_url: str, voice: Voice | None = None) -> Ncco:
    """A prompt, a beep, and a recording that stops after 3 s of silence or 2 minutes;
    the recording's URL arrives as a ``record`` event at ``event_url``."""
    return [
        talk(prompt, voice=voice),
        {
            "action": "record",
            "beepStart": True,
            "endOnSilence": 3,
            "timeOut": 120,
            "format": "mp3",
            "eventUrl": [event_url],
        },
        talk("Thank you. Goodbye.", voice=voice),
    ]


def caller_connects_directly(
    *, greeting: str, destination: str, from_number: str, event_url: str = "", voice: Voice | None = None
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
    return [talk(greeting, voice=voice), connect]


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


def agent_hears_caller_moved_on() -> Ncco:
    """An agent who answers after the caller was passed on (another destination, the
    fallback, or straight through) is told so and not conferenced."""
    return [talk("The caller is no longer waiting.")]


def staff_calls_back(
    *,
    whisper: str,
    caller: str,
    from_number: str,
    event_url: str,
    ring_seconds: int | None = None,
    voice: Voice | None = None,
) -> Ncco:
    """A call-back (calls/callbacks.py): the staff member who answered hears the whisper,
    then Vonage rings the caller from the campaign's number (``from`` must be one of our
    numbers, or the caller sees an unknown caller ID) and bridges the two. The caller's
    leg reports to ``event_url``, which names the call-back."""
    connect: NccoAction = {
        "action": "connect",
        "endpoint": [{"type": "phone", "number": caller}],
        "eventUrl": [event_url],
    }
    if _CONNECT_FROM.fullmatch(from_number):
        connect["from"] = from_number
    if ring_seconds:
        connect["timeout"] = ring_seconds
    return [talk(whisper, voice=voice), connect]
