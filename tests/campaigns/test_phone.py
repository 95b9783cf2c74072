"""Phone numbers: normalised to E.164 digits, spoken digit by digit, masked in logs."""

from typing import Any

import pytest

from campaigns.phone import E164_DIGITS_REGEX, InvalidNumber, masked, normalize_number, spoken_digits


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("447700900001", "447700900001"),
        ("+44 7700 900001", "447700900001"),
        ("0044-7700-900001", "447700900001"),
        ("+44 (7700) 900.001", "447700900001"),
        (" +1 415 555 0100 ", "14155550100"),
        ("1234567", "1234567"),
        ("123456789012345", "123456789012345"),
    ],
)
def test_numbers_are_normalised_to_e164_digits(raw: str, expected: str) -> None:
    assert normalize_number(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "anonymous",
        "07700 900001",  # national format: no country code
        "123456",  # too short
        "1234567890123456",  # too long
        "+44 7700 90000a",
        "++447700900001",
        "٤٤٧٧٠٠٩٠٠٠٠١",  # non-ASCII digits
    ],
)
def test_what_is_not_an_international_number_is_refused_with_a_sentence(raw: str) -> None:
    with pytest.raises(InvalidNumber, match="international format"):
        normalize_number(raw)


def test_none_is_refused_like_an_empty_number() -> None:
    with pytest.raises(InvalidNumber):
        normalize_number(None)  # type: ignore[arg-type]


def test_the_database_pattern_is_the_one_the_normaliser_uses() -> None:
    assert E164_DIGITS_REGEX == r"^[1-9][0-9]{6,14}$"


def test_digits_are_spaced_so_text_to_speech_reads_them_one_by_one() -> None:
    assert spoken_digits("447700900001") == "4 4 7 7 0 0 9 0 0 0 0 1"
    assert spoken_digits("") == ""


def test_logs_see_only_the_last_four_digits() -> None:
    assert masked("447700900456") == "…0456"
    assert masked("") == "-"


@pytest.mark.parametrize(
    ("setting", "number", "shown"),
    [
        ("international", "447946000123", "+44 7946 000123"),
        ("national", "447946000123", "07946 000123"),
        # Another country's number stays international, whatever the setting.
        ("national", "33612345678", "+33 6 12 34 56 78"),
        ("international", "anonymous", "anonymous"),
    ],
)
def test_numbers_are_shown_one_way_as_the_setting_says(settings: Any, setting: str, number: str, shown: str) -> None:
    from campaigns.phone import display_number

    settings.PHONE_NUMBER_DISPLAY = setting
    settings.CALL_CENTER_NUMBER = "447700900999"
    assert display_number(number) == shown


@pytest.mark.parametrize(
    ("term", "digits"),
    [
        ("07946 000123", "447946000123"),
        ("07946-000-123", "447946000123"),
        ("+44 7946 000123", "447946000123"),
        ("0044 7946 000123", "447946000123"),
        ("447946000123", "447946000123"),
        ("summer", None),
        ("000123", None),
    ],
)
def test_a_search_term_is_read_as_a_number_in_the_call_centres_country(
    settings: Any, term: str, digits: str | None
) -> None:
    from campaigns.phone import number_from_search

    settings.CALL_CENTER_NUMBER = "447700900999"
    assert number_from_search(term) == digits
