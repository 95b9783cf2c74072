"""A value sent to a webhook cannot write a log line of its own, in either format.

Before: ``{"uuid": "x\\n2026-… INFO calls.events event.stored call=1 …"}`` posted to
/event wrote a second, forged line in the plain format (and U+2028 or NEL split the JSON
format's lines for Unicode-aware readers). Now control characters in a message are
escaped (calls/logging.py, ``escape_control``) and every record is one line from which
the original text reads back."""

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from django.test import Client

from calls.logging import JsonFormatter, PlainFormatter, escape_control
from tests.conftest import post_json

FORGED = "2026-12-06 02:00:00,000 INFO calls.events event.stored call=1 uuid=forged"
UUID = "x\n" + FORGED[:50]
STATUS = "busy\r\u2028FORGED\x85\x1b[2J"
REASON = "timeout\r\n" + FORGED + "\u2029\x07\\n"
PLAIN_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+ ")


def unescape(text: str) -> str:
    """The inverse of ``escape_control``."""
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


@pytest.fixture(params=["plain", "json"])
def console(request: pytest.FixtureRequest) -> Iterator[tuple[str, io.StringIO]]:
    """The project's console handler (its filters included), writing to a buffer in the
    format under test."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    stream = handler.setStream(buffer)
    formatter = handler.formatter
    if request.param == "json":
        handler.setFormatter(JsonFormatter())
    else:
        assert isinstance(formatter, PlainFormatter)  # what settings.LOGGING configures
    yield request.param, buffer
    handler.setStream(stream)
    handler.setFormatter(formatter)


def messages(log_format: str, output: str) -> list[str]:
    """Each record's message, asserting that each record is exactly one line."""
    assert output.endswith("\n")
    lines = output[:-1].split("\n")
    # No other character a reader might take for a line break (str.splitlines knows them all).
    assert output.splitlines() == lines
    if log_format == "json":
        return [json.loads(line)["message"] for line in lines]
    assert all(PLAIN_RECORD.match(line) for line in lines), lines
    return [unescape(PLAIN_RECORD.sub("", line, count=1)) for line in lines]


def test_a_uuid_and_status_posted_to_event_stay_on_their_line(
    client: Client, db: None, console: tuple[str, io.StringIO]
) -> None:
    log_format, buffer = console
    response = post_json(client, "/event", {"uuid": UUID, "status": STATUS})
    # Control characters are never in an id or status Vonage sends: refused as input,
    # and the refusal's own line is one line.
    assert response.status_code == 400

    logged = messages(log_format, buffer.getvalue())

    assert any(message.startswith("webhook.refused path=/event status=400") for message in logged), logged
    assert not any(line.startswith(FORGED[:20]) for line in buffer.getvalue().split("\n"))


def test_a_reason_posted_to_fallback_stays_on_its_line(
    client: Client, db: None, console: tuple[str, io.StringIO]
) -> None:
    log_format, buffer = console
    payload = {"uuid": "caller-leg", "to": "447700900001", "from": "447946000123", "reason": REASON}
    assert post_json(client, "/fallback", payload).status_code == 200

    logged = messages(log_format, buffer.getvalue())

    assert any(message.endswith(f"reason={REASON}") for message in logged), logged
    assert not any(line.startswith(FORGED[:20]) for line in buffer.getvalue().split("\n"))


def test_a_traceback_stays_below_its_record_and_indented(console: tuple[str, io.StringIO]) -> None:
    """An exception's message may hold a request's text too: its lines are the
    traceback's, indented, never a record of their own."""
    log_format, buffer = console
    try:
        raise ValueError("bad value\n" + FORGED)
    except ValueError:
        logging.getLogger("calls.test").exception("event.failed uuid=%s", UUID)

    lines = buffer.getvalue()[:-1].split("\n")
    if log_format == "json":
        (line,) = lines
        entry = json.loads(line)
        assert entry["message"] == f"event.failed uuid={UUID}"
        assert entry["exception"].endswith("ValueError: bad value\n" + FORGED)
    else:
        first, *traceback = lines
        assert unescape(PLAIN_RECORD.sub("", first, count=1)) == f"event.failed uuid={UUID}"
        assert traceback and all(line.startswith("    ") for line in traceback)
        assert traceback[-1] == "    " + FORGED


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a\nb", "a\\nb"),
        ("a\r\tb", "a\\r\\tb"),
        ("\x00\x1b\x7f\x85\x9f", "\\x00\\x1b\\x7f\\x85\\x9f"),
        ("\u2028\u2029", "\\u2028\\u2029"),
        ("C:\\n", "C:\\\\n"),  # a real backslash stays distinguishable from an escape
        ("caller=…0123 café", "caller=…0123 café"),
    ],
)
def test_escape_control_is_one_line_and_reversible(raw: str, escaped: str) -> None:
    assert escape_control(raw) == escaped
    assert unescape(escaped) == raw
