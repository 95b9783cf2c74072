"""Reconciliation: put right what lost or late webhooks left wrong, and keep promises
that need no event (the longest wait). Run by ``manage.py reconcile_calls`` from cron
or as a sidecar loop.

Vonage's events can be lost (VONAGE.md), so a leg can look live here long after it
ended, a call can stay "waiting" or "connected" for ever, and an agent can be left
ringing for a caller who has gone. Reconciliation asks Vonage for each such leg's real
state (``GET /v1/calls/{uuid}``) and applies the answer as a synthetic status event
through :func:`calls.events.event_record`, the webhooks' own path: the same dedupe key,
the same forward-only rule, the same row lock and the same follow-ups (next agent,
fallback, hang-ups). Nothing here writes a leg or a call directly.

Decisions:

- **404**: Vonage no longer knows the leg. Every leg is asked at the host that controls
  it (the caller's ``region_url``; an agent leg at the host that created it, or its own
  ``region_url`` once answered), and only legs older than the threshold are asked, so
  a 404 is not "too early" or "wrong region": the leg is marked ended with a synthetic
  ``completed`` stamped with the time of the run. That end time is an upper bound (the
  leg ended at some point before), and the synthetic event takes the leg's
  ``completed`` dedupe key, so a real ``completed`` arriving later still would be
  treated as a duplicate; Vonage sends nothing more for a call it has forgotten.
- **Dry-run legs** (``dryrun-`` uuids, placed without credentials) were never at
  Vonage: there is nothing to ask and nothing to hang up, and inventing an end for
  them would give the simulator's calls outcomes that never happened. They are left
  alone. A caller waiting on one is still moved on by the longest-wait rule, which
  needs no REST request for a dry-run leg. Without credentials at all (the simulator,
  ``make run``) a run does nothing: it could neither ask about nor move anyone.
- **Orphans**: an agent leg Vonage reports live after its call has moved on (the
  caller is gone, the caller went to the fallback, a later destination is being rung,
  or the agent declined) is hung up; 404 or 400 (already ended) counts as gone.
- **Longest wait**: a conference caller still waiting ``campaign.max_wait_seconds``
  after the call started goes to the fallback with :func:`call_flow.caller_to_fallback`
  (which hangs up ringing agents first) even if no event ever arrives. Its agent legs
  are asked first, so a lost ``answered`` event does not pull a caller out of a
  conversation. A caller whose fallback transfer failed earlier (every destination
  tried, ``fallback_at`` empty) is moved again, and a hunt that stalled (the current
  agent gave up but no next step ran, e.g. the process died in between) advances.
- **Agent never rung**: an attempt claimed (``Call.agent_requested_at``) longer ago than
  the agent-call deadline plus ``AGENT_CALL_GRACE_SECONDS`` with no agent leg: the
  process placing the call died. The attempt is claimed again and its agent rung.

Concurrency: webhooks and other runs may act on the same call at any moment. Event
application locks the call's row; ``call_flow`` claims each step with compare-and-set
on ``Call.attempt`` and ``Call.fallback_at``; REST requests run outside the lock. A
whole run also holds a PostgreSQL advisory lock, so overlapping cron runs skip instead
of piling up. SQLite has no advisory locks: there, overlapping runs both proceed, which
is still safe (its IMMEDIATE transactions serialise writers; the worst case is a
repeated GET or a hang-up answered 404), and SQLite is for development only. The lock
belongs to the database session, so the command needs a session of its own (a direct
connection, or pgbouncer in session mode), not a transaction-pooled one.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from campaigns.models import Campaign, Strategy

from . import call_flow, call_records, events, vonage_adapter
from .leg_progress import DETECTION_STATUSES, STATUS_RANK, TERMINAL_STATUSES, StatusEvent, is_terminal
from .models import Call, CallDirection, CallEvent, CallLeg, CallState, LegRole, NumberStatus, Outcome
from .webhooks import spool

logger = logging.getLogger(__name__)

# Calls loaded per query: a run holds only their ids, and this many calls' rows, at a time.
BATCH_SIZE = 20
# Beyond the agent-call deadline, how long an attempt may go without an agent leg before
# reconcile rings the agent again (the process that claimed it is presumed dead).
AGENT_CALL_GRACE_SECONDS = 10
# pg_try_advisory_lock key for a whole run: any constant that no other code uses
# (the first eight bytes of sha256("callwhisper.reconcile_calls"), as a signed bigint).
ADVISORY_LOCK_KEY = 0x7C26_5C76_2243_F78D
# The statuses of a leg that is still up at Vonage.
LIVE_STATUSES = frozenset({"started", "ringing", "answered"}) | DETECTION_STATUSES
# Marks the events reconciliation applies, in the stored payload (the admin's timeline).
SOURCE_GET = "GET /v1/calls/{uuid}"
SOURCE_NOT_FOUND = "GET /v1/calls/{uuid}: 404"
NO_CREDENTIALS = (
    "Vonage credentials (VONAGE_APPLICATION_ID, VONAGE_PRIVATE_KEY) are not configured, so Vonage cannot be asked."
)


@dataclass(frozen=True)
class LegResult:
    """What reconciling one leg found and did."""

    uuid: str
    checked: bool = False  # Vonage was asked
    vonage_status: str = ""  # what Vonage reported ("" when not asked, or it did not know the leg)
    fixed: bool = False  # our record moved forward from Vonage's answer
    ended: bool = False  # Vonage did not know the leg: marked ended here
    hung_up: bool = False  # an orphaned leg was hung up
    error: str = ""


@dataclass
class ReconcileReport:
    """Counts for one run; ``skipped`` says why a run did nothing."""

    checked: int = 0
    fixed: int = 0
    ended: int = 0
    hung_up: int = 0
    moved_to_fallback: int = 0
    advanced: int = 0
    rung: int = 0  # agents rung again: the process that claimed the attempt never placed it
    errors: int = 0
    adopted: int = 0  # legs whose events, stored before the leg was recorded, were applied
    recorded_late: int = 0  # webhooks received while the database was unreachable, recorded now
    skipped: str = ""  # why nothing was done, when it was not
    dry_run: bool = False
    asked: set[str] = field(default_factory=set, repr=False)  # leg uuids asked this run

    def add(self, result: LegResult) -> None:
        if result.checked:
            self.asked.add(result.uuid)
        self.checked += result.checked
        self.fixed += result.fixed
        self.ended += result.ended
        self.hung_up += result.hung_up
        self.errors += bool(result.error)

    def summary(self) -> str:
        if self.skipped:
            return f"Skipped: {self.skipped}"
        would = "would be " if self.dry_run else ""
        return (
            f"{'Dry run: ' if self.dry_run else ''}Checked {self.checked} leg{'s' * (self.checked != 1)} with Vonage: "
            f"{self.fixed} {would}fixed, {self.ended} {would}marked ended, {self.hung_up} {would}hung up; "
            f"{self.moved_to_fallback} caller{'s' * (self.moved_to_fallback != 1)} {would}moved to the fallback, "
            f"{self.advanced} hunt{'s' * (self.advanced != 1)} {would}advanced; "
            + (f"{self.rung} agent call{'s' * (self.rung != 1)} {would}placed again; " if self.rung else "")
            + (
                f"{self.adopted} leg{'s' * (self.adopted != 1)} given {would}their early events; "
                if self.adopted
                else ""
            )
            + (
                f"{self.recorded_late} webhook{'s' * (self.recorded_late != 1)} from the spool {would}recorded late; "
                if self.recorded_late
                else ""
            )
            + f"{self.errors} error{'s' * (self.errors != 1)}."
        )


# --- legs that look stuck ----------------------------------------------------------------


def stuck_legs(*, older_than: timedelta, now: datetime | None = None) -> QuerySet[CallLeg]:
    """Legs without a final status recorded ``older_than`` ago or earlier, that Vonage
    can be asked about (not dry-run legs), oldest call first."""
    now = now or timezone.now()
    return (
        CallLeg.objects.exclude(status__in=TERMINAL_STATUSES)
        .exclude(uuid__startswith=vonage_adapter.DRY_RUN_PREFIX)
        .filter(created_at__lte=now - older_than)
        .order_by("call_id", "created_at", "id")
    )


def leg_reconcile(leg: CallLeg, *, now: datetime | None = None, dry_run: bool = False) -> LegResult:
    """Ask Vonage for ``leg``'s real state, apply it as a status event, and hang the leg
    up if it is live but its call has moved on. ``dry_run``: ask, change nothing."""
    now = now or timezone.now()
    if leg.uuid.startswith(vonage_adapter.DRY_RUN_PREFIX):
        return LegResult(uuid=leg.uuid)
    adopted = False if dry_run else _early_events_adopt(leg)
    try:
        seen = _observe(leg, now=now, dry_run=dry_run)
    except vonage_adapter.VonageUnavailable as exc:
        logger.warning("reconcile.get_failed call=%s uuid=%s error=%s", leg.call_id, leg.uuid, exc)
        return LegResult(uuid=leg.uuid, checked=True, fixed=adopted, error=str(exc))
    if seen.status not in LIVE_STATUSES or not _orphaned(leg):
        return LegResult(
            uuid=leg.uuid, checked=True, vonage_status=seen.status, fixed=adopted or seen.fixed, ended=seen.ended
        )

    if dry_run:
        return LegResult(uuid=leg.uuid, checked=True, vonage_status=seen.status, fixed=seen.fixed, hung_up=True)
    fixed = adopted or seen.fixed
    try:
        hung_up = _hang_up(leg)
    except vonage_adapter.VonageUnavailable as exc:
        logger.warning("reconcile.hang_up_failed call=%s uuid=%s error=%s", leg.call_id, leg.uuid, exc)
        return LegResult(uuid=leg.uuid, checked=True, vonage_status=seen.status, fixed=fixed, error=str(exc))
    try:
        # Vonage sends the leg's last events now; record its end at once all the same,
        # so the next run finds nothing left to do.
        after = _observe(leg, now=now, dry_run=False)
    except vonage_adapter.VonageUnavailable as exc:
        logger.warning("reconcile.get_failed call=%s uuid=%s error=%s", leg.call_id, leg.uuid, exc)
        return LegResult(
            uuid=leg.uuid, checked=True, vonage_status=seen.status, fixed=fixed, hung_up=hung_up, error=str(exc)
        )
    return LegResult(
        uuid=leg.uuid,
        checked=True,
        vonage_status=after.status or seen.status,
        fixed=fixed or after.fixed,
        ended=after.ended,
        hung_up=hung_up,
    )


@dataclass(frozen=True)
class _Seen:
    status: str  # "" when Vonage did not know the leg
    fixed: bool = False
    ended: bool = False


def _observe(leg: CallLeg, *, now: datetime, dry_run: bool) -> _Seen:
    """GET the leg and apply what Vonage says, when that moves our record forward."""
    try:
        info = vonage_adapter.get_call_info(uuid=leg.uuid, region_url=leg.region_url)
    except vonage_adapter.VonageUnavailable as exc:
        if exc.status_code != 404:
            raise
        current = CallLeg.objects.get(pk=leg.pk)
        if is_terminal(current.status):
            return _Seen(status="")  # a webhook got there first
        logger.info("reconcile.not_found call=%s uuid=%s: marking the leg ended", leg.call_id, leg.uuid)
        if dry_run:
            return _Seen(status="", ended=True)
        receipt = events.event_record(payload=not_found_event(current, now=now))
        return _Seen(status="", ended=receipt.stored)

    status = str(info.get("status") or "")
    current = CallLeg.objects.get(pk=leg.pk)
    if status not in STATUS_RANK and status not in DETECTION_STATUSES:
        logger.warning("reconcile.unknown_status call=%s uuid=%s status=%s", leg.call_id, leg.uuid, status)
        return _Seen(status=status)
    if not _moves_forward(current, status):
        return _Seen(status=status)
    logger.info("reconcile.fix call=%s uuid=%s recorded=%s vonage=%s", leg.call_id, leg.uuid, current.status, status)
    if dry_run:
        return _Seen(status=status, fixed=True)
    receipt = events.event_record(payload=status_event(current, info, now=now))
    return _Seen(status=status, fixed=receipt.stored)


def _moves_forward(leg: CallLeg, status: str) -> bool:
    if status in DETECTION_STATUSES:
        return not leg.machine_detected
    return STATUS_RANK.get(status, -1) > STATUS_RANK.get(leg.status, 0)


def status_event(leg: CallLeg, info: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """Vonage's record of a call (``GET /v1/calls/{uuid}``) as the status event it would
    have posted. The record's ``start_time``/``end_time`` are ``YYYY-MM-DD HH:MM:SS``
    in UTC, kept as Vonage wrote them (the leg's parser reads both forms); the event's
    ``timestamp`` is when that status began, as well as the record tells."""
    status = str(info.get("status") or "")
    start = _record_time(info.get("start_time"))
    end = _record_time(info.get("end_time"))
    if is_terminal(status):
        when = end or now
    elif status == "answered":
        when = start or now
    else:
        # started/ringing: the record has no time for them; the leg was created then.
        when = leg.created_at
    payload: dict[str, Any] = {
        "uuid": leg.uuid,
        "conversation_uuid": str(info.get("conversation_uuid") or leg.conversation_uuid),
        "status": status,
        "direction": str(info.get("direction") or leg.direction),
        "timestamp": vonage_time(when),
        "from": _number(info.get("from")) or leg.from_number,
        "to": _number(info.get("to")) or leg.to_number,
    }
    for key in ("start_time", "end_time", "duration", "price", "rate", "network"):
        if info.get(key) not in (None, ""):
            payload[key] = info[key]
    payload["reconciled"] = SOURCE_GET
    return payload


def not_found_event(leg: CallLeg, *, now: datetime) -> dict[str, Any]:
    """The ``completed`` event for a leg Vonage no longer knows, stamped ``now``."""
    return {
        "uuid": leg.uuid,
        "conversation_uuid": leg.conversation_uuid,
        "status": "completed",
        "direction": leg.direction,
        "timestamp": vonage_time(now),
        "from": leg.from_number,
        "to": leg.to_number,
        "reconciled": SOURCE_NOT_FOUND,
    }


def _early_events_adopt(leg: CallLeg) -> bool:
    """Events stored before their leg was recorded hold the leg's dedupe keys; apply
    them first, or the synthetic event would be refused as their duplicate."""
    status_before = leg.status
    with transaction.atomic():
        if not call_records.events_adopt(call_id=leg.call_id, leg_uuids=[leg.uuid]):
            return False
    leg.refresh_from_db()
    logger.info("reconcile.adopted call=%s uuid=%s status=%s", leg.call_id, leg.uuid, leg.status)
    return leg.status != status_before


def _orphaned(leg: CallLeg) -> bool:
    """An agent leg still up at Vonage that its call no longer needs."""
    if leg.role != LegRole.AGENT:
        return False
    call = Call.objects.get(pk=leg.call_id)
    legs = list(call.legs.all())
    agent = next(each for each in legs if each.pk == leg.pk)
    caller = next((each for each in legs if each.role == LegRole.CALLER), None)
    if call.direction == CallDirection.CALLBACK:
        # A call-back's staff leg is up before its caller leg exists (it hears the
        # whisper, then rings the caller): needless only once the caller's leg ended.
        return call.state == CallState.ENDED or (caller is not None and is_terminal(caller.status))
    # The caller's conversation ends when the caller leaves (endOnExit), and Vonage ends
    # a connect when the caller hangs up: an agent still up after that hears nobody.
    if caller is None or is_terminal(caller.status) or call.state == CallState.ENDED:
        return True
    if call_flow.agent_leg_gives_up(call, agent):
        return True
    if call.strategy != Strategy.CONFERENCE or call.outcome == Outcome.ANSWERED:
        return False
    if call.fallback_at is not None:
        return True
    return agent.attempt is not None and agent.attempt < call.attempt


def _hang_up(leg: CallLeg) -> bool:
    try:
        vonage_adapter.hang_up(uuid=leg.uuid, region_url=leg.region_url)
    except vonage_adapter.VonageUnavailable as exc:
        # VONAGE.md: treat 404 (and 400, "already ended") as already gone.
        if exc.status_code in (400, 404):
            logger.info("reconcile.already_gone call=%s uuid=%s status=%s", leg.call_id, leg.uuid, exc.status_code)
            return False
        raise
    logger.info("reconcile.hung_up call=%s uuid=%s: orphaned agent leg", leg.call_id, leg.uuid)
    return True


# --- callers waiting with nobody coming -----------------------------------------------------


def max_wait_seconds(call: Call) -> int:
    """The campaign's longest wait, or the default for calls without a live campaign."""
    if call.campaign is not None and call.number_status == NumberStatus.TRACKED:
        return call.campaign.max_wait_seconds
    default = Campaign._meta.get_field("max_wait_seconds").default
    return int(default)


def waiting_calls() -> QuerySet[Call]:
    """Conference calls whose caller is, by our records, on hold for an agent.

    The connect strategy is not here: there Vonage rings each destination for
    ``ring_seconds`` and the caller hears ringing, not hold music, then the NCCO ends.
    """
    return (
        Call.objects.filter(state=CallState.WAITING, fallback_at__isnull=True, strategy=Strategy.CONFERENCE)
        .exclude(outcome=Outcome.ANSWERED)
        .select_related("campaign", "tracking_number")
        .order_by("started_at", "id")
    )


def overdue_waits(now: datetime) -> list[Call]:
    """Waiting callers on hold longer than their campaign's longest wait."""
    return [call for call in waiting_calls().filter(started_at__lte=now) if _overdue(call, now)]


def _overdue(call: Call, now: datetime) -> bool:
    return call.started_at + timedelta(seconds=max_wait_seconds(call)) <= now


def _hunt_over(call: Call) -> bool:
    """Every destination was tried but the caller never reached the fallback: the
    transfer failed (``caller_to_fallback`` released its claim for a retry)."""
    return call.attempt >= len(call_flow.destinations_for(call))


def _hunt_stalled(call: Call) -> bool:
    """The agent rung for the current attempt gave up, but no next step was taken."""
    current = [leg for leg in call.legs.filter(role=LegRole.AGENT) if leg.attempt == call.attempt]
    return bool(current) and all(call_flow.agent_leg_gives_up(call, leg) for leg in current)


def _agent_never_rung(call: Call, now: datetime) -> bool:
    """The current attempt's agent call was claimed (or due) long enough ago to have
    been placed, yet no agent leg exists for it: the process placing it died."""
    if call.attempt >= len(call_flow.destinations_for(call)):
        return False
    # A caller queued under the account's limit (calls/pacing.py) is due at ``ring_at``.
    since = call.ring_at or call.agent_requested_at or call.started_at
    if since > now - timedelta(seconds=settings.AGENT_CALL_DEADLINE_SECONDS + AGENT_CALL_GRACE_SECONDS):
        return False
    legs = call.legs.filter(role=LegRole.AGENT)
    return not any(leg.attempt in (call.attempt, None) for leg in legs)


def _ring_again(call: Call, *, now: datetime, dry_run: bool) -> str:
    logger.warning(
        "reconcile.ring call=%s attempt=%s: no agent leg since %s", call.pk, call.attempt, call.agent_requested_at
    )
    if dry_run:
        return "rung"
    claimed = Call.objects.filter(
        pk=call.pk,
        attempt=call.attempt,
        state=CallState.WAITING,
        agent_requested_at=call.agent_requested_at,
        ring_at=call.ring_at,
    ).update(agent_requested_at=now, ring_at=None)
    if not claimed:
        return ""
    # Paced like every new call; this run waits for the slot (its process has no timer to leave it to).
    call_flow.agent_ring(call=Call.objects.with_related().get(pk=call.pk), attempt=call.attempt, wait_for_slot=True)
    return "rung"


def wait_enforce(call: Call, *, now: datetime, report: ReconcileReport, dry_run: bool = False) -> str:
    """Move a caller nobody is coming for: to the fallback after the longest wait or a
    failed transfer, or on to the next destination when the hunt stalled. Returns what
    was done: ``"fallback"``, ``"advanced"``, ``"failed"`` (Vonage refused the transfer;
    the next run tries again) or ``""``."""
    if _overdue(call, now):
        # A lost "answered" must not pull the caller out of a conversation: ask first.
        results = [
            leg_reconcile(leg, now=now, dry_run=dry_run)
            for leg in call.legs.filter(role=LegRole.AGENT).exclude(status__in=TERMINAL_STATUSES)
            if leg.uuid not in report.asked and not leg.uuid.startswith(vonage_adapter.DRY_RUN_PREFIX)
        ]
        for result in results:
            report.add(result)
        if dry_run and any(result.fixed and result.vonage_status == "answered" for result in results):
            return ""  # an agent answered: applied, the caller would be connected
        call = Call.objects.select_related("campaign", "tracking_number").get(pk=call.pk)
        if not _still_waiting(call):
            return ""
        reason = f"the caller waited longer than {max_wait_seconds(call)} s"
        return _to_fallback(call, reason=reason, dry_run=dry_run)
    if _hunt_over(call):
        return _to_fallback(call, reason="retrying the fallback transfer", dry_run=dry_run)
    if _agent_never_rung(call, now):
        return _ring_again(call, now=now, dry_run=dry_run)
    if _hunt_stalled(call):
        logger.info("reconcile.advance call=%s attempt=%s: the agent gave up, no next step ran", call.pk, call.attempt)
        if dry_run:
            return "advanced"
        call_flow.advance(call_id=call.pk, from_attempt=call.attempt, reason="agent gave up (reconcile)")
        after = Call.objects.get(pk=call.pk)
        if after.fallback_at is not None:
            return "fallback"
        return "advanced" if after.attempt > call.attempt else ""
    return ""


def _still_waiting(call: Call) -> bool:
    return (
        call.state == CallState.WAITING
        and call.fallback_at is None
        and call.outcome != Outcome.ANSWERED
        and not call.legs.filter(role=LegRole.CALLER, status__in=TERMINAL_STATUSES).exists()
    )


def _to_fallback(call: Call, *, reason: str, dry_run: bool) -> str:
    logger.info("reconcile.fallback call=%s reason=%s", call.pk, reason)
    if dry_run:
        return "fallback"
    if call_flow.caller_to_fallback(call_id=call.pk, reason=reason):
        return "fallback"
    after = Call.objects.get(pk=call.pk)
    if after.fallback_at is None and after.state == CallState.WAITING:
        return "failed"  # caller_to_fallback released its claim: Vonage refused the transfer
    return ""


# --- a whole run ----------------------------------------------------------------------------


def reconcile(*, older_than: timedelta, now: datetime | None = None, dry_run: bool = False) -> ReconcileReport:
    """One run: stuck legs first (their answers can end a wait), then waiting callers.

    A call that fails is logged with its id and counted as an error; the run goes on.
    """
    now = now or timezone.now()
    report = ReconcileReport(dry_run=dry_run)
    if not vonage_adapter.credentials_configured():
        # Calls placed without credentials are dry runs: Vonage can be neither asked
        # about them nor asked to move anyone.
        report.skipped = NO_CREDENTIALS
        logger.info("reconcile.skipped reason=no_credentials")
        return report
    with _run_lock(dry_run=dry_run) as acquired:
        if not acquired:
            logger.info("reconcile.skipped reason=locked")
            report.skipped = "another reconcile_calls run is in progress."
            return report
        if not dry_run:
            _spool_replay(report=report)
            _early_events_everywhere_adopt(report=report)
        _stuck_legs_reconcile(older_than=older_than, now=now, report=report, dry_run=dry_run)
        _waits_enforce(now=now, report=report, dry_run=dry_run)
        _queued_connects_enforce(now=now, report=report, dry_run=dry_run)
    logger.info(
        "reconcile.done checked=%s fixed=%s ended=%s hung_up=%s moved_to_fallback=%s advanced=%s errors=%s dry_run=%s",
        report.checked,
        report.fixed,
        report.ended,
        report.hung_up,
        report.moved_to_fallback,
        report.advanced,
        report.errors,
        dry_run,
    )
    return report


def _spool_replay(*, report: ReconcileReport) -> None:
    """Record what the webhooks received while the database was unreachable (spool)."""
    try:
        report.recorded_late += spool.replay()
    except Exception:
        logger.exception("reconcile.spool_replay_failed")
        report.errors += 1


def _early_events_everywhere_adopt(*, report: ReconcileReport) -> None:
    """Events stored before their leg was recorded, for finished legs (a leg recorded by
    a route, or a process, that did not adopt them); a leg without a final status has
    them adopted by ``leg_reconcile`` before Vonage is asked."""
    waiting = CallEvent.objects.filter(leg__isnull=True).exclude(leg_uuid="").values("leg_uuid")
    finished = CallLeg.objects.filter(uuid__in=waiting, status__in=TERMINAL_STATUSES)
    for leg_uuid in finished.values_list("uuid", flat=True):
        try:
            events.leg_events_adopt(leg_uuid)
        except Exception:
            logger.exception("reconcile.adopt_failed uuid=%s", leg_uuid)
            report.errors += 1
            continue
        logger.info("reconcile.adopted_events uuid=%s", leg_uuid)
        report.adopted += 1


def _stuck_legs_reconcile(*, older_than: timedelta, now: datetime, report: ReconcileReport, dry_run: bool) -> None:
    call_ids = list(stuck_legs(older_than=older_than, now=now).values_list("call_id", flat=True).distinct())
    for batch in _batches(sorted(set(call_ids))):
        legs_by_call: dict[int, list[CallLeg]] = {}
        for leg in stuck_legs(older_than=older_than, now=now).filter(call_id__in=batch):
            legs_by_call.setdefault(leg.call_id, []).append(leg)
        for call_id in batch:
            # The caller first: whether an agent leg is orphaned depends on the caller.
            legs = sorted(legs_by_call.get(call_id, []), key=lambda leg: (leg.role != LegRole.CALLER, leg.created_at))
            try:
                for leg in legs:
                    result = leg_reconcile(leg, now=now, dry_run=dry_run)
                    report.add(result)
                    if result.error and leg.role == LegRole.CALLER:
                        break  # Vonage cannot tell us about this call now: the next run asks again
            except Exception:
                logger.exception("reconcile.call_failed call=%s", call_id)
                report.errors += 1


def _waits_enforce(*, now: datetime, report: ReconcileReport, dry_run: bool) -> None:
    call_ids = list(waiting_calls().filter(started_at__lte=now).values_list("id", flat=True))
    for batch in _batches(call_ids):
        for call in waiting_calls().filter(pk__in=batch):
            try:
                done = wait_enforce(call, now=now, report=report, dry_run=dry_run)
            except Exception:
                logger.exception("reconcile.wait_failed call=%s", call.pk)
                report.errors += 1
                continue
            if done == "fallback":
                report.moved_to_fallback += 1
            elif done == "advanced":
                report.advanced += 1
            elif done == "rung":
                report.rung += 1
            elif done == "failed":
                report.errors += 1


def queued_connects(now: datetime) -> QuerySet[Call]:
    """Connect-strategy callers held under the account's call limit (calls/pacing.py) whose
    time passed unrung: the process holding the timer died. (Conference callers are in
    :func:`waiting_calls`, whose "agent never rung" rule reads ``ring_at`` too.)"""
    overdue = now - timedelta(seconds=settings.AGENT_CALL_DEADLINE_SECONDS + AGENT_CALL_GRACE_SECONDS)
    return (
        Call.objects.filter(
            strategy=Strategy.CONNECT, state=CallState.WAITING, fallback_at__isnull=True, ring_at__lte=overdue
        )
        .select_related("campaign", "tracking_number")
        .order_by("ring_at", "id")
    )


def _queued_connects_enforce(*, now: datetime, report: ReconcileReport, dry_run: bool) -> None:
    from . import agent_dispatch

    for call in queued_connects(now):
        try:
            if _overdue(call, now):
                logger.info("reconcile.fallback call=%s reason=held past the longest wait", call.pk)
                report.moved_to_fallback += 1
                if not dry_run:
                    agent_dispatch.connect_caller_to_fallback(call)
                continue
            logger.warning("reconcile.ring call=%s attempt=%s: held since %s", call.pk, call.attempt, call.ring_at)
            report.rung += 1
            if not dry_run and call.ring_at is not None:
                agent_dispatch.ring_when_due(
                    call_id=call.pk, attempt=call.attempt, ring_at=call.ring_at, wait_for_slot=True
                )
        except Exception:
            logger.exception("reconcile.queued_failed call=%s", call.pk)
            report.errors += 1


def _batches(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), BATCH_SIZE):
        yield ids[start : start + BATCH_SIZE]


@contextmanager
def _run_lock(*, dry_run: bool) -> Iterator[bool]:
    """PostgreSQL: a session advisory lock, so an overlapping run skips. A dry run
    changes nothing and takes no lock. SQLite has none (see the module's docstring)."""
    if dry_run or connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])


# --- small helpers ----------------------------------------------------------------------------


def vonage_time(moment: datetime) -> str:
    """A webhook's timestamp: ISO 8601 in UTC with milliseconds and a ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _record_time(value: Any) -> datetime | None:
    return StatusEvent.from_payload({"timestamp": value}).timestamp


def _number(endpoint: Any) -> str:
    if isinstance(endpoint, dict):
        return str(endpoint.get("number") or "")[:32]
    return str(endpoint or "")[:32]
