"""Every query the Firestore store runs, built in one place.

``infra/firestore/indexes.json`` declares a composite index for each of these shapes;
``tests/contract/test_firestore_indexes.py`` derives the index each one needs from its
protobuf and checks the file, since the emulator serves any query without indexes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from google.cloud.firestore import (
    AsyncClient,
    AsyncCollectionReference,
    AsyncDocumentReference,
    AsyncQuery,
    AsyncTransaction,
    Client,
    FieldFilter,
    Query,
)
from google.cloud.firestore_v1.async_aggregation import AsyncAggregationQuery

from shared.adapters._firestore_codec import Collections
from shared.adapters._store_common import check_limit, decode_cursor, encode_cursor, epoch
from shared.models import ExecutionStatus, StepRunStatus
from shared.ports import AuditQuery, ExecutionQuery, WorkflowQuery
from shared.ports.analytics import RollupQuery

__all__ = [
    "Row",
    "audit_before",
    "audit_listing",
    "checkpoints_between",
    "checkpoints_of_execution",
    "checkpoints_of_thread",
    "child",
    "count",
    "events_after",
    "executions_listing",
    "expired_leases",
    "fetch",
    "fetch_pages",
    "joins_of",
    "keys_of_tenant",
    "keyset_page",
    "overdue_timers",
    "pending_signal",
    "queued_ahead",
    "queued_all",
    "queued_below",
    "queued_on",
    "rollups_in",
    "runs_of",
    "signals_of",
    "slots_with_prefix",
    "tenant_executions_in",
    "tenant_storage_all",
    "tenant_storage_shards",
    "tenant_workflows",
    "tenants_page",
    "versions_of",
    "watch_execution",
    "watch_workflow",
    "workflows_listing",
]

Row = dict[str, Any]
"""The fields of one document."""

TIMER_STATUSES = (str(StepRunStatus.SCHEDULED), str(StepRunStatus.WAITING))


def child(parent: AsyncDocumentReference, name: str) -> AsyncCollectionReference:
    """The subcollection ``name`` of a document (the SDK leaves this call untyped)."""
    return cast(AsyncCollectionReference, parent.collection(name))


def _eq(field: str, value: Any) -> FieldFilter:
    return FieldFilter(field, "==", value)


async def fetch(query: AsyncQuery, transaction: AsyncTransaction | None = None) -> list[Row]:
    """The fields of every document ``query`` returns (read in ``transaction`` if given)."""
    rows: list[Row] = []
    async for snapshot in query.stream(transaction=transaction):
        rows.append(snapshot.to_dict() or {})
    return rows


async def count(query: AsyncQuery) -> int:
    """A COUNT aggregation of ``query`` (with its limit and cursors): the server counts
    index entries, one read per 1000 of them, and returns no document."""
    # The SDK annotates ``count`` as returning the class; it returns an instance.
    aggregation = cast(AsyncAggregationQuery, query.count(alias="n"))
    results = await aggregation.get()
    return int(results[0][0].value) if results and results[0] else 0


async def fetch_pages(query: AsyncQuery, most: int, page_size: int = 500) -> list[Row]:
    """Up to ``most`` rows of ``query``, read page by page."""
    rows: list[Row] = []
    last: Any = None
    while len(rows) < most:
        page = query if last is None else query.start_after(last)
        snapshots = [snapshot async for snapshot in page.limit(page_size).stream()]
        rows += [snapshot.to_dict() or {} for snapshot in snapshots]
        if len(snapshots) < page_size:
            break
        last = snapshots[-1]
    return rows[:most]


def runs_of(
    client: AsyncClient,
    names: Collections,
    execution_id: str,
    statuses: frozenset[StepRunStatus] | None,
) -> AsyncQuery:
    """Step runs of one execution, oldest first (``statuses`` must not be empty)."""
    query = client.collection(names.step_runs).where(filter=_eq("executionId", execution_id))
    if statuses is not None:
        wanted = sorted(str(status) for status in statuses)
        query = query.where(filter=FieldFilter("status", "in", wanted))
    return query.order_by("createdKey")


def overdue_timers(client: AsyncClient, names: Collections, cutoff: float) -> AsyncQuery:
    """Scheduled or waiting runs due at or before ``cutoff``, earliest first."""
    return (
        client.collection(names.step_runs)
        .where(filter=FieldFilter("status", "in", list(TIMER_STATUSES)))
        .where(filter=FieldFilter("dueAt", "<=", cutoff))
        .order_by("dueAt")
        .order_by("createdKey")
    )


def expired_leases(client: AsyncClient, names: Collections, now: float) -> AsyncQuery:
    """Running runs whose lease expired at or before ``now``."""
    return (
        client.collection(names.step_runs)
        .where(filter=_eq("status", str(StepRunStatus.RUNNING)))
        .where(filter=FieldFilter("leaseExpiresAt", "<=", now))
        .order_by("leaseExpiresAt")
    )


def queued_on(client: AsyncClient, names: Collections, tenant: str, wait_key: str) -> AsyncQuery:
    """Executions of a tenant queued on one concurrency key: priority desc, then FIFO."""
    return (
        client.collection(names.executions)
        .where(filter=_eq("tenant", tenant))
        .where(filter=_eq("queueKey", wait_key))
        .where(filter=_eq("status", str(ExecutionStatus.QUEUED)))
        .order_by("queuePriority", direction=Query.DESCENDING)
        .order_by("queuedAt")
    )


def queued_ahead(
    client: AsyncClient,
    names: Collections,
    tenant: str,
    wait_key: str,
    priority: int,
    queued_at: float,
) -> AsyncQuery:
    """The part of a key's queue that starts before a place (``priority``, ``queuedAt``):
    ``queued_on``'s order ended before it, so a COUNT of it reads the same index."""
    return queued_on(client, names, tenant, wait_key).end_before(
        {"queuePriority": priority, "queuedAt": queued_at}
    )


