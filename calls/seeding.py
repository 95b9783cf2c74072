"""Realistic call history for trying the reports and measuring them at scale.

Calls only (no legs or events): the call list and the reports read ``Call`` alone,
and a million calls with their legs and events would be ten times the rows.
"""

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.utils import timezone

from campaigns.models import TrackingNumber

from .models import Call, CallState, NumberStatus, Outcome

# Roughly what call trackers report for a staffed call centre.
OUTCOME_WEIGHTS: dict[str, int] = {
    Outcome.ANSWERED: 68,
    Outcome.MISSED: 8,
    Outcome.BUSY: 4,
    Outcome.DECLINED: 1,
    Outcome.FAILED: 1,
    Outcome.VOICEMAIL: 7,
    Outcome.ABANDONED: 8,
    Outcome.CLOSED: 3,
}


def seed_calls(
    *, count: int, days: int, numbers: list[TrackingNumber], seed: int = 1, now: datetime | None = None
) -> Iterator[list[Call]]:
    """Yield batches of unsaved calls spread over the last ``days`` days."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    now = now or timezone.now()
    outcomes = list(OUTCOME_WEIGHTS)
    weights = list(OUTCOME_WEIGHTS.values())
    callers = [f"4479460{n:05d}" for n in range(max(10, count // 3))]
    batch: list[Call] = []
    for n in range(count):
        number = rng.choice(numbers)
        # Oldest first, as a real history is written: rows of one day sit together on
        # disk, which is what the report's date-range scans rely on. Office hours are
        # busier: most calls between 8:00 and 20:00.
        day = now - timedelta(days=days - 1 - n * days // count)
        started = day.replace(
            hour=rng.choice((8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 23)),
            minute=rng.randrange(60),
            second=rng.randrange(60),
            microsecond=0,
        )
        if started > now:
            started -= timedelta(days=1)
        outcome = rng.choices(outcomes, weights)[0]
        wait = None if outcome == Outcome.CLOSED else rng.randint(3, 40)
        talk = rng.randint(20, 900) if outcome == Outcome.ANSWERED else None
        batch.append(
            Call(
                tracking_number=number,
                campaign_id=number.campaign_id,
                number_status=NumberStatus.TRACKED,
                caller_number="" if rng.random() < 0.03 else rng.choice(callers),
                called_number=number.number,
                source=number.source,
                destination=number.campaign.destination or "447700900999",
                conference_name=f"seed-{uuid.UUID(int=rng.getrandbits(128)).hex}",
                state=CallState.ENDED,
                outcome=outcome,
                whisper_text=f"Incoming call regarding {number.campaign.topic}" if outcome == Outcome.ANSWERED else "",
                started_at=started,
                agent_answered_at=started + timedelta(seconds=wait or 0) if talk else None,
                ended_at=started + timedelta(seconds=(wait or 0) + (talk or 0)),
                wait_seconds=wait,
                talk_seconds=talk,
            )
        )
        if len(batch) >= 5000:
            yield batch
            batch = []
    if batch:
        yield batch


def mark_first_calls() -> int:
    """Set ``Call.first_call`` on calls created without ``save()`` (``bulk_create``):
    the same rule as ``Call.save`` and migration 0007, in one statement."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE calls_call SET first_call = (
                caller_number <> '' AND NOT EXISTS (
                    SELECT 1 FROM calls_call AS earlier
                    WHERE earlier.campaign_id = calls_call.campaign_id
                      AND earlier.caller_number = calls_call.caller_number
                      AND earlier.started_at < calls_call.started_at
                )
            )
            WHERE first_call IS NULL
            """
        )
        return cursor.rowcount
