"""Use cases: move running executions to another version of their workflow
(``docs/migration.md``): one execution, or those of a workflow matching a filter.

Both check the caller's tenant first (an execution or workflow of another tenant is
``NOT_FOUND``), check the request's size and ids (``INVALID_INPUT``), then ask the
engine, which plans and, with ``dry_run`` false, applies in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.app.service import WorkflowApp
from shared.engine.migration import MAX_MAPPING, STEP_ID, MigrationPlan, MigrationRefused
from shared.errors import InputInvalid, WorkflowError, json_pointer
from shared.models import ExecutionStatus

MAX_BULK = 500
"""Executions one bulk request may process."""
BULK_PAGE = 50
"""Executions read (and then migrated one transaction each) per batch."""
MAX_SCANNED = 10_000
"""Executions a bulk request looks at while filtering by version."""
DEFAULT_STATUSES = (
    ExecutionStatus.PENDING,
    ExecutionStatus.RUNNING,
    ExecutionStatus.WAITING,
    ExecutionStatus.PAUSED,
)
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class MigrateRequest:
    """What to move to: a version, how steps map, which done steps may run again."""

    to_version: int
    mapping: dict[str, str] = field(default_factory=dict)
    rerun: frozenset[str] = frozenset()
    dry_run: bool = True


@dataclass(frozen=True)
class MigrationOutcome:
    """One execution's answer: its plan, whether it was applied, and why not."""

    plan: MigrationPlan | None
    applied: bool
    execution_id: str
    error: WorkflowError | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"executionId": self.execution_id, "applied": self.applied}
        if self.plan is not None:
            body["plan"] = self.plan.to_dict()
        if self.error is not None:
            body["error"] = {"code": self.error.code, "message": self.error.message}
            if isinstance(self.error, MigrationRefused):
                body["error"]["reasons"] = [p.to_dict() for p in self.error.plan.problems]
        return body


def _step_id(value: object, where: str) -> str:
    if not isinstance(value, str) or not STEP_ID.fullmatch(value):
        raise InputInvalid("not a step id (letters, digits, _ and -, at most 64)", path=where)
    return value


def migrate_request(
    to_version: object,
    mapping: Mapping[str, object] | None = None,
    rerun: Iterable[object] | None = None,
    dry_run: bool = True,
) -> MigrateRequest:
    """A checked request: a positive version, at most ``MAX_MAPPING`` mapping entries and
    rerun ids, each a valid step id (``INVALID_INPUT`` with the offending path)."""
    if isinstance(to_version, bool) or not isinstance(to_version, int):
        raise InputInvalid("toVersion must be an integer", path="/toVersion")
    if not 1 <= to_version <= MAX_VERSION:
        raise InputInvalid("toVersion must be a version number (1 or more)", path="/toVersion")
    mapping = dict(mapping or {})
    if len(mapping) > MAX_MAPPING:
        raise InputInvalid(f"mapping has more than {MAX_MAPPING} entries", path="/mapping")
    checked: dict[str, str] = {}
    for source, target in mapping.items():
        where = json_pointer("mapping", source)
        checked[_step_id(source, where)] = _step_id(target, where)
    ids = list(rerun or [])
    if len(ids) > MAX_MAPPING:
        raise InputInvalid(f"rerun has more than {MAX_MAPPING} entries", path="/rerun")
    steps = frozenset(_step_id(s, json_pointer("rerun", i)) for i, s in enumerate(ids))
    return MigrateRequest(to_version, checked, steps, dry_run)


async def migrate_execution(
    app: WorkflowApp, execution_id: str, request: MigrateRequest
) -> MigrationOutcome:
    """Plan or apply one execution's move (``MigrationRefused`` when unsafe and applied)."""
    execution = await app.get_execution(execution_id)  # NOT_FOUND across tenants
    await app.get_version(execution.workflow_id, request.to_version)
    plan, applied = await app.engine.migrate(
        execution_id,
        request.to_version,
        mapping=request.mapping,
        rerun=set(request.rerun),
        dry_run=request.dry_run,
    )
    return MigrationOutcome(plan, applied, execution_id)


async def migrate_workflow_executions(
    app: WorkflowApp,
    workflow_id: str,
    request: MigrateRequest,
    *,
    from_version: int | None = None,
    statuses: Iterable[ExecutionStatus] | None = None,
    limit: int = 100,
) -> list[MigrationOutcome]:
    """Plan or apply the move of a workflow's executions in ``statuses`` (default: the
    live ones) on ``from_version`` (default: any other version), newest first, at most
    ``limit``, read in batches of ``BULK_PAGE``; each is moved in its own transaction
    and answers for itself (applied, or refused with its reasons)."""
    if not 1 <= limit <= MAX_BULK:
        raise InputInvalid(f"limit must be between 1 and {MAX_BULK}", path="/limit")
    if from_version is not None and not 1 <= from_version <= MAX_VERSION:
        raise InputInvalid("fromVersion must be a version number", path="/fromVersion")
    await app.get_workflow(workflow_id)  # NOT_FOUND across tenants
    await app.get_version(workflow_id, request.to_version)
    wanted = list(dict.fromkeys(statuses or DEFAULT_STATUSES))
    results: list[MigrationOutcome] = []
    scanned = 0
    for status in wanted:
        cursor: str | None = None
        while len(results) < limit and scanned < MAX_SCANNED:
            page = await app.list_executions(
                workflow_id=workflow_id, status=status, limit=BULK_PAGE, cursor=cursor
            )
            scanned += len(page.items)
            for execution in page.items:
                if len(results) >= limit:
                    break
                if execution.workflow_version == request.to_version:
                    continue
                if from_version is not None and execution.workflow_version != from_version:
                    continue
                results.append(await _one(app, execution.id, request))
            cursor = page.next_cursor
            if cursor is None:
                break
    return results


async def _one(app: WorkflowApp, execution_id: str, request: MigrateRequest) -> MigrationOutcome:
    try:
        return await migrate_execution(app, execution_id, request)
    except MigrationRefused as refused:
        return MigrationOutcome(refused.plan, False, execution_id, refused)
    except WorkflowError as error:  # it ended or moved meanwhile, contention...
        return MigrationOutcome(None, False, execution_id, error)