def queued_below(
    client: AsyncClient, names: Collections, tenant: str, wait_key: str, priority: int
) -> AsyncQuery:
    """A key's queue from its first execution of a priority lower than ``priority``."""
    return queued_on(client, names, tenant, wait_key).where(
        filter=FieldFilter("queuePriority", "<", priority)
    )


def queued_all(client: AsyncClient, names: Collections, tenant: str | None) -> AsyncQuery:
    """Queued executions (of one tenant, or of all), oldest queued first."""
    query = client.collection(names.executions)
    if tenant is not None:
        query = query.where(filter=_eq("tenant", tenant))  # type: ignore[assignment]
    return query.where(filter=_eq("status", str(ExecutionStatus.QUEUED))).order_by("queuedAt")


def slots_with_prefix(
    client: AsyncClient, names: Collections, tenant: str, prefix: str
) -> AsyncQuery:
    """Concurrency slot documents of a tenant whose key starts with ``prefix``."""
    return (
        client.collection(names.flow_slots)
        .where(filter=_eq("tenant", tenant))
        .where(filter=FieldFilter("slotKey", ">=", prefix))
        .where(filter=FieldFilter("slotKey", "<", prefix + "\U0010ffff"))
        .order_by("slotKey")
    )


def tenants_page(client: AsyncClient, collection: str) -> AsyncQuery:
    """Tenant documents by id (the registry's listing)."""
    return client.collection(collection).order_by("__name__")


def keys_of_tenant(client: AsyncClient, collection: str, tenant: str) -> AsyncQuery:
    """A tenant's API key documents."""
    return client.collection(collection).where(filter=_eq("tenant", tenant))


def tenant_workflows(client: AsyncClient, names: Collections, tenant: str) -> AsyncQuery:
    """A tenant's workflows that are not deleted (counted for ``maxWorkflows``)."""
    return (
        client.collection(names.workflows)
        .where(filter=_eq("tenant", tenant))
        .where(filter=_eq("deleted", False))
    )


def tenant_executions_in(
    client: AsyncClient, names: Collections, tenant: str, statuses: list[str]
) -> AsyncQuery:
    """A tenant's executions in one of ``statuses`` (counted for the running quotas)."""
    return (
        client.collection(names.executions)
        .where(filter=_eq("tenant", tenant))
        .where(filter=FieldFilter("status", "in", statuses))
    )


