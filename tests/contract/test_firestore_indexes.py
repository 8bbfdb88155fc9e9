"""Every query of the Firestore store has its composite index in indexes.json, and
every declared index serves a query.

The emulator serves any query without indexes, so this is the only check before a
real database refuses a query with FAILED_PRECONDITION. Each query's needed index is
derived from its protobuf with Firestore's rules: equality (and ``in``) fields and
the ``array_contains`` field in any order, then the order-by fields in order, with
inequality fields appended; a query on one field needs no composite index.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud.firestore import AsyncClient, Client

from shared.adapters import _firestore_queries as queries
from shared.adapters._firestore_codec import Collections
from shared.models import ExecutionStatus, StepRunStatus
from shared.ports import AuditQuery, ExecutionQuery, WorkflowQuery
from shared.ports.analytics import RollupQuery

ROOT = Path(__file__).resolve().parents[2]
INDEXES = ROOT / "infra" / "firestore" / "indexes.json"
NAMES = Collections()

Shape = tuple[str, str, frozenset[tuple[str, str]], tuple[tuple[str, str], ...]]
"""(collection group, scope, unordered prefix fields, ordered suffix fields)."""

_EQUALITY = {"EQUAL", "IN"}
_INEQUALITY = {"LESS_THAN", "LESS_THAN_OR_EQUAL", "GREATER_THAN", "GREATER_THAN_OR_EQUAL"}


def _field_filters(where: Any) -> list[Any]:
    if "composite_filter" in where:
        return [f for sub in where.composite_filter.filters for f in _field_filters(sub)]
    if "field_filter" in where:
        return [where.field_filter]
    return []


def needed_index(query: Any) -> Shape | None:
    """The composite index ``query`` needs, or None if single-field indexes serve it."""
    pb = query._to_protobuf()
    source = pb.from_[0]
    scope = "COLLECTION_GROUP" if source.all_descendants else "COLLECTION"
    prefix: set[tuple[str, str]] = set()
    inequalities: list[str] = []
    for field_filter in _field_filters(pb.where) if "where" in pb else []:
        path, op = field_filter.field.field_path, field_filter.op.name
        if op in _EQUALITY:
            prefix.add((path, "ASCENDING"))
        elif op == "ARRAY_CONTAINS":
            prefix.add((path, "CONTAINS"))
        else:
            assert op in _INEQUALITY, op
            inequalities.append(path)
    orders = [(order.field.field_path, order.direction.name) for order in pb.order_by]
    ordered = {path for path, _ in orders}
    orders += [(path, "ASCENDING") for path in sorted(set(inequalities) - ordered)]
    suffix = tuple(order for order in orders if order[0] != "__name__")
    if not suffix or (not prefix and len(suffix) == 1):
        return None  # single-field indexes (merged for several equalities) serve it
    return (source.collection_id, scope, frozenset(prefix), suffix)


Index = tuple[str, str, tuple[tuple[str, str], ...]]
"""(collection group, scope, fields in order) of a declared index."""


def declared() -> list[Index]:
    """The composite indexes of indexes.json (without a trailing ``__name__``)."""
    found: list[Index] = []
    for index in json.loads(INDEXES.read_text())["indexes"]:
        fields = tuple(
            (f["fieldPath"], f.get("order") or f["arrayConfig"])
            for f in index["fields"]
            if f["fieldPath"] != "__name__"
        )
        found.append((index["collectionGroup"], index["queryScope"], fields))
    return found


def served_by(need: Shape, index: Index) -> bool:
    """Whether ``index`` is exactly the one ``need`` asks for."""
    group, scope, prefix, suffix = need
    fields = index[2]
    head, tail = fields[: len(fields) - len(suffix)], fields[len(fields) - len(suffix) :]
    return (index[0], index[1]) == (group, scope) and set(head) == prefix and tail == suffix


def every_query() -> list[Any]:
    """One query of each shape the store runs (building them connects to nothing)."""
    aio = AsyncClient(project="indexes", credentials=AnonymousCredentials())
    sync = Client(project="indexes", credentials=AnonymousCredentials())
    now = datetime.now(UTC)
    built: list[Any] = [
        queries.runs_of(aio, NAMES, "ex", None),
        queries.runs_of(aio, NAMES, "ex", frozenset({StepRunStatus.RUNNING})),
        queries.runs_of(aio, NAMES, "ex", frozenset(StepRunStatus)),
        queries.overdue_timers(aio, NAMES, 0.0),
        queries.expired_leases(aio, NAMES, 0.0),
        queries.joins_of(aio, NAMES, "run"),
        queries.pending_signal(aio, NAMES, "ex", "approval"),
        queries.events_after(aio, NAMES, "ex", 0, 10),
        queries.versions_of(aio, NAMES, "wf"),
        queries.watch_execution(sync, NAMES, "ex", now),
        queries.watch_workflow(sync, NAMES, "wf", now),
        queries.queued_on(aio, NAMES, "t", "w:wf:acme"),  # flow control
        queries.queued_all(aio, NAMES, None),
        queries.queued_all(aio, NAMES, "t"),
        queries.slots_with_prefix(aio, NAMES, "t", "w:wf:"),
        queries.tenants_page(aio, "tenants"),  # tenants and their quota counts
        queries.keys_of_tenant(aio, "tenantKeys", "t"),
        queries.tenant_workflows(aio, NAMES, "t"),
        queries.tenant_executions_in(aio, NAMES, "t", ["queued", "running"]),
        queries.checkpoints_between(aio, "checkpoints", "a", "b", 10),  # LangGraph
        queries.checkpoints_of_thread(aio, "checkpoints", "ex/run"),
        queries.checkpoints_of_execution(aio, "checkpoints", "ex"),
        queries.tenant_storage_shards(aio, "tenantStorage", "t"),
        queries.tenant_storage_all(aio, "tenantStorage"),  # retention
        queries.signals_of(aio, NAMES, "ex"),
        queries.audit_before(aio, "audit", 0.0),
    ]
    for active, tags in product([False, True], [(), ("a",), ("a", "b")]):
        query = WorkflowQuery(active_only=active, tags=tags)
        built.append(queries.workflows_listing(aio, NAMES, query))
    for workflow_id, status in product([None, "wf"], [None, ExecutionStatus.RUNNING]):
        query = ExecutionQuery(workflow_id=workflow_id, status=status)
        built.append(queries.executions_listing(aio, NAMES, query))
    for field, since in product([None, "action", "subject", "target"], [None, now]):
        audit = AuditQuery(tenant="t", since=since, **({field: "x"} if field else {}))
        built.append(queries.audit_listing(aio, "audit", audit))
    for workflow_id in (None, "wf"):  # analytics rollups (firestore_rollups)
        rollups = RollupQuery(tenant="t", grain="day", start=now, end=now, workflow_id=workflow_id)
        built.append(queries.rollups_in(aio, "rollups", rollups))
    return built


def test_every_query_has_its_composite_index() -> None:
    indexes = declared()
    missing = [
        need
        for need in filter(None, map(needed_index, every_query()))
        if not any(served_by(need, index) for index in indexes)
    ]
    assert missing == []


def test_every_declared_index_serves_a_query() -> None:
    needs = [need for need in map(needed_index, every_query()) if need is not None]
    unused = [index for index in declared() if not any(served_by(n, index) for n in needs)]
    assert unused == []


def test_field_overrides_exempt_the_bodies_and_keep_the_queried_fields() -> None:
    overrides = json.loads(INDEXES.read_text())["fieldOverrides"]
    exempt = {(o["collectionGroup"], o["fieldPath"]) for o in overrides if o["indexes"] == []}
    groups = {"workflows", "versions", "executions", "events", "stepRuns", "joins", "signals"}
    groups |= {"flowSlots"}
    assert {(group, "doc") for group in groups} <= exempt
    # Single-field queries rely on these automatic indexes: they must stay.
    assert not exempt & {("events", "seq"), ("events", "committedAt"), ("versions", "version")}
    assert ("joins", "index") not in exempt


@pytest.mark.parametrize(
    "module",
    sorted(p.name for p in (ROOT / "shared" / "adapters").glob("*firestore*.py")),
)
def test_queries_are_built_only_in_the_queries_module(module: str) -> None:
    """So ``every_query`` above sees every shape the store can run."""
    if module == "_firestore_queries.py":
        return
    source = (ROOT / "shared" / "adapters" / module).read_text()
    assert not re.search(r"\.(where|order_by|collection_group)\(", source)
