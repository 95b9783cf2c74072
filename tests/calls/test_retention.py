"""CALL_RETENTION_DAYS: old callers' numbers are redacted (or the calls deleted)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from calls.models import Call, CallEvent, CallLeg, LegRole
from calls.retention import REDACTED
from tests.factories import CallFactory, CallLegFactory


def old_and_new_calls() -> tuple[Call, Call]:
    old = CallFactory.create(caller_number="447946000111", started_at=timezone.now() - timedelta(days=400))
    new = CallFactory.create(caller_number="447946000222", started_at=timezone.now() - timedelta(days=5))
    for call, number in ((old, "447946000111"), (new, "447946000222")):
        leg = CallLegFactory.create(call=call, role=LegRole.CALLER, from_number=number)
        CallEvent.objects.create(
            dedupe_key=f"status:{leg.uuid}:started",
            call=call,
            leg=leg,
            leg_uuid=leg.uuid,
            kind="status",
            status="started",
            payload={"uuid": leg.uuid, "status": "started", "from": number, "to": "447700900001"},
        )
    return old, new


@pytest.mark.django_db
def test_purge_redacts_only_calls_older_than_the_retention(settings: object) -> None:
    settings.CALL_RETENTION_DAYS = 365  # type: ignore[attr-defined]
    old, new = old_and_new_calls()
    out = StringIO()

    call_command("purge_calls", stdout=out, verbosity=0)

    old.refresh_from_db()
    new.refresh_from_db()
    assert old.caller_number == "" and old.redacted_at is not None
    assert CallLeg.objects.get(call=old).from_number == ""
    assert CallEvent.objects.get(call=old).payload["from"] == REDACTED
    assert CallEvent.objects.get(call=old).payload["to"] == "447700900001"  # our number stays
    # The report still counts the old call.
    assert Call.objects.filter(pk=old.pk, outcome=old.outcome).exists()
    assert new.caller_number == "447946000222" and new.redacted_at is None
    assert CallEvent.objects.get(call=new).payload["from"] == "447946000222"
    assert "Redacted the caller's number on 1 calls" in out.getvalue()


@pytest.mark.django_db
def test_purge_again_changes_nothing() -> None:
    old, _ = old_and_new_calls()
    call_command("purge_calls", stdout=StringIO(), verbosity=0)
    first = Call.objects.get(pk=old.pk).redacted_at
    out = StringIO()
    call_command("purge_calls", stdout=out, verbosity=0)
    assert Call.objects.get(pk=old.pk).redacted_at == first
    assert "on 0 calls" in out.getvalue()


@pytest.mark.django_db
def test_purge_with_delete_removes_old_calls_in_batches() -> None:
    old, new = old_and_new_calls()
    for _ in range(4):
        CallFactory.create(started_at=timezone.now() - timedelta(days=500))

    call_command("purge_calls", delete=True, batch_size=2, days=30, stdout=StringIO(), verbosity=0)

    assert list(Call.objects.values_list("pk", flat=True)) == [new.pk]
    assert not CallEvent.objects.filter(call_id=old.pk).exists()
    assert not CallLeg.objects.filter(call_id=old.pk).exists()
