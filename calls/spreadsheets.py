"""Every CSV the app writes goes through :func:`inert_writer`, so no cell of it can run
as a spreadsheet formula (OWASP's "CSV injection").

The rule, in one place:

- Numbers (``int``, ``float``, ``Decimal``) and text that is only a plain decimal number
  (``-?digits[.digits]``: counts, seconds, rates, E.164 phone numbers) are written as
  they are: a spreadsheet reads them as the number they are, and a number cannot run.
- Any other text whose first character, or first character after leading whitespace,
  is ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or a line feed gets a leading
  ``'``: Excel, LibreOffice and Google Sheets then show it as text, and the original is
  the cell without its first character.
- ``None`` is an empty cell.

Phone numbers are stored as E.164 digits without the ``+`` (``447700900001``): written
as digits, a spreadsheet neither runs them nor loses a digit (E.164 has at most 15
digits and no leading zero, so a spreadsheet's number holds it exactly; a narrow
column may *display* it in scientific notation). A "number" that is not digits (a SIP
address, an attacker's ``=cmd|'/C calc'!A0`` in Vonage's ``from``) is text, so the
rule above applies to it.
"""

import csv
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP).
FORMULA_STARTS = frozenset("=+-@\t\r\n")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


class _Writable(Protocol):
    def write(self, text: str, /) -> int: ...


def inert_cell(value: Any) -> Any:
    """``value`` as a cell no spreadsheet runs: see the module's rule."""
    if value is None:
        return ""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return value
    text = str(value)
    if _PLAIN_NUMBER.fullmatch(text):
        return text
    if text[:1] in FORMULA_STARTS or text.lstrip()[:1] in FORMULA_STARTS:
        return "'" + text
    return text


def inert_row(row: Iterable[Any]) -> list[Any]:
    return [inert_cell(value) for value in row]


class InertWriter:
    """``csv.writer`` whose every row is made inert first."""

    def __init__(self, stream: _Writable) -> None:
        self._writer = csv.writer(stream)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow(inert_row(row))


def inert_writer(stream: _Writable) -> InertWriter:
    """The only way the app writes CSV (calls list export, report CSV)."""
    return InertWriter(stream)
