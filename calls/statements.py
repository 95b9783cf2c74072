"""The hot path's hand-written SQL, in one place.

Every webhook runs a few statements; the ORM's compiler and model machinery cost more
CPU than the statements themselves, so the paths that run for every call build their
SQL once per process, from the models' own metadata (the models stay the source of
truth for the schema: a renamed column changes the SQL here with it), and pass every
value as a parameter. The same SQL runs on PostgreSQL and SQLite (3.35+: ``RETURNING``
and ``ON CONFLICT``).
"""

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from campaigns.models import RoutesVersion
from campaigns.routing import ROUTES_VERSION_ID

from .models import BlockedCaller, Call, CallEvent, CallLeg, SignedWebhook

M = TypeVar("M", bound=models.Model)


def insert_or_skip(instance: models.Model, *, unique: str) -> int | None:
    """Insert ``instance`` in one statement, unless a row with the same ``unique`` value
    exists. Returns the new row's id (also set on ``instance``), or None when skipped.
    In autocommit this is the whole transaction: one round trip."""
    row_id = _insert_or_skip(type(instance), instance, unique=unique)
    if row_id is not None:
        instance.pk = row_id
        instance._state.adding = False
    return row_id


class _Row:
    """A row's values by attname: what :func:`db_values` reads from an instance."""


# Instances and the names of their fields to save (``save_fields``).
Saves = Sequence[tuple[models.Model, Sequence[str]]]


def row_insert_or_skip(model: type[models.Model], *, unique: str, then_save: Saves = (), **values: Any) -> int | None:
    """:func:`insert_or_skip` for ``model(**values)`` given by attnames (``call_id``, not
    ``call``), without building the instance, which nothing reads afterwards: a field
    not given takes its default, as in ``Model.__init__``. Returns the new row's id, or
    None when skipped.

    ``then_save``: instances whose fields are saved (:func:`save_fields`) only when the
    row is inserted. On PostgreSQL in the same statement (the inserted row gates the
    updates, data-modifying CTEs: one round trip where there were up to three); elsewhere
    one statement after another, as before."""
    row = _Row()
    for field in _insert_fields(model):
        setattr(row, field.attname, values.pop(field.attname) if field.attname in values else field.get_default())
    if values:
        raise TypeError(f"{model.__name__} has no field named {', '.join(sorted(values))}")
    saves = [(instance, tuple(sorted(names))) for instance, names in then_save if names]
    database = connections[DEFAULT_DB_ALIAS]
    if database.vendor != "postgresql" or not saves:
        row_id = _insert_or_skip(model, row, unique=unique)
        if row_id is not None:
            for instance, names in saves:
                save_fields(instance, names)
        return row_id
    backend = _backend(database)
    params = db_values(row, _insert_plan(model, backend), database, add=True)
    for instance, names in saves:
        params += db_values(instance, _update_plan(type(instance), names, backend), database, add=False)
        params.append(instance.pk)
    shape = tuple((type(instance), names) for instance, names in saves)
    with database.cursor() as cursor:
        cursor.execute(_insert_then_update_sql(model, unique, shape), params)
        found = cursor.fetchone()
    return None if found is None else int(found[0])


def _insert_or_skip(model: type[models.Model], row: Any, *, unique: str) -> int | None:
    database = connections[DEFAULT_DB_ALIAS]
    params = db_values(row, _insert_plan(model, _backend(database)), database, add=True)
    with database.cursor() as cursor:
        cursor.execute(_insert_or_skip_sql(model, unique, database.vendor), params)
        found = cursor.fetchone()
    return None if found is None else int(found[0])


@cache
def _insert_then_update_sql(
    model: type[models.Model], unique: str, saves: tuple[tuple[type[models.Model], tuple[str, ...]], ...]
) -> str:
    """PostgreSQL: the insert, then each update only if the insert took place. Every
    part of one statement sees the same snapshot; the updates touch other tables."""
    updates = "".join(
        f", u{index} AS ({_update_sql(saved, names)} AND EXISTS (SELECT 1 FROM inserted))"  # noqa: S608
        for index, (saved, names) in enumerate(saves)
    )
    return f"WITH inserted AS ({_insert_or_skip_sql(model, unique, 'postgresql')}){updates} SELECT * FROM inserted"  # noqa: S608


