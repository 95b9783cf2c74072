from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from calls.models import Call, Outcome
from campaigns.models import TrackingNumber


def test_seed_calls_adds_realistic_history_to_the_campaign_numbers(summer_number: TrackingNumber) -> None:
    call_command("seed_calls", allow_production=True, count=1200, days=30, stdout=StringIO(), verbosity=0)

    calls = Call.objects.all()
    assert calls.count() == 1200
    assert set(calls.values_list("tracking_number", flat=True)) == {summer_number.pk}
    outcomes = set(calls.values_list("outcome", flat=True))
    assert {Outcome.ANSWERED, Outcome.MISSED, Outcome.ABANDONED} <= outcomes
    assert Outcome.IN_PROGRESS not in outcomes
    answered = calls.filter(outcome=Outcome.ANSWERED)
    assert not answered.filter(talk_seconds__isnull=True).exists()
    # Some callers call more than once: "first-time callers" is not every call.
    assert calls.values("caller_number").distinct().count() < 1200
    # Each caller's earliest call, and only that one, is marked as a first call.
    identified = calls.exclude(caller_number="")
    assert identified.filter(first_call=True).count() == identified.values("caller_number").distinct().count()
    assert not calls.filter(caller_number="", first_call=True).exists()
    assert not calls.filter(first_call__isnull=True).exists()


def test_same_seed_gives_the_same_calls(summer_number: TrackingNumber) -> None:
    call_command("seed_calls", allow_production=True, count=50, days=7, seed=7, stdout=StringIO(), verbosity=0)
    first = list(Call.objects.order_by("conference_name").values_list("conference_name", "outcome"))
    Call.objects.all().delete()
    call_command("seed_calls", allow_production=True, count=50, days=7, seed=7, stdout=StringIO(), verbosity=0)
    assert list(Call.objects.order_by("conference_name").values_list("conference_name", "outcome")) == first


def test_seed_calls_needs_numbers(db: None) -> None:
    with pytest.raises(CommandError, match="no tracking numbers"):
        call_command("seed_calls", allow_production=True, count=5, stdout=StringIO(), verbosity=0)


def test_seed_calls_refuses_a_production_database_without_the_flag(summer_number: TrackingNumber) -> None:
    # The test settings are production's (DEBUG off): the command must not write a call.
    with pytest.raises(CommandError, match=r"looks like a production database.*--allow-production"):
        call_command("seed_calls", count=5, stdout=StringIO(), verbosity=0)
    assert not Call.objects.exists()


def test_seed_calls_fills_a_development_database_without_the_flag(summer_number: TrackingNumber, settings: Any) -> None:
    settings.DEBUG = True
    call_command("seed_calls", count=5, stdout=StringIO(), verbosity=0)
    assert Call.objects.count() == 5
