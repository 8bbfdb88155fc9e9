"""The retention sweep: delete finished executions past their tenant's retention, trim
the audit log and idle rate-limit buckets.

Per tenant holding executions (``RetentionStore.stored_tenants``), the horizon is now
minus its ``retentionDays`` (tenant registry), else ``WFE_EXECUTION_RETENTION_DAYS`` (0:
kept forever). Its finished executions are found through the executions listing (tenant,
terminal status, started before the horizon: an execution finishes after it starts),
kept when they finished at or after the horizon, and each one is deleted: first the
execution with its step runs, events, signals and join marks, its bytes taken off the
tenant's storage counter (``RetentionStore.delete_execution``, which checks again,
inside its transactions, that the execution is the tenant's, terminal and past the
horizon), then, only when that deleted it, its LangGraph checkpoints
(``CheckpointStore.delete_for_execution``). In that order a failed execution redriven
between the listing and the delete (running again: the store refuses to delete it) keeps
the checkpoints its agent steps resume from; the price is that a crash between the two
deletes leaves checkpoints of an execution that no longer exists (never read again, not
counted in ``maxStorageBytes``). A pass deletes at most ``max_executions`` (and stops
after ``SweepRequest.max_seconds``); the next pass goes on. Idempotent: a second or
concurrent sweep deletes nothing more (only the call that deleted the execution deletes
its checkpoints).

The sweep reports its counts, logs them as one structured line (``retention.sweep``)
and records an audit entry per tenant it deleted executions of.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.app.audit import Auditor
from shared.models import ExecutionStatus, WorkflowExecution
from shared.ports import ExecutionQuery, Store
from shared.ports.checkpoints import CheckpointStore
from shared.ports.clock import Clock
from shared.ports.retention import AuditRetention, IdleBuckets, PurgeCounts, is_expired
from shared.ports.tenants import TenantStore

__all__ = ["RetentionPolicy", "RetentionSweeper", "SweepReport", "SweepRequest"]

log = logging.getLogger(__name__)

TERMINAL = (
    ExecutionStatus.SUCCEEDED,
    ExecutionStatus.FAILED,
    ExecutionStatus.CANCELLED,
    ExecutionStatus.TIMED_OUT,
)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long things are kept (``WFE_*_RETENTION_DAYS``) and how much a pass does."""

    execution_days: int = 30
    """Days finished executions are kept, unless their tenant says otherwise; 0: forever."""
    audit_days: int = 365
    """Days audit entries are kept; 0: forever."""
    bucket_idle_days: float = 7.0
    """Rate-limit buckets unused this long are deleted (they are full again by then)."""
    page_size: int = 100
    """Executions read per listing page."""
    max_executions: int = 10_000
    """Most executions one pass deletes (the next pass continues)."""
    audit_batch: int = 500
    """Audit entries deleted per call; a pass deletes at most ``max_audit_entries``."""
    max_audit_entries: int = 100_000


@dataclass(frozen=True)
class SweepRequest:
    """Who sweeps, and whether only to count (``dry_run``)."""

    subject: str = "system:retention"
    """Recorded as the audit entries' subject."""
    dry_run: bool = False
    """Count the executions that would go; delete nothing."""
    max_seconds: float | None = None
    """Stop deleting executions after this long (``more`` set): a request-bound caller
    (the admin endpoint under Cloud Run's request timeout) ends in time; None: no bound
    but ``max_executions``."""


@dataclass
class SweepReport:
    """What a sweep deleted (or, in a dry run, found)."""

    dry_run: bool = False
    counts: PurgeCounts = field(default_factory=PurgeCounts)
    audit_entries: int = 0
    rate_buckets: int = 0
    tenants: dict[str, int] = field(default_factory=dict)
    """Executions deleted (or found) per tenant, for the tenants that had some."""
    more: bool = False
    """The pass stopped at ``max_executions`` or ``max_seconds``: more may be expired."""

    def to_json(self) -> dict[str, object]:
        return {
            "dryRun": self.dry_run,
            **self.counts.to_json(),
            "auditEntries": self.audit_entries,
            "rateBuckets": self.rate_buckets,
            "tenants": dict(sorted(self.tenants.items())),
            "more": self.more,
        }