def insert_or_existing(instance: M, *, unique: str) -> tuple[M, bool]:
    """``instance`` inserted (:func:`insert_or_skip`), or, when a row with the same
    ``unique`` value exists (another transaction wrote it first), that row, read back:
    (the row, whether it was inserted here)."""
    if insert_or_skip(instance, unique=unique) is not None:
        return instance, True
    model = type(instance)
    return model._default_manager.get(**{unique: getattr(instance, unique)}), False


def _insert_fields(model: type[models.Model]) -> list[models.Field]:  # type: ignore[type-arg]
    return [field for field in model._meta.concrete_fields if not field.primary_key]


# --- values as the ORM sends them -------------------------------------------------------

# How a field's value becomes a statement's parameter (:func:`db_values`).
CONVERT, AS_IS, AWARE_AS_IS = 0, 1, 2
# Field classes whose value of exactly the given type (or None) ``get_db_prep_save``
# sends unchanged on every backend, but for IntegerField's ``adapt_integerfield_value``
# (psycopg's sized integers on PostgreSQL).
_STRING_FIELDS = (models.CharField, models.TextField, models.SlugField, models.URLField, models.EmailField)
_INTEGER_FIELDS = (
    models.IntegerField,
    models.BigIntegerField,
    models.SmallIntegerField,
    models.PositiveIntegerField,
    models.PositiveSmallIntegerField,
    models.PositiveBigIntegerField,
)
_AUTO_FIELDS = (models.AutoField, models.BigAutoField, models.SmallAutoField)


# (attname, field, CONVERT/AS_IS/AWARE_AS_IS, the value's types sent as they are, what
# wraps such a value first or None). A plain tuple: a NamedTuple, a tuple subclass,
# misses the interpreter's fast unpacking, which costs 0.4 % of a call's instructions.
PlanStep = tuple[str, "models.Field[Any, Any]", int, tuple[type, ...], Any]


# A plan holds for a backend's operations class and vendor (not for one connection:
# each thread has its own).
Backend = tuple[type, str]


def _backend(database: BaseDatabaseWrapper) -> Backend:
    return type(database.ops), database.vendor


def _step(field: "models.Field[Any, Any]", backend: Backend) -> PlanStep:
    """How ``field``'s value is sent: as it is (or wrapped as the backend wraps it) when
    its type is one the field leaves unchanged, else through the field's own
    ``pre_save`` and ``get_db_prep_save``."""
    kind = type(field)
    if kind in _STRING_FIELDS:
        return (field.attname, field, AS_IS, (str,), None)
    if kind is models.BooleanField:
        return (field.attname, field, AS_IS, (bool,), None)
    if kind in _INTEGER_FIELDS:
        wrap = getattr(backend[0], "integerfield_type_map", {}).get(field.get_internal_type())
        return (field.attname, field, AS_IS, (int,), wrap)
    if kind in _AUTO_FIELDS:
        return (field.attname, field, AS_IS, (int,), None)  # AutoFieldMixin: no adapt_integerfield_value
    if isinstance(field, models.ForeignKey) and kind is models.ForeignKey and type(field.target_field) in _AUTO_FIELDS:
        return (field.attname, field, AS_IS, (int,), None)  # the related row's id, as its AutoField sends it
    if (
        isinstance(field, models.DateTimeField)
        and kind is models.DateTimeField
        and backend[1] == "postgresql"
        and not (field.auto_now or field.auto_now_add)
    ):
        return (field.attname, field, AWARE_AS_IS, (datetime,), None)  # adapt_datetimefield_value: as is
    return (field.attname, field, CONVERT, (), None)


@cache
def _insert_plan(model: type[models.Model], backend: Backend) -> tuple[PlanStep, ...]:
    return tuple(_step(field, backend) for field in _insert_fields(model))