def joins_of(client: AsyncClient, names: Collections, owner_run_id: str) -> AsyncQuery:
    """Join marks of a fan-out run, by branch index."""
    owner = client.collection(names.step_runs).document(owner_run_id)
    return child(owner, names.joins).order_by("index")


def pending_signal(
    client: AsyncClient, names: Collections, execution_id: str, name: str
) -> AsyncQuery:
    """The oldest unconsumed signal ``name`` of an execution."""
    return (
        client.collection(names.signals)
        .where(filter=_eq("executionId", execution_id))
        .where(filter=_eq("name", name))
        .where(filter=_eq("consumed", False))
        .order_by("createdKey")
        .limit(1)
    )


def events_after(
    client: AsyncClient, names: Collections, execution_id: str, after_seq: int, limit: int
) -> AsyncQuery:
    execution = client.collection(names.executions).document(execution_id)
    return (
        child(execution, names.events)
        .where(filter=FieldFilter("seq", ">", after_seq))
        .order_by("seq")
        .limit(limit)
    )


def versions_of(client: AsyncClient, names: Collections, workflow_id: str) -> AsyncQuery:
    head = client.collection(names.workflows).document(workflow_id)
    return child(head, names.versions).order_by("version")


def workflows_listing(client: AsyncClient, names: Collections, query: WorkflowQuery) -> AsyncQuery:
    """Live heads of a tenant, filtered by activity and by one of the wanted tags
    (``array_contains`` takes one value; the store checks the other tags itself)."""
    listing = (
        client.collection(names.workflows)
        .where(filter=_eq("tenant", query.tenant))
        .where(filter=_eq("deleted", False))
    )
    if query.active_only:
        listing = listing.where(filter=_eq("isActive", True))
    if query.tags:
        listing = listing.where(filter=FieldFilter("tags", "array_contains", min(query.tags)))
    return listing.order_by("createdAt", direction=Query.DESCENDING).order_by("id")


def executions_listing(
    client: AsyncClient, names: Collections, query: ExecutionQuery
) -> AsyncQuery:
    listing = client.collection(names.executions).where(filter=_eq("tenant", query.tenant))
    if query.workflow_id is not None:
        listing = listing.where(filter=_eq("workflowId", query.workflow_id))
    if query.status is not None:
        listing = listing.where(filter=_eq("status", str(query.status)))
    # A range on the field the listing is ordered by: the same composite indexes serve it.
    if query.started_from is not None:
        listing = listing.where(filter=FieldFilter("startedAt", ">=", epoch(query.started_from)))
    if query.started_before is not None:
        listing = listing.where(filter=FieldFilter("startedAt", "<", epoch(query.started_before)))
    return listing.order_by("startedAt", direction=Query.DESCENDING).order_by("id")


def watch_execution(client: Client, names: Collections, execution_id: str, since: datetime) -> Any:
    """Events of one execution committed at or after ``since`` (a sync-client query)."""
    execution = client.collection(names.executions).document(execution_id)
    return execution.collection(names.events).where(filter=FieldFilter("committedAt", ">=", since))


def watch_workflow(client: Client, names: Collections, workflow_id: str, since: datetime) -> Any:
    """Events of every execution of a workflow committed at or after ``since``."""
    return (
        client.collection_group(names.events)
        .where(filter=_eq("workflowId", workflow_id))
        .where(filter=FieldFilter("committedAt", ">=", since))
    )


async def keyset_page(
    listing: AsyncQuery,
    time_field: str,
    cursor: str | None,
    limit: int,
    keep: Callable[[Row], bool] | None = None,
) -> tuple[list[Row], str | None]:
    """One page of ``listing`` (ordered by ``time_field`` desc, ``id`` asc) after
    ``cursor``, keeping the rows ``keep`` accepts, and the cursor of the next page.

    Without ``keep`` one read of ``limit + 1`` rows tells whether more follow; with it,
    reads go on in batches until ``limit + 1`` rows were kept or the listing ends.
    """
    check_limit(limit)
    after = decode_cursor(cursor) if cursor else None
    batch = limit + 1 if keep is None else max(limit + 1, 100)
    kept: list[Row] = []
    while True:
        query = listing
        if after is not None:
            query = query.start_after({time_field: after[0], "id": after[1]})
        rows = await fetch(query.limit(batch))
        for row in rows:
            after = (row[time_field], row["id"])
            if keep is None or keep(row):
                kept.append(row)
                if len(kept) > limit:
                    break
        if len(kept) > limit or len(rows) < batch:
            break
    page = kept[:limit]
    more = len(kept) > limit
    next_cursor = encode_cursor((page[-1][time_field], page[-1]["id"])) if more else None
    return page, next_cursor


