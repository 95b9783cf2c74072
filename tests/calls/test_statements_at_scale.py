"""Every webhook of a whole call, with a million calls (and their legs and events) in the
tables: the same statements as with empty tables (tests/calls/test_webhooks.py pins
those), and none of them scans a big table. PostgreSQL only: it is what production runs,
and its planner is what the plans are about."""

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from calls import agent_dispatch
from calls.models import Call, CallEvent, CallLeg
from campaigns.models import TrackingNumber
from tests.calls.test_webhooks import AGENT_ANSWER, ANSWER, event
from tests.calls.test_webhooks import agent_calls as agent_calls  # a fixture, used by name
from tests.conftest import callback_path, notify_body, post_json, with_fields

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the plans are PostgreSQL's"),
]

MILLION = 1_000_000
BIG_TABLES = ("calls_call", "calls_callleg", "calls_callevent")


def seed(calls: int, campaign_id: int, number_id: int) -> None:
    """``calls`` ended calls to the campaign, each with a caller leg and two events,
    written by PostgreSQL itself (a minute at most, where the ORM would take an hour)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO calls_call (tracking_number_id, campaign_id, number_status, caller_number, called_number,
                source, destination, conference_name, whisper_text, caller_ncco, state, outcome, strategy,
                accept_required, attempt, resolution, recording_url, agent_call_error, rate_limited, recorded_late,
                started_at, first_call, direction)
            SELECT %s, %s, 'tracked', '4479' || lpad((g %% 200000)::text, 8, '0'), '447700900001', 'M4 billboard',
                '447700900999', 'whisper-seed-' || g, '', '[]', 'ended', 'answered', 'conference', false, 0, '',
                '', '', 0, false, now() - (g || ' seconds')::interval, g <= 200000, 'inbound'
            FROM generate_series(1, %s) g
            """,
            [number_id, campaign_id, calls],
        )
        cursor.execute(
            """
            INSERT INTO calls_callleg (uuid, call_id, role, conversation_uuid, from_number, to_number, direction,
                status, detail, machine_detected, network, region_url, created_at)
            SELECT 'seed-' || id, id, 'caller', 'CON-seed-' || id, caller_number, called_number, 'inbound',
                'completed', '', '', '', '', started_at
            FROM calls_call
            """
        )
        cursor.execute(
            """
            INSERT INTO calls_callevent (dedupe_key, call_id, leg_id, leg_uuid, conversation_uuid, kind, status,
                received_at, payload)
            SELECT 'status:' || l.uuid || ':' || s, l.call_id, l.id, l.uuid, l.conversation_uuid, 'status', s,
                l.created_at, jsonb_build_object('uuid', l.uuid, 'status', s)
            FROM calls_callleg l, (VALUES ('answered'), ('completed')) AS statuses(s)
            """
        )
        cursor.execute("ANALYZE calls_call; ANALYZE calls_callleg; ANALYZE calls_callevent")


def scans_of_big_tables(queries: list[dict[str, Any]]) -> list[str]:
    """Each statement whose plan reads a whole big table."""
    found = []
    for query in queries:
        sql = query["sql"]
        if not re.match(r"\s*(SELECT|INSERT|UPDATE|WITH|DELETE)", sql, re.IGNORECASE):
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        if any(f"Seq Scan on {table}" in plan for table in BIG_TABLES):
            found.append(f"{sql[:200]}\n{plan}")
    return found


def test_a_whole_call_with_a_million_calls_in_the_tables(
    client: Client, summer_number: TrackingNumber, agent_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(MILLION, summer_number.campaign_id, summer_number.pk)
    assert Call.objects.count() == MILLION
    dispatched: list[int] = []
    monkeypatch.setattr(agent_dispatch, "ring_first_agent_soon", lambda call_id, **_: dispatched.append(call_id))
    client.get("/answer_inbound", {**ANSWER, "uuid": "an-earlier-caller"})  # the route, now in memory

    counts: dict[str, int] = {}
    every: list[dict[str, Any]] = []

    def counted(name: str, work: Any) -> Any:
        with CaptureQueriesContext(connection) as queries:
            result = work()
        counts[name] = len(queries.captured_queries)
        every.extend(queries.captured_queries)
        return result

    answer = counted("answer_inbound", lambda: client.get("/answer_inbound", ANSWER))
    call = Call.objects.get(legs__uuid=ANSWER["uuid"])
    counted("first agent call", lambda: agent_dispatch.ring_first_agent(call.pk))
    checkpoint = answer.json()[1]["eventUrl"][0]
    parts = urlsplit(checkpoint)
    counted(
        "checkpoint",
        lambda: client.post(
            f"{parts.path}?{parts.query}",
            json.dumps(notify_body({"checkpoint": "agent"})),
            content_type="application/json",
        ),
    )

    counted(
        "answer_outbound",
        lambda: client.get(with_fields(callback_path("answer_outbound", call=call.pk), AGENT_ANSWER)),
    )
    post_json(client, "/event", event("outbound_started"))
    counted("status event", lambda: post_json(client, "/event", event("outbound_ringing")))
    counted("duplicate event", lambda: post_json(client, "/event", event("outbound_ringing")))
    counted("unmatched event", lambda: post_json(client, "/event", event("record")))

    # The same as with empty tables (tests/calls/test_webhooks.py, on PostgreSQL).
    assert counts == {
        "answer_inbound": 2,
        "first agent call": 3,
        "checkpoint": 4,
        "answer_outbound": 4,  # the leg's region and the whisper written in one statement
        "status event": 4,  # the event stored and its leg updated in one statement
        "duplicate event": 4,
        "unmatched event": 3,
    }
    assert CallLeg.objects.filter(call=call).count() == 2
    assert CallEvent.objects.filter(call=call).count() >= 3
    assert scans_of_big_tables(every) == []
