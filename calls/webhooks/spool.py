"""What the webhooks received while the database was unreachable, kept on local disk
until it can be recorded.

While PostgreSQL is away the answer routes still answer (the caller is put straight
through, the agent is told: ``database_outage``) and the event route answers 503, but
nothing can be written: a call answered then would be missing from history and reports.
So each web process appends what it received to a file of its own in
``WEBHOOK_SPOOL_DIR`` (JSON lines, one per request, ``fsync``'d before the answer
leaves), and ``reconcile_calls`` records the spooled requests once the database is
back (:func:`replay`), each through the same idempotent writes as the webhooks: a
caller's leg is unique per ``uuid`` and an event per dedupe key, so a request replayed
twice (a replay interrupted and run again) or also recorded by Vonage's own retry is
recorded once. Calls so recorded are marked ``recorded_late``.

Files are taken by renaming them; a writer holds ``flock`` on its file while it appends
and checks, under the lock, that the path still names the file it opened, so nothing is
appended to a file already taken (it then writes a new one).
"""

import fcntl
import json
import logging
import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from . import overload

logger = logging.getLogger(__name__)

SUFFIX = ".jsonl"
TAKEN = ".replaying"
# The routes whose requests are spooled, as written in a record's "route".
CALLER_ANSWER, AGENT_ANSWER, EVENT, CHECKPOINT = "answer_inbound", "answer_outbound", "event", "checkpoint"


def write(
    *,
    route: str,
    payload: dict[str, Any],
    query: dict[str, Any],
    answered: Any = None,
    reason: str = "",
    level: int = logging.WARNING,
) -> bool:
    """Append one received request to this process's spool file; False when there is
    no spool or it could not be written (logged: the request is then lost, as before).
    ``reason``: why it was answered without the database, when not an outage (a shed
    answer, calls/webhooks/overload.py); the call's record says it. ``level``: of the
    line saying it was kept (a shed caller's events: DEBUG, its answer said so once)."""
    directory = settings.WEBHOOK_SPOOL_DIR
    if not directory:
        return False
    record = {
        "route": route,
        "received_at": timezone.now().isoformat(),
        "payload": payload,
        "query": query,
        "answered": answered,
    }
    if reason:
        record["reason"] = reason
    line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
    path = os.path.join(directory, f"{socket.gethostname()}-{os.getpid()}{SUFFIX}")
    try:
        try:
            _append(path, line)
        except FileNotFoundError:  # the first write: no directory yet
            os.makedirs(directory, exist_ok=True)
            _append(path, line)
    except OSError:
        logger.exception("spool.write_failed route=%s uuid=%s", route, payload.get("uuid"))
        return False
    logger.log(
        level,
        "spool.written route=%s uuid=%s: to be recorded by reconcile_calls%s",
        route,
        payload.get("uuid"),
        "" if reason else " once the database is back",
    )
    return True


def _append(path: str, line: bytes) -> None:
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if not current:
                continue  # taken by a replay meanwhile: write a new file
            os.write(fd, line)
            os.fsync(fd)
            return
        finally:
            os.close(fd)  # and the lock with it


def replay() -> int:
    """Record every spooled request; return how many recorded something new. A file is
    deleted once all its requests were recorded; one that fails is kept (renamed) and
    taken again by the next run."""
    directory = settings.WEBHOOK_SPOOL_DIR
    if not directory or not os.path.isdir(directory):
        return 0
    recorded = 0
    for name in sorted(os.listdir(directory)):
        path = Path(directory) / name
        if name.endswith(SUFFIX):
            taken = path.with_name(name + TAKEN)
            try:
                path.rename(taken)
            except FileNotFoundError:
                continue
        elif name.endswith(SUFFIX + TAKEN):
            taken = path
        else:
            continue
        records = _read(taken)
        # Answers first: an event finds the leg its call's answer records.
        records.sort(key=lambda record: (record.get("route") == EVENT, str(record.get("received_at"))))
        for record in records:
            recorded += record_late(record)
        taken.unlink()
        logger.info("spool.replayed file=%s requests=%s", name, len(records))
    return recorded


def _read(path: Path) -> list[dict[str, Any]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a write in progress finishes first
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read()
    finally:
        os.close(fd)
    records = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            # A line cut short by a crash mid-write: that request was not answered either.
            logger.warning("spool.torn_line file=%s", path.name)
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def record_late(record: dict[str, Any]) -> bool:
    """Record one spooled request through the webhooks' own writes; True if it recorded
    something that was not recorded yet."""
    from .. import agent_dispatch, events, services

    route = record.get("route")
    payload: dict[str, Any] = record["payload"] if isinstance(record.get("payload"), dict) else {}
    query: dict[str, Any] = record["query"] if isinstance(record.get("query"), dict) else {}
    received_at = _when(record.get("received_at"))
    call_id, attempt = _int(query.get("call")), _int(query.get("attempt"))
    answered: list[dict[str, Any]] = record["answered"] if isinstance(record.get("answered"), list) else []
    if route == CALLER_ANSWER:
        call = services.call_record_late(
            uuid=str(payload.get("uuid") or "")[:64],
            to=str(payload.get("to") or ""),
            from_=str(payload.get("from") or ""),
            conversation_uuid=str(payload.get("conversation_uuid") or "")[:64],
            region_url=str(payload.get("region_url") or ""),
            ncco=answered,
            received_at=received_at,
            reason=str(record.get("reason") or ""),
        )
        # A shed caller's later events find the call now: recorded as they come.
        overload.conversation_shed_forget(str(payload.get("conversation_uuid") or ""))
        return call is not None
    if route == AGENT_ANSWER and call_id is not None:
        return services.agent_leg_record_late(
            call_id=call_id,
            uuid=str(payload.get("uuid") or "")[:64],
            conversation_uuid=str(payload.get("conversation_uuid") or "")[:64],
            region_url=str(payload.get("region_url") or ""),
            attempt=attempt,
        )
    if route == CHECKPOINT and call_id is not None:
        return agent_dispatch.notify_record_late(call_id=call_id, body=payload)
    if route == EVENT:
        return events.event_record(payload=payload, call_id=call_id, attempt=attempt).stored
    logger.warning("spool.unknown_record route=%s", route)
    return False


def _when(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return timezone.now()
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
