"""Model instances built from the hot path's own SQL (calls/statements.rows_to_instances)
are the instances the ORM builds from the same rows."""

from typing import Any

import pytest
from django.db import connection
from django.db.models.signals import post_init

from calls import statements
from calls.models import Call, CallLeg, LegRole
from tests.factories import CallFactory, CallLegFactory

pytestmark = pytest.mark.django_db


def fields(instance: Any) -> dict[str, Any]:
    return {name: value for name, value in vars(instance).items() if name != "_state"}


@pytest.fixture
def call_with_legs() -> Call:
    call = CallFactory(caller_ncco=[{"action": "talk", "text": "Hello"}], whisper_text="Summer offer")
    CallLegFactory(call=call, role=LegRole.CALLER)
    CallLegFactory(call=call, role=LegRole.AGENT, direction="outbound", attempt=0)
    return call


def test_a_call_and_its_legs_read_in_one_statement_are_the_orms(call_with_legs: Call) -> None:
    call, legs = statements.call_and_legs(leg_uuid="", call_id=call_with_legs.pk, lock=False)

    assert call is not None and fields(call) == fields(Call.objects.get(pk=call_with_legs.pk))
    orm_legs = {leg.pk: leg for leg in CallLeg.objects.filter(call=call_with_legs)}
    assert {leg.pk: fields(leg) for leg in legs} == {pk: fields(leg) for pk, leg in orm_legs.items()}
    for instance in (call, *legs):
        assert (instance._state.adding, instance._state.db) == (False, "default")
    # They work as the ORM's do: related objects, and saving a changed field.
    assert all(leg.call is call for leg in legs) and call.campaign == call_with_legs.campaign
    call.whisper_text = "Winter offer"
    call.save(update_fields=["whisper_text"])
    assert Call.objects.get(pk=call.pk).whisper_text == "Winter offer"


def test_with_someone_listening_to_post_init_the_orms_constructor_is_used(call_with_legs: Call) -> None:
    seen: list[Any] = []

    def listener(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append(instance)

    post_init.connect(listener, sender=CallLeg)
    try:
        _, legs = statements.call_and_legs(leg_uuid="", call_id=call_with_legs.pk, lock=False)
    finally:
        post_init.disconnect(listener, sender=CallLeg)

    assert len(legs) == 2 and all(any(leg is each for each in seen) for leg in legs)


def test_fields_of_several_rows_saved_together_are_what_save_writes(
    call_with_legs: Call, django_assert_num_queries: Any
) -> None:
    """One statement on PostgreSQL, one per row elsewhere; each row gets only its own fields."""
    call = Call.objects.get(pk=call_with_legs.pk)
    agent = CallLeg.objects.get(call=call, role=LegRole.AGENT)
    caller = CallLeg.objects.get(call=call, role=LegRole.CALLER)
    agent.region_url, agent.conversation_uuid, agent.status = "https://api-eu-1.vonage.com", "CON-agent", "unsaved"
    call.whisper_text = "Winter offer, from the M4 billboard"
    caller.region_url = "https://api-us-3.vonage.com"

    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 3):
        statements.save_fields_together(
            [
                (agent, ["region_url", "conversation_uuid"]),
                (call, ["whisper_text"]),
                (caller, ["region_url"]),
                (call, []),
            ]
        )

    stored = CallLeg.objects.get(pk=agent.pk)
    assert (stored.region_url, stored.conversation_uuid) == ("https://api-eu-1.vonage.com", "CON-agent")
    assert stored.status != "unsaved"  # not named, not written
    assert Call.objects.get(pk=call.pk).whisper_text == "Winter offer, from the M4 billboard"
    assert CallLeg.objects.get(pk=caller.pk).region_url == "https://api-us-3.vonage.com"


def test_the_same_row_twice_is_saved_one_statement_after_another(call_with_legs: Call) -> None:
    """PostgreSQL leaves which of two updates of one row in one statement wins undefined."""
    call = Call.objects.get(pk=call_with_legs.pk)
    call.whisper_text, call.source = "Winter offer", "Radio"

    statements.save_fields_together([(call, ["whisper_text"]), (call, ["source"])])

    stored = Call.objects.get(pk=call.pk)
    assert (stored.whisper_text, stored.source) == ("Winter offer", "Radio")
