"""Moving a live execution to another version of its workflow (``docs/migration.md``).

The move is one store transaction: it reads the execution and its runs again, plans
again on what it read, and either changes nothing (the plan has problems) or sets the
execution's version, gives each live run its step of the target version and records an
``execution.migrated`` event. A step run claimed by a worker refuses the move
(``MIGRATION_RUNNING_STEP``, retryable), so a step finishing at the same moment is
either moved before its claim, or its claim comes first and the move is refused: never
lost, never run twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from shared.engine.core import EngineCore
from shared.engine.migration import MigrationPlan, MigrationRefused, plan_migration
from shared.engine.transitions import Commit
from shared.errors import NotFound
from shared.models import WorkflowDefinition
from shared.ports import ExecutionTx


class MigrateMixin(EngineCore):
    """The ``migrate`` operation of the ``Engine``."""

    async def migrate(
        self,
        execution_id: str,
        to_version: int,
        *,
        mapping: dict[str, str] | None = None,
        rerun: set[str] | None = None,
        dry_run: bool = True,
    ) -> tuple[MigrationPlan, bool]:
        """Plan (``dry_run``) or apply the move of an execution to ``to_version``.

        Returns the plan and whether it was applied; an unsafe plan with ``dry_run``
        false raises ``MigrationRefused`` and nothing is written.
        """
        execution = await self.executions.get_execution(execution_id)
        if execution is None:
            raise NotFound(f"execution {execution_id} not found")
        target = await self.definitions.version(execution.workflow_id, to_version, execution.tenant)
        if dry_run:
            source = await self.definitions.get(execution)
            runs = await self.executions.list_runs(execution_id)
            return plan_migration(execution, runs, source, target, mapping, rerun), False
        await self.definitions.get(execution)  # cached for the transaction below
        plan = await self.transaction(self._migrate_tx(execution_id, target, mapping, rerun))
        if not plan.ok:
            raise MigrationRefused(plan)
        return plan, True

    def _migrate_tx(
        self,
        execution_id: str,
        target: WorkflowDefinition,
        mapping: dict[str, str] | None,
        rerun: set[str] | None,
    ) -> Callable[[ExecutionTx], Awaitable[MigrationPlan]]:
        async def move(tx: ExecutionTx) -> MigrationPlan:
            # Everything read here, fresh: the body may run again (contention, or a
            # source version not cached yet), and a step may have moved meanwhile.
            execution = await tx.get_execution(execution_id)
            if execution is None:
                raise NotFound(f"execution {execution_id} not found")
            source = self.definitions.require(execution)
            runs = await tx.list_runs(execution_id)
            plan = plan_migration(execution, runs, source, target, mapping, rerun)
            if not plan.ok:
                return plan
            now = self.clock.now()
            commit = Commit(tx, execution, target, self.registry, now)
            by_id = {run.id: run for run in runs}
            for move in plan.moves:
                run = by_id[move.run_id]
                if move.to_step is not None and move.to_step != run.step_id:
                    run.step_id = move.to_step  # id, due time, wake_seq and key are kept
                    commit.put_run(run)
            if execution.current_step is not None and mapping:
                execution.current_step = mapping.get(execution.current_step, execution.current_step)
            execution.workflow_version = target.version
            execution.variables = {**plan.added_variables, **execution.variables}
            commit.event(
                "execution.migrated",
                None,
                fromVersion=plan.from_version,
                toVersion=plan.to_version,
                mapping=dict(mapping or {}),
                moves=[m.to_dict() for m in plan.moves],
                rerun=plan.rerun,
                addedVariables=sorted(plan.added_variables),
            )
            commit.finalize()
            return plan

        return move