@cache
def _update_plan(model: type[models.Model], names: tuple[str, ...], backend: Backend) -> tuple[PlanStep, ...]:
    return tuple(_step(model._meta.get_field(name), backend) for name in names)  # type: ignore[arg-type]


def db_values(instance: Any, plan: tuple[PlanStep, ...], database: BaseDatabaseWrapper, *, add: bool) -> list[Any]:
    """The parameters the ORM would send for the plan's fields of ``instance``
    (``field.get_db_prep_save(field.pre_save(instance, add))``), without running that
    chain of calls for the values it leaves unchanged: a string in a ``CharField``, an
    int in an ``IntegerField``, an aware datetime on PostgreSQL. A new call's insert
    sends about forty values (tests/calls/test_statement_values.py holds the two equal)."""
    values: list[Any] = []
    for attname, field, kind, types, wrap in plan:
        if kind != CONVERT:
            value = getattr(instance, attname)
            if value is None:
                values.append(None)
                continue
            if type(value) in types and (kind == AS_IS or value.utcoffset() is not None):
                values.append(value if wrap is None else wrap(value))
                continue
        values.append(field.get_db_prep_save(field.pre_save(instance, add), database))
    return values


@cache
def _insert_or_skip_sql(model: type[models.Model], unique: str, vendor: str) -> str:
    quote = connection.ops.quote_name
    fields = _insert_fields(model)
    # Identifiers from the model, quoted; every value is a parameter.
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(str(f.column)) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({_column(model, unique)}) DO NOTHING RETURNING {_column(model, 'pk')}"
    )


def _column(model: type[models.Model], name: str) -> str:
    """The quoted column of field ``name`` (or ``pk``)."""
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    return connection.ops.quote_name(str(getattr(field, "column", "")))


def save_fields(instance: models.Model, fields: list[str] | tuple[str, ...]) -> None:
    """``instance.save(update_fields=fields)`` in one written-out ``UPDATE``: the same
    statement, without compiling it (or sending ``pre_save``/``post_save``: no model on
    the hot path listens to them)."""
    if not fields:
        return
    model = type(instance)
    names = tuple(sorted(fields))
    database = connections[DEFAULT_DB_ALIAS]
    params = db_values(instance, _update_plan(model, names, _backend(database)), database, add=False)
    with database.cursor() as cursor:
        cursor.execute(_update_sql(model, names), [*params, instance.pk])


def save_fields_together(saves: Saves) -> None:
    """:func:`save_fields` for each instance, in one statement on PostgreSQL (the first
    updates as data-modifying CTEs, the last as the statement itself: one round trip
    where there were several); elsewhere, or for the same row twice (PostgreSQL leaves
    which of two updates of one row wins undefined), one statement after another."""
    named = [(instance, tuple(sorted(names))) for instance, names in saves if names]
    database = connections[DEFAULT_DB_ALIAS] if len(named) > 1 else None
    rows = {(type(instance), instance.pk) for instance, _ in named}
    if database is None or database.vendor != "postgresql" or len(rows) < len(named):
        for instance, names in named:
            save_fields(instance, names)
        return
    backend = _backend(database)
    params: list[Any] = []
    for instance, names in named:
        params += db_values(instance, _update_plan(type(instance), names, backend), database, add=False)
        params.append(instance.pk)
    with database.cursor() as cursor:
        cursor.execute(_updates_together_sql(tuple((type(instance), names) for instance, names in named)), params)


@cache
def _updates_together_sql(saves: tuple[tuple[type[models.Model], tuple[str, ...]], ...]) -> str:
    *first, (last, names) = saves
    updates = ", ".join(f"u{index} AS ({_update_sql(saved, fields)})" for index, (saved, fields) in enumerate(first))
    return f"WITH {updates} {_update_sql(last, names)}"


