"""Logging for Call Whisper: the call id on every line, secrets on none, JSON on request.

Wired in ``settings.LOGGING``: the console handler carries ``CallIdFilter`` and
``RedactSecretsFilter``, and formats with ``PlainFormatter`` or (``LOG_FORMAT=json``)
``JsonFormatter``. Both write one record a line whatever its values hold: the message's
control characters are escaped (``escape_control``), so a newline in a ``uuid`` or a
``reason`` that Vonage (or anyone) sends cannot write a line of its own.

The call id travels in a context variable. A webhook request opens a scope with
``call_context()`` and the service that looks the call up names it with
``call_context_set(call.pk)``; every line logged after that, by any module (the Vonage
adapter, the SDK), carries ``call_id``. Outside a scope ``call_context_set`` does
nothing, so a long-running command never labels its lines with a call it finished
with; a loop over calls uses ``with call_context(call.pk):`` instead.
"""

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclass
class _Scope:
    call_id: int | None = None


_scope: ContextVar[_Scope | None] = ContextVar("call_whisper_log_scope", default=None)


@contextmanager
def call_context(call_id: int | None = None) -> Iterator[None]:
    """Everything logged inside carries ``call_id`` (once known, when None here)."""
    token = _scope.set(_Scope(call_id))
    try:
        yield
    finally:
        _scope.reset(token)


def call_context_set(call_id: int | None) -> None:
    """Name the call of the current scope; no effect outside ``call_context``."""
    scope = _scope.get()
    if scope is not None:
        scope.call_id = call_id


def current_call_id() -> int | None:
    scope = _scope.get()
    return scope.call_id if scope is not None else None


class CallIdFilter(logging.Filter):
    """Adds ``record.call_id``: the current call, unless the line names one itself
    (``extra={"call_id": ...}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "call_id", None) is None:
            record.call_id = current_call_id()
        return True


# The Vonage SDK logs every request's headers at DEBUG: ``Authorization: Bearer <JWT>``
# (the application key's signature) or ``Basic <base64 of api key:secret>``.
_AUTHORIZATION = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
# Any JWT: base64url of '{"' starts "eyJ"; header.payload.signature.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# A PEM private key, with real or escaped (\n) line breaks, or cut short.
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL)
# Settings whose values must never appear in a log line.
SECRET_SETTINGS = ("SECRET_KEY", "VONAGE_API_SECRET", "VONAGE_SIGNATURE_SECRET", "VONAGE_PRIVATE_KEY")
# Shorter values are not searched for: they would match ordinary words.
_MIN_SECRET_LENGTH = 8
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """``text`` without credentials: authorization headers, JWTs, private keys, and the
    values of the secret settings."""
    text = _PRIVATE_KEY.sub("[redacted private key]", text)
    text = _AUTHORIZATION.sub(lambda match: f"{match.group(1)} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    for secret in _secret_values():
        text = text.replace(secret, REDACTED)
    return text


# The secret settings' values, read once: a log line is written on every event, and reading
# five settings and sorting them took a fifth of its cost. Forgotten when a test changes one
# (the ``setting_changed`` signal below); production changes them only with a restart.
_secrets_read: tuple[str, ...] | None = None


def _secret_values() -> tuple[str, ...]:
    global _secrets_read
    if _secrets_read is None:
        from django.conf import settings

        if not settings.configured:
            return ()
        values = [str(getattr(settings, name, "") or "") for name in SECRET_SETTINGS]
        values.append(str(settings.DATABASES.get("default", {}).get("PASSWORD") or ""))
        # Longest first, so a secret that contains another is removed whole.
        _secrets_read = tuple(sorted({v for v in values if len(v) >= _MIN_SECRET_LENGTH}, key=len, reverse=True))
    return _secrets_read


@receiver(setting_changed)
def _secrets_forget(*, setting: str, **kwargs: Any) -> None:
    global _secrets_read
    if setting in SECRET_SETTINGS or setting == "DATABASES":
        _secrets_read = None


class RedactSecretsFilter(logging.Filter):
    """Rewrites each record's message and traceback through ``redact``: a filter on the
    handler, so it covers every logger that reaches it, the SDK's included."""

    _traceback_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it itself
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._traceback_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# C0 controls, DEL, C1 controls, and the separators that Unicode-aware readers (Python's
# str.splitlines, JavaScript, many log viewers) take for line breaks.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Outside JSON's own escapes (json.dumps escapes C0 and the backslash).
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u2028\u2029]")


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    return f"\\x{ord(char):02x}" if ord(char) <= 0xFF else f"\\u{ord(char):04x}"


def escape_control(text: str) -> str:
    """``text`` on one line, reversibly: backslashes doubled, ``\\n``, ``\\r``, ``\\t``,
    other control characters as ``\\xNN``, U+2028/U+2029 as ``\\uNNNN`` (Python's
    ``unicode_escape`` reads it back)."""
    return _CONTROL.sub(_escape_one, text.replace("\\", "\\\\"))


class PlainFormatter(logging.Formatter):
    """``logging.Formatter`` whose message is ``escape_control``-ed, so each record is one
    line; a traceback or stack follows on lines indented by four spaces (a line at the
    start of the margin is always a record of its own)."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_control(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + _indented(record.exc_text)
        if record.stack_info:
            text += "\n" + _indented(self.formatStack(record.stack_info))
        return text


def _indented(text: str) -> str:
    return "\n".join("    " + escape_control(line) for line in text.split("\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``timestamp`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, ``call_id`` when known, ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call_id = getattr(record, "call_id", None)
        if call_id is not None:
            entry["call_id"] = call_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # json.dumps escapes C0 controls; the rest of the line breaks, too (valid JSON escapes:
        # they only occur inside strings, and json.loads reads the original back).
        text = json.dumps(entry, ensure_ascii=False, default=str)
        return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