class RetentionSweeper:
    """The sweep use case over the store and its companions (module docstring)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        policy: RetentionPolicy,
        *,
        checkpoints: CheckpointStore | None = None,
        audit_log: AuditRetention | None = None,
        buckets: IdleBuckets | None = None,
        tenants: TenantStore | None = None,
        auditor: Auditor | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.policy = policy
        self._checkpoints = checkpoints
        self._audit_log = audit_log
        self._buckets = buckets
        self._tenants = tenants
        self._auditor = auditor

    async def retention_days(self, tenant: str) -> int:
        """The tenant's ``retentionDays``, else the deployment's default (0: forever)."""
        if self._tenants is not None:
            found = await self._tenants.get_tenant(tenant)
            if found is not None and found.quotas.retention_days is not None:
                return found.quotas.retention_days
        return self.policy.execution_days

    async def sweep(self, request: SweepRequest | None = None) -> SweepReport:
        """One pass over every tenant, then the audit log and the idle buckets."""
        request = request or SweepRequest()
        report = SweepReport(dry_run=request.dry_run)
        stop_at = (
            time.monotonic() + request.max_seconds if request.max_seconds is not None else None
        )
        for tenant in await self._store.stored_tenants():
            if report.more:
                break
            await self._sweep_tenant(tenant, request, report, stop_at)
        if not request.dry_run:
            report.audit_entries = await self._trim_audit()
            if self._buckets is not None:
                idle = self._clock.now() - timedelta(days=self.policy.bucket_idle_days)
                report.rate_buckets = await self._buckets.purge_idle(idle)
            await self._record(request, report)
        log.info(
            "retention.sweep",
            extra={"json_fields": {"event": "retention.sweep", **report.to_json()}},
        )
        return report

    async def _sweep_tenant(
        self, tenant: str, request: SweepRequest, report: SweepReport, stop_at: float | None
    ) -> None:
        days = await self.retention_days(tenant)
        if days <= 0:
            return
        horizon = self._clock.now() - timedelta(days=days)
        for status in TERMINAL:
            cursor: str | None = None
            while True:
                page = await self._store.list_executions(
                    ExecutionQuery(
                        tenant=tenant,
                        status=status,
                        started_before=horizon,
                        limit=self.policy.page_size,
                        cursor=cursor,
                    )
                )
                for execution in page.items:
                    if stop_at is not None and time.monotonic() >= stop_at:
                        report.more = True  # out of time: the next pass goes on
                    if report.more:
                        return
                    if is_expired(execution, tenant, horizon):
                        await self._delete(execution, horizon, request, report)
                cursor = page.next_cursor
                if cursor is None:
                    break

    async def _delete(
        self,
        execution: WorkflowExecution,
        horizon: datetime,
        request: SweepRequest,
        report: SweepReport,
    ) -> None:
        tenant = execution.tenant
        if request.dry_run:
            counts = PurgeCounts(executions=1)
        else:
            # The execution first (re-checked in its transactions), then its checkpoints:
            # never the checkpoints of an execution redriven meanwhile (module docstring).
            counts = await self._store.delete_execution(tenant, execution.id, horizon)
            if counts.executions and self._checkpoints is not None:
                checkpoints = await self._checkpoints.delete_for_execution(execution.id)
                counts = counts + PurgeCounts(checkpoints=checkpoints)
        report.counts = report.counts + counts
        if counts.executions:
            report.tenants[tenant] = report.tenants.get(tenant, 0) + counts.executions
        if sum(report.tenants.values()) >= self.policy.max_executions:
            report.more = True

    async def _trim_audit(self) -> int:
        if self._audit_log is None or self.policy.audit_days <= 0:
            return 0
        horizon = self._clock.now() - timedelta(days=self.policy.audit_days)
        deleted = 0
        while deleted < self.policy.max_audit_entries:
            batch = await self._audit_log.delete_before(horizon, self.policy.audit_batch)
            deleted += batch
            if batch < self.policy.audit_batch:
                break
        return deleted

    async def _record(self, request: SweepRequest, report: SweepReport) -> None:
        """One audit entry per tenant whose executions were deleted (after the trim:
        never deleted by the pass that wrote it)."""
        if self._auditor is None:
            return
        for tenant in sorted(report.tenants):
            await self._auditor.record(
                tenant=tenant, subject=request.subject, action="retention.sweep"
            )
