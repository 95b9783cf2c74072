"""The hot path's statements send the parameters the ORM would send
(calls/statements.db_values): the same values, of the same types, for whatever a field
holds, on SQLite and on PostgreSQL."""

import warnings
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calls import statements
from calls.models import Call, CallEvent, CallLeg, CallState, LegRole, Outcome, SignedWebhook
from tests.factories import CallFactory, CallLegFactory

pytestmark = pytest.mark.django_db

HOT_MODELS = (Call, CallLeg, CallEvent, SignedWebhook)


def orm_values(instance: Any, plan: tuple[statements.PlanStep, ...], *, add: bool) -> list[Any]:
    """What the ORM's own insert or update compiles for the plan's fields."""
    return [field.get_db_prep_save(field.pre_save(instance, add), connection) for _, field, *_ in plan]


def typed(values: list[Any]) -> list[tuple[type, Any]]:
    # psycopg's Jsonb wrapper has no equality of its own: its object is compared.
    return [(type(value), getattr(value, "obj", value)) for value in values]


def outcome(work: Any) -> Any:
    """The values, typed, or the exception's class: both sides must fail alike."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a naive datetime, made aware
            return typed(work())
    except Exception as exc:  # compared, not swallowed
        return type(exc)


def plan_of(model: Any) -> tuple[statements.PlanStep, ...]:
    return statements._insert_plan(model, statements._backend(connection))


def test_a_new_call_and_its_leg_send_the_orms_values() -> None:
    call = CallFactory.build(
        caller_ncco=[{"action": "talk", "text": "Hello"}],
        state=CallState.WAITING,
        outcome=Outcome.ANSWERED,
        attempt=2,
        accept_required=True,
    )
    leg = CallLegFactory.build(call=call, role=LegRole.CALLER)
    for instance in (call, leg):
        plan = plan_of(type(instance))
        # Fields without auto_now: pre_save does not read the clock, so both sides agree.
        assert outcome(lambda i=instance, p=plan: statements.db_values(i, p, connection, add=True)) == outcome(
            lambda i=instance, p=plan: orm_values(i, p, add=True)
        )
    # Most of a call's values skip the ORM's conversion; its JSON does not.
    kinds = {attname: kind for attname, _, kind, *_ in plan_of(Call)}
    assert kinds["caller_ncco"] == statements.CONVERT
    assert kinds["caller_number"] == statements.AS_IS and kinds["campaign_id"] == statements.AS_IS
    if connection.vendor == "postgresql":
        assert kinds["started_at"] == statements.AWARE_AS_IS
        wrap = next(wrap for attname, *_, wrap in plan_of(Call) if attname == "attempt")
        assert wrap is not None  # psycopg's sized integer, as Django wraps it
    else:
        assert kinds["started_at"] == statements.CONVERT  # SQLite's datetimes are text


# Anything a field might hold: the right type, a subclass (a choice), the wrong type.
ANY_VALUE = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.sampled_from([CallState.WAITING, Outcome.ANSWERED, LegRole.AGENT]),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.booleans(),
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.sampled_from([None, UTC])
    ),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda moment: moment.replace(tzinfo=timezone(timedelta(hours=5, minutes=30)))
    ),
    st.decimals(allow_nan=False, allow_infinity=False, places=2, max_value=Decimal(10**6)),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["12", "true", "2026-12-07 10:00:00+00:00", ""]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=st.sampled_from(HOT_MODELS), data=st.data())
def test_whatever_a_field_holds_the_parameters_are_the_orms(model: Any, data: st.DataObject) -> None:
    plan = tuple(step for step in plan_of(model) if step[2] != statements.CONVERT)  # the short cuts only
    instance = model()
    for attname, *_ in plan:
        setattr(instance, attname, data.draw(ANY_VALUE, label=attname))
    for add in (True, False):
        ours = outcome(lambda a=add: statements.db_values(instance, plan, connection, add=a))
        theirs = outcome(lambda a=add: orm_values(instance, plan, add=a))
        assert ours == theirs


def test_an_update_sends_the_orms_values() -> None:
    leg = CallLegFactory(role=LegRole.AGENT, direction="outbound")
    leg.status, leg.duration, leg.answered_at = "answered", 12, datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    names = ("answered_at", "duration", "status")
    plan = statements._update_plan(CallLeg, names, statements._backend(connection))
    assert typed(statements.db_values(leg, plan, connection, add=False)) == typed(orm_values(leg, plan, add=False))
    statements.save_fields(leg, list(names))
    stored = CallLeg.objects.get(pk=leg.pk)
    assert (stored.status, stored.duration, stored.answered_at) == ("answered", 12, leg.answered_at)


def test_a_signed_webhook_is_stored_as_the_orm_stores_it() -> None:
    row_id = statements.insert_or_skip(SignedWebhook(jti="a-jti", digest="d" * 64), unique="jti")
    assert row_id is not None
    assert SignedWebhook.objects.filter(pk=row_id, jti="a-jti", digest="d" * 64).exists()
    assert statements.insert_or_skip(SignedWebhook(jti="a-jti", digest="e" * 64), unique="jti") is None


def test_a_row_inserted_from_its_values_is_the_row_the_instance_would_insert() -> None:
    call = CallFactory()
    at = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    values = {
        "dedupe_key": "status:leg-1:ringing",
        "call_id": call.pk,
        "leg_uuid": "leg-1",
        "kind": "status",
        "status": "ringing",
        "occurred_at": at,
        "received_at": at,
        "payload": {"uuid": "leg-1", "status": "ringing"},
    }
    row_id = statements.row_insert_or_skip(CallEvent, unique="dedupe_key", **values)

    stored = CallEvent.objects.get(pk=row_id)
    expected = CallEvent(**values)
    assert [getattr(stored, f.attname) for f in CallEvent._meta.concrete_fields if not f.primary_key] == [
        getattr(expected, f.attname) for f in CallEvent._meta.concrete_fields if not f.primary_key
    ]
    # A redelivery (the same key) is skipped; a field not given takes its default.
    assert statements.row_insert_or_skip(CallEvent, unique="dedupe_key", **{**values, "status": "x"}) is None
    before = datetime.now(UTC)
    signed = statements.row_insert_or_skip(SignedWebhook, unique="jti", jti="j-1", digest="f" * 64)
    assert SignedWebhook.objects.get(pk=signed).received_at >= before - timedelta(seconds=1)


def test_a_row_with_a_field_its_model_does_not_have_is_refused_before_any_statement() -> None:
    with pytest.raises(TypeError, match="no field named call, colour"):
        statements.row_insert_or_skip(CallEvent, unique="dedupe_key", dedupe_key="k", call=1, colour="red")
    assert not CallEvent.objects.exists()


def test_fields_saved_with_a_row_are_saved_only_when_the_row_is_new(django_assert_num_queries: Any) -> None:
    leg = CallLegFactory(role=LegRole.AGENT, direction="outbound", status="ringing")
    call = leg.call
    values = {
        "dedupe_key": "status:leg:answered",
        "call_id": call.pk,
        "leg_id": leg.pk,
        "kind": "status",
        "payload": {},
    }
    leg.status, call.state = "answered", CallState.CONNECTED
    # One statement on PostgreSQL (the updates gated on the insert); three elsewhere.
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 3):
        row_id = statements.row_insert_or_skip(
            CallEvent, unique="dedupe_key", then_save=[(leg, ["status"]), (call, ["state"])], **values
        )
    assert row_id is not None
    assert CallLeg.objects.get(pk=leg.pk).status == "answered"
    assert Call.objects.get(pk=call.pk).state == CallState.CONNECTED

    # A redelivery (the same key) stores nothing and saves nothing, whatever it carries.
    leg.status, call.state = "completed", CallState.ENDED
    skipped = statements.row_insert_or_skip(
        CallEvent, unique="dedupe_key", then_save=[(leg, ["status"]), (call, ["state"])], **values
    )
    assert skipped is None
    assert CallEvent.objects.count() == 1
    assert CallLeg.objects.get(pk=leg.pk).status == "answered"
    assert Call.objects.get(pk=call.pk).state == CallState.CONNECTED
