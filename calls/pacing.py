"""Pacing new outbound calls under the account's limit, across every process and server.

Vonage allows an account about 3 new outbound calls per second, counting REST
create-calls *and* ``connect`` actions inside calls (VONAGE.md); beyond that it answers
429 (a ``connect`` gets an event instead), and a direct ``connect`` is no escape. A TV
spot brings dozens of callers in a second, so agent calls (and the connect strategy's
``connect``) are paced: each new outbound call first claims the account's next free
send time, ``VONAGE_CALLS_PER_SECOND`` apart from the previous claim.

The send times live in one database row (:class:`~calls.models.CallPacer`), because any
webhook may land on any process or server and nothing is kept in process memory. A
claim is one atomic statement::

    UPDATE calls_callpacer
       SET next_free_us = max(next_free_us, now) + interval
     RETURNING next_free_us

On PostgreSQL the row lock orders concurrent claims (a waiting UPDATE re-reads the row
its predecessor wrote); SQLite serialises writers. So claims are handed out in arrival
order, each at least ``1 / VONAGE_CALLS_PER_SECOND`` seconds after the previous one,
and the first call after a quiet spell goes at once. Claim outside a long transaction:
the row stays locked until the claiming transaction ends.

Times are this process's clock (``timezone.now``), like every other time the app
records; servers sharing a database are expected to keep NTP time, and a few
milliseconds of skew move a claim by as much.

A caller whose slot is later than now waits on hold (the conference strategy's hold, or
a hold the connect strategy answers with instead of its ``connect``), the slot is kept
on the call (``Call.ring_at``), and :func:`run_at` runs the ringing when it comes, on a
timer thread of this process. If the process dies first, ``reconcile_calls`` rings the
caller once the slot is overdue (``Call.ring_at`` is the durable record).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .models import CallPacer

logger = logging.getLogger(__name__)

PACER_ID = 1
# A slot this close to now is taken as now: the request itself takes longer than that.
DUE_TOLERANCE = timedelta(milliseconds=20)
# Back-off after Vonage answered 429 for a caller: 1, 2, 4, then 8 s at most.
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 8.0


@dataclass(frozen=True)
class Slot:
    """A send time claimed for one new outbound call."""

    at: datetime  # the call may be sent from then on
    claimed_at: datetime  # when it was claimed

    @property
    def delay(self) -> timedelta:
        return max(self.at - self.claimed_at, timedelta(0))

    @property
    def due(self) -> bool:
        """Nobody is ahead: the call goes now."""
        return self.delay <= DUE_TOLERANCE

    @property
    def position(self) -> int:
        """The caller's place in line: 1 when due, 2 with one call to be sent before, and so on."""
        rate = calls_per_second()
        if rate <= 0 or self.due:
            return 1
        return 1 + math.ceil(self.delay.total_seconds() * rate - 1e-6)


def calls_per_second() -> float:
    return float(settings.VONAGE_CALLS_PER_SECOND or 0)


def pacing_on() -> bool:
    return calls_per_second() > 0


def late(due_at: datetime, *, now: datetime | None = None) -> bool:
    """A call sent now, for a slot ``due_at``, would crowd the calls paced after it: the
    process stalled (CPU, a cold start) for more than half an interval past its slot."""
    rate = calls_per_second()
    if rate <= 0:
        return False
    return (now or timezone.now()) - due_at > timedelta(seconds=0.5 / rate)


def backoff_seconds(refusals: int) -> float:
    """How long a caller's next try waits after Vonage's ``refusals``-th 429 for it."""
    return min(BACKOFF_FIRST_SECONDS * 2 ** max(refusals - 1, 0), BACKOFF_MAX_SECONDS)


def slot_claim(*, not_before: datetime | None = None, now: datetime | None = None) -> Slot:
    """Claim the account's next free send time for one new outbound call: the earliest
    moment at or after ``not_before`` (default: now) that is at least one interval after
    every earlier claim. Without pacing (``VONAGE_CALLS_PER_SECOND`` 0), now."""
    now = now or timezone.now()
    earliest = max(now, not_before or now)
    rate = calls_per_second()
    if rate <= 0:
        return Slot(at=earliest, claimed_at=now)
    interval_us = max(round(1_000_000 / rate), 1)
    earliest_us = _epoch_us(earliest)
    table = connection.ops.quote_name(CallPacer._meta.db_table)
    sql = (
        f"UPDATE {table} SET next_free_us = "  # noqa: S608 - our own table name
        "CASE WHEN next_free_us > %s THEN next_free_us ELSE %s END + %s WHERE id = %s RETURNING next_free_us"
    )
    for _ in range(2):
        # One statement, atomic by itself: no savepoint around it inside a caller's transaction.
        with connection.cursor() as cursor:
            cursor.execute(sql, [earliest_us, earliest_us, interval_us, PACER_ID])
            row = cursor.fetchone()
        if row is not None:
            at = _from_epoch_us(int(row[0]) - interval_us)
            if at > earliest:
                logger.info("pacing.queued wait_ms=%d", (at - now).total_seconds() * 1000)
            return Slot(at=at, claimed_at=now)
        # The row is made by the migration; a flushed database (a test) lost it.
        CallPacer.objects.get_or_create(pk=PACER_ID)
    raise RuntimeError("The call pacer's row could not be created.")


def _epoch_us(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_epoch_us(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


# --- running the ringing when a slot comes -------------------------------------------------


class _Timers:
    """One thread per process that runs jobs at their time, earliest first (arrival
    order for equal times). A job must be short: it hands the work to a pool."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="call-pacing", daemon=True)
        self._thread.start()

    def add(self, when: float, job: Callable[[], None]) -> None:
        with self._ready:
            heapq.heappush(self._heap, (when, next(self._order), job))
            self._ready.notify()

    def pending(self) -> int:
        with self._ready:
            return len(self._heap)

    def _loop(self) -> None:
        while True:
            with self._ready:
                while not self._heap or self._heap[0][0] > time.time():
                    timeout = self._heap[0][0] - time.time() if self._heap else None
                    self._ready.wait(timeout)
                _, _, job = heapq.heappop(self._heap)
            try:
                job()
            except Exception:
                logger.exception("pacing.job_failed")


_timers: tuple[int, _Timers] | None = None
_timers_lock = threading.Lock()


def _process_timers() -> _Timers:
    """Made on first use in each process (after gunicorn forks its workers)."""
    global _timers
    with _timers_lock:
        if _timers is None or _timers[0] != os.getpid():
            _timers = (os.getpid(), _Timers())
        return _timers[1]


def run_at(when: datetime, job: Callable[[], None]) -> None:
    """Run ``job`` at ``when`` (at once if it is past) on this process's timer thread."""
    _process_timers().add(when.timestamp(), job)


def pending_jobs() -> int:
    """Jobs waiting for their time in this process."""
    return _process_timers().pending() if _timers is not None else 0