@cache
def _update_sql(model: type[models.Model], names: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{_column(model, name)} = %s" for name in names)
    return f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {_column(model, 'pk')} = %s"  # noqa: S608


# The routes' version (calls/route_cache.py), as a scalar subquery.
_ROUTES_VERSION = f"(SELECT version FROM {RoutesVersion._meta.db_table} WHERE id = {ROUTES_VERSION_ID})"  # noqa: S608


def rows_to_instances(
    model: type[M], rows: list[tuple[Any, ...]], *, offset: int = 0, database: BaseDatabaseWrapper | None = None
) -> list[M]:
    """Model instances from the ``len(concrete_fields)`` columns at ``offset`` of each row
    (a row whose primary key there is NULL, an outer join's empty side, is skipped),
    each value converted as the ORM converts it (SQLite's datetimes, JSON, decimals)."""
    if database is None:  # once: each read through django.db.connection's proxy looks it up
        database = connections[DEFAULT_DB_ALIAS]
    names, converters = _converters(model, database.vendor)
    width = len(names)
    alias = database.alias
    # Model.__init__ sets each field through setattr (a call's 35 cost more than reading
    # its row); with nobody listening to pre_init or post_init, the instance it builds is
    # its __dict__ and a ModelState, which are set here directly. Otherwise from_db.
    direct = not (pre_init.receivers or post_init.receivers)
    instances = []
    for row in rows:
        if row[offset] is None:
            continue
        values = list(row[offset : offset + width])
        for index, column, field_converters in converters:
            for convert in field_converters:
                values[index] = convert(values[index], column, database)
        if direct:
            instance = model.__new__(model)
            instance.__dict__.update(zip(names, values, strict=True))
            instance._state = ModelState()
            instance._state.adding = False
            instance._state.db = alias
        else:
            instance = model.from_db(alias, names, values)
        instances.append(instance)
    return instances


@cache
def _converters(model: type[models.Model], vendor: str) -> tuple[list[str], list[tuple[int, Any, list[Any]]]]:
    """The field names, and (index, column, converters) for each field whose values need one."""
    fields = model._meta.concrete_fields
    names = [field.attname for field in fields]
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if found:
            converters.append((index, column, found))
    return names, converters


def columns(model: type[models.Model], table_alias: str) -> str:
    """``alias.col1, alias.col2, …`` for every concrete field, in the model's order."""
    quote = connection.ops.quote_name
    return ", ".join(f"{table_alias}.{quote(str(field.column))}" for field in model._meta.concrete_fields)


def call_and_legs(*, leg_uuid: str, call_id: int | None, lock: bool = True) -> tuple[Call | None, list[CallLeg]]:
    """The call that owns leg ``leg_uuid`` (else the call ``call_id``), its row locked
    for the rest of the transaction (PostgreSQL), and its legs in the order they were
    created: one statement."""
    if not leg_uuid and call_id is None:
        return None, []
    call, legs, _ = _call_and_legs_read(
        _call_and_legs_sql(lock and connection.features.has_select_for_update_of, "nothing"), [leg_uuid, call_id]
    )
    return call, legs


def call_and_legs_admitting(
    *, leg_uuid: str, call_id: int | None, jti: str, digest: str
) -> tuple[Call | None, list[CallLeg], bool | None]:
    """:func:`call_and_legs` (locked), and the request's signature ``jti`` remembered
    (calls/webhooks/replay.py) in the same statement, inside the webhook's transaction:
    whether this statement remembered it (False: it was seen before), or None when no
    call was found to tell (the insert happened or not all the same). PostgreSQL; on
    SQLite, which has no ``INSERT`` in ``WITH``, the insert then the read."""
    now = timezone.now()
    database = connections[DEFAULT_DB_ALIAS]
    if database.vendor != "postgresql" or (not leg_uuid and call_id is None):
        admitted = row_insert_or_skip(SignedWebhook, unique="jti", jti=jti, digest=digest, received_at=now)
        call, legs = call_and_legs(leg_uuid=leg_uuid, call_id=call_id)
        return call, legs, admitted is not None
    call, legs, first = _call_and_legs_read(
        _call_and_legs_sql(database.features.has_select_for_update_of, "admitted"),
        [jti, digest, now, leg_uuid, call_id],
    )
    return call, legs, None if call is None else bool(first)


def call_and_legs_with_routes_version(*, call_id: int) -> tuple[Call | None, list[CallLeg], int | None]:
    """The call ``call_id``, its row locked (PostgreSQL), its legs, and the routes'
    version (calls/route_cache.py: its campaign from memory if still current): one
    statement."""
    call, legs, version = _call_and_legs_read(
        _call_and_legs_sql(connection.features.has_select_for_update_of, "routes_version"), ["", call_id]
    )
    return call, legs, None if version is None else int(version)


def call_and_legs_with_routes_version_admitting(
    *, call_id: int, jti: str, digest: str
) -> tuple[Call | None, list[CallLeg], int | None, bool | None]:
    """:func:`call_and_legs_with_routes_version`, and the request's signature ``jti``
    remembered in the same statement, inside the webhook's transaction, as
    :func:`call_and_legs_admitting` remembers it (and says so)."""
    now = timezone.now()
    database = connections[DEFAULT_DB_ALIAS]
    if database.vendor != "postgresql":
        admitted = row_insert_or_skip(SignedWebhook, unique="jti", jti=jti, digest=digest, received_at=now)
        call, legs, version = call_and_legs_with_routes_version(call_id=call_id)
        return call, legs, version, admitted is not None
    call, legs, first = _call_and_legs_read(
        _call_and_legs_sql(database.features.has_select_for_update_of, "routes_version_admitted"),
        [jti, digest, now, "", call_id],
    )
    if call is None:
        return None, [], None, None
    version, admitted = first
    return call, legs, None if version is None else int(version), bool(admitted)


def call_legs_and_early_events(*, call_id: int, leg_uuid: str) -> tuple[Call | None, list[CallLeg], bool]:
    """The call ``call_id`` and its legs (not locked), and whether events for leg
    ``leg_uuid`` were stored before the leg was (calls/call_records.events_adopt): one
    statement."""
    call, legs, early = _call_and_legs_read(_call_and_legs_sql(False, "early_events"), [leg_uuid, "", call_id])
    return call, legs, bool(early)


def _call_and_legs_read(sql: str, params: list[Any]) -> tuple[Call | None, list[CallLeg], Any]:
    """The call, its legs, and the value of the statement's first column."""
    database = connections[DEFAULT_DB_ALIAS]
    with database.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return None, [], None
    call = rows_to_instances(Call, rows[:1], offset=1, database=database)[0]
    legs = rows_to_instances(CallLeg, rows, offset=1 + len(Call._meta.concrete_fields), database=database)
    legs.sort(key=lambda leg: (leg.created_at, leg.pk))
    for leg in legs:
        leg.call = call
    return call, legs, rows[0][0]


@cache
def _call_and_legs_sql(
    lock: bool, first: Literal["nothing", "early_events", "routes_version", "admitted", "routes_version_admitted"]
) -> str:
    quote = connection.ops.quote_name
    call_table, leg_table = quote(Call._meta.db_table), quote(CallLeg._meta.db_table)
    early_events = f"EXISTS (SELECT 1 FROM {quote(CallEvent._meta.db_table)} WHERE leg_uuid = %s AND leg_id IS NULL)"  # noqa: S608
    events = {
        "nothing": "NULL",
        "early_events": early_events,
        "routes_version": _ROUTES_VERSION,
        "admitted": "EXISTS (SELECT 1 FROM admitted)",
        # Both, as one column (PostgreSQL only, as is the signature's insert).
        "routes_version_admitted": f"ARRAY[{_ROUTES_VERSION}, (SELECT count(*) FROM admitted)]",  # noqa: S608
    }[first]
    # The signature remembered first (PostgreSQL: an INSERT in WITH runs whatever the
    # rest of the statement finds). The first column reads it, so it is inserted as the
    # first row is made, below the row lock (LockRows does not project): a second request
    # with the same token waits on this one's token holding no lock of its own.
    signature = _signature_remembered() if first in ("admitted", "routes_version_admitted") else ""
    # SQLite has no row locks (nor needs them: it lets one writer in at a time).
    return (
        f"{signature}SELECT {events}, {columns(Call, 'c')}, {columns(CallLeg, 'l')} FROM {call_table} c "  # noqa: S608
        f"LEFT JOIN {leg_table} l ON l.call_id = c.id "
        f"WHERE c.id = COALESCE((SELECT call_id FROM {leg_table} WHERE uuid = %s), %s)"
        + (" FOR UPDATE OF c" if lock else "")
    )


def _signature_remembered() -> str:
    """``WITH admitted AS (…)``: the request's signature (``jti``, ``digest``,
    ``received_at``: three parameters) inserted unless seen before, one row if it was new."""
    quote = connection.ops.quote_name
    return (
        f"WITH admitted AS (INSERT INTO {quote(SignedWebhook._meta.db_table)} "  # noqa: S608
        f"({', '.join(_column(SignedWebhook, name) for name in ('jti', 'digest', 'received_at'))}) "
        f"VALUES (%s, %s, %s) ON CONFLICT ({_column(SignedWebhook, 'jti')}) DO NOTHING RETURNING 1) "
    )


# --- the first agent call ---------------------------------------------------------------


def agent_call_claim(*, call_id: int, at: datetime, strategy: str, state: str) -> Call | None:
    """Claim the first agent call of ``call_id`` (compare-and-set on
    ``agent_requested_at``) and read the call, in one statement: None when it was
    claimed, placed or given up elsewhere, or is queued for later (``ring_at``)."""
    with connection.cursor() as cursor:
        cursor.execute(_agent_call_claim_sql(), [at, call_id, strategy, state])
        rows = cursor.fetchall()
    return rows_to_instances(Call, rows)[0] if rows else None


@cache
def _agent_call_claim_sql() -> str:
    quote = connection.ops.quote_name
    every = ", ".join(quote(str(field.column)) for field in Call._meta.concrete_fields)
    return (
        f"UPDATE {quote(Call._meta.db_table)} SET {quote('agent_requested_at')} = %s "  # noqa: S608
        "WHERE id = %s AND strategy = %s AND attempt = 0 AND state = %s "
        f"AND agent_requested_at IS NULL AND ring_at IS NULL RETURNING {every}"
    )


# --- a new call -------------------------------------------------------------------------


@dataclass(frozen=True)
class CallStart:
    """What a new call's first statement tells."""

    # PostgreSQL: the call's id, from the sequence. SQLite: None (it has no sequence).
    call_id: int | None
    # calls/route_cache.py; None when there is no version row (a flushed test database).
    routes_version: int | None
    # The caller's number is blocked (calls/annotations.py).
    caller_blocked: bool
    # Given a signature's jti: whether this statement remembered it (False: it was seen
    # before). None without one.
    admitted: bool | None = None


def call_start(*, caller: str, jti: str | None = None, digest: str = "") -> CallStart:
    """A new call's first statement: on PostgreSQL its id, taken from the sequence now so
    that its answer (which names it) is built before the call is written in one
    statement (:func:`call_with_caller_leg_insert`); the routes' version
    (calls/route_cache.py); and whether ``caller`` is blocked (never a withheld number).

    With ``jti``, the request's signature is remembered (calls/webhooks/replay.py) in the
    same statement, committed with it: ``admitted`` says whether this statement remembered
    it. PostgreSQL; on SQLite, which has no ``INSERT`` in ``WITH``, the insert then the read."""
    database = connections[DEFAULT_DB_ALIAS]
    postgresql = database.vendor == "postgresql"
    admitting = jti is not None and postgresql
    params: list[Any] = [caller]
    admitted: bool | None = None
    if jti is not None and not admitting:
        inserted = row_insert_or_skip(SignedWebhook, unique="jti", jti=jti, digest=digest, received_at=timezone.now())
        admitted = inserted is not None
    elif jti is not None:
        params = [jti, digest, timezone.now(), caller]
    with database.cursor() as cursor:
        cursor.execute(_call_start_sql(database.vendor, admitting), params)
        row = cursor.fetchone()
    if not postgresql:
        row = (None, *row)
    return CallStart(
        call_id=None if row[0] is None else int(row[0]),
        routes_version=None if row[1] is None else int(row[1]),
        caller_blocked=bool(caller) and bool(row[2]),
        admitted=bool(row[3]) if admitting else admitted,
    )


@cache
def _call_start_sql(vendor: str, admitting: bool) -> str:
    quote = connection.ops.quote_name
    version = _ROUTES_VERSION
    blocked = f"EXISTS (SELECT 1 FROM {quote(BlockedCaller._meta.db_table)} WHERE number = %s)"  # noqa: S608
    if vendor != "postgresql":
        return f"SELECT {version}, {blocked}"
    call_id = f"nextval(pg_get_serial_sequence('{Call._meta.db_table}', 'id'))"
    if not admitting:
        return f"SELECT {call_id}, {version}, {blocked}"
    return f"{_signature_remembered()}SELECT {call_id}, {version}, {blocked}, EXISTS (SELECT 1 FROM admitted)"  # noqa: S608


def call_with_caller_leg_insert(call: Call, leg: CallLeg) -> bool:
    """PostgreSQL: the call (its id from :func:`call_start`, its answer set) and its
    caller's leg, in one statement that is its own transaction; ``first_call`` worked
    out in the same statement. Returns whether events for the leg came before it.
    Raises ``IntegrityError`` when the leg exists (a retried or concurrent answer):
    then nothing was written."""
    database = connections[DEFAULT_DB_ALIAS]
    params = db_values(call, _call_insert_plan(_backend(database)), database, add=True)
    campaign = [] if call.campaign_id is None else [call.campaign_id]
    params += [call.caller_number, *campaign, call.caller_number, call.started_at]
    params += db_values(leg, _insert_plan(CallLeg, _backend(database)), database, add=True)
    params.append(leg.uuid)
    # In autocommit (a webhook) a failed statement leaves nothing behind; inside a
    # transaction (a test's, a caller's) it would abort it, so it gets a savepoint.
    guard = transaction.atomic() if database.in_atomic_block else nullcontext()
    with guard, database.cursor() as cursor:
        cursor.execute(_call_insert_sql(call.campaign_id is not None), params)
        early_events = bool(cursor.fetchone()[0])
    call.first_call = None  # worked out by the database; read it back if it is needed
    call._state.adding = False
    leg._state.adding = False
    return early_events


@cache
def _call_insert_plan(backend: Backend) -> tuple[PlanStep, ...]:
    # Every column but first_call, which the statement works out.
    return tuple(_step(f, backend) for f in Call._meta.concrete_fields if f.name != "first_call")


@cache
def _call_insert_sql(campaign_known: bool) -> str:
    quote = connection.ops.quote_name
    call_table, leg_table = quote(Call._meta.db_table), quote(CallLeg._meta.db_table)
    call_columns = [quote(str(f.column)) for f in Call._meta.concrete_fields if f.name != "first_call"]
    leg_fields = _insert_fields(CallLeg)
    # The caller's first call to this campaign, as Call.save() works it out.
    # Written for the index on (campaign, caller_number, started_at).
    same_campaign = "p.campaign_id = %s" if campaign_known else "p.campaign_id IS NULL"
    first_call = (
        f"(%s <> '' AND NOT EXISTS (SELECT 1 FROM {call_table} p "  # noqa: S608
        f"WHERE {same_campaign} AND p.caller_number = %s AND p.started_at < %s))"
    )
    return (
        f"WITH c AS (INSERT INTO {call_table} ({', '.join(call_columns)}, {quote('first_call')}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(call_columns))}, {first_call}) RETURNING id), "
        f"l AS (INSERT INTO {leg_table} ({', '.join(quote(str(f.column)) for f in leg_fields)}) "
        f"VALUES ({', '.join(['%s'] * len(leg_fields))}) RETURNING id) "
        f"SELECT EXISTS (SELECT 1 FROM {quote(CallEvent._meta.db_table)} WHERE leg_uuid = %s AND leg_id IS NULL) "
        "FROM c, l"
    )
