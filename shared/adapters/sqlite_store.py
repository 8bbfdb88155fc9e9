"""SQLite WorkflowStore and ExecutionStore for the embedded (local) mode.

One connection in WAL mode, guarded by an asyncio lock so coroutines never interleave
inside a transaction; other processes (a CLI listing executions) may open the same
file. Documents are the models' JSON; the indexed columns are copied from them.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextvars import copy_context
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from shared.adapters._sqlite_retention import delete_execution_rows, stored_tenant_rows
from shared.adapters._sqlite_tx import (
    SqliteTx,
    apply_writes,
    begin,
    connect,
    ensure_storage_schema,
    get_execution_row,
    get_run_row,
    list_run_rows,
    rollback,
    stored_bytes,
)
from shared.adapters._store_common import (
    Listeners,
    check_limit,
    decode_cursor,
    encode_cursor,
    epoch,
    epoch_or_none,
)
from shared.adapters.clock import SystemClock
from shared.adapters.sqlite_rollups import (
    RollupRows,
    RollupSums,
    ensure_rollup_schema,
    rows_of,
    select_rollups,
)
from shared.errors import Conflict, InputInvalid, NotFound, TransientError
from shared.models import (
    ConcurrencySlot,
    ExecutionEvent,
    StepRun,
    StepRunStatus,
    WorkflowDefinition,
    WorkflowExecution,
)
from shared.ports import Clock, ExecutionQuery, ExecutionTx, Page, WorkflowQuery
from shared.ports.analytics import RollupDelta, RollupQuery, RollupRow
from shared.ports.fairness import work_tenant
from shared.ports.retention import PurgeCounts
from shared.ports.stores import QUEUE_COUNT_MOST, QueueSummary, WorkflowHead

__all__ = ["SqliteStore"]

T = TypeVar("T")
log = logging.getLogger(__name__)
_SYNCHRONOUS = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
_KEYSET = "({t} < ? OR ({t} = ? AND id > ?))"
_DUE_RUNS = (
    "SELECT doc, due_at, created_seq FROM step_runs"
    f" WHERE status IN ('{StepRunStatus.SCHEDULED}', '{StepRunStatus.WAITING}') AND due_at <= ?"
    " UNION ALL SELECT doc, due_at, created_seq FROM step_runs"
    f" WHERE status = '{StepRunStatus.RUNNING}' AND lease_expires_at <= ?"
    " ORDER BY 2, 3 LIMIT ?"
)
"""Runs due (scheduled or waiting, past ``due_at`` by the grace) or whose lease expired,
oldest first: the statuses are literals so each half reads its partial index
(``step_runs_open``, ``step_runs_leased``) instead of every run."""
_Pending = tuple[Any, "asyncio.Future[Any]", contextvars.Context, str | None]
"""A waiting transaction: its body, its caller's future and context, its tenant."""
GROUP_PER_TENANT = 8
"""Most transactions of one tenant in one group commit (``SqliteStore(group_per_tenant)``)."""
SHARE_WINDOW = 1.0
CHECKPOINT_CHANGES = 1000
"""Rows written by the writer between two WAL checkpoints when it commits on the event
loop (its automatic checkpoints are off then: ``_checkpoint``)."""
WAL_BYTES_MOST = 128 * 1024 * 1024
"""A WAL file larger than this after a checkpoint gets a second one under the writer (the
WAL then starts over, cut back to ``WAL_BYTES_KEPT``): checkpoints that run beside a
flood of writes never quite catch up with it, and the WAL would grow for as long as the
flood lasts. Each catch-up holds the writer for tens of milliseconds: rare, not never."""
WAL_BYTES_KEPT = 32 * 1024 * 1024
"""``PRAGMA journal_size_limit`` of the writer: the WAL file is cut back to this when it
starts over."""
"""Seconds a tenant's last transaction counts it as sharing the writer: while two or more
tenants do, groups hold at most ``group_per_tenant`` of each."""
"""Rows after a cursor in (time desc, id asc) order; ``{t}`` is the time column."""