def audit_listing(client: AsyncClient, collection: str, query: AuditQuery) -> AsyncQuery:
    """An audit listing (``FirestoreAuditLog``) without cursor and limit: the tenant's
    entries, filtered by action, subject and target, newest first."""
    found = client.collection(collection).where(filter=_eq("tenant", query.tenant))
    for field, value in (
        ("action", query.action),
        ("subject", query.subject),
        ("target", query.target),
    ):
        if value is not None:
            found = found.where(filter=_eq(field, value))
    if query.since is not None:
        found = found.where(filter=FieldFilter("timeKey", ">=", epoch(query.since)))
    if query.until is not None:
        found = found.where(filter=FieldFilter("timeKey", "<", epoch(query.until)))
    return found.order_by("timeKey", direction="DESCENDING").order_by("id")


def rollups_in(client: AsyncClient, collection: str, query: RollupQuery) -> AsyncQuery:
    """Analytics rollup shards of a tenant (or one workflow) in [start, end)."""
    found = (
        client.collection(collection)
        .where(filter=_eq("tenant", query.tenant))
        .where(filter=_eq("grain", query.grain))
    )
    if query.workflow_id is not None:
        found = found.where(filter=_eq("workflowId", query.workflow_id))
    return found.where(filter=FieldFilter("bucket", ">=", query.start.timestamp())).where(
        filter=FieldFilter("bucket", "<", query.end.timestamp())
    )


def tenant_storage_shards(client: AsyncClient, collection: str, tenant: str) -> AsyncQuery:
    """The storage counter shards of a tenant (``firestore_storage``): at most SHARDS."""
    return client.collection(collection).where(filter=_eq("tenant", tenant))


# --- LangGraph checkpoints (firestore_checkpoints): no composite index needed ---


def checkpoints_between(
    client: AsyncClient, collection: str, after: str, below: str, limit: int | None
) -> AsyncQuery:
    """Checkpoint documents whose ``orderKey`` lies strictly between ``after`` and
    ``below``, highest first (one field: its automatic single-field index serves it;
    Firestore refuses descending scans of ``__name__``)."""
    query = (
        client.collection(collection)
        .where(filter=FieldFilter("orderKey", ">", after))
        .where(filter=FieldFilter("orderKey", "<", below))
        .order_by("orderKey", direction="DESCENDING")
    )
    return query if limit is None else query.limit(limit)


def checkpoints_of_thread(client: AsyncClient, collection: str, thread_id: str) -> AsyncQuery:
    """Every checkpoint document of one thread (all namespaces), unordered."""
    return client.collection(collection).where(filter=_eq("threadId", thread_id))


def checkpoints_of_execution(client: AsyncClient, collection: str, execution_id: str) -> AsyncQuery:
    """Every checkpoint document of one execution's threads, unordered (retention)."""
    return client.collection(collection).where(filter=_eq("executionId", execution_id))


# --- retention (firestore_retention, firestore_audit): no composite index needed ---


def signals_of(client: AsyncClient, names: Collections, execution_id: str) -> AsyncQuery:
    """Every signal of one execution, unordered (one equality: its single-field index)."""
    return client.collection(names.signals).where(filter=_eq("executionId", execution_id))


def tenant_storage_all(client: AsyncClient, collection: str) -> AsyncQuery:
    """Every storage counter shard, by document name (which tenants hold bytes)."""
    return client.collection(collection).order_by("__name__")


def audit_before(client: AsyncClient, collection: str, before: float) -> AsyncQuery:
    """Audit entries of any tenant recorded before ``before`` (epoch seconds), oldest
    first (one range on ``timeKey``: its single-field index)."""
    return (
        client.collection(collection)
        .where(filter=FieldFilter("timeKey", "<", before))
        .order_by("timeKey")
    )
