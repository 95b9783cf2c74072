"""The NCCO builders: the JSON Vonage executes, checked as the JSON it is sent as."""

import json

import pytest

from calls import ncco

HOLD_MUSIC = "https://example.com/hold.mp3"


def test_waiting_caller_hears_greeting_then_waits_with_hold_music() -> None:
    actions = ncco.caller_waits(
        greeting="Please wait while we connect you.", conference_name="whisper-abc", hold_music_url=HOLD_MUSIC
    )

    assert actions == [
        {"action": "talk", "text": "Please wait while we connect you."},
        {
            "action": "conversation",
            "name": "whisper-abc",
            "startOnEnter": False,
            "endOnExit": True,
            "musicOnHoldUrl": [HOLD_MUSIC],
        },
    ]


def test_waiting_caller_booleans_are_json_booleans_not_strings() -> None:
    body = json.dumps(ncco.caller_waits(greeting="Hi", conference_name="c", hold_music_url=HOLD_MUSIC))

    assert '"startOnEnter": false' in body
    assert '"false"' not in body
    assert '"musicOnHoldUrl": ["https://example.com/hold.mp3"]' in body


def test_agent_hears_whisper_then_starts_and_ends_the_conversation() -> None:
    actions = ncco.agent_hears_whisper(whisper="Incoming call regarding the summer offer", conference_name="c1")
    body = json.dumps(actions)

    assert actions[0] == {"action": "talk", "text": "Incoming call regarding the summer offer"}
    assert actions[1] == {"action": "conversation", "name": "c1", "startOnEnter": True, "endOnExit": True}
    assert '"startOnEnter": true' in body
    assert '"endOnExit": true' in body
    assert '"true"' not in body


def test_agent_and_caller_join_the_same_conversation() -> None:
    caller = ncco.caller_waits(greeting="Hi", conference_name="whisper-1", hold_music_url=HOLD_MUSIC)
    agent = ncco.agent_hears_whisper(whisper="Hello", conference_name="whisper-1")

    assert caller[-1]["name"] == agent[-1]["name"] == "whisper-1"


def test_direct_connect_has_an_endpoint_list_and_our_number_as_caller_id() -> None:
    actions = ncco.caller_connects_directly(
        greeting="Connecting you.",
        destination="447700900999",
        from_number="447700900001",
        event_url="https://whisper.example.com/event",
    )

    assert actions[0] == {"action": "talk", "text": "Connecting you."}
    assert actions[1] == {
        "action": "connect",
        "endpoint": [{"type": "phone", "number": "447700900999"}],
        "from": "447700900001",
        "eventUrl": ["https://whisper.example.com/event"],
    }


@pytest.mark.parametrize("from_number", ["1234567", "123456789012345"])
def test_direct_connect_keeps_from_of_7_to_15_digits(from_number: str) -> None:
    connect = ncco.caller_connects_directly(greeting="Hi", destination="447700900999", from_number=from_number)[1]

    assert connect["from"] == from_number


@pytest.mark.parametrize(
    "from_number",
    [
        "",
        "123456",  # 6 digits
        "1234567890123456",  # 16 digits
        "+447700900001",
        "anonymous",
        "4477 00900001",
        "٤٤٧٧٠٠٩٠٠٠٠١",  # Arabic-Indic digits: str.isdigit() says yes, Vonage says no
        "²²²²²²²²",  # superscripts are "digits" to str.isdigit() too
    ],
)
def test_direct_connect_omits_from_that_vonage_would_reject(from_number: str) -> None:
    connect = ncco.caller_connects_directly(greeting="Hi", destination="447700900999", from_number=from_number)[1]

    assert "from" not in connect


def test_direct_connect_without_event_url_sends_none() -> None:
    connect = ncco.caller_connects_directly(greeting="Hi", destination="447700900999", from_number="")[1]

    assert "eventUrl" not in connect


def test_talk_text_is_capped_at_vonages_1500_characters() -> None:
    assert len(ncco.talk("a" * 1501)["text"]) == 1500
    assert ncco.talk("a" * 1500)["text"] == "a" * 1500


def test_long_greeting_and_whisper_are_capped_in_every_builder() -> None:
    long = "word " * 400
    assert len(ncco.caller_waits(greeting=long, conference_name="c", hold_music_url=HOLD_MUSIC)[0]["text"]) == 1500
    assert len(ncco.agent_hears_whisper(whisper=long, conference_name="c")[0]["text"]) == 1500
    assert (
        len(ncco.caller_connects_directly(greeting=long, destination="447700900999", from_number="")[0]["text"]) == 1500
    )


def test_talk_language_and_style_only_when_given() -> None:
    assert ncco.talk("Hi") == {"action": "talk", "text": "Hi"}
    assert ncco.talk("Hi", language="en-GB", style=2) == {
        "action": "talk",
        "text": "Hi",
        "language": "en-GB",
        "style": 2,
    }
    assert ncco.talk("Hi", style=0)["style"] == 0


def test_agent_who_answers_late_is_told_the_caller_has_gone_and_joins_nothing() -> None:
    actions = ncco.agent_hears_caller_left()

    assert actions == [{"action": "talk", "text": "The caller has hung up."}]
    assert all(action["action"] != "conversation" for action in actions)


def test_builders_return_json_serialisable_plain_data() -> None:
    for actions in (
        ncco.caller_waits(greeting="Hi", conference_name="c", hold_music_url=HOLD_MUSIC),
        ncco.agent_hears_whisper(whisper="Hi", conference_name="c"),
        ncco.caller_connects_directly(greeting="Hi", destination="447700900999", from_number="447700900001"),
        ncco.agent_hears_caller_left(),
    ):
        assert json.loads(json.dumps(actions)) == actions


def test_connect_to_agent_plays_the_ringback_tone_to_the_caller_during_the_whisper() -> None:
    (connect,) = ncco.caller_connects_to_agent(
        destination="447700900999",
        from_number="447700900001",
        ring_seconds=20,
        on_answer_url="https://whisper.example.com/answer_outbound?call=1&attempt=0",
        event_url="https://whisper.example.com/event?call=1&attempt=0",
        ringback_tone_url="https://media.example.com/ringing.mp3",
    )

    assert connect["endpoint"][0]["onAnswer"] == {
        "url": "https://whisper.example.com/answer_outbound?call=1&attempt=0",
        "ringbackTone": "https://media.example.com/ringing.mp3",
    }
    # Not on the connect itself: for a phone the carrier plays its own ringing.
    assert "ringbackTone" not in connect


def test_connect_to_agent_without_a_ringback_tone_sends_none() -> None:
    (connect,) = ncco.caller_connects_to_agent(
        destination="447700900999",
        from_number="447700900001",
        ring_seconds=20,
        on_answer_url="https://whisper.example.com/answer_outbound?call=1",
        event_url="https://whisper.example.com/event?call=1",
    )

    assert connect["endpoint"][0]["onAnswer"] == {"url": "https://whisper.example.com/answer_outbound?call=1"}