class SqliteStore(Listeners):
    """WorkflowStore and ExecutionStore on one SQLite database file (or ``:memory:``)."""

    reruns_transactions = False
    """``run_transaction`` calls its body once (one writer: no contention retries)."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "NORMAL",
        clock: Clock | None = None,
        group_per_tenant: int | None = GROUP_PER_TENANT,
    ) -> None:
        """Open (and create or migrate) the database.

        Args:
            path: the database file, or ``":memory:"``.
            synchronous: ``NORMAL`` survives a process crash; ``FULL`` also a power loss.
            clock: time source for bookkeeping columns (deletion time).
            group_per_tenant: most transactions of one tenant (``work_tenant()``) in one
                group commit; None: every waiting transaction, first come first served.
        """
        super().__init__()
        mode = synchronous.upper()
        if mode not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {sorted(_SYNCHRONOUS)}")
        if group_per_tenant is not None and group_per_tenant < 1:
            raise ValueError("group_per_tenant must be at least 1")
        self._clock = clock or SystemClock()
        self._lock = asyncio.Lock()
        self.group_per_tenant = group_per_tenant
        """Most transactions of one tenant per group commit (None: no cap, FIFO groups)."""
        self._pending: dict[str | None, deque[_Pending]] = {}
        """Transactions waiting for the writer, per tenant, each tenant's in arrival order."""
        self._served: dict[str | None, int] = {}
        """When (group number) each tenant still waiting was last served."""
        self._groups = 0
        self._writer: asyncio.Task[None] | None = None
        self._active: dict[str | None, float] = {}
        """When each tenant last asked for a transaction (monotonic seconds)."""
        self._conn = connect(str(path), mode)
        self._commit_on_loop = mode in ("OFF", "NORMAL")
        """COMMIT on the loop thread: without an fsync (WAL at synchronous NORMAL or OFF)
        it takes tens of microseconds, and handing it to a thread cost every group a
        wait for the GIL behind the loop (about 5 ms under load). FULL and EXTRA
        fsync at every COMMIT: that goes to a thread (``_commit``)."""
        self._file_backed = str(path) != ":memory:"
        self._group_shared = False
        """Whether the group being committed is shared between tenants (``_next_group``)."""
        self._group_known: set[str | None] = set()
        """The tenants waiting when that group was formed (in it or left for later)."""
        if self._commit_on_loop and self._file_backed:
            # An automatic checkpoint would run inside a COMMIT, on the loop, with an
            # fsync: the writer checkpoints in a thread between groups instead.
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._conn.execute(f"PRAGMA journal_size_limit = {WAL_BYTES_KEPT}")
        self._checkpointed_at = self._conn.total_changes
        self._checkpointer: asyncio.Task[None] | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._path, self._mode = str(path), mode
        ensure_rollup_schema(self._conn)  # analytics rollups (sqlite_rollups)
        self._rollup_rows = RollupRows()
        """The rollup rows this connection wrote, parsed, for the next groups' sums."""
        ensure_storage_schema(self._conn)  # bytes per tenant (maxStorageBytes)
        # Reads outside transactions use a second connection (WAL lets it read the last
        # commit while the writer's COMMIT is still syncing), so they do not queue behind
        # a group commit. An in-memory database has one connection for both.
        self._reader = self._conn if str(path) == ":memory:" else connect(str(path), mode)
        self._read_lock = self._lock if self._reader is self._conn else asyncio.Lock()

    async def close(self) -> None:
        """Close the connection once no transaction and no checkpoint is running."""
        if self._checkpointer is not None:
            await asyncio.wait([self._checkpointer])  # it logs its own failures
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
        async with self._lock:
            self._conn.close()
        if self._reader is not self._conn:
            async with self._read_lock:
                self._reader.close()

    # -- plumbing ------------------------------------------------------------------

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._read_lock:
            return self._reader.execute(sql, params).fetchall()

    async def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in one write transaction (nothing awaited inside)."""
        async with self._lock:
            begin(self._conn)
            try:
                result = body(self._conn)
                self._conn.execute("COMMIT")
            except BaseException as exc:
                rollback(self._conn)
                mapped = store_error(exc)
                if mapped is exc:
                    raise
                raise mapped from exc
            return result

    async def read_rollups(self, query: RollupQuery) -> list[RollupRow]:
        sql, params = select_rollups(query)
        return rows_of(query, await self._read(sql, params))

    async def add_rollups(self, deltas: list[RollupDelta]) -> None:
        def add(conn: sqlite3.Connection) -> None:
            sums = RollupSums()
            for delta in deltas:
                sums.add(delta)
            sums.flush(conn, self._rollup_rows)

        try:
            await self._write(add)
        except BaseException:
            self._rollup_rows.discard()
            raise
        self._rollup_rows.committed()

    async def run_transaction(self, fn: Callable[[ExecutionTx], Awaitable[T]]) -> T:
        """Run ``fn`` in a write transaction; apply its buffered writes, then commit.

        Group commit: transactions that arrive while another one holds the database are
        run one after another inside one SQLite transaction, each in its own savepoint,
        and share one COMMIT (one fsync). Each still sees the writes of those before it
        and fails alone. The groups are fair across tenants (``_next_group``). ``fn``
        runs once: a busy database or an existing event seq raises Conflict (retryable)
        and leaves nothing of it written. ``fn`` must use
        ``tx``, not this store, whose lock it holds.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        tenant = work_tenant()
        self._pending.setdefault(tenant, deque()).append((fn, future, copy_context(), tenant))
        if tenant is not None:  # unclaimed work (a sweeper) shares with whoever is there
            self._active[tenant] = time.monotonic()
        writer = self._writer
        if writer is None or writer.done() or writer.get_loop() is not future.get_loop():
            self._writer = asyncio.create_task(self._drain(), name="sqlite-group-commit")
        return await future

    async def _drain(self) -> None:
        """The writer: commit groups until no transaction waits.

        One task writes, and each caller only awaits its own future: a caller whose
        transaction is committed goes on at once, instead of queueing for the lock
        behind every other caller (each hand-over of an ``asyncio.Lock`` is a round of
        the event loop, so a start waited one round per transaction in flight).
        """
        try:
            while self._pending:
                async with self._lock:
                    batch = self._next_group()
                    try:
                        await self._commit_batch(batch)
                    except Exception:  # every future of the batch holds the error
                        log.debug("group commit failed", exc_info=True)
                    if self._conn.total_changes - self._checkpointed_at >= CHECKPOINT_CHANGES:
                        self._start_checkpoint()
                # The callers of the group just committed run before the next group's
                # transaction bodies (a woken start would otherwise wait a whole group).
                await asyncio.sleep(0)
        except BaseException:  # cancelled (the loop is closing): nobody waits forever
            stopped = TransientError("the store's writer stopped", code="STORE_UNAVAILABLE")
            for waiting in self._pending.values():
                for _, future, _, _ in waiting:
                    _settle(future, error=stopped)
            self._pending.clear()
            self._served.clear()
            raise

    def _sharing(self) -> bool:
        """Whether more than one tenant asked for a transaction in the last
        ``SHARE_WINDOW`` seconds (older entries are forgotten)."""
        if sum(tenant is not None for tenant in self._pending) > 1:
            return True
        horizon = time.monotonic() - SHARE_WINDOW
        for tenant in [t for t, seen in self._active.items() if seen < horizon]:
            del self._active[tenant]
        return len(self._active) > 1

    def _next_group(self) -> list[_Pending]:
        """The transactions of the next group commit, served fairly across tenants.

        Tenants least recently served come first (in a shared group, among equals the
        one with fewer transactions waiting), and when several wait each puts at most
        ``group_per_tenant`` transactions in the group: a tenant with one transaction
        waiting behind another's hundreds goes into the next group, at its head, and a
        group (hence the wait for its COMMIT) stays short however many one tenant sends.
        The rest wait for the following groups, each tenant's in its arrival order. A
        tenant whose every waiting transaction fits (a light one) closes the group: its
        few commit without a flood's eight behind them. While a shared group runs, a
        tenant not in it that starts waiting cuts it short (``_preempted``).
        """
        self._groups += 1
        # A tenant alone has nobody to share with: all of it in one group (a cap would
        # only cost it commits). Shared as soon as another tenant wrote recently.
        most = self.group_per_tenant if self._sharing() else None
        self._group_shared = most is not None
        self._group_known = set(self._pending)
        batch: list[_Pending] = []

        # Least recently served first; in a shared group, among equals (a tenant whose
        # queue emptied is forgotten: 0), the one with fewer transactions waiting, so a
        # light tenant is not put behind a flood that happened to empty its queue.
        def order(tenant: str | None) -> tuple[int, int]:
            lighter = len(self._pending[tenant]) if most is not None else 0
            return self._served.get(tenant, 0), lighter

        for tenant in sorted(self._pending, key=order):
            waiting = self._pending[tenant]
            take = len(waiting) if most is None else min(most, len(waiting))
            batch.extend(waiting.popleft() for _ in range(take))
            if waiting:
                self._served[tenant] = self._groups
            else:  # forgotten when idle: a tenant coming back counts as least recent
                del self._pending[tenant]
                self._served.pop(tenant, None)
                if most is not None:  # all it had: the others go in the next group
                    break
        return batch

    async def _commit_batch(self, batch: list[_Pending]) -> None:
        try:
            begin(self._conn)
        except BaseException as exc:
            for _, future, _, _ in batch:
                _settle(future, error=exc)
            return
        done: list[tuple[asyncio.Future[Any], Any, BaseException | None, list[Any]]] = []
        rollups = RollupSums()
        try:
            for index, (fn, future, context, _) in enumerate(batch):
                if index and self._group_shared:  # newcomers get in (``_preempted``)
                    await asyncio.sleep(0)
                    if self._preempted(batch, index):
                        break
                tx = SqliteTx(self._conn)
                self._conn.execute("SAVEPOINT tx")
                try:
                    result = await _in_context(context, fn(tx))
                    apply_writes(self._conn, tx.writes, tx.sizes, tx.tenants)
                except Exception as exc:
                    if not self._conn.in_transaction:
                        # SQLite rolled the whole transaction back (SQLITE_FULL, an I/O
                        # error): the batch's earlier writes are gone too; all fail.
                        raise store_error(exc) from exc
                    self._conn.execute("ROLLBACK TO tx")
                    self._conn.execute("RELEASE tx")
                    if isinstance(exc, sqlite3.IntegrityError):
                        exc = Conflict(f"write refused: {exc}")
                    done.append((future, None, store_error(exc), []))
                    continue
                self._conn.execute("RELEASE tx")
                for delta in tx.rollups:
                    rollups.add(delta)
                done.append((future, result, None, tx.events))
            rollups.flush(self._conn, self._rollup_rows)  # a failure fails the group
        except BaseException as exc:
            rollback(self._conn)
            self._rollup_rows.discard()
            for _, future, _, _ in batch:
                _settle(future, error=store_error(exc))
            raise
        try:
            cancelled = await self._commit()
        except BaseException as exc:
            self._rollup_rows.discard()
            for _, future, _, _ in batch:
                _settle(future, error=store_error(exc))
            raise
        self._rollup_rows.committed()
        for future, result, error, events in done:
            _settle(future, result=result, error=error)
            if error is None:
                self.notify(events)
        if cancelled:
            raise asyncio.CancelledError

    def _preempted(self, batch: list[_Pending], index: int) -> bool:
        """Whether a tenant that was not waiting when the group was formed now waits:
        then the rest of the group goes back to the front of its tenants' queues (in
        order) and the group commits what ran, so the newcomer is in the next group."""
        if all(tenant in self._group_known for tenant in self._pending):
            return False
        for item in reversed(batch[index:]):
            self._pending.setdefault(item[3], deque()).appendleft(item)
        del batch[index:]
        return True

    async def _commit(self) -> bool:
        """COMMIT: on the loop when it does not fsync (``_commit_on_loop``), else in a
        thread (transactions arriving meanwhile share the next one).

        The commit is not cancellable: a cancelled caller waits for the thread to finish
        before anything else touches the connection. Returns whether it was cancelled.
        """
        if self._commit_on_loop:
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                rollback(self._conn)
                raise
            return False
        return await self._off_loop("COMMIT")

    def _start_checkpoint(self) -> None:
        """Checkpoint in the background unless one runs (``_checkpoint``)."""
        self._checkpointed_at = self._conn.total_changes
        if not self._file_backed or (self._checkpointer and not self._checkpointer.done()):
            return
        self._checkpointer = asyncio.create_task(self._checkpoint(), name="sqlite-checkpoint")

    async def _checkpoint(self) -> None:
        """Copy the WAL into the database file, in a thread, on a connection of its own:
        PASSIVE, so the writer goes on committing meanwhile (a checkpoint holding it cost
        every transaction arriving meanwhile tens of milliseconds). Frames written during
        it stay in the WAL; when its file passed ``WAL_BYTES_MOST``, a second one on the
        writer's connection, between groups, copies them (those written during the
        first) and the WAL starts over at the next group."""
        try:
            if self._checkpoint_conn is None:
                self._checkpoint_conn = connect(self._path, self._mode)
            if await self._off_loop("PRAGMA wal_checkpoint(PASSIVE)", self._checkpoint_conn):
                raise asyncio.CancelledError
            if _size(f"{self._path}-wal") > WAL_BYTES_MOST:
                async with self._lock:
                    if await self._off_loop("PRAGMA wal_checkpoint(PASSIVE)"):
                        raise asyncio.CancelledError
        except sqlite3.Error:  # a failed checkpoint loses nothing: the WAL keeps it all
            log.warning("WAL checkpoint failed", exc_info=True)

    async def _off_loop(self, sql: str, conn: sqlite3.Connection | None = None) -> bool:
        """Run ``sql`` on ``conn`` (the writer's) in a thread, not cancellable (a cancelled
        caller waits for it: nothing may close the connection under the thread); a
        failed COMMIT rolls back. Returns whether cancelled.
        The rows are fetched: a statement left unfinished (a checkpoint answers a row)
        would hold the connection ("SQL statements in progress")."""
        conn = self._conn if conn is None else conn
        task = asyncio.ensure_future(asyncio.to_thread(_run_to_end, conn, sql))
        cancelled = False
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                cancelled = True
            except Exception:
                break
        if task.exception() is not None:
            rollback(conn)
            raise task.exception()  # type: ignore[misc]
        return cancelled

    # -- workflows -----------------------------------------------------------------

    async def create_workflow(self, definition: WorkflowDefinition, tenant: str) -> None:
        def body(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM workflows WHERE id = ?", (definition.id,)).fetchone():
                raise Conflict(f"workflow {definition.id!r} already exists")
            conn.execute(
                "INSERT INTO workflows (id, tenant, created_at, name, is_active, tags,"
                " latest_version, updated_at, last_executed, doc) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (definition.id, tenant, epoch(definition.created_at), *_head_columns(definition)),
            )
            _insert_version(conn, definition)

        await self._write(body)

    async def save_version(
        self, definition: WorkflowDefinition, expected_version: int, tenant: str
    ) -> None:
        if definition.version != expected_version + 1:
            raise InputInvalid(
                f"version {definition.version} does not follow {expected_version}",
                path="/version",
            )

        def body(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT latest_version, doc FROM workflows"
                " WHERE id = ? AND tenant = ? AND deleted = 0",
                (definition.id, tenant),
            ).fetchone()
            if row is None:
                raise NotFound(f"workflow {definition.id!r} not found")
            if row[0] != expected_version:
                raise Conflict(
                    f"workflow {definition.id!r} is at version {row[0]}, not {expected_version}"
                )
            head = definition.model_copy()
            if head.last_executed is None:
                head.last_executed = WorkflowDefinition.model_validate_json(row[1]).last_executed
            _insert_version(conn, definition)
            _update_head(conn, head)

        await self._write(body)

    async def get_workflow(self, workflow_id: str, tenant: str) -> WorkflowDefinition | None:
        rows = await self._read(
            "SELECT doc FROM workflows WHERE id = ? AND tenant = ? AND deleted = 0",
            (workflow_id, tenant),
        )
        return WorkflowDefinition.model_validate_json(rows[0][0]) if rows else None

    async def get_head(self, workflow_id: str, tenant: str) -> WorkflowHead | None:
        rows = await self._read(
            "SELECT latest_version, is_active FROM workflows"
            " WHERE id = ? AND tenant = ? AND deleted = 0",
            (workflow_id, tenant),
        )
        return WorkflowHead(int(rows[0][0]), bool(rows[0][1])) if rows else None

    async def get_version(
        self, workflow_id: str, version: int, tenant: str
    ) -> WorkflowDefinition | None:
        rows = await self._read(
            "SELECT v.doc FROM workflow_versions v JOIN workflows w ON w.id = v.workflow_id"
            " WHERE v.workflow_id = ? AND v.version = ? AND w.tenant = ?",
            (workflow_id, version, tenant),
        )
        return WorkflowDefinition.model_validate_json(rows[0][0]) if rows else None

    async def list_versions(self, workflow_id: str, tenant: str) -> list[WorkflowDefinition]:
        rows = await self._read(
            "SELECT v.doc FROM workflow_versions v JOIN workflows w ON w.id = v.workflow_id"
            " WHERE v.workflow_id = ? AND w.tenant = ? ORDER BY v.version",
            (workflow_id, tenant),
        )
        return [WorkflowDefinition.model_validate_json(doc) for (doc,) in rows]

    async def list_workflows(self, query: WorkflowQuery) -> Page[WorkflowDefinition]:
        where = ["tenant = ?", "deleted = 0"]
        params: list[Any] = [query.tenant]
        if query.active_only:
            where.append("is_active = 1")
        if query.name is not None:
            where.append("name = ?")
            params.append(query.name)
        tags = sorted(set(query.tags))
        if tags:
            marks = ", ".join("?" * len(tags))
            where.append(
                f"(SELECT COUNT(DISTINCT value) FROM json_each(workflows.tags)"
                f" WHERE value IN ({marks})) = ?"
            )
            params += [*tags, len(tags)]
        rows = await self._page("workflows", "created_at", where, params, query)
        return _to_page(rows, query.limit, WorkflowDefinition.model_validate_json)

    async def delete_workflow(self, workflow_id: str, tenant: str) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE workflows SET deleted = 1, deleted_at = ?"
                " WHERE id = ? AND tenant = ? AND deleted = 0",
                (epoch(self._clock.now()), workflow_id, tenant),
            )
            return cursor.rowcount > 0

        return await self._write(body)

    async def touch_executed(self, workflow_id: str, at: datetime) -> None:
        def body(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT doc FROM workflows WHERE id = ?", (workflow_id,)).fetchone()
            if row is None:
                return
            head = WorkflowDefinition.model_validate_json(row[0])
            head.last_executed = at
            conn.execute(
                "UPDATE workflows SET last_executed = ?, doc = ? WHERE id = ?",
                (epoch(at), head.model_dump_json(by_alias=True), workflow_id),
            )

        await self._write(body)

    # -- executions ----------------------------------------------------------------

    async def get_execution(self, execution_id: str) -> WorkflowExecution | None:
        async with self._read_lock:
            return get_execution_row(self._reader, execution_id)

    async def list_executions(self, query: ExecutionQuery) -> Page[WorkflowExecution]:
        where = ["tenant = ?"]
        params: list[Any] = [query.tenant]
        if query.workflow_id is not None:
            where.append("workflow_id = ?")
            params.append(query.workflow_id)
        if query.status is not None:
            where.append("status = ?")
            params.append(str(query.status))
        if query.started_from is not None:
            where.append("started_at >= ?")
            params.append(epoch(query.started_from))
        if query.started_before is not None:
            where.append("started_at < ?")
            params.append(epoch(query.started_before))
        rows = await self._page("executions", "started_at", where, params, query)
        return _to_page(rows, query.limit, WorkflowExecution.model_validate_json)

    async def get_run(self, run_id: str) -> StepRun | None:
        async with self._read_lock:
            return get_run_row(self._reader, run_id)

    async def list_runs(self, execution_id: str) -> list[StepRun]:
        async with self._read_lock:
            return list_run_rows(self._reader, execution_id, None)

    async def list_events(
        self, execution_id: str, after_seq: int = 0, limit: int = 1000
    ) -> list[ExecutionEvent]:
        rows = await self._read(
            "SELECT doc FROM events WHERE execution_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (execution_id, after_seq, check_limit(limit)),
        )
        return [ExecutionEvent.model_validate_json(doc) for (doc,) in rows]

    async def due_runs(self, now: datetime, grace_seconds: float, limit: int) -> list[StepRun]:
        rows = await self._read(
            _DUE_RUNS, (epoch(now) - grace_seconds, epoch(now), check_limit(limit))
        )
        return [StepRun.model_validate_json(doc) for (doc, _, _) in rows]

    async def stored_bytes(self, tenant: str) -> int:
        """Bytes the tenant's executions hold: their documents, step runs and events
        (the counter is kept in the transactions that write them)."""
        async with self._read_lock:
            return stored_bytes(self._reader, tenant)

    async def stored_tenants(self) -> list[str]:
        """Tenants holding executions or counted bytes (``RetentionStore``)."""
        async with self._read_lock:
            return stored_tenant_rows(self._reader)

    async def delete_execution(
        self, tenant: str, execution_id: str, finished_before: datetime
    ) -> PurgeCounts:
        """Delete a finished execution with its rows in one write transaction
        (``shared/adapters/_sqlite_retention.py``)."""
        return await self._write(
            lambda conn: delete_execution_rows(conn, tenant, execution_id, finished_before)
        )

    async def list_queued(self, tenant: str | None, limit: int) -> list[WorkflowExecution]:
        where, params = ("WHERE q.tenant = ?", [tenant]) if tenant is not None else ("", [])
        rows = await self._read(
            "SELECT e.doc FROM flow_queue q JOIN executions e ON e.id = q.execution_id"
            f" {where} ORDER BY q.queued_at, q.execution_id LIMIT ?",
            [*params, check_limit(limit)],
        )
        return [WorkflowExecution.model_validate_json(doc) for (doc,) in rows]

    async def list_slots(self, tenant: str, slot_key_prefix: str) -> list[ConcurrencySlot]:
        rows = await self._read(
            "SELECT doc FROM flow_slots WHERE tenant = ? AND substr(slot_key, 1, ?) = ?",
            (tenant, len(slot_key_prefix), slot_key_prefix),
        )
        slots = [ConcurrencySlot.model_validate_json(doc) for (doc,) in rows]
        return sorted(slots, key=lambda slot: (slot.slot_key, slot.index))

    async def queue_position(
        self,
        tenant: str,
        wait_key: str,
        priority: int,
        queued_at: datetime,
        most: int = QUEUE_COUNT_MOST,
    ) -> int:
        # Bounded by the index flow_queue_order: at most ``most`` entries are counted.
        rows = await self._read(
            "SELECT COUNT(*) FROM (SELECT 1 FROM flow_queue WHERE tenant = ? AND wait_key = ?"
            " AND (priority > ? OR (priority = ? AND queued_at < ?)) LIMIT ?)",
            (tenant, wait_key, priority, priority, epoch(queued_at), max(0, most)),
        )
        return int(rows[0][0]) + 1

    async def queue_summary(
        self, tenant: str, wait_key: str, most: int = QUEUE_COUNT_MOST
    ) -> QueueSummary:
        rows = await self._read(
            "SELECT COUNT(*), MIN(queued_at) FROM (SELECT queued_at FROM flow_queue"
            " WHERE tenant = ? AND wait_key = ? LIMIT ?)",
            (tenant, wait_key, max(0, most)),
        )
        count, oldest = rows[0]
        return QueueSummary(
            int(count), None if oldest is None else datetime.fromtimestamp(oldest, UTC)
        )

    async def _page(
        self,
        table: str,
        time_column: str,
        where: list[str],
        params: list[Any],
        query: WorkflowQuery | ExecutionQuery,
    ) -> list[Any]:
        """Rows (doc, time, id) of one page plus one, to tell whether more follow."""
        check_limit(query.limit)
        if query.cursor:
            moment, ident = decode_cursor(query.cursor)
            where = [*where, _KEYSET.format(t=time_column)]
            params = [*params, moment, moment, ident]
        sql = (
            f"SELECT doc, {time_column}, id FROM {table} WHERE {' AND '.join(where)}"
            f" ORDER BY {time_column} DESC, id LIMIT ?"
        )
        return await self._read(sql, [*params, query.limit + 1])


def _to_page(rows: list[Any], limit: int, parse: Callable[[str], T]) -> Page[T]:
    """The page of ``limit`` items out of (doc, time, id) rows, with a cursor if more."""
    page = rows[:limit]
    more = len(rows) > limit
    cursor = encode_cursor((page[-1][1], page[-1][2])) if more else None
    return Page([parse(row[0]) for row in page], cursor)


def _head_columns(definition: WorkflowDefinition) -> tuple[Any, ...]:
    """name, is_active, tags, latest_version, updated_at, last_executed, doc."""
    return (
        definition.name,
        int(definition.is_active),
        json.dumps(definition.tags),
        definition.version,
        epoch(definition.updated_at),
        epoch_or_none(definition.last_executed),
        definition.model_dump_json(by_alias=True),
    )


def _insert_version(conn: sqlite3.Connection, definition: WorkflowDefinition) -> None:
    """Write an immutable version row; Conflict if that version already exists."""
    try:
        conn.execute(
            "INSERT INTO workflow_versions (workflow_id, version, doc) VALUES (?, ?, ?)",
            (definition.id, definition.version, definition.model_dump_json(by_alias=True)),
        )
    except sqlite3.IntegrityError as exc:
        raise Conflict(f"version {definition.version} of {definition.id!r} exists") from exc


def _update_head(conn: sqlite3.Connection, head: WorkflowDefinition) -> None:
    """Point the head row at ``head`` (its creation time stays)."""
    conn.execute(
        "UPDATE workflows SET name = ?, is_active = ?, tags = ?, latest_version = ?,"
        " updated_at = ?, last_executed = ?, doc = ? WHERE id = ?",
        (*_head_columns(head), head.id),
    )


def store_error(exc: BaseException) -> BaseException:
    """SQLite's own failures (disk full, I/O error, read-only file) as a retryable
    STORE_UNAVAILABLE: the API answers 503 with Retry-After and the queue redelivers,
    instead of a bare 500. Anything else is returned as it is."""
    if isinstance(exc, sqlite3.OperationalError | sqlite3.InternalError) or (
        type(exc) is sqlite3.DatabaseError
    ):
        error = TransientError(f"the store cannot write: {exc}", code="STORE_UNAVAILABLE")
        error.__cause__ = exc
        return error
    return exc


async def _in_context(context: contextvars.Context, body: Coroutine[Any, Any, T]) -> T:
    """Run ``body`` in its caller's ``context`` (the writer task runs every caller's
    transaction: a body reading a context variable its caller set must see the
    caller's value). Each step of the coroutine runs in ``context``; what it waits for
    is awaited here."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            if error is None:
                waited = context.run(body.send, value)
            else:
                waited = context.run(body.throw, error)
        except StopIteration as done:
            result: T = done.value
            return result
        value, error = None, None
        try:
            if waited is None:  # a bare yield (asyncio.sleep(0))
                await asyncio.sleep(0)
            else:
                # The body's await marked the future as yielded to a task; this await
                # yields it on to the writer's task, which expects it unmarked.
                waited._asyncio_future_blocking = False
                value = await waited
        except BaseException as exc:  # handed to the body, as its own await would
            error = exc


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _run_to_end(conn: sqlite3.Connection, sql: str) -> list[Any]:
    return conn.execute(sql).fetchall()


def _settle(
    future: asyncio.Future[Any], result: Any = None, error: BaseException | None = None
) -> None:
    """Resolve a waiting transaction's future, unless its caller gave up (cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
